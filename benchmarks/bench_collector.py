"""What does the collector cost per message, and how late are events at the sink?

The replay server runs in a child process (its CPU is not counted) and streams a synthetic
market (ticker+trade+orderbook of several markets) as fast as the client reads. The client
runs in this process and stops after ``--messages`` frames; we measure its CPU time per
message, wall throughput, and the latency from the exchange's event ``timestamp`` to the
moment the sink receives the event (p50/p99; ms resolution of the exchange clock).

Variants, run alternately in the same session (``--runs`` each, medians reported):
  baseline    plain ``websockets`` client + ``orjson.loads``, nothing else (the notes'
              16 µs/msg reference: what any Python collector pays for transport + JSON)
  collector   upbitpipe's path: parse/normalise -> dedup -> data-contract record -> sink queue
              -> a counting sink (no I/O)
  +lake       the same, into the pypaimon lake sink on local disk (commits every 5 s)
  +kafka      the same, into the Kafka sink (only with ``--kafka host:port``)

    .venv/bin/python benchmarks/bench_collector.py
    .venv/bin/python benchmarks/bench_collector.py --messages 50000 --runs 3 --kafka 127.0.0.1:29092
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil
from websockets.asyncio.client import connect

from upbitpipe.collector.markets import shard
from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.config import Settings, load_settings
from upbitpipe.infra.base import free_port, port_open
from upbitpipe.sinks.base import Sink, SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.upbit.codec import subscribe_request
from upbitpipe.upbit.rest import UpbitRestClient

MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"]
TYPES = ["ticker", "trade", "orderbook"]


# --- the exchange, in its own process ----------------------------------------------------
@contextlib.contextmanager
def replay_server(rate: float) -> Iterator[int]:
    """`upbitpipe replay serve --synthetic` as a separate process (what users run)."""
    port = free_port()
    cli = Path(sys.executable).with_name("upbitpipe")
    argv = [str(cli), "replay", "serve", "--synthetic", "--markets", ",".join(MARKETS)]
    argv += ["--rate", str(rate), "--port", str(port), "--no-limits", "--seed", "3"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline or proc.poll() is not None:
                msg = "replay server did not start"
                raise RuntimeError(msg)
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- sinks ---------------------------------------------------------------------------------
class CountingSink:
    """Counts events and records exchange-timestamp -> sink latency (ms)."""

    name = "count"
    flush_interval = 1.0

    def __init__(self, target: int, done: asyncio.Event) -> None:
        self.target = target
        self.done = done
        self.count = 0
        self.latencies: list[float] = []
        self.first = 0.0
        self.last = 0.0

    async def open(self) -> None:
        return None

    async def write(self, events: Sequence[SinkEvent]) -> None:
        now_ms = time.time() * 1000
        self.last = time.perf_counter()
        if not self.first:
            self.first = self.last
        for event in events:
            stamp = event.record.get("timestamp")
            if isinstance(stamp, int):
                self.latencies.append(now_ms - stamp)
        self.count += len(events)
        if self.count >= self.target:
            self.done.set()

    async def flush(self) -> None:
        return None

    def take_unflushed(self) -> list[SinkEvent]:
        return []

    async def close(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"count": self.count}


# --- clients -------------------------------------------------------------------------------
async def run_baseline(port: int, messages: int) -> tuple[int, list[float], float]:
    latencies: list[float] = []
    started = 0.0
    async with connect(
        f"ws://127.0.0.1:{port}/websocket/v1", compression=None, max_size=2**22
    ) as ws:
        await ws.send(subscribe_request(uuid.uuid4().hex, TYPES, MARKETS))
        count = 0
        while count < messages:
            obj = orjson.loads(await ws.recv())
            stamp = obj.get("tms") or obj.get("timestamp")
            if stamp:
                latencies.append(time.time() * 1000 - stamp)
            if not count:
                started = time.perf_counter()
            count += 1
        elapsed = time.perf_counter() - started
    return count, latencies, elapsed


async def run_collector_path(
    port: int, messages: int, variant: str, kafka: str | None, tmp: Path
) -> tuple[int, list[float], float]:
    sinks_cfg = {"collector": [], "+lake": ["lake"], "+kafka": ["kafka"]}[variant]
    flat: dict[str, Any] = {
        "upbit.websocket_url": f"ws://127.0.0.1:{port}/websocket/v1",
        "upbit.rest_url": f"http://127.0.0.1:{port}",
        "collector.state_dir": str(tmp / "state"),
        "lake.warehouse": str(tmp / "lake"),
        "metrics.enabled": False,
    }
    if kafka:
        flat["kafka.bootstrap_servers"] = kafka
        flat["kafka.topic_prefix"] = f"bench{uuid.uuid4().hex[:6]}-"
    settings: Settings = load_settings(overrides=flat, env={}).settings
    settings.collector.state_dir.mkdir(parents=True, exist_ok=True)  # run_collector does this
    done = asyncio.Event()
    counter = CountingSink(messages, done)
    dead = DeadLetterBox(tmp / "dead")
    extra: list[Sink] = []
    if "lake" in sinks_cfg:
        from upbitpipe.sinks.lake import LakeSink

        extra.append(LakeSink(settings, dead))
    if "kafka" in sinks_cfg:
        from upbitpipe.infra.kafka import topic_specs
        from upbitpipe.infra.kafka_admin import ensure_topics
        from upbitpipe.sinks.kafka import KafkaSink

        await ensure_topics(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 1))
        extra.append(KafkaSink(settings.kafka, tmp / "spool", dead))
    plan = CollectorPlan(MARKETS, TYPES, shard(MARKETS, 50))
    async with UpbitRestClient(f"http://127.0.0.1:{port}") as rest:
        service = CollectorService(settings, plan, [counter, *extra], rest, dead)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stop.set()
        await task  # raises what stopped the collector early
    return counter.count, counter.latencies, counter.last - counter.first


def measure(variant: str, port: int, messages: int, kafka: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        if variant == "baseline":
            count, latencies, elapsed = asyncio.run(run_baseline(port, messages))
        else:
            count, latencies, elapsed = asyncio.run(
                run_collector_path(port, messages, variant, kafka, Path(tmp))
            )
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    lat = sorted(latencies) or [0.0]
    return {
        "msgs": count,
        "msgs_per_s": count / max(elapsed, 1e-9),  # first to last message, not connect/close
        "cpu_us_per_msg": cpu / count * 1e6,
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "rss_mb": psutil.Process().memory_info().rss / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="exchange msgs/s (0 = as fast as the client reads: CPU cost; a fixed rate: latency)",
    )
    parser.add_argument(
        "--kafka", default=None, help="bootstrap host:port to include the +kafka variant"
    )
    parser.add_argument("--variants", default=None, help="comma-separated subset")
    args = parser.parse_args()
    variants = ["baseline", "collector", "+lake"] + (["+kafka"] if args.kafka else [])
    if args.variants:
        variants = [v for v in variants if v in args.variants.split(",")]

    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with replay_server(args.rate) as port:
        for run in range(args.runs):
            for variant in variants:  # alternate so drift hits every variant alike
                results[variant].append(measure(variant, port, args.messages, args.kafka))
                cpu = results[variant][-1]["cpu_us_per_msg"]
                print(f"run {run + 1} {variant:10s} {cpu:.1f} µs/msg", flush=True)

    base = (
        statistics.median(r["cpu_us_per_msg"] for r in results["baseline"])
        if "baseline" in results
        else None
    )
    print(
        f"\n{args.messages} messages per run, median of {args.runs} runs; "
        f"exchange: a `replay serve` process at rate {args.rate or 'max'}"
    )
    print(
        f"{'variant':10s} {'msgs/s':>9s} {'CPU µs/msg':>11s} {'vs base':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'RSS MB':>7s}"
    )
    for variant, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        ratio = f"{med['cpu_us_per_msg'] / base:.2f}x" if base else "-"
        print(
            f"{variant:10s} {med['msgs_per_s']:9,.0f} {med['cpu_us_per_msg']:11.1f} {ratio:>8s} "
            f"{med['p50_ms']:7.1f} {med['p99_ms']:7.1f} {med['rss_mb']:7.0f}"
        )


if __name__ == "__main__":
    main()
