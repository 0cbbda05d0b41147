"""The Kafka sink's transaction cycle at a fixed rate: where the latency goes.

One process: a generator makes ``--rate`` trade-sized records per second into a buffer, a
writer hands the whole buffer to ``KafkaSink.write`` (as the collector's sink runner does),
and each record's latency is the time from its creation to the end of the commit of the
transaction that carried it (read_committed consumers see it from then on; the sink's linger
after a commit does not count). Every transaction's phases are timed: begin, sends until all acks (this
includes aiokafka's AddPartitionsToTxn round trips and its ``ConcurrentTransactions``
backoffs, which are counted), and the commit. Kafka is one broker from the pinned jars
(``bench_memory.kafka_cluster``) unless ``--bootstrap`` names a running cluster.

    .venv/bin/python benchmarks/bench_kafka_txn.py --rate 5000 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiokafka.errors import ConcurrentTransactions  # noqa: E402
from aiokafka.producer import sender as aiokafka_sender  # noqa: E402

from upbitpipe.config import KafkaSettings  # noqa: E402
from upbitpipe.infra.kafka import topic_specs  # noqa: E402
from upbitpipe.infra.kafka_admin import ensure_topics_sync  # noqa: E402
from upbitpipe.sinks.base import SinkEvent  # noqa: E402
from upbitpipe.sinks.deadletter import DeadLetterBox  # noqa: E402
from upbitpipe.sinks.kafka import KafkaSink  # noqa: E402

MARKETS = [f"KRW-C{i:03d}" for i in range(10)]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def count_concurrent_retries(counter: Counter[str]) -> None:
    """Count the AddPartitionsToTxn answers ``ConcurrentTransactions`` (each one sleeps)."""
    handler = aiokafka_sender.AddPartitionsToTxnHandler
    original = handler.handle_response

    def handle_response(self: Any, resp: Any) -> Any:
        counter["add_partitions"] += 1
        for _topic, partitions in resp.errors:
            if any(code == ConcurrentTransactions.errno for _p, code in partitions):
                counter["concurrent"] += 1
                break
        return original(self, resp)

    handler.handle_response = handle_response  # type: ignore[method-assign]


async def run(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap.split(","),
        replication_factor=args.brokers,
        min_insync_replicas=min(2, args.brokers),
        topic_prefix=f"bench{os.getpid()}-",
        compression=args.compression,
        **({} if args.linger_ms is None else {"linger_ms": args.linger_ms}),
    )
    ensure_topics_sync(settings.bootstrap_servers, topic_specs(settings, args.brokers), 60.0)
    counter: Counter[str] = Counter()
    count_concurrent_retries(counter)
    phases: dict[str, list[float]] = {"begin": [], "send": [], "commit": [], "txn": []}
    with tempfile.TemporaryDirectory(prefix="bench-txn-") as tmp:
        sink = KafkaSink(settings, Path(tmp) / "spool", DeadLetterBox(Path(tmp) / "dead"))
        await sink.open()
        assert sink._producer is not None, "kafka unreachable"
        producer = sink._producer
        begin, commit, send_all = (
            producer.begin_transaction,
            producer.commit_transaction,
            sink._send_all,
        )
        marks: dict[str, float] = {}

        async def timed_begin() -> None:
            marks["t0"] = time.perf_counter()
            await begin()
            marks["t1"] = time.perf_counter()
            phases["begin"].append(marks["t1"] - marks["t0"])

        async def timed_send(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            result = await send_all(*a, **k)
            marks["t2"] = time.perf_counter()
            phases["send"].append(marks["t2"] - started)
            return result

        async def timed_commit() -> None:
            await commit()
            done = marks["committed"] = time.perf_counter()
            phases["commit"].append(done - marks["t2"])
            phases["txn"].append(done - marks["t0"])

        producer.begin_transaction = timed_begin  # type: ignore[method-assign]
        producer.commit_transaction = timed_commit  # type: ignore[method-assign]
        sink._send_all = timed_send  # type: ignore[method-assign]

        record = {
            "type": "trade",
            "code": "KRW-BTC",
            "timestamp": 0,
            "trade_date": "2026-11-28",
            "trade_time": "12:00:00",
            "trade_timestamp": 0,
            "trade_price": 131_000_000.0,
            "trade_volume": 0.0012,
            "ask_bid": "BID",
            "prev_closing_price": 130_000_000.0,
            "change": "RISE",
            "change_price": 1_000_000.0,
            "sequential_id": 0,
            "stream_type": "REALTIME",
            "market": "KRW-BTC",
            "_ingested_at": 0,
            "_source": "upbit_websocket",
            "_collector": "bench",
        }
        buffer: deque[tuple[float, SinkEvent]] = deque()
        wake = asyncio.Event()
        latencies: list[float] = []
        batches: list[int] = []
        stop = False

        async def generate() -> None:
            start = time.perf_counter()
            made = 0
            seq = 0
            while not stop:
                due = int((time.perf_counter() - start) * args.rate) - made
                now = time.perf_counter()
                for _ in range(due):
                    seq += 1
                    market = MARKETS[seq % len(MARKETS)]
                    rec = {**record, "sequential_id": seq, "market": market, "code": market}
                    buffer.append((now, SinkEvent("trade", market, rec, b"")))
                made += due
                if due:
                    wake.set()
                await asyncio.sleep(0.001)

        async def write() -> None:
            while not stop:
                if not buffer:
                    wake.clear()
                    await wake.wait()
                if args.min_wait_ms and len(buffer) < args.min_batch:
                    await asyncio.sleep(args.min_wait_ms / 1000)
                taken = list(buffer)
                buffer.clear()
                marks.pop("committed", None)
                await sink.write([e for _t, e in taken])
                done = marks.get("committed", time.perf_counter())  # visible from then on
                latencies.extend(done - t for t, _e in taken)
                batches.append(len(taken))

        tasks = [asyncio.create_task(generate()), asyncio.create_task(write())]
        await asyncio.sleep(args.warmup)
        latencies.clear()
        batches.clear()
        for values in phases.values():
            values.clear()
        counter.clear()
        cpu0 = time.process_time()
        await asyncio.sleep(args.seconds)
        cpu = time.process_time() - cpu0
        stop = True
        wake.set()
        await asyncio.wait(tasks, timeout=30)  # the last write ends: nothing left in doubt
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        n = len(latencies)
        await sink.close()
    ms = [v * 1000 for v in latencies]
    result = {
        "events": n,
        "cpu_us_per_event": 1e6 * cpu / max(n, 1),
        "p50_ms": pct(ms, 0.50),
        "p99_ms": pct(ms, 0.99),
        "max_ms": max(ms) if ms else float("nan"),
        "txns": len(batches),
        "mean_batch": statistics.fmean(batches) if batches else 0.0,
        "concurrent_per_txn": counter["concurrent"] / max(len(batches), 1),
        "add_partitions_per_txn": counter["add_partitions"] / max(len(batches), 1),
    }
    for name, values in phases.items():
        result[f"{name}_ms_p50"] = 1000 * pct(values, 0.5)
        result[f"{name}_ms_p99"] = 1000 * pct(values, 0.99)
    return result


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[str]:
    if args.bootstrap:
        yield args.bootstrap
        return
    from bench_memory import kafka_cluster

    with kafka_cluster(args.brokers) as bootstrap:
        yield bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000, help="records per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--bootstrap", default="", help="a running cluster (else one is started)")
    parser.add_argument("--compression", default="zstd")
    parser.add_argument("--linger-ms", type=int, default=None, help="kafka.linger_ms")
    parser.add_argument("--min-wait-ms", type=float, default=0.0, help="(writer) wait this long")
    parser.add_argument("--min-batch", type=int, default=0, help="(writer) unless this many")
    parser.add_argument("--backoff-ms", type=float, default=None, help="experiment: aiokafka's")
    args = parser.parse_args()
    if args.backoff_ms is not None:
        aiokafka_sender.BACKOFF_OVERRIDE = args.backoff_ms / 1000
    with cluster(args) as bootstrap:
        for _ in range(args.runs):
            result = asyncio.run(run(args, bootstrap))
            load = os.getloadavg()[0]
            print(
                f"load {load:.1f} "
                + " ".join(
                    f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in result.items()
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
