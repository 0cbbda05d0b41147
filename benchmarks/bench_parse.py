"""How fast is the frame parser? DEFAULT vs SIMPLE vs plain json/orjson.loads baselines.

Frames come from the synthetic market (realistic sizes: 30-level orderbooks, full tickers)
in its default mix (trade + ticker per trade, 30 % orderbooks), plus per-type rows.
Each figure is the median of ``--runs`` passes over ``--frames`` frames, single thread,
in CPU time (``time.process_time``) so that other load on the machine distorts it less.

Per type, the data-contract JSON of a DEFAULT event: ``orjson.dumps`` of the record, and
for books also ``splice_record`` from the frame's bytes (what the collector does for them),
and a book's parse without its units (``parse_book_lite``, the C scanner a collector whose
sinks read no records uses) alone and with its splice; for tickers and trades the same
scanner's read of the fields the collector reads (``parse_flat_lite``) alone and with its
splice, against the full parse with ``orjson.dumps`` of the record.

The last rows are the collector's whole per-frame path without the transport: DEFAULT and
SIMPLE frames of 10 markets through ``CollectorService._on_shard_frames`` in batches of
``--batch`` (parse, subscription/clock gate, dedup, data-contract record and its JSON,
resume bookkeeping, one buffer operation per batch) into a sink runner whose writer drops
the events and, like the Kafka sink, reads only their JSON (so no record dict is kept), with
the startup objects frozen as ``collect`` does (``gc.freeze``); and DEFAULT frames once more
into a sink that, like the lake, reads the record dicts (nothing is encoded); and DEFAULT
frames into the JSON-only sink with the lite parse turned off (the A/B of the scanners).

    .venv/bin/python benchmarks/bench_parse.py
    .venv/bin/python benchmarks/bench_parse.py --frames 50000 --runs 7
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.config import Settings
from upbitpipe.replay.market import SyntheticMarket
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.upbit.codec import (
    MarketEvent,
    metadata_suffix,
    parse_book_lite,
    parse_data,
    parse_flat_lite,
    parse_frame,
    splice_record,
)
from upbitpipe.upbit.rest import UpbitRestClient

PATH_MARKETS = [f"KRW-M{i:02d}" for i in range(10)]
TYPES = ["ticker", "trade", "orderbook"]


def frames(
    n: int,
    fmt: str,
    kind: str | None = None,
    markets: Sequence[str] = ("KRW-BTC", "KRW-ETH", "KRW-XRP"),
) -> list[bytes]:
    market = SyntheticMarket(list(markets), 42, 1_795_460_000_000, 0.3)
    out: list[bytes] = []
    now = 1_795_460_000_000
    while len(out) < n:
        now += 7
        for event in market.generate(64, now):
            if kind is None or event.type == kind:
                out.append(event.frame(fmt))
    return out[:n]


def measure(fn: Callable[[Any], object], data: Sequence[Any], runs: int) -> float:
    """Median CPU seconds per message over ``runs`` passes (CPU time: the box is shared)."""
    samples = []
    for _ in range(runs):
        started = time.process_time()
        for raw in data:
            fn(raw)
        samples.append((time.process_time() - started) / len(data))
    return statistics.median(samples)


class DropSink:
    """Counts and forgets (the writer side costs nothing but the runner's own work)."""

    name = "drop"
    flush_interval = 1.0
    needs_record = False  # as the Kafka sink

    def __init__(self) -> None:
        self.count = 0

    async def open(self) -> None:
        return None

    async def write(self, events: Sequence[SinkEvent]) -> None:
        self.count += sum(1 for e in events if e.value)

    async def flush(self) -> None:
        return None

    def take_unflushed(self) -> list[SinkEvent]:
        return []

    async def close(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"count": self.count}


class RecordDropSink(DropSink):
    """Reads the records, as the lake sink does (so the collector keeps the dicts and encodes
    nothing)."""

    needs_record = True

    async def write(self, events: Sequence[SinkEvent]) -> None:
        self.count += sum(1 for e in events if e.record)


async def _collector_pass(
    data: list[bytes], batch: int, records: bool = False, lite: bool = True
) -> float:
    """CPU seconds per frame of one pass through a fresh collector service (``records``: into
    a sink that reads records, else one that reads only the JSON; ``lite`` False: books
    parsed in full even so)."""
    with tempfile.TemporaryDirectory() as tmp:
        plan = CollectorPlan(PATH_MARKETS, TYPES, [PATH_MARKETS])
        sink = RecordDropSink() if records else DropSink()
        service = CollectorService(
            Settings(),
            plan,
            [sink],
            UpbitRestClient("http://127.0.0.1:9"),
            DeadLetterBox(Path(tmp)),
        )
        if not lite:
            service._lite_books = False
        runner = service.runners[0]
        await runner.start()
        gc.collect()
        gc.freeze()  # as CollectorService.run does once the sinks are open
        now = 1_795_460_000_000
        started = time.process_time()
        for start in range(0, len(data), batch):
            chunk = [(raw, now + start) for raw in data[start : start + batch]]
            await service._on_shard_frames(0, chunk)
            service.ledger.advance()  # what the state keeper does every 0.25 s
            if not start % (batch * 8):
                await asyncio.sleep(0)  # let the writer drain, as the transport does
        await runner.stop(timeout=10)
        service.ledger.advance()
        elapsed = time.process_time() - started
        gc.unfreeze()
    if sink.count != len(data):
        msg = f"collector path delivered {sink.count} of {len(data)} frames"
        raise RuntimeError(msg)
    return elapsed / len(data)


def measure_collector(
    data: list[bytes], runs: int, batch: int, records: bool = False, lite: bool = True
) -> float:
    return statistics.median(
        asyncio.run(_collector_pass(data, batch, records, lite)) for _ in range(runs)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="frames per batch (collector rows)")
    args = parser.parse_args()

    rows: list[tuple[str, str, float, float]] = []
    for kind in (None, "trade", "ticker", "orderbook"):
        label = kind or "mix"
        simple = frames(args.frames, "SIMPLE", kind)
        default = frames(args.frames, "DEFAULT", kind)
        size = statistics.mean(len(f) for f in simple)
        dsize = statistics.mean(len(f) for f in default)
        cases: list[tuple[str, Callable[[bytes], object], list[bytes]]] = [
            ("json.loads (SIMPLE, baseline)", json.loads, simple),
            ("orjson.loads (SIMPLE, baseline)", orjson.loads, simple),
            ("parse_frame DEFAULT", parse_frame, default),
            ("parse_frame SIMPLE", parse_frame, simple),
        ]
        for name, fn, data in cases:
            rows.append(
                (label, name, measure(fn, data, args.runs), dsize if data is default else size)
            )
        events = [(raw, parse_frame(raw)) for raw in default]
        suffix = metadata_suffix(1_795_460_000_000, "upbit_websocket", "bench")
        records = [
            {**e.data, "_ingested_at": 1, "_source": "upbit_websocket", "_collector": "bench"}
            for _, e in events
            if isinstance(e, MarketEvent)
        ]
        parsed = [(raw, e.type, e.data) for raw, e in events if isinstance(e, MarketEvent)]
        rows.append(
            (label, "JSON: orjson.dumps(record)", measure(orjson.dumps, records, args.runs), dsize)
        )

        def splice(item: tuple[bytes, str, dict[str, Any]], suffix: bytes = suffix) -> object:
            return splice_record(item[0], item[1], item[2], suffix)

        if kind == "orderbook":  # only books are spliced (serialising the others is cheaper)
            rows.append(
                (label, "JSON: splice_record (DEFAULT)", measure(splice, parsed, args.runs), dsize)
            )

            def full_and_splice(raw: bytes, suffix: bytes = suffix) -> object:
                data = parse_data(raw)
                assert isinstance(data, dict)
                return splice_record(raw, "orderbook", data, suffix)

            def lite_and_splice(raw: bytes, suffix: bytes = suffix) -> object:
                data = parse_book_lite(raw)
                assert data is not None
                return splice_record(raw, "orderbook", data, suffix)

            if parse_book_lite(default[0]) is not None:  # the C scanner is built
                for name, fn in (
                    ("parse_book_lite DEFAULT (no units)", parse_book_lite),
                    ("parse_data + splice_record (DEFAULT)", full_and_splice),
                    ("parse_book_lite + splice_record (DEFAULT)", lite_and_splice),
                ):
                    rows.append((label, name, measure(fn, default, args.runs), dsize))
        if kind in ("trade", "ticker") and parse_flat_lite(default[0]) is not None:

            def full_and_dumps(raw: bytes, kind: str = kind) -> object:
                data = parse_data(raw)
                assert isinstance(data, dict)
                data["_ingested_at"] = 1
                data["_source"] = "upbit_websocket"
                data["_collector"] = "bench"
                return orjson.dumps(data)

            def flat_and_splice(raw: bytes, kind: str = kind, suffix: bytes = suffix) -> object:
                data = parse_flat_lite(raw)
                assert data is not None
                return splice_record(raw, kind, data, suffix)

            for name, fn in (
                ("parse_flat_lite DEFAULT (read fields only)", parse_flat_lite),
                ("parse_data + orjson.dumps(record) (DEFAULT)", full_and_dumps),
                ("parse_flat_lite + splice_record (DEFAULT)", flat_and_splice),
            ):
                rows.append((label, name, measure(fn, default, args.runs), dsize))
    for fmt in ("DEFAULT", "SIMPLE"):
        path_frames = frames(args.frames, fmt, markets=PATH_MARKETS)
        path_size = statistics.mean(len(f) for f in path_frames)
        for batch in sorted({1, args.batch}):
            seconds = measure_collector(path_frames, args.runs, batch)
            rows.append(("mix, 10 m", f"collector path {fmt}, batch {batch}", seconds, path_size))
        if fmt == "DEFAULT":
            seconds = measure_collector(path_frames, args.runs, args.batch, records=True)
            name = f"collector path {fmt}, records, batch {args.batch}"
            rows.append(("mix, 10 m", name, seconds, path_size))
            seconds = measure_collector(path_frames, args.runs, args.batch, lite=False)
            name = f"collector path {fmt}, no lite, batch {args.batch}"
            rows.append(("mix, 10 m", name, seconds, path_size))

    print(
        f"# bench_parse: {args.frames} frames x {args.runs} runs (median), "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print()
    print(
        f"| {'frames':<9} | {'case':<44} | {'msgs/s':>10} | {'CPU-µs/msg':>10} | {'frame bytes':>12} |"
    )
    print(f"|{'-' * 11}|{'-' * 46}|{'-' * 12}|{'-' * 12}|{'-' * 14}|")
    for label, name, seconds, size in rows:
        print(
            f"| {label:<9} | {name:<44} | {1 / seconds:>10,.0f} | {seconds * 1e6:>10.2f} | {size:>12.0f} |"
        )


if __name__ == "__main__":
    main()
