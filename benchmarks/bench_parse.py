"""How fast is the frame parser? DEFAULT vs SIMPLE vs plain json/orjson.loads baselines.

Frames come from the synthetic market (realistic sizes: 30-level orderbooks, full tickers)
in its default mix (trade + ticker per trade, 30 % orderbooks), plus per-type rows.
Each figure is the median of ``--runs`` passes over ``--frames`` frames, single thread,
in CPU time (``time.process_time``) so that other load on the machine distorts it less.

    .venv/bin/python benchmarks/bench_parse.py
    .venv/bin/python benchmarks/bench_parse.py --frames 50000 --runs 7
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import orjson

from upbitpipe.replay.market import SyntheticMarket
from upbitpipe.upbit.codec import parse_frame


def frames(n: int, fmt: str, kind: str | None = None) -> list[bytes]:
    market = SyntheticMarket(["KRW-BTC", "KRW-ETH", "KRW-XRP"], 42, 1_795_460_000_000, 0.3)
    out: list[bytes] = []
    now = 1_795_460_000_000
    while len(out) < n:
        now += 7
        for event in market.generate(64, now):
            if kind is None or event.type == kind:
                out.append(event.frame(fmt))
    return out[:n]


def measure(fn: Callable[[bytes], object], data: list[bytes], runs: int) -> float:
    """Median CPU seconds per message over ``runs`` passes (CPU time: the box is shared)."""
    samples = []
    for _ in range(runs):
        started = time.process_time()
        for raw in data:
            fn(raw)
        samples.append((time.process_time() - started) / len(data))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    rows: list[tuple[str, str, float, float]] = []
    for kind in (None, "trade", "ticker", "orderbook"):
        label = kind or "mix"
        simple = frames(args.frames, "SIMPLE", kind)
        default = frames(args.frames, "DEFAULT", kind)
        size = statistics.mean(len(f) for f in simple)
        cases: list[tuple[str, Callable[[bytes], object], list[bytes]]] = [
            ("json.loads (SIMPLE, baseline)", json.loads, simple),
            ("orjson.loads (SIMPLE, baseline)", orjson.loads, simple),
            ("parse_frame DEFAULT", parse_frame, default),
            ("parse_frame SIMPLE", parse_frame, simple),
        ]
        for name, fn, data in cases:
            rows.append((label, name, measure(fn, data, args.runs), size))

    print(
        f"# bench_parse: {args.frames} frames x {args.runs} runs (median), "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print()
    print(
        f"| {'frames':<9} | {'case':<32} | {'msgs/s':>10} | {'CPU-µs/msg':>10} | {'SIMPLE bytes':>12} |"
    )
    print(f"|{'-' * 11}|{'-' * 34}|{'-' * 12}|{'-' * 12}|{'-' * 14}|")
    for label, name, seconds, size in rows:
        print(
            f"| {label:<9} | {name:<32} | {1 / seconds:>10,.0f} | {seconds * 1e6:>10.2f} | {size:>12.0f} |"
        )


if __name__ == "__main__":
    main()
