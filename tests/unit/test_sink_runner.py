"""The sink runner: backpressure instead of growth, and a bounded stop that loses nothing
(what the sink cannot take by the deadline is spooled and delivered first at next start)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from upbitpipe.collector.sink_runner import SinkRunner
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.spool import event_from_spool, event_to_spool


def event(n: int, market: str = "KRW-BTC") -> SinkEvent:
    record = {"market": market, "sequential_id": n, "trade_timestamp": 1_000 + n}
    return SinkEvent("trade", market, record, orjson.dumps(record))


class FakeSink:
    """Delivers on ``write``; ``gate`` (when cleared) holds writes; ``stuck_flush`` makes
    every flush hang (a destination that never confirms) and keeps written events
    unflushed."""

    name = "fake"
    flush_interval = 1.0

    def __init__(self, *, stuck_flush: bool = False) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.stuck_flush = stuck_flush
        self.durable: list[int] = []
        self.unflushed: list[SinkEvent] = []
        self.closed = False

    async def open(self) -> None:
        return None

    async def write(self, events: Sequence[SinkEvent]) -> None:
        await self.gate.wait()
        self.unflushed.extend(events)

    async def flush(self) -> None:
        if self.stuck_flush:
            await asyncio.sleep(3600)
        self.durable.extend(e.record["sequential_id"] for e in self.unflushed)
        self.unflushed = []

    def take_unflushed(self) -> list[SinkEvent]:
        out, self.unflushed = self.unflushed, []
        return out

    async def close(self) -> None:
        self.closed = True

    def stats(self) -> dict[str, Any]:
        return {}


async def test_a_slow_sink_pauses_the_producer_at_the_bound() -> None:
    sink = FakeSink()
    sink.gate.clear()
    runner = SinkRunner(sink, max_events=100, max_bytes=10**9, batch_size=10)
    await runner.start()
    produced = 0

    async def produce() -> None:
        nonlocal produced
        for n in range(1000):
            await runner.put(event(n))
            produced += 1

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.2)
    assert runner.paused and not producer.done()
    assert produced <= 100 + 10, "the buffer grew past its bound"
    assert runner.stats()["backpressure_pauses"] >= 1
    sink.gate.set()
    await asyncio.wait_for(producer, timeout=10)
    await runner.stop(timeout=5)
    assert sink.durable == list(range(1000)), "not every event delivered once, in order"
    assert runner.stats()["backpressure_seconds"] > 0


async def test_the_byte_bound_pauses_too() -> None:
    sink = FakeSink()
    sink.gate.clear()
    size = len(event(0).raw)
    runner = SinkRunner(sink, max_events=10**6, max_bytes=50 * size, batch_size=10)
    await runner.start()

    async def produce() -> None:
        for start in range(0, 500, 5):
            await runner.put_all([event(n) for n in range(start, start + 5)])

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.2)
    assert runner.paused and runner.stats()["queued_bytes"] <= 60 * size
    sink.gate.set()
    await asyncio.wait_for(producer, timeout=10)
    await runner.stop(timeout=5)
    assert len(sink.durable) == 500


async def test_a_stop_past_the_deadline_spools_and_the_next_start_delivers_first(
    tmp_path: Path,
) -> None:
    stuck = FakeSink(stuck_flush=True)
    runner = SinkRunner(
        stuck, max_events=10**6, max_bytes=10**9, spool_dir=tmp_path / "spool", batch_size=50
    )
    await runner.start()
    for n in range(3000):
        await runner.put(event(n, market="KRW-BTC" if n % 2 else "KRW-ETH"))
    started = time.monotonic()
    await runner.stop(timeout=2)
    assert time.monotonic() - started < 4, "stop overran its deadline"
    assert stuck.closed
    stats = runner.stats()
    assert stats["lost_at_stop"] == 0
    assert stats["spooled_at_stop"] == 3000, stats  # nothing was durable: all spooled
    assert runner.durable_events == 3000  # in the spool

    good = FakeSink()
    again = SinkRunner(good, max_events=10**6, max_bytes=10**9, spool_dir=tmp_path / "spool")
    await again.start()
    await again.put(event(10_000))
    await again.stop(timeout=5)
    assert good.durable == [*range(3000), 10_000], "spool first, in order, then new events"
    assert again.stats()["replayed_from_spool"] == 3000
    assert (again.put_count, again.written, again.durable_events) == (1, 1, 1)
    assert again.stats()["stop_spool_records"] == 0


async def test_a_clean_stop_spools_nothing_and_marks_everything_durable(tmp_path: Path) -> None:
    sink = FakeSink()
    runner = SinkRunner(sink, max_events=1000, max_bytes=10**9, spool_dir=tmp_path / "s")
    await runner.start()
    for n in range(500):
        await runner.put(event(n))
    await runner.stop(timeout=5)
    assert sink.durable == list(range(500))
    assert runner.stats()["spooled_at_stop"] == 0
    assert runner.durable_events == 500
    assert not list((tmp_path / "s").glob("segment-*"))


def test_spool_records_round_trip_events() -> None:
    original = event(7)
    back = event_from_spool(event_to_spool(original))
    assert back == original


async def test_batches_added_whole_reach_the_sink_cut_at_the_batch_size_in_order() -> None:
    """The buffer keeps each added batch whole; the writer takes up to ``batch_size`` events,
    cutting a batch in two where it must, and the byte count follows every cut."""
    sink = FakeSink()
    sink.gate.clear()
    writes: list[int] = []
    write = sink.write

    async def counting(events: Sequence[SinkEvent]) -> None:
        writes.append(len(events))
        await write(events)

    sink.write = counting  # type: ignore[method-assign]
    runner = SinkRunner(sink, max_events=10**6, max_bytes=10**9, batch_size=10)
    await runner.start()
    sizes = [7, 7, 1, 12, 3]
    events = [event(n) for n in range(sum(sizes))]
    start = 0
    for size in sizes:
        assert not runner.add_all(events[start : start + size])
        start += size
    assert runner.stats()["queued"] == 30
    assert runner.stats()["queued_bytes"] == sum(len(e.raw) for e in events)
    await asyncio.sleep(0.05)  # the writer took its first batch and waits at the gate
    assert writes == [10]
    assert runner.stats()["queued_bytes"] == sum(len(e.raw) for e in events[10:])
    sink.gate.set()
    await runner.stop(timeout=5)
    assert writes == [10, 10, 10]
    assert sink.durable == list(range(30))
    assert runner.stats()["queued"] == runner.stats()["queued_bytes"] == 0
