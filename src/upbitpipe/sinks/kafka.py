"""Kafka sink: acks=all, idempotent, compressed, batched; spools to disk while Kafka is away.

Delivery path: ``write`` sends the batch and waits for the acknowledgements, so when it
returns every event is either acknowledged by ``min.insync.replicas`` brokers or appended
(fsynced) to the on-disk spool. While the spool holds anything, new events are appended
behind it, and a drainer task re-sends it in order once the brokers answer again. Records
Kafka rejects for good (e.g. too large) are dead-lettered, not retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    KafkaError,
    MessageSizeTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedCodecError,
    UnsupportedSaslMechanismError,
)

from upbitpipe.backoff import Backoff
from upbitpipe.config import KafkaSettings, reveal
from upbitpipe.errors import AuthError
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.spool import DiskSpool, SpoolFullError, SpoolRecord

log = logging.getLogger(__name__)

_PERMANENT = (MessageSizeTooLargeError, UnsupportedCodecError, TopicAuthorizationFailedError)
_AUTH_ERRORS = (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
ProducerFactory = Callable[[], AIOKafkaProducer]


def producer_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka producer keyword arguments from the config (secrets revealed here only)."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "linger_ms": settings.linger_ms,
        "max_batch_size": settings.max_batch_bytes,
        "request_timeout_ms": settings.request_timeout_ms,
        **security_options(settings),
    }


def security_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka's security keys (protocol, SASL) for producers and consumers alike."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = reveal(settings.sasl_password)
    return options


def encode_event(event: SinkEvent, topic: str) -> SpoolRecord:
    return SpoolRecord(topic=topic, key=event.market.encode(), value=orjson.dumps(event.record))


class KafkaSink:
    name = "kafka"
    flush_interval = 1.0

    def __init__(
        self,
        settings: KafkaSettings,
        spool_dir: Path,
        dead_letters: DeadLetterBox,
        *,
        producer_factory: ProducerFactory | None = None,
        drain_batch: int = 500,
    ) -> None:
        self.settings = settings
        self.spool_dir = spool_dir
        self.dead_letters = dead_letters
        self._factory = producer_factory or (lambda: AIOKafkaProducer(**producer_options(settings)))
        self._drain_batch = drain_batch
        self._producer: AIOKafkaProducer | None = None
        self._spool: DiskSpool | None = None
        self._lock = asyncio.Lock()
        self._drainer: asyncio.Task[None] | None = None
        self._backoff = Backoff(initial=0.5, cap=30.0)
        self._in_flight: list[SinkEvent] = []  # the batch ``write`` is delivering
        self.sent = 0
        self.delivery_errors = 0
        self.spooled_total = 0
        self.resent_from_spool = 0
        self.spool_full_waits = 0
        self.last_error = ""

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        self._spool = await asyncio.to_thread(
            DiskSpool, self.spool_dir, self.settings.spool_max_bytes
        )
        if len(self._spool):
            log.info(
                "kafka spool holds %d records from an earlier run; re-sending", len(self._spool)
            )
        if not await self._start_producer():
            log.warning(
                "kafka unreachable at %s; spooling to %s",
                self.settings.bootstrap_servers,
                self.spool_dir,
            )
        if len(self._spool) or self._producer is None:
            self._ensure_drainer()

    async def write(self, events: Sequence[SinkEvent]) -> None:
        records = [encode_event(e, self.settings.topic(e.type)) for e in events]
        if not records:
            return
        self._in_flight = list(events)
        await self._deliver(records)
        self._in_flight = []

    def take_unflushed(self) -> list[SinkEvent]:
        """The batch of a ``write`` cancelled at shutdown (some of it may have been
        acknowledged already: at-least-once)."""
        events, self._in_flight = self._in_flight, []
        return events

    async def _deliver(self, records: list[SpoolRecord]) -> None:
        async with self._lock:
            spooling = self._producer is None or bool(self._spool and len(self._spool))
            if spooling:
                await self._spool_append(records)
                return
        failed = await self._send(records)
        if failed:
            async with self._lock:
                await self._spool_append(failed)
            await self._drop_producer()
            self._ensure_drainer()

    async def flush(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.flush()

    async def close(self) -> None:
        """Final attempt to drain the spool (bounded by the caller's timeout), then stop."""
        if self._drainer is not None:
            if self._spool is not None and len(self._spool) and self._producer is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._drainer), timeout=5)
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
        await self._drop_producer()
        if self._spool is not None and len(self._spool):
            log.warning(
                "kafka: %d records stay in the spool %s and are sent on next start",
                len(self._spool),
                self.spool_dir,
            )

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self._producer is not None,
            "sent": self.sent,
            "delivery_errors": self.delivery_errors,
            "spooled_total": self.spooled_total,
            "resent_from_spool": self.resent_from_spool,
            "spool_records": len(self._spool) if self._spool else 0,
            "spool_bytes": self._spool.bytes if self._spool else 0,
            "spool_full_waits": self.spool_full_waits,
            "last_error": self.last_error,
        }

    # -- internals -------------------------------------------------------------------

    async def _start_producer(self) -> bool:
        producer = self._factory()
        try:
            await producer.start()
        except _AUTH_ERRORS as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            msg = (
                f"kafka refused the credentials ({type(exc).__name__}); check kafka.sasl_* settings"
            )
            raise AuthError(msg) from None
        except KafkaError as exc:
            self.last_error = f"connect: {exc}"
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        self._producer = producer
        self._backoff.reset()
        return True

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=10)

    async def _send(self, records: list[SpoolRecord]) -> list[SpoolRecord]:
        """Send and await acks; return the records that must be retried (in order).

        The whole batch gets ``request_timeout_ms`` (+1 s) to be acknowledged: aiokafka would
        otherwise keep retrying in memory while the brokers are away, blocking the writer and,
        through the full queue, the WebSocket readers. What is not acknowledged in time is
        handed back for the spool (a late ack of it later means an at-least-once duplicate).
        """
        producer = self._producer
        if producer is None:
            return records
        futures: list[asyncio.Future[Any]] = []
        deadline = self.settings.request_timeout_ms / 1000 + 1.0
        try:
            async with asyncio.timeout(deadline):
                for record in records:
                    future = await producer.send(record.topic, record.value, key=record.key)
                    future.add_done_callback(_consume_result)
                    futures.append(future)
                await asyncio.wait(futures)
        except TimeoutError:
            self._note_error(TimeoutError(f"no acknowledgement within {deadline:.0f}s"))
        except KafkaError as exc:
            self._note_error(exc)
        retry: list[SpoolRecord] = []
        for index, record in enumerate(records):
            future_or_none = futures[index] if index < len(futures) else None
            if future_or_none is None or not future_or_none.done() or future_or_none.cancelled():
                retry.append(record)
                continue
            error = future_or_none.exception()
            if error is None:
                self.sent += 1
            elif isinstance(error, _PERMANENT):
                self.delivery_errors += 1
                await self.dead_letters.put(
                    "kafka_rejected", f"{record.topic}: {error}", record.value
                )
            else:
                self._note_error(error)
                retry.append(record)
        return retry

    def _note_error(self, exc: BaseException) -> None:
        self.delivery_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    async def _spool_append(self, records: list[SpoolRecord]) -> None:
        """Append to the spool (caller holds the lock); waits while the spool is full."""
        assert self._spool is not None
        while True:
            try:
                await asyncio.to_thread(self._spool.append, records)
            except SpoolFullError as exc:
                self.spool_full_waits += 1
                log.error("kafka spool full, collector waits for Kafka: %s", exc)
                self._lock.release()
                try:
                    await asyncio.sleep(1.0)
                finally:
                    await self._lock.acquire()
                continue
            self.spooled_total += len(records)
            return

    def _ensure_drainer(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="kafka-spool-drainer")

    async def _drain(self) -> None:
        assert self._spool is not None
        spool = self._spool
        while True:
            if self._producer is None and not await self._start_producer():
                delay = self._backoff.next_delay()
                log.warning("kafka still unreachable (%s); retry in %.1fs", self.last_error, delay)
                await asyncio.sleep(delay)
                continue
            async with self._lock:
                batch = await asyncio.to_thread(spool.peek, self._drain_batch)
                if not batch:
                    log.info("kafka spool drained; back to direct delivery")
                    return
                failed = await self._send(batch)
                if failed:
                    delivered = len(batch) - len(failed)
                else:
                    delivered = len(batch)
                if not failed:
                    await asyncio.to_thread(spool.ack, delivered)
                    self.resent_from_spool += delivered
            if failed:
                # Keep the spool untouched (whole batch is retried: at-least-once, in order).
                await self._drop_producer()
                await asyncio.sleep(self._backoff.next_delay())


def _consume_result(future: asyncio.Future[Any]) -> None:
    """Mark a delivery future's exception as seen (we inspect it, or spool its record)."""
    if not future.cancelled():
        future.exception()
