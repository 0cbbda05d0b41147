"""Does the collector's memory stay flat? RSS of `upbitpipe collect` over a long run.

Starts `upbitpipe replay serve --synthetic` with ``--markets`` synthetic KRW markets (all
three types) at ``--rate`` msgs/s, then `upbitpipe collect` into ``--sink`` (both as their
own processes, as users run them), samples the collector's RSS every ``--every`` seconds for
``--minutes``, and reports start, peak, and the growth over the last half of the run (a
least-squares slope, MB per minute), with where the RSS is every 30 s (anonymous pages,
the brk heap = glibc's main malloc arena, threads; ``--smaps DIR`` keeps the whole
``/proc/PID/smaps`` every minute). SIGTERMs at the end and reports how long the stop took
and what was spooled.

    .venv/bin/python benchmarks/bench_memory.py --markets 200 --rate 1000 --minutes 10
    .venv/bin/python benchmarks/bench_memory.py --markets 7 --rate 0 --minutes 1 --sink lake
    .venv/bin/python benchmarks/bench_memory.py --markets 7 --rate 0 --minutes 1 --sink kafka \
        --start-kafka 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from upbitpipe.infra.base import free_port, port_open


def synthetic_markets(count: int) -> list[str]:
    known = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE", "KRW-ADA", "KRW-USDT"]
    extra = [f"KRW-S{i:03d}" for i in range(max(0, count - len(known)))]
    return (known + extra)[:count]


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
    return cov / var * 60 if var else 0.0


def memory_detail(pid: int, ps: psutil.Process) -> dict[str, float]:
    """Where the RSS is: anonymous vs file-backed pages (smaps_rollup), the brk heap (the
    main malloc arena) and the number of threads."""
    out: dict[str, float] = {"threads": float(ps.num_threads())}
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    fields = {}
    for line in rollup.splitlines()[1:]:
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[name] = int(value.split()[0]) / 1024
    out["anon_mb"] = fields.get("Anonymous", 0.0)
    out["file_mb"] = fields.get("Rss", 0.0) - out["anon_mb"]
    heap = 0.0
    with contextlib.suppress(OSError):
        in_heap = False
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            if not line[:1].isupper() or line.split(":")[0].count(" "):
                in_heap = line.rstrip().endswith("[heap]")
            elif in_heap and line.startswith("Rss:"):
                heap += int(line.split()[1]) / 1024
    out["heap_mb"] = heap
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markets", type=int, default=200)
    ap.add_argument("--rate", type=float, default=1000, help="msgs/s; 0 = as fast as read")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--every", type=float, default=5)
    ap.add_argument("--sink", default="archive", help="lake, kafka or archive")
    ap.add_argument("--kafka", default=None, help="bootstrap servers for --sink kafka")
    ap.add_argument(
        "--start-kafka",
        type=int,
        default=0,
        metavar="BROKERS",
        help="start a Kafka cluster of BROKERS brokers with the project's infra code",
    )
    ap.add_argument("--log-tail", type=int, default=0, help="print the collector log's end")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    ap.add_argument(
        "--smaps",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy the collector's /proc/PID/smaps into DIR every minute (where RSS grows)",
    )
    ap.add_argument(
        "--pure-python",
        action="store_true",
        help="run the collector with UPBITPIPE_PURE_PYTHON=1: built C kernels left unused "
        "(the lake's; an A/B in one install)",
    )
    args = ap.parse_args()

    with contextlib.ExitStack() as stack:
        if args.start_kafka:
            args.kafka = stack.enter_context(kafka_cluster(args.start_kafka))
        run(args)


@contextlib.contextmanager
def kafka_cluster(brokers: int) -> Iterator[str]:
    """Brokers from the pinned Apache jars (KRaft), as `upbitpipe infra up kafka` starts."""
    from upbitpipe.config import InfraSettings, KafkaSettings
    from upbitpipe.infra.kafka import KafkaCluster

    ports = [free_port() for _ in range(2 * brokers)]
    kafka = KafkaSettings(bootstrap_servers=[f"127.0.0.1:{p}" for p in ports[:brokers]])
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as state:
        infra = InfraSettings(state_dir=Path(state), kafka_brokers=brokers)
        cluster = KafkaCluster(
            kafka, infra, controller_ports=ports[brokers:], progress=False, die_with_parent=True
        )
        cluster.start(180)
        try:
            yield ",".join(cluster.bootstrap_servers)
        finally:
            cluster.stop(30.0)


def run(args: argparse.Namespace) -> None:
    cli = str(Path(sys.executable).with_name("upbitpipe"))
    markets = synthetic_markets(args.markets)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        server = subprocess.Popen(
            [cli, "replay", "serve", "--synthetic", "--markets", ",".join(markets)]
            + ["--rate", str(args.rate), "--port", str(port), "--host", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.2)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("UPBITPIPE_")},
            "UPBITPIPE_UPBIT__WEBSOCKET_URL": f"ws://127.0.0.1:{port}/websocket/v1",
            "UPBITPIPE_UPBIT__REST_URL": f"http://127.0.0.1:{port}",
            "UPBITPIPE_COLLECTOR__STATE_DIR": f"{tmp}/state",
            "UPBITPIPE_LAKE__WAREHOUSE": f"{tmp}/lake",
            "UPBITPIPE_METRICS__ENABLED": "false",
        }
        if args.pure_python:
            env["UPBITPIPE_PURE_PYTHON"] = "1"
        if args.kafka:
            env["UPBITPIPE_KAFKA__BOOTSTRAP_SERVERS"] = args.kafka
            if args.start_kafka:
                env["UPBITPIPE_KAFKA__REPLICATION_FACTOR"] = str(args.start_kafka)
                env["UPBITPIPE_KAFKA__MIN_INSYNC_REPLICAS"] = str(min(2, args.start_kafka))
        log = Path(tmp) / "collect.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [cli, "collect", "--markets", ",".join(markets), "--sink", args.sink],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        ps = psutil.Process(proc.pid)
        samples: list[tuple[float, float]] = []
        details: list[dict[str, float]] = []
        started = time.monotonic()
        next_smaps = 0.0
        if args.smaps:
            args.smaps.mkdir(parents=True, exist_ok=True)
        try:
            while time.monotonic() - started < args.minutes * 60 and proc.poll() is None:
                now = time.monotonic() - started
                samples.append((now, ps.memory_info().rss / 1e6))
                details.append(memory_detail(proc.pid, ps))
                if args.smaps and now >= next_smaps:
                    smaps = Path(f"/proc/{proc.pid}/smaps").read_text()
                    (args.smaps / f"smaps-{round(now):05d}.txt").write_text(smaps)
                    next_smaps += 60
                time.sleep(args.every)
            cpu = ps.cpu_times()
            stop_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            stop_seconds = time.monotonic() - stop_at
        finally:
            if proc.poll() is None:
                proc.kill()
            server.terminate()
            server.wait(timeout=30)
        if args.log_tail:
            for line in log.read_text(errors="replace").splitlines()[-args.log_tail :]:
                print(line[:300], file=sys.stderr)
        status = json.loads((Path(tmp) / "state" / "status.json").read_text())
        rss = [r for _, r in samples]
        half = [s for s in samples if s[0] >= samples[-1][0] / 2]
        events = sum(status["events"].values())
        sink = status["sinks"].get(args.sink, {})
        result = {
            "markets": args.markets,
            "rate": args.rate,
            "sink": args.sink,
            "pure_python": args.pure_python,
            "minutes": round(samples[-1][0] / 60, 1) if samples else 0,
            "events": events,
            "events_per_s": round(events / max(1e-9, samples[-1][0]), 1) if samples else 0,
            "cpu_us_per_event": round((cpu.user + cpu.system) / max(1, events) * 1e6, 1),
            "rss_after_1min_mb": round(next((r for t, r in samples if t >= 60), rss[-1]), 1)
            if rss
            else 0,
            "rss_peak_mb": round(max(rss), 1) if rss else 0,
            "rss_last_mb": round(rss[-1], 1) if rss else 0,
            "rss_growth_last_half_mb_per_min": round(slope_mb_per_min(half), 2),
            "stop_seconds": round(stop_seconds, 1),
            "exit_code": proc.returncode,
            "backpressure_pauses": sink.get("backpressure_pauses"),
            "spooled_at_stop": sink.get("spooled_at_stop"),
            "lost_at_stop": sink.get("lost_at_stop"),
        }
        if args.sink == "lake":  # per CPU-second of the whole collector process
            cpu_s = max(1e-9, cpu.user + cpu.system)
            # events stored in their history table (trade, ticker, orderbook: a row each);
            # rows also counts ticker_latest's, folded to one per market per commit
            stored = int(sink.get("events_committed") or 0)
            rows = int(sink.get("rows_committed") or 0)
            result["lake_events_committed"] = stored
            result["lake_events_per_cpu_s"] = round(stored / cpu_s)
            result["lake_rows_committed"] = rows
            result["lake_rows_per_cpu_s"] = round(rows / cpu_s)
        result["load_average"] = [round(x, 2) for x in psutil.getloadavg()]
        # RSS about every 30 s, to see a trend (or its absence) without the full series
        step = max(1, round(30 / args.every))
        result["rss_mb_every_30s"] = [round(r) for r in rss[::step]]
        for key in ("anon_mb", "file_mb", "heap_mb", "threads"):
            series = [d[key] for d in details if key in d]
            result[f"{key}_every_30s"] = [round(v, 1) for v in series[::step]]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
