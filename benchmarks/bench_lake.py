"""The embedded lake sink alone: rows committed per CPU-second, and its peak RSS.

Feeds prepared events to the real :class:`upbitpipe.sinks.lake.LakeSink` (pypaimon, local
disk) the way the collector's sink runner does (``write`` in batches of ``--write-size``,
``flush`` every ``lake.commit_interval_seconds`` or every ``--flush-every`` events), so the sink's own rate is separated
from the WebSocket and codec cost that ``bench_memory.py --sink lake`` also pays.

The events come from the synthetic exchange of ``upbitpipe replay serve`` (ticker + trade +
orderbook of ``--markets`` markets, 30 % orderbooks, SIMPLE frames) and go through the
collector's codec into data-contract records, ``--batch`` at a time. Making them costs
CPU too, measured separately (main-thread CPU around it) and subtracted.

*events/s per core* = events stored in their history table (``trade``, ``ticker``,
``orderbook``: one row each) / CPU-seconds of the whole process (all threads) spent in the
sink; *rows* adds ``ticker_latest``'s rows, which a commit folds to one per market first.
RSS is sampled every 0.2 s; the peak includes the interpreter, pypaimon and the synthetic
exchange (``rss_start_mb`` is the process with all of them, before the first write).

    .venv/bin/python benchmarks/bench_lake.py                      # 200,000 events, 3 runs
    .venv/bin/python benchmarks/bench_lake.py --events 500000 --runs 1
    .venv/bin/python benchmarks/bench_lake.py --markets 200 --flush-every 5000 --write-size 5
    py-spy record -o lake.svg -- .venv/bin/python benchmarks/bench_lake.py --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from upbitpipe.config import Settings
from upbitpipe.replay.market import SyntheticMarket
from upbitpipe.sinks import lake as lake_sink
from upbitpipe.sinks.base import SOURCE_WEBSOCKET, SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.lake import LakeSink
from upbitpipe.upbit.codec import MarketEvent, parse_frame

MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE", "KRW-ADA", "KRW-USDT"]


def event_batches(markets: int, events: int, batch: int, rate: float) -> Iterator[list[SinkEvent]]:
    """``events`` collector records in batches; the exchange clock runs at ``rate`` msgs/s."""
    names = (MARKETS + [f"KRW-S{i:03d}" for i in range(max(0, markets - len(MARKETS)))])[:markets]
    now_ms = 1_764_288_000_000  # 2025-11-28 00:00 UTC
    synthetic = SyntheticMarket(names, seed=7, now_ms=now_ms, orderbook_share=0.3)
    made = 0
    while made < events:
        out: list[SinkEvent] = []
        for wire in synthetic.generate(min(batch, events - made), now_ms):
            parsed = parse_frame(wire.frame("SIMPLE"))
            assert isinstance(parsed, MarketEvent)
            record = dict(parsed.data)
            record["_ingested_at"] = now_ms
            record["_source"] = SOURCE_WEBSOCKET
            record["_collector"] = "bench"
            out.append(SinkEvent(parsed.type, parsed.market, record, parsed.raw))
        made += len(out)
        now_ms += max(1, int(len(out) * 1000 / rate))
        yield out


class RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, self.proc.memory_info().rss)


async def one_run(args: argparse.Namespace, warehouse: Path) -> dict[str, Any]:
    settings = Settings.model_validate(
        {
            "lake": {
                "warehouse": str(warehouse),
                "commit_rows": args.commit_rows,
                "buckets": args.buckets,
            },
            "collector": {"state_dir": str(warehouse.parent / "state")},
        }
    )
    sink = LakeSink(settings, DeadLetterBox(settings.collector.state_dir / "deadletter"))
    await sink.open()
    batches = event_batches(args.markets, args.events, args.batch, args.rate)
    first = next(batches)  # the synthetic exchange's own memory is in rss_start, not the sink's
    rss_start = psutil.Process().memory_info().rss
    sampler = RssSampler()
    sampler.start()
    make_cpu = 0.0
    flush_cpu: list[float] = []
    events = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    next_flush = wall0 + sink.flush_interval
    while True:
        t0 = time.thread_time()
        batch, first = first or next(batches, None), None
        make_cpu += time.thread_time() - t0
        if batch is None:
            break
        events += len(batch)
        step = args.write_size or len(batch)
        for start in range(0, len(batch), step):
            await sink.write(batch[start : start + step])
        if args.flush_every:
            if events % args.flush_every < len(batch):
                c0 = time.process_time()
                await sink.flush()
                flush_cpu.append(time.process_time() - c0)
        elif time.monotonic() >= next_flush:
            await sink.flush()
            next_flush = time.monotonic() + sink.flush_interval
    await sink.flush()
    cpu = time.process_time() - cpu0 - make_cpu
    wall = time.monotonic() - wall0
    sampler.done.set()
    sampler.join()
    await sink.close()
    stats = sink.stats()
    rows = int(stats["rows_committed"])
    result: dict[str, Any] = {
        "events": events,
        "rows": rows,
        "commits": stats["commits"],
        "sink_cpu_s": round(cpu, 2),
        "make_cpu_s": round(make_cpu, 2),
        "wall_s": round(wall, 2),
        "rows_per_cpu_s": round(rows / cpu),
        "events_per_cpu_s": round(events / cpu),
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "rss_start_mb": round(rss_start / 1e6, 1),
        "rss_peak_mb": round(max(sampler.peak, rss_start) / 1e6, 1),
        "arrow_peak_mb": round(pa.default_memory_pool().max_memory() / 1e6, 1),
    }
    if flush_cpu:  # does a commit get dearer as the table's snapshots pile up?
        tenth = max(1, len(flush_cpu) // 10)
        result["commit_cpu_ms_first_tenth"] = round(statistics.mean(flush_cpu[:tenth]) * 1e3)
        result["commit_cpu_ms_last_tenth"] = round(statistics.mean(flush_cpu[-tenth:]) * 1e3)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markets", type=int, default=7)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=2000, help="events made at a time")
    ap.add_argument(
        "--write-size",
        type=int,
        default=0,
        help="events per write (default: --batch); a collector at 1,000 msgs/s hands a "
        "sink a few events per write",
    )
    ap.add_argument("--rate", type=float, default=5000, help="exchange clock, msgs/s")
    ap.add_argument("--commit-rows", type=int, default=Settings().lake.commit_rows)
    ap.add_argument("--buckets", type=int, default=Settings().lake.buckets)
    ap.add_argument(
        "--commit-mib",
        type=float,
        default=None,
        help="commit once the pending Arrow rows hold this many MiB (default: the sink's)",
    )
    ap.add_argument(
        "--flush-every",
        type=int,
        default=0,
        metavar="EVENTS",
        help="flush every EVENTS events instead of every commit interval (e.g. 5000 = the "
        "5 s commits of a 1,000 msgs/s exchange)",
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.commit_mib is not None:
        lake_sink.COMMIT_BYTES = int(args.commit_mib * 1024 * 1024)

    results = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-lake-") as tmp:
            result = asyncio.run(one_run(args, Path(tmp) / "lake"))
        print(f"run {index + 1}: {json.dumps(result)}", flush=True)
        results.append(result)
    summary = {
        key: statistics.median(r[key] for r in results)
        for key in ("rows_per_cpu_s", "events_per_cpu_s", "cpu_us_per_event", "rss_peak_mb")
    }
    summary["load_average"] = [round(x, 2) for x in psutil.getloadavg()]
    text = json.dumps({"runs": results, "median": summary}, indent=2)
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
