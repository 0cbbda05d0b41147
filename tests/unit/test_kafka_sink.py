"""The Kafka sink's transactional delivery logic against a fake producer: one transaction per
batch, aborts before spooling, dead letters for permanent rejects, and in-doubt commits
settled by reading back (a fake verdict here; the integration tests use a real broker)."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import ConcurrentTransactions, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.structs import RecordMetadata, TopicPartition

from upbitpipe.config import KafkaSettings
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.kafka import KafkaSink
from upbitpipe.sinks.kafka_txn import (
    AIOKAFKA_CONCURRENT_TXN_BACKOFF,
    CONCURRENT_TXN_BACKOFF,
    MARKER_FILE,
    InDoubt,
    load_marker,
    save_marker,
    shorten_concurrent_txn_backoff,
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
        self.commit_takes = 0.0  # s a commit takes (a timer, not asyncio.sleep)
        self.ack_hangs = False
        self.too_large_on_broker: set[bytes] = set()
        self.starts = 0
        self.aborts = 0
        self.batches: list[tuple[int, int]] = []  # (partition, records) per send_batch
        self.timestamps: list[int | None] = []  # of every record sent
        self.partition_of: dict[bytes, int] = {}

    def settle(self, marker: InDoubt) -> bool:
        return any(off == marker.offset for off, _ in self.landed)

    landed: list[tuple[int, bytes]]


class FakeBatch:
    """Holds up to 3 records (a full batch refuses the next one, as aiokafka's does)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.timestamps: list[int | None] = []

    def append(self, *, key: bytes, value: bytes, timestamp: int | None) -> object | None:
        if len(self.records) >= 3:
            return None
        self.records.append((key, value))
        self.timestamps.append(timestamp)
        return object()

    def size(self) -> int:
        return 61 + sum(len(key) + len(value) for key, value in self.records)

    def close(self) -> None:
        return None


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

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        assert self.in_txn, "send outside a transaction"
        self.broker.batches.append((partition, len(batch.records)))
        self.broker.timestamps += batch.timestamps
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.broker.ack_hangs:
            return future
        if any(value in self.broker.too_large_on_broker for _, value in batch.records):
            self.poisoned = True
            future.set_exception(MessageSizeTooLargeError("too large"))
            return future
        base = self.broker.offset
        for key, value in batch.records:
            self.broker.partition_of.setdefault(key, partition)
            assert self.broker.partition_of[key] == partition, "a market changed partition"
            self.broker.open.append((self.broker.offset, value))
            self.broker.offset += 1
        future.set_result(
            RecordMetadata(topic, partition, TopicPartition(topic, partition), base, 0, 0, 0)
        )
        return future

    async def commit_transaction(self) -> None:
        assert self.in_txn
        if self.poisoned:
            msg = "abortable"
            raise KafkaTimeoutError(msg)
        if self.broker.commit_takes:
            done = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(self.broker.commit_takes, done.set_result, None)
            await done
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


class RealBatchProducer(FakeProducer):
    """Fills aiokafka's own record batches (small ones, so partitions take several), built
    and read back as the sender and a consumer would: what the sink put in them, and the
    record count the producer's sequence numbers come from."""

    BATCH_BYTES = 400

    def create_batch(self) -> Any:
        from aiokafka.producer.message_accumulator import BatchBuilder
        from aiokafka.record.default_records import DefaultRecordBatch

        return BatchBuilder(self.BATCH_BYTES, DefaultRecordBatch.CODEC_ZSTD, is_transactional=1)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        from aiokafka.record.memory_records import MemoryRecords

        assert batch.closed(), "a batch is sent complete"
        count = batch.record_count()
        batch._set_producer_state(1, 0, 0)  # as the sender does
        read = MemoryRecords(bytes(batch._build())).next_batch()
        assert read is not None
        decoded = FakeBatch()
        for record in read:
            decoded.records.append((record.key, record.value))
            decoded.timestamps.append(record.timestamp)
        assert len(decoded.records) == count, "record count (sequence numbers) != records"
        return await super().send_batch(decoded, topic, partition=partition)


MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"]


def _events(n: int, start: int = 0) -> list[SinkEvent]:
    return [
        SinkEvent(
            type="trade",
            market=MARKETS[i % len(MARKETS)],
            record={"market": MARKETS[i % len(MARKETS)], "sequential_id": i},
            raw=b"",
        )
        for i in range(start, start + n)
    ]


def _ids(values: list[bytes]) -> list[int]:
    return sorted(int(orjson.loads(v)["sequential_id"]) for v in values)


def _sink(
    tmp_path: Path,
    broker: FakeBroker,
    settings: KafkaSettings | None = None,
    producer: type[FakeProducer] = FakeProducer,
    **kw: Any,
) -> KafkaSink:
    settings = settings or KafkaSettings(request_timeout_ms=1000)

    async def settle(marker: InDoubt) -> bool | None:
        return broker.settle(marker)

    factory: Callable[[], Any] = lambda: producer(broker)  # noqa: E731
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
    before = int(time.time() * 1000)
    await sink.write(_events(5))
    await sink.write(_events(5, 5))
    after = int(time.time() * 1000)
    await sink.close()
    # each record carries the time its transaction was sent (CreateTime, epoch ms)
    assert len(broker.timestamps) == 10
    assert all(isinstance(t, int) and before <= t <= after for t in broker.timestamps)
    assert _ids(broker.committed) == list(range(10))
    assert sink.sent == 10 and sink.stats()["spool_records"] == 0
    assert sink.stats()["transactions_committed"] == 2


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
    """A record the brokers refuse poisons its batch's transaction: abort, find it by
    sending that batch's records one by one, dead-letter it alone, commit the rest once. A
    record too large to send at all never leaves the client."""
    events = _events(8)
    events[5] = SinkEvent("trade", "KRW-XRP", {"sequential_id": 5, "pad": "x" * 1_100_000}, b"")
    broker.too_large_on_broker = {orjson.dumps(events[4].record)}  # shares KRW-BTC's batch
    sink = _sink(tmp_path, broker)
    await sink.open()
    await sink.write(events)
    await sink.close()
    assert _ids(broker.committed) == [0, 1, 2, 3, 6, 7]
    assert broker.aborts == 2  # the poisoned batch, then the offender alone
    assert sink.stats()["spool_records"] == 0
    assert len(list((tmp_path / "dead").rglob("*.*"))) > 0


async def test_one_batch_per_partition_and_a_market_keeps_its_partition(
    tmp_path: Path, broker: FakeBroker
) -> None:
    sink = _sink(tmp_path, broker)
    await sink.open()
    await sink.write(_events(24))
    await sink.write(_events(24, 24))
    await sink.close()
    assert _ids(broker.committed) == list(range(48))
    per_partition: dict[int, int] = {}
    for partition in broker.partition_of.values():
        per_partition[partition] = per_partition.get(partition, 0) + 6  # 6 per market/write
    expected = 2 * sum(-(-n // 3) for n in per_partition.values())  # full at 3 records
    assert len(broker.batches) == expected
    assert sink.stats()["sent"] == 48


async def test_a_topic_that_gains_partitions_is_routed_by_its_new_count(
    tmp_path: Path, broker: FakeBroker
) -> None:
    """Writes after the first take their routes from a cache; a topic that gains partitions
    (an operator's ``kafka-topics --alter``) must make the next write route every market
    as aiokafka's partitioner does over the new count, not keep the old partitions."""
    count = {"n": 3}

    class Growing(FakeProducer):
        async def partitions_for(self, topic: str) -> set[int]:
            return set(range(count["n"]))

    sink = _sink(tmp_path, broker, producer=Growing)
    await sink.open()
    await sink.write(_events(30))
    await sink.write(_events(30, 30))  # routed from the cache
    count["n"] = 7
    broker.partition_of = {}
    await sink.write(_events(30, 60))
    await sink.close()
    assert _ids(broker.committed) == list(range(90))
    partitions = list(range(7))
    assert broker.partition_of.keys() == {m.encode() for m in MARKETS}
    for key, partition in broker.partition_of.items():
        assert partition == DefaultPartitioner()(key, partitions, partitions), key


async def test_aiokafkas_own_batches_carry_every_record_in_order_per_partition(
    tmp_path: Path, broker: FakeBroker
) -> None:
    """With aiokafka's record batches (filled through their builder, kafka_batch): each
    market's records in their order, several batches per partition where one is full, a
    record too large for a request refused alone and the rest of its batch sent."""
    events = _events(40)
    events[9] = SinkEvent("trade", "KRW-ETH", {"sequential_id": 9, "pad": "x" * 1_100_000}, b"")
    sink = _sink(tmp_path, broker, producer=RealBatchProducer)
    await sink.open()
    before = int(time.time() * 1000)
    await sink.write(events)
    await sink.write(_events(40, 40))
    await sink.close()
    assert _ids(broker.committed) == [i for i in range(80) if i != 9]
    per_market: dict[str, list[int]] = {}
    for value in broker.committed:
        record = orjson.loads(value)
        per_market.setdefault(record["market"], []).append(record["sequential_id"])
    assert all(ids == sorted(ids) for ids in per_market.values())
    assert len(broker.batches) > 2 * 3  # batches of 400 bytes: more than one per partition
    now = int(time.time() * 1000)
    assert all(t is not None and before <= t <= now for t in broker.timestamps)
    assert sink.stats()["delivery_errors"] == 1 and sink.sent == 79
    assert len(list((tmp_path / "dead").rglob("*.*"))) > 0


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


def test_partitions_are_those_of_aiokafkas_default_partitioner(tmp_path: Path) -> None:
    sink = KafkaSink(KafkaSettings(), tmp_path, DeadLetterBox(tmp_path / "dead"))
    for count in (1, 3, 7):
        partitions = list(range(count))
        for i in range(300):
            key = f"KRW-M{i:03d}".encode()
            assert sink._router.partition_of(key, partitions) == DefaultPartitioner()(  # noqa: SLF001
                key, partitions, partitions
            )


async def test_restart_read_back_covers_a_first_start_tip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed within seconds of its first start, a run leaves tips without a receive time;
    what it sent to Kafka must still be read back, from the first subscription on."""
    from types import SimpleNamespace

    from upbitpipe.collector import kafka_seen, runtime
    from upbitpipe.collector.resume import Tip
    from upbitpipe.config import load_settings

    calls: list[int] = []

    async def fake_read(settings: KafkaSettings, since: int, spool_dir: Path) -> set[Any]:
        calls.append(since)
        return {("KRW-BTC", 1)}

    monkeypatch.setattr(kafka_seen, "trades_in_kafka", fake_read)
    settings = load_settings(
        None, {"collector.sinks": "kafka,lake", "collector.state_dir": str(tmp_path)}, env={}
    ).settings
    state = SimpleNamespace(
        resume=SimpleNamespace(tips={"KRW-BTC": Tip(ms=1_000_000), "KRW-ETH": Tip(ms=2_000_000)}),
        gaps=SimpleNamespace(open_gaps=list),
    )
    seen = await runtime.kafka_read_back(settings, state)  # type: ignore[arg-type]
    assert calls == [1_000_000]
    assert seen == {("KRW-BTC", 1)}


async def test_default_codec_is_zstd_and_the_client_can_encode_it() -> None:
    """The default codec (zstd: aiokafka's lz4 is LZ4 HC level 9, ~10x the CPU) must be one
    the installed client can encode and decode: aiokafka refuses a codec it lacks at once."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.codec import zstd_decode, zstd_encode

    from upbitpipe.sinks.kafka import producer_options

    settings = KafkaSettings()
    assert settings.compression == "zstd"
    producer = AIOKafkaProducer(**producer_options(settings, "txn-unit"))
    assert producer._compression_type == "zstd"
    payload = orjson.dumps([{"market": "KRW-BTC", "trade_price": 1.0}] * 50)
    assert zstd_decode(zstd_encode(payload)) == payload


def _sleeps(monkeypatch: pytest.MonkeyPatch, broker: FakeBroker) -> list[tuple[float, int]]:
    """Every ``asyncio.sleep`` asked for: (delay, records committed by then)."""
    asked: list[tuple[float, int]] = []
    sleep = asyncio.sleep

    async def spy(delay: float, *args: Any) -> Any:
        asked.append((delay, len(broker.committed)))
        return await sleep(delay, *args)

    monkeypatch.setattr(asyncio, "sleep", spy)
    return asked


async def test_a_commit_lingers_for_the_next_batch_with_its_records_visible(
    tmp_path: Path, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a commit the sink waits until ``linger_ms`` after its transaction began (the
    next batch gathers meanwhile); the records are committed before that wait."""
    sink = _sink(tmp_path, broker, KafkaSettings(request_timeout_ms=1000, linger_ms=200))
    await sink.open()
    asked = _sleeps(monkeypatch, broker)
    await sink.write(_events(4))
    assert len(asked) == 1
    delay, committed = asked[0]
    assert 0 < delay <= 0.2
    assert committed == 4

    eager = _sink(tmp_path / "eager", broker, KafkaSettings(request_timeout_ms=1000, linger_ms=0))
    await eager.open()
    await eager.write(_events(2, 4))
    assert len(asked) == 1, "linger_ms 0 must not wait"
    await sink.close()
    await eager.close()
    assert _ids(broker.committed) == list(range(6))


@pytest.mark.parametrize(
    ("takes", "records"), [(0.03, 300), (0.12, 300), (0.03, 1000), (0.03, 100)]
)
async def test_a_slow_small_transaction_makes_the_next_one_wait_as_long(
    tmp_path: Path,
    broker: FakeBroker,
    monkeypatch: pytest.MonkeyPatch,
    takes: float,
    records: int,
) -> None:
    """A transaction that took longer than ``linger_ms`` (a busy machine, full rate): after
    its commit the sink waits as long again (at most 50 ms), so the next one carries about
    twice the records; not after one of 1,000 records or more (the sink's peak rate), nor
    of fewer than 250 (5,000 msgs/s: the latency stays)."""
    sink = _sink(tmp_path, broker, KafkaSettings(request_timeout_ms=1000, linger_ms=10))
    await sink.open()
    broker.commit_takes = takes
    asked = _sleeps(monkeypatch, broker)
    await sink.write(_events(records))
    await sink.close()
    assert len(broker.committed) == records
    if not 250 <= records < 1000:
        assert asked == [], "no extra wait after a large or a small transaction"
    else:
        assert len(asked) == 1
        delay, committed = asked[0]
        assert committed == records
        assert min(takes, 0.05) <= delay <= 0.05


async def test_a_write_cancelled_while_lingering_hands_nothing_back(
    tmp_path: Path, broker: FakeBroker
) -> None:
    """Cancelled (shutdown) in the linger after its commit: the batch is in Kafka, so the
    runner must not get it back to spool and send again."""
    sink = _sink(tmp_path, broker, KafkaSettings(request_timeout_ms=1000, linger_ms=60_000))
    await sink.open()
    task = asyncio.create_task(sink.write(_events(3)))
    for _ in range(100):
        if len(broker.committed) == 3:
            break
        await asyncio.sleep(0.01)
    assert len(broker.committed) == 3, "the write never committed"
    assert not task.done(), "the write did not linger"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.take_unflushed() == []
    await sink.close()
    assert sink.stats()["spool_records"] == 0
    assert _ids(broker.committed) == [0, 1, 2]


def test_aiokafka_still_has_the_concurrent_transactions_backoff_we_shorten() -> None:
    """``shorten_concurrent_txn_backoff`` sets a module constant of aiokafka: this fails when
    aiokafka changes its value or its AddPartitionsToTxn handler stops reading it."""
    source = inspect.getsource(aiokafka_sender)
    assert re.search(
        rf"^BACKOFF_OVERRIDE = {AIOKAFKA_CONCURRENT_TXN_BACKOFF}\b", source, re.MULTILINE
    ), "aiokafka's sender.BACKOFF_OVERRIDE changed: review shorten_concurrent_txn_backoff"
    reads = aiokafka_sender.AddPartitionsToTxnHandler.handle_response.__code__.co_names
    assert "BACKOFF_OVERRIDE" in reads


def test_concurrent_transactions_are_retried_after_the_short_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiokafka_sender, "BACKOFF_OVERRIDE", AIOKAFKA_CONCURRENT_TXN_BACKOFF)
    shorten_concurrent_txn_backoff()
    fake_sender = SimpleNamespace(
        _retry_backoff=0.1,
        _txn_manager=SimpleNamespace(txn_partitions=set(), transactional_id="t"),
    )
    handler = aiokafka_sender.AddPartitionsToTxnHandler(fake_sender, [TopicPartition("t", 0)])
    refused = SimpleNamespace(errors=[("t", [(0, ConcurrentTransactions.errno)])])
    assert handler.handle_response(refused) == CONCURRENT_TXN_BACKOFF < 0.02

    monkeypatch.setattr(aiokafka_sender, "BACKOFF_OVERRIDE", 0.05)  # a changed aiokafka
    shorten_concurrent_txn_backoff()
    assert aiokafka_sender.BACKOFF_OVERRIDE == 0.05
