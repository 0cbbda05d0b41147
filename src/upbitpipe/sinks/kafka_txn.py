"""The Kafka sink's transactional identity and its in-doubt commits.

Every collector produces with one fixed ``transactional.id`` (``kafka.transactional_id``, or
one generated once and kept in its spool directory). A producer that starts with it fences
every earlier producer of the same id: the coordinator aborts the transaction a killed
predecessor left open (or completes the one it had asked to commit), so read_committed
consumers never see a batch twice.

A commit whose outcome is unknown (no answer in time, the connection lost, the process killed
between the commit and the spool's acknowledgement) is *in doubt*. Before committing a batch
that sits in the spool (or after a write's commit went unanswered, when its records are put
there), the sink saves an :class:`InDoubt` marker, fsynced: where in the spool the batch starts,
how many records it has, and the partition and offset Kafka gave its last record. Once a new
producer has fenced the old one, a single read_committed fetch at that offset decides: the
record is there (the batch was committed: acknowledge it in the spool) or it is skipped as
aborted (send the batch again).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from upbitpipe.atomicfile import replace_atomically
from upbitpipe.config import KafkaSettings

log = logging.getLogger(__name__)

TXN_ID_FILE = "transactional-id"
MARKER_FILE = "in-doubt.json"

#: aiokafka's own value of ``aiokafka.producer.sender.BACKOFF_OVERRIDE`` (0.11 to 0.14)
AIOKAFKA_CONCURRENT_TXN_BACKOFF = 0.02
#: what the sink sets it to (seconds); see :func:`shorten_concurrent_txn_backoff`
CONCURRENT_TXN_BACKOFF = 0.005


@dataclass(frozen=True, slots=True)
class InDoubt:
    """A transaction whose commit may or may not have happened."""

    topic: str
    partition: int
    offset: int  # of the batch's last record, as the partition leader acknowledged it
    position: str = ""  # the spool's head position where the batch starts
    count: int = 0  # records of the batch, from ``position`` on


def transactional_id(settings: KafkaSettings, spool_dir: Path) -> str:
    """The configured id, or the one kept in ``spool_dir`` (made on first use, fsynced)."""
    if settings.transactional_id:
        return settings.transactional_id
    path = spool_dir / TXN_ID_FILE
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept
    spool_dir.mkdir(parents=True, exist_ok=True)
    made = f"upbitpipe-{uuid.uuid4().hex}"
    replace_atomically(path, made.encode())
    return made


def shorten_concurrent_txn_backoff() -> None:
    """Make aiokafka ask again after 5 ms, not 20, to add a partition to a new transaction
    that the coordinator refused with ``ConcurrentTransactions``.

    After a commit is acknowledged, the coordinator still writes its markers into the
    partitions; until it is done it refuses to add them to the next transaction, and aiokafka
    sleeps ``sender.BACKOFF_OVERRIDE`` (a module constant, no option) before it asks again.
    Markers take a few ms, so the 20 ms sleep was the largest part of a transaction's tail
    and of the p99 exchange -> committed latency. A retry is one small request to the
    coordinator. The constant is process-wide, but only transactional producers read it.
    Set in this one place; a unit test fails when aiokafka changes its value or stops
    reading it, and an aiokafka with another value is left alone (logged)."""
    from aiokafka.producer import sender

    current = getattr(sender, "BACKOFF_OVERRIDE", None)
    if current == CONCURRENT_TXN_BACKOFF:
        return
    if current != AIOKAFKA_CONCURRENT_TXN_BACKOFF:
        log.warning(
            "aiokafka's ConcurrentTransactions backoff is %r, not the %r this sink shortens;"
            " left as it is",
            current,
            AIOKAFKA_CONCURRENT_TXN_BACKOFF,
        )
        return
    sender.BACKOFF_OVERRIDE = CONCURRENT_TXN_BACKOFF


def save_marker(path: Path, marker: InDoubt) -> None:
    replace_atomically(path, orjson.dumps(asdict(marker)))


def load_marker(path: Path) -> InDoubt | None:
    try:
        data = orjson.loads(path.read_bytes())
        return InDoubt(**data)
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, TypeError) as exc:  # torn or foreign: cannot decide
        log.warning("ignoring unreadable kafka in-doubt marker %s: %s", path, exc)
        return None


def clear_marker(path: Path) -> None:
    path.unlink(missing_ok=True)


async def batch_committed(
    consumer_options: dict[str, Any], marker: InDoubt, *, limit_seconds: float = 30.0
) -> bool | None:
    """Whether the in-doubt batch is in Kafka (read_committed); None when that cannot be told
    yet (Kafka unreachable, or the transaction still open: ask again later).

    Call it only after a producer with the same transactional.id has started: its start
    ends the old transaction one way or the other.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(marker.topic, marker.partition)
    consumer = AIOKafkaConsumer(**consumer_options, isolation_level="read_committed")
    try:
        async with asyncio.timeout(limit_seconds):
            await consumer.start()
            consumer.assign([tp])
            stable_end = (await consumer.end_offsets([tp]))[tp]  # the last stable offset
            if stable_end <= marker.offset:
                return None  # the transaction is not decided yet
            consumer.seek(tp, marker.offset)
            while True:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    # aborted records are skipped: the first one returned tells
                    return bool(record.offset == marker.offset)
                if await consumer.position(tp) >= stable_end:
                    return False
    except Exception as exc:  # Kafka down or slow: undecided, the caller retries
        log.warning(
            "cannot read back %s[%d]@%d to settle an in-doubt commit (%s: %s)",
            marker.topic,
            marker.partition,
            marker.offset,
            type(exc).__name__,
            exc,
        )
        return None
    finally:
        try:
            await consumer.stop()
        except Exception as exc:
            log.debug("kafka in-doubt consumer stop: %s", exc)
