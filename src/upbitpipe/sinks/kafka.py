"""Kafka sink: transactional, acks=all, idempotent, compressed, batched; spools to disk
while Kafka is away.

Delivery path: ``write`` sends the batch inside one Kafka transaction and commits it, so when
it returns every event is either committed (acknowledged by ``min.insync.replicas`` brokers and
visible to read_committed consumers) or appended (fsynced) to the on-disk spool. While the spool
holds anything, new events are appended behind it, and a drainer task re-sends it in order,
one transaction per drain batch, once the brokers answer again. Records Kafka rejects for good
(e.g. too large) are dead-lettered, not retried forever.

Each record reaches read_committed consumers once: a batch not acknowledged in time is aborted
(or its producer dropped; the next producer's start fences the old one and its open
transaction is aborted) before it is spooled, so the late acknowledgement of a first copy never
makes a second one visible; a commit whose outcome is unknown is settled by reading Kafka back
(``kafka_txn``) before its batch is acknowledged or sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    KafkaError,
    MessageSizeTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedCodecError,
    UnsupportedSaslMechanismError,
)

from upbitpipe.backoff import Backoff
from upbitpipe.config import KafkaSettings, reveal
from upbitpipe.errors import AuthError
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.kafka_batch import (
    MAX_REQUEST_BYTES,
    Record,
    Sends,
    consume_result,
    send_lane,
)
from upbitpipe.sinks.kafka_codec import use_zstd_level_1
from upbitpipe.sinks.kafka_routes import Routed, Router
from upbitpipe.sinks.kafka_txn import (
    MARKER_FILE,
    InDoubt,
    batch_committed,
    clear_marker,
    load_marker,
    save_marker,
    shorten_concurrent_txn_backoff,
    transactional_id,
)
from upbitpipe.sinks.spool import DiskSpool, SpoolFullError, SpoolRecord

log = logging.getLogger(__name__)

_PERMANENT = (MessageSizeTooLargeError, UnsupportedCodecError, TopicAuthorizationFailedError)
_AUTH_ERRORS = (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    SaslAuthenticationFailed,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
)
ProducerFactory = Callable[[], AIOKafkaProducer]
#: After a transaction of at least ``_GATHER_FROM`` records and fewer than ``_GATHER_BELOW``
#: (the sink runner hands up to 2,000), the next one also waits as long as this one took,
#: at most ``_GATHER_CAP`` s (``_linger``)
_GATHER_FROM = 250
_GATHER_BELOW = 1000
_GATHER_CAP = 0.05
Settle = Callable[[InDoubt], Awaitable[bool | None]]


def producer_options(settings: KafkaSettings, txn_id: str | None = None) -> dict[str, Any]:
    """aiokafka producer keyword arguments from the config (secrets revealed here only);
    with ``txn_id``, a transactional producer (idempotent by definition)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "max_batch_size": settings.max_batch_bytes,
        "request_timeout_ms": settings.request_timeout_ms,
        "max_request_size": MAX_REQUEST_BYTES,
        **security_options(settings),
    }
    if txn_id is not None:
        options["transactional_id"] = txn_id
        options["transaction_timeout_ms"] = settings.transaction_timeout_ms
    return options


def security_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka's security keys (protocol, SASL) for producers and consumers alike."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = reveal(settings.sasl_password)
    return options


def consumer_options(settings: KafkaSettings) -> dict[str, Any]:
    """A group-less consumer that reads what Kafka holds (read_committed is added by the
    callers: aiokafka takes it as its own keyword)."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "enable_auto_commit": False,
        "group_id": None,
        "auto_offset_reset": "latest",
        "request_timeout_ms": settings.request_timeout_ms,
        **security_options(settings),
    }


async def fence(settings: KafkaSettings, txn_id: str, *, limit_seconds: float = 30.0) -> bool:
    """Start and stop a producer with ``txn_id``: its start ends whatever transaction an
    earlier (killed) producer of that id left open, so a read_committed read-back afterwards
    sees Kafka's final content. False when Kafka cannot be reached."""
    producer = AIOKafkaProducer(**producer_options(settings, txn_id))
    try:
        async with asyncio.timeout(limit_seconds):
            await producer.start()
    except Exception as exc:
        log.warning("cannot fence the kafka transactional id %s (%s)", txn_id, exc)
        return False
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), timeout=10)
    return True


def encode_event(event: SinkEvent, topic: str) -> SpoolRecord:
    """The Kafka record of an event: keyed by market, the value its data-contract JSON
    (encoded once by the collector where the event was made). ``KafkaSink.write`` makes the
    same as a :data:`Record` tuple (``Router.route``)."""
    return SpoolRecord(topic=topic, key=event.market.encode(), value=event.value)


