"""The Kafka sink's transactional delivery logic against a fake producer: one transaction per
batch, aborts before spooling, dead letters for permanent rejects, and in-doubt commits
settled by reading back (a fake verdict here; the integration tests use a real broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata, TopicPartition

from upbitpipe.config import KafkaSettings
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.kafka import KafkaSink
from upbitpipe.sinks.kafka_txn import (
    MARKER_FILE,
    InDoubt,
    load_marker,
    save_marker,
    transactional_id,
)
from upbitpipe.sinks.spool import DiskSpool, SpoolRecord


class FakeBroker:
    """What a read_committed consumer would see, plus every offset ever written."""

    def __init__(self) -> None:
        self.committed: list[bytes] = []
        self.offset = 0
        self.open: list[tuple[int, bytes]] = []  # (offset, value) of the open transaction
        self.commit_lands = True  # a commit that times out may still land
        self.commit_hangs = False
        self.ack_hangs = False
        self.too_large_on_broker: set[bytes] = set()
        self.too_large_on_client: set[bytes] = set()
        self.starts = 0
        self.aborts = 0

    def settle(self, marker: InDoubt) -> bool:
        return any(off == marker.offset for off, _ in self.landed)

    landed: list[tuple[int, bytes]]


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.in_txn = False
        self.poisoned = False

    async def start(self) -> None:
        self.broker.starts += 1
        self.broker.open = []  # fencing: an open transaction of an earlier producer is aborted

    async def stop(self) -> None:
        return None

    async def begin_transaction(self) -> None:
        assert not self.in_txn
        self.in_txn = True
        self.poisoned = False
        self.broker.open = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        assert self.in_txn, "send outside a transaction"
        if value in self.broker.too_large_on_client:
            msg = "too large"
            raise MessageSizeTooLargeError(msg)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.broker.ack_hangs:
            return future
        if value in self.broker.too_large_on_broker:
            self.poisoned = True
            future.set_exception(MessageSizeTooLargeError("too large"))
            return future
        offset = self.broker.offset
        self.broker.offset += 1
        self.broker.open.append((offset, value))
        tp = TopicPartition(topic, 0)
        future.set_result(RecordMetadata(topic, 0, tp, offset, 0, 0, 0))
        return future

    async def commit_transaction(self) -> None:
        assert self.in_txn
        if self.poisoned:
            msg = "abortable"
            raise KafkaTimeoutError(msg)
        if self.broker.commit_hangs:
            if self.broker.commit_lands:
                self._land()
            await asyncio.sleep(3600)
        self._land()
        self.in_txn = False

    def _land(self) -> None:
        self.broker.landed += self.broker.open
        self.broker.committed += [v for _, v in self.broker.open]
        self.broker.open = []

    async def abort_transaction(self) -> None:
        assert self.in_txn
        self.broker.aborts += 1
        self.broker.open = []
        self.in_txn = False


def _events(n: int, start: int = 0) -> list[SinkEvent]:
    return [
        SinkEvent(
            type="trade",
            market="KRW-BTC",
            record={"market": "KRW-BTC", "sequential_id": i},
            raw=b"",
        )
        for i in range(start, start + n)
    ]


def _ids(values: list[bytes]) -> list[int]:
    return [int(orjson.loads(v)["sequential_id"]) for v in values]


def _sink(tmp_path: Path, broker: FakeBroker, **kw: Any) -> KafkaSink:
    settings = KafkaSettings(request_timeout_ms=1000)

    async def settle(marker: InDoubt) -> bool | None:
        return broker.settle(marker)

    factory: Callable[[], Any] = lambda: FakeProducer(broker)  # noqa: E731
    return KafkaSink(
        settings,
        tmp_path / "spool",
        DeadLetterBox(tmp_path / "dead"),
        producer_factory=factory,
        settle=settle,
        **kw,
    )


@pytest.fixture
def broker() -> FakeBroker:
    b = FakeBroker()
    b.landed = []
    return b


async def _drained(sink: KafkaSink) -> None:
    drainer = sink._drainer  # noqa: SLF001
    if drainer is not None:
        await asyncio.wait_for(asyncio.shield(drainer), timeout=30)
    assert sink.stats()["spool_records"] == 0


async def test_one_transaction_per_write(tmp_path: Path, broker: FakeBroker) -> None:
    sink = _sink(tmp_path, broker)
    await sink.open()
    await sink.write(_events(5))
    await sink.write(_events(5, 5))
    await sink.close()
    assert _ids(broker.committed) == list(range(10))
    assert sink.sent == 10 and sink.stats()["spool_records"] == 0


async def test_unacknowledged_batch_is_aborted_then_resent_once(
    tmp_path: Path, broker: FakeBroker
) -> None:
    sink = _sink(tmp_path, broker)
    await sink.open()
    broker.ack_hangs = True
    await sink.write(_events(4))  # acks never come: abort, spool
    assert sink.stats()["spool_records"] == 4 and broker.committed == []
    broker.ack_hangs = False
    await _drained(sink)
    await sink.write(_events(2, 4))
    await sink.close()
    assert _ids(broker.committed) == list(range(6))


async def test_in_doubt_commit_that_landed_is_not_sent_again(
    tmp_path: Path, broker: FakeBroker
) -> None:
    sink = _sink(tmp_path, broker)
    await sink.open()
    broker.commit_hangs = True  # the commit lands, its answer never comes
    await sink.write(_events(3))
    assert sink.stats()["commits_in_doubt"] == 1
    assert load_marker(tmp_path / "spool" / MARKER_FILE) is not None
    broker.commit_hangs = False
    await _drained(sink)
    await sink.close()
    assert _ids(broker.committed) == [0, 1, 2]
    assert not (tmp_path / "spool" / MARKER_FILE).exists()


async def test_in_doubt_commit_that_did_not_land_is_sent_again(
    tmp_path: Path, broker: FakeBroker
) -> None:
    sink = _sink(tmp_path, broker)
    await sink.open()
    broker.commit_hangs, broker.commit_lands = True, False
    await sink.write(_events(3))
    broker.commit_hangs = False
    await _drained(sink)
    await sink.close()
    assert _ids(broker.committed) == [0, 1, 2]


@pytest.mark.parametrize("lands", [True, False])
async def test_write_cancelled_during_commit_is_settled_at_next_start(
    tmp_path: Path, broker: FakeBroker, lands: bool
) -> None:
    """A shutdown cancels ``write`` while its commit is asked for: the batch is not handed
    back to the runner but spooled in doubt; the next start reads back and sends it only if
    the commit did not land."""
    sink = _sink(tmp_path, broker)
    await sink.open()
    broker.commit_hangs, broker.commit_lands = True, lands
    task = asyncio.create_task(sink.write(_events(3)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.take_unflushed() == []
    await sink.close()
    broker.commit_hangs = False
    again = _sink(tmp_path, broker)
    await again.open()
    await _drained(again)
    await again.write(_events(1, 3))
    await again.close()
    assert _ids(broker.committed) == [0, 1, 2, 3]


async def test_drain_killed_between_commit_and_ack_settles_at_next_start(
    tmp_path: Path, broker: FakeBroker
) -> None:
    """The spool batch was committed, then the process died before ``spool.ack``: the marker
    names it, the next start reads back, acknowledges it and sends only the rest."""
    spool_dir = tmp_path / "spool"
    spool = DiskSpool(spool_dir, max_bytes=1 << 20)
    sink = _sink(tmp_path, broker)
    records = [SpoolRecord("upbit-trade", b"KRW-BTC", orjson.dumps(e.record)) for e in _events(5)]
    spool.append(records)
    # the first 3 were committed as one transaction (last one at offset 2), not acked
    broker.committed += [r.value for r in records[:3]]
    broker.landed += [(i, r.value) for i, r in enumerate(records[:3])]
    broker.offset = 3
    save_marker(
        spool_dir / MARKER_FILE,
        InDoubt("upbit-trade", 0, 2, position=spool.head_position(), count=3),
    )
    await sink.open()
    await _drained(sink)
    await sink.close()
    assert _ids(broker.committed) == [0, 1, 2, 3, 4]


async def test_stale_marker_after_ack_is_dropped(tmp_path: Path, broker: FakeBroker) -> None:
    """Killed after ``spool.ack`` but before the marker went: it names a spool position that
    is gone, so nothing is acknowledged twice."""
    spool_dir = tmp_path / "spool"
    spool = DiskSpool(spool_dir, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append(
        [SpoolRecord("upbit-trade", b"KRW-BTC", b'{"sequential_id":%d}' % i) for i in range(4)]
    )
    old = spool.head_position()
    spool.ack(2)
    save_marker(spool_dir / MARKER_FILE, InDoubt("upbit-trade", 0, 1, position=old, count=2))
    sink = _sink(tmp_path, broker)
    await sink.open()
    await _drained(sink)
    await sink.close()
    assert _ids(broker.committed) == [2, 3]
    assert not (spool_dir / MARKER_FILE).exists()


async def test_permanent_rejects_are_dead_lettered_alone(
    tmp_path: Path, broker: FakeBroker
) -> None:
    events = _events(6)
    broker.too_large_on_broker = {orjson.dumps(events[1].record)}
    broker.too_large_on_client = {orjson.dumps(events[4].record)}
    sink = _sink(tmp_path, broker)
    await sink.open()
    await sink.write(events)
    await sink.close()
    assert _ids(broker.committed) == [0, 2, 3, 5]
    assert broker.aborts == 1  # the broker-side reject poisoned the first transaction
    assert sink.stats()["spool_records"] == 0
    assert len(list((tmp_path / "dead").rglob("*"))) > 0


def test_transactional_id_is_kept_per_state_dir(tmp_path: Path) -> None:
    settings = KafkaSettings()
    first = transactional_id(settings, tmp_path / "a")
    assert transactional_id(settings, tmp_path / "a") == first
    assert transactional_id(settings, tmp_path / "b") != first
    assert transactional_id(KafkaSettings(transactional_id="mine"), tmp_path / "a") == "mine"


def test_spool_head_position_moves_with_every_ack(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    empty = spool.head_position()
    spool.append([SpoolRecord("t", b"k", b"x" * 40) for _ in range(3)])
    assert spool.head_position() == empty  # the first append starts where the empty spool said
    seen = {spool.head_position()}
    for _ in range(3):
        spool.ack(1)
        assert spool.head_position() not in seen
        seen.add(spool.head_position())