def _spooled(records: list[Record]) -> list[SpoolRecord]:
    return [SpoolRecord(*record) for record in records]


@dataclass(slots=True)
class _Outcome:
    """What became of one transaction: ``retry`` holds the records not known to be committed
    (empty: all committed or dead-lettered); with ``doubt`` set, they may be committed."""

    retry: list[Record] = field(default_factory=list)
    doubt: InDoubt | None = None
    committed: int = 0


class KafkaSink:
    name = "kafka"
    flush_interval = 1.0
    needs_record = False  # reads SinkEvent.value, never the dict

    def __init__(
        self,
        settings: KafkaSettings,
        spool_dir: Path,
        dead_letters: DeadLetterBox,
        *,
        producer_factory: ProducerFactory | None = None,
        settle: Settle | None = None,
        drain_batch: int = 500,
    ) -> None:
        self.settings = settings
        self.spool_dir = spool_dir
        self.dead_letters = dead_letters
        self._factory = producer_factory
        self._settle = settle or (lambda m: batch_committed(consumer_options(settings), m))
        self._drain_batch = drain_batch
        self._marker_path = spool_dir / MARKER_FILE
        self._in_doubt: InDoubt | None = None
        self._committing: tuple[InDoubt, list[Record]] | None = None
        self._router = Router(settings.topic)
        self._producer: AIOKafkaProducer | None = None
        self._spool: DiskSpool | None = None
        self._lock = asyncio.Lock()
        self._drainer: asyncio.Task[None] | None = None
        self._backoff = Backoff(initial=0.5, cap=30.0)
        self._in_flight: list[SinkEvent] = []  # the batch ``write`` is delivering
        self._txn_began: float | None = None  # loop time the last direct commit's txn began
        self._txn_gather = 0.0  # s the next transaction waits after that commit, at least
        self.sent = 0
        self.committed_transactions = 0
        self.delivery_errors = 0
        self.spooled_total = 0
        self.resent_from_spool = 0
        self.spool_full_waits = 0
        self.aborted = 0
        self.in_doubt_total = 0
        self.last_error = ""

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        shorten_concurrent_txn_backoff()
        use_zstd_level_1()
        self._spool = spool = await asyncio.to_thread(
            DiskSpool, self.spool_dir, self.settings.spool_max_bytes
        )
        if self._factory is None:
            txn_id = await asyncio.to_thread(transactional_id, self.settings, self.spool_dir)
            options = producer_options(self.settings, txn_id)
            self._factory = lambda: AIOKafkaProducer(**options)
        marker = await asyncio.to_thread(load_marker, self._marker_path)
        if marker is not None and (
            marker.position != spool.head_position() or marker.count > len(spool)
        ):
            # its batch was acknowledged in the spool already (killed before the marker went)
            await asyncio.to_thread(clear_marker, self._marker_path)
            marker = None
        self._in_doubt = marker
        if len(spool):
            log.info("kafka spool holds %d records from an earlier run; re-sending", len(spool))
        if not await self._start_producer():
            log.warning(
                "kafka unreachable at %s; spooling to %s",
                self.settings.bootstrap_servers,
                self.spool_dir,
            )
        if len(spool) or self._producer is None:
            self._ensure_drainer()

    async def write(self, events: Sequence[SinkEvent]) -> None:
        if not events:
            return
        routed = self._router.route(events)  # records, and by partition (kafka_routes)
        self._in_flight = list(events)
        await self._deliver(routed)
        self._in_flight = []
        await self._linger()

    async def _linger(self) -> None:
        """After a commit, let records gather so the next transaction carries them all: a
        transaction costs ~1.2-1.8 ms of CPU whatever it carries (three requests, a batch
        per partition, aiokafka's sender and the event loop), so transactions of few
        records cost more CPU per record than the records themselves.

        The next transaction begins ``linger_ms`` after this one began at the earliest (one
        begun at once after a commit also finds the coordinator still writing that commit's
        markers: ``ConcurrentTransactions``, retried after a backoff). After a transaction
        of ``_GATHER_FROM`` to ``_GATHER_BELOW`` records, it also waits as long as that one
        took (at most ``_GATHER_CAP``): where transactions are slow at high rates (full
        rate, a busy machine) the next one carries about twice the records, instead of one
        small transaction after another. Not below (at 5,000 msgs/s a transaction carries
        ~50 records: its latency stays as it was), nor above (the sink's peak rate stays). The committed records are visible
        already; the wait adds to the next batch's latency. ``linger_ms`` 0: no wait."""
        began, self._txn_began = self._txn_began, None
        if began is None or not self.settings.linger_ms:
            return
        now = asyncio.get_running_loop().time()
        delay = max(began + self.settings.linger_ms / 1000 - now, self._txn_gather)
        if delay > 0:
            await asyncio.sleep(delay)

    def take_unflushed(self) -> list[SinkEvent]:
        """The batch of a ``write`` cancelled at shutdown before its commit was asked for (that
        transaction is never committed: the next producer's start aborts it)."""
        events, self._in_flight = self._in_flight, []
        return events

    async def _deliver(self, routed: Routed) -> None:
        assert self._spool is not None
        records = routed.records
        async with self._lock:
            if self._producer is None or len(self._spool):
                await self._spool_append(records)
                return
            began = asyncio.get_running_loop().time()
            try:
                outcome = await self._transact(records, routed=routed)
            except asyncio.CancelledError:
                self._keep_cancelled_commit()
                raise
            if not outcome.retry:
                self._txn_began = began
                took = asyncio.get_running_loop().time() - began
                gather = _GATHER_FROM <= len(records) < _GATHER_BELOW
                self._txn_gather = min(took, _GATHER_CAP) if gather else 0.0
                return
            if outcome.doubt is not None:
                # the spool is empty (direct delivery): the batch becomes its head
                marker = replace(
                    outcome.doubt,
                    position=self._spool.head_position(),
                    count=len(outcome.retry),
                )
                await self._mark(marker)
            await self._spool_append(outcome.retry)
        await self._drop_producer()
        self._ensure_drainer()

    def _keep_cancelled_commit(self) -> None:
        """A ``write`` cancelled (shutdown) while its commit was asked for: Kafka may have the
        batch, so it is not handed back (``take_unflushed``) but spooled with an in-doubt
        marker, settled at the next start. Synchronous: it runs inside the cancellation."""
        if self._committing is None or self._spool is None:
            return
        (doubt, pending), self._committing = self._committing, None
        marker = replace(doubt, position=self._spool.head_position(), count=len(pending))
        try:
            save_marker(self._marker_path, marker)
            self._spool.append(_spooled(pending))
        except (OSError, SpoolFullError) as exc:  # the runner's spool takes them: at-least-once
            log.warning("kafka: cannot spool a cancelled in-doubt commit: %s", exc)
            with contextlib.suppress(OSError):
                clear_marker(self._marker_path)
            return
        self._in_doubt = marker
        self.spooled_total += len(pending)
        self._in_flight = []

    async def flush(self) -> None:
        """Nothing to do: ``write`` returns only once its transaction is committed."""

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
            "transactions_committed": self.committed_transactions,
            "delivery_errors": self.delivery_errors,
            "spooled_total": self.spooled_total,
            "resent_from_spool": self.resent_from_spool,
            "spool_records": len(self._spool) if self._spool else 0,
            "spool_bytes": self._spool.bytes if self._spool else 0,
            "spool_full_waits": self.spool_full_waits,
            "transactions_aborted": self.aborted,
            "commits_in_doubt": self.in_doubt_total,
            "last_error": self.last_error,
        }

    # -- internals -------------------------------------------------------------------

    async def _start_producer(self) -> bool:
        assert self._factory is not None
        producer = self._factory()
        try:
            await producer.start()
        except _AUTH_ERRORS as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            what = (
                "the transactional id (needs WRITE on TransactionalId)"
                if isinstance(exc, TransactionalIdAuthorizationFailed)
                else "the credentials"
            )
            msg = f"kafka refused {what} ({type(exc).__name__}); check kafka.sasl_* settings"
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

    async def _transact(
        self,
        records: list[Record],
        before_commit: Callable[[InDoubt], Awaitable[None]] | None = None,
        *,
        routed: Routed | None = None,
    ) -> _Outcome:
        """Send ``records`` in one transaction and commit it (``routed``: the same records
        by partition already, for the first round).

        Acks and the commit each get ``request_timeout_ms`` (+1 s): aiokafka would otherwise
        keep retrying in memory while the brokers are away, blocking the writer and, through
        the full queue, the WebSocket readers. A batch not acknowledged in time is aborted
        (its records come back in ``retry``); records Kafka rejects for good are
        dead-lettered and the rest goes again in a new transaction. ``before_commit`` gets
        the batch's in-doubt marker before the commit is asked for.
        """
        producer = self._producer
        if producer is None:
            return _Outcome(retry=records)
        deadline = self.settings.request_timeout_ms / 1000 + 1.0
        pending = records
        alone: set[int] = set()  # records that go in a batch of their own (after a reject)
        rounds = 0
        self._committing = None
        while True:
            try:
                async with asyncio.timeout(deadline):
                    await producer.begin_transaction()
            except Exception as exc:  # no producer id (Kafka away), fenced, bad state
                self._note_error(exc)
                return _Outcome(retry=pending)
            if routed is None:  # a later round (its records sorted again): not the write's
                routed = Routed(pending, None, -1)
            sends = await self._send_all(producer, routed, deadline, alone)
            routed = None
            if pending and sends.all_acknowledged(len(pending)):
                # the usual case: every record went in a batch and every batch was acked
                last: Any = sends.shipped[-1][0].result()
                rejected: list[Record] = []
                poisoned = failed = False
            else:
                last, rejected, poisoned, failed = await self._sort_results(pending, sends, alone)
            if rejected:
                gone = {id(r) for r in rejected}
                pending = [r for r in pending if id(r) not in gone]
            if failed or poisoned or not pending:
                aborted = await self._abort(producer, deadline)
                rounds += 1
                # each such round dead-letters a record or splits a batch: it ends
                if poisoned and pending and rounds <= len(records) + 2:
                    # A refused batch used up sequence numbers the brokers never saw (later
                    # batches of its partition fail out of order): a fresh producer (new
                    # epoch, sequences from 0) sends the rest in a new transaction.
                    await self._drop_producer()
                    if not await self._start_producer():
                        return _Outcome(retry=pending)
                    assert self._producer is not None
                    producer = self._producer
                    continue
                if failed or not aborted or pending:
                    return _Outcome(retry=pending)  # the caller drops this producer
                return _Outcome()
            doubt = InDoubt(topic=last.topic, partition=last.partition, offset=last.offset)
            if before_commit is not None:
                await before_commit(doubt)
            self._committing = (doubt, pending)
            try:
                async with asyncio.timeout(deadline):
                    await producer.commit_transaction()
            except Exception as exc:  # unanswered or failed: Kafka may or may not have it
                self._note_error(exc)
                _forget_transaction(producer)
                self.in_doubt_total += 1
                self._committing = None
                return _Outcome(retry=pending, doubt=doubt)
            # (left set when cancelled: ``_deliver`` spools the batch in doubt)
            self._committing = None
            self.sent += len(pending)
            self.committed_transactions += 1
            return _Outcome(committed=len(pending))

    async def _sort_results(
        self, pending: list[Record], sends: Sends, alone: set[int]
    ) -> tuple[Any, list[Record], bool, bool]:
        """Batch by batch, what became of a transaction's sends: the last acknowledged
        batch's metadata; the records Kafka refused for good (dead-lettered here); whether
        a broker-side refusal poisoned the transaction (it can only be aborted; a refused
        batch's records are marked to go ``alone`` next time, to find the one at fault);
        and whether any record is neither acknowledged nor refused (not sent, timed out)."""
        rejected: list[tuple[Record, BaseException]] = list(sends.refused)
        poisoned = False
        failed = sends.stopped or len(pending) != len(sends.refused) + sum(
            len(records) for _, records in sends.shipped
        )
        last: Any = None
        for future, records in sends.shipped:
            if not future.done() or future.cancelled():
                failed = True
            elif (error := future.exception()) is None:
                last = future.result()
            elif isinstance(error, _PERMANENT):
                poisoned = True
                if len(records) > 1:  # its batch was refused: find which one alone
                    alone.update(map(id, records))
                else:
                    rejected.append((records[0], error))
            else:
                self._note_error(error)
                failed = True
        for record, error in rejected:
            self.delivery_errors += 1
            await self.dead_letters.put("kafka_rejected", f"{record[0]}: {error}", record[2])
        return last, [record for record, _ in rejected], poisoned, failed

    async def _send_all(
        self,
        producer: AIOKafkaProducer,
        routed: Routed,
        deadline: float,
        alone: set[int] | frozenset[int] = frozenset(),
    ) -> Sends:
        """Send ``routed``'s records as one batch per partition (split where a batch is
        full), and wait for the acknowledgements: each batch sent with its records, the
        records refused outright (too large to send), and whether sending stopped early.

        Partitions are chosen as aiokafka's default partitioner does (murmur2 of the key
        over the sorted partitions, :class:`kafka_routes.Router`), so a market keeps its
        partition, and each partition's records keep their order, except the ``alone`` ones
        (the records of a batch the broker refused, re-sent one per batch to find the
        culprit): they go after the others. The records come sorted into their partitions
        already (``write`` routes each event by its type and market) or are sorted here;
        then each partition's batch is filled in one go (:func:`kafka_batch.send_lane`). One
        ``send_batch`` per batch instead of one ``send`` and future per record. Every record
        gets the time of this call as its Kafka timestamp (CreateTime): one clock read, not
        one per record inside aiokafka.
        """
        stamp = int(time.time() * 1000)
        sends = Sends()
        router = self._router
        try:
            async with asyncio.timeout(deadline):
                await router.check(producer, router.topics_of(routed))
                records = routed.records
                if alone:
                    singles = [r for r in records if id(r) in alone]
                    records = [r for r in records if id(r) not in alone]
                else:
                    singles = []
                lanes = router.routed_lanes(routed)
                if lanes is None:
                    lanes = list((await router.lanes_of(producer, records)).items())
                for tp, lane in lanes:
                    await send_lane(producer, tp, lane, stamp, sends)
                for record in singles:
                    single = (await router.lanes_of(producer, [record])).popitem()
                    await send_lane(producer, *single, stamp, sends)
                if sends.shipped:
                    await asyncio.wait([future for future, _ in sends.shipped])
        except TimeoutError:
            self._note_error(TimeoutError(f"no acknowledgement within {deadline:.0f}s"))
            sends.stopped = True
        except KafkaError as exc:
            self._note_error(exc)
            sends.stopped = True
        return sends

    async def _abort(self, producer: AIOKafkaProducer, deadline: float) -> bool:
        """Abort the open transaction; False when that did not work (drop the producer:
        the next one's start aborts it)."""
        self.aborted += 1
        try:
            async with asyncio.timeout(deadline):
                await producer.abort_transaction()
        except Exception as exc:
            self._note_error(exc)
            _forget_transaction(producer)
            return False
        return True

    async def _mark(self, marker: InDoubt) -> None:
        await asyncio.to_thread(save_marker, self._marker_path, marker)
        self._in_doubt = marker

    async def _mark_batch(self, position: str, count: int, doubt: InDoubt) -> None:
        await self._mark(replace(doubt, position=position, count=count))

    async def _unmark(self) -> None:
        if self._in_doubt is not None:
            await asyncio.to_thread(clear_marker, self._marker_path)
            self._in_doubt = None

    def _note_error(self, exc: BaseException) -> None:
        self.delivery_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    async def _spool_append(self, records: list[Record]) -> None:
        """Append to the spool (caller holds the lock); waits while the spool is full."""
        assert self._spool is not None
        spooled = _spooled(records)
        while True:
            try:
                await asyncio.to_thread(self._spool.append, spooled)
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
            if self._in_doubt is not None:
                # the producer's start has fenced the one that asked for the commit
                if not await self._settle_in_doubt():
                    await asyncio.sleep(self._backoff.next_delay())
                continue
            async with self._lock:
                peeked = await asyncio.to_thread(spool.peek, self._drain_batch)
                if not peeked:
                    log.info("kafka spool drained; back to direct delivery")
                    return
                batch = [(r.topic, r.key, r.value) for r in peeked]
                mark = functools.partial(self._mark_batch, spool.head_position(), len(batch))
                outcome = await self._transact(batch, mark)
                if not outcome.retry:
                    await asyncio.to_thread(spool.ack, len(batch))
                    self.resent_from_spool += outcome.committed
                if outcome.doubt is None:
                    await self._unmark()
            if outcome.retry:
                # Keep the spool untouched (whole batch is retried: in order); an in-doubt
                # batch is settled first, once the next producer has fenced this one
                await self._drop_producer()
                await asyncio.sleep(self._backoff.next_delay())

    async def _settle_in_doubt(self) -> bool:
        """Acknowledge the in-doubt batch in the spool if Kafka has it, else let it be sent
        again; False when Kafka cannot tell yet."""
        marker = self._in_doubt
        assert marker is not None and self._spool is not None
        verdict = await self._settle(marker)
        if verdict is None:
            return False
        async with self._lock:
            if verdict:
                await asyncio.to_thread(self._spool.ack, marker.count)
                self.resent_from_spool += marker.count
            await self._unmark()
        log.info(
            "kafka: an in-doubt commit of %d records was %s",
            marker.count,
            "committed (acknowledged in the spool)" if verdict else "not committed (re-sent)",
        )
        return True


def _forget_transaction(producer: AIOKafkaProducer) -> None:
    """We stopped waiting for this transaction's end (the producer is dropped next): its
    outcome (e.g. fenced by the next producer) is seen here, not logged as never retrieved."""
    manager = getattr(producer, "_txn_manager", None)
    waiter = manager.wait_for_transaction_end() if manager is not None else None
    if isinstance(waiter, asyncio.Future):
        waiter.add_done_callback(consume_result)
