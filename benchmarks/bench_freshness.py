"""How fresh is the lake? The newest trade visible in Paimon against the exchange clock.

Starts a private stack with upbitpipe's own infra code (MinIO, 3 Kafka brokers, a Flink
cluster with checkpoints on MinIO) in a temporary directory, then the production path:

    upbitpipe replay serve --synthetic (N markets, R msgs/s)  -- the exchange (wall clock)
    upbitpipe collect --sink kafka                             -- its own process
    the streaming Flink job (flink submit all)                 -- Kafka -> Paimon on S3

Every ``--sample-every`` seconds it reads the newest ``trade_timestamp`` committed to the
lake's ``trade`` table and records ``now - newest`` (the synthetic exchange stamps trades
with wall-clock time). Paimon commits on checkpoints, so the floor is the checkpoint
interval; the goal is p99 within interval + 5 s. Samples start once the job has made its
first commit. Prints p50/p90/p99/max, the checkpoint interval, and the job's checkpoint
counts (completed/failed) so a slow result can be told apart from failing checkpoints.

    .venv/bin/python benchmarks/bench_freshness.py                       # 10 min, 1000 msgs/s
    .venv/bin/python benchmarks/bench_freshness.py --duration 120 --rate 300 --interval "5 s"

Run it on a quiet machine: on a loaded one the numbers say more about the load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from upbitpipe.config import (
    FlinkSettings,
    InfraSettings,
    KafkaSettings,
    S3Settings,
    Settings,
    load_settings,
)
from upbitpipe.flink.cluster import FlinkCluster
from upbitpipe.flink.jobs import FlinkRest
from upbitpipe.flink.render import render_files, resolve_files
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.flink.submit import SubmitOptions, submit
from upbitpipe.infra.base import free_port, port_open
from upbitpipe.infra.kafka import KafkaCluster, topic_specs
from upbitpipe.infra.kafka_admin import ensure_topics_sync
from upbitpipe.infra.s3server import MinioServer
from upbitpipe.lake.tables import lake_catalog_options
from upbitpipe.storage.buckets import init_buckets

START_TIMEOUT = 300.0


def synthetic_markets(count: int) -> list[str]:
    base = ["BTC", "ETH", "XRP", "SOL", "DOGE", "ADA", "TRX", "AVAX", "LINK", "DOT", "BCH", "ETC"]
    return [f"KRW-{c}" for c in (base * (count // len(base) + 1))[:count]]


@contextlib.contextmanager
def stack(root: Path, interval: str) -> Iterator[Settings]:
    """MinIO + 3 brokers + Flink (1 JM, 2 TMs x 2 slots), all stopped on exit."""
    cache = load_settings(env=dict(os.environ)).settings.infra.cache_dir
    s3_port, *ports = [free_port() for _ in range(8)]
    infra = InfraSettings(state_dir=root / "infra", cache_dir=cache, kafka_brokers=3)
    minio = MinioServer(
        S3Settings(endpoint=f"http://127.0.0.1:{s3_port}"),  # type: ignore[arg-type]
        infra,
        console=False,
    )
    kafka = KafkaCluster(
        KafkaSettings(bootstrap_servers=[f"127.0.0.1:{p}" for p in ports[:3]]),
        infra,
        controller_ports=ports[3:6],
        progress=False,
    )
    flink_settings = FlinkSettings(
        rest_url=f"http://127.0.0.1:{ports[6]}",  # type: ignore[arg-type]
        parallelism=2,
        checkpoint_interval=interval,
    )
    started: list[MinioServer | KafkaCluster | FlinkCluster] = []
    try:
        minio.start(START_TIMEOUT)
        started.append(minio)
        creds = minio.credentials()
        assert creds is not None
        kafka.start(START_TIMEOUT)
        started.append(kafka)
        settings = load_settings(
            overrides={
                "infra.state_dir": str(root / "infra"),
                "infra.cache_dir": str(cache),
                "kafka.bootstrap_servers": ",".join(kafka.bootstrap_servers),
                "kafka.topic_prefix": f"bench{uuid.uuid4().hex[:6]}-",
                "s3.endpoint": minio.endpoint,
                "s3.access_key": creds.access_key,
                "s3.secret_key": creds.secret_key,
                "lake.warehouse": "s3://upbit-lake/bench",
                "lake.buckets": 2,
                "flink.rest_url": str(flink_settings.rest_url),
                "flink.parallelism": 2,
                "flink.checkpoint_interval": interval,
                "metrics.port": 0,
            },
            env={},
        ).settings
        cluster = FlinkCluster(flink_settings, infra, progress=False, s3=settings.s3)
        cluster.start(START_TIMEOUT)
        started.append(cluster)
        yield settings
    finally:
        for service in reversed(started):
            service.stop(30.0)


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)  # noqa: S603
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def newest_trade_ms(settings: Settings, after_ms: int) -> int | None:
    """The newest ``trade_timestamp`` committed to the lake (files older than ``after_ms``
    are pruned by their column statistics)."""
    from pypaimon import CatalogFactory

    table = CatalogFactory.create(lake_catalog_options(settings)).get_table(
        f"{settings.lake.database}.trade"
    )
    builder = table.new_read_builder().with_projection(["trade_timestamp"])
    if after_ms:
        predicate = builder.new_predicate_builder().greater_than("trade_timestamp", after_ms)
        builder = builder.with_filter(predicate)
    arrow = builder.new_read().to_arrow(builder.new_scan().plan().splits())
    if arrow.num_rows == 0:
        return None
    return int(max(arrow.column("trade_timestamp").to_pylist()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of sampling")
    parser.add_argument("--rate", type=float, default=1000.0, help="exchange msgs/s")
    parser.add_argument("--markets", type=int, default=10)
    parser.add_argument("--interval", default="10 s", help="Flink checkpoint interval")
    parser.add_argument("--sample-every", type=float, default=2.0)
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    markets = synthetic_markets(args.markets)
    with tempfile.TemporaryDirectory(prefix="bench-freshness-") as tmp:
        root = Path(tmp)
        print(f"starting MinIO, 3 Kafka brokers, Flink in {root} ...", flush=True)
        with stack(root, args.interval) as settings:
            init_buckets(settings.s3, *_keys(settings))
            ensure_topics_sync(
                settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3), 60.0
            )
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("UPBITPIPE_")}
            twin = [str(bin_dir / "upbitpipe"), "replay", "serve", "--synthetic", "--port"]
            twin += [str(port), "--markets", ",".join(markets), "--rate", str(args.rate)]
            collect = [str(bin_dir / "upbitpipe"), "collect", "--markets", ",".join(markets)]
            collect += ["--sink", "kafka"]
            collector_env = {
                **env,
                "UPBITPIPE_UPBIT__WEBSOCKET_URL": f"ws://127.0.0.1:{port}/websocket/v1",
                "UPBITPIPE_UPBIT__REST_URL": f"http://127.0.0.1:{port}",
                "UPBITPIPE_KAFKA__BOOTSTRAP_SERVERS": ",".join(settings.kafka.bootstrap_servers),
                "UPBITPIPE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
                "UPBITPIPE_COLLECTOR__STATE_DIR": str(root / "collector"),
                "UPBITPIPE_METRICS__PORT": "0",
            }
            with (
                process(twin, env, root / "twin.log"),
                process(collect, collector_env, root / "collector.log"),
            ):
                _wait(lambda: port_open("127.0.0.1", port), 60, "the replay server")
                runtime = FlinkRuntime.in_cache(settings.infra.cache_dir)
                statements = render_files(resolve_files(["all"], settings), settings)
                result = submit(statements, settings, runtime, SubmitOptions())
                job_id = result.job_ids[0]
                print(f"job {job_id} submitted; waiting for its first commit ...", flush=True)
                _wait(lambda: newest_trade_ms(settings, 0) is not None, 300, "a first commit")
                print(f"committed; sampling for {args.duration:.0f} s ...", flush=True)
                lags: list[float] = []
                newest = 0
                end = time.monotonic() + args.duration
                while time.monotonic() < end:
                    found = newest_trade_ms(settings, newest)
                    newest = max(newest, found or 0)
                    lags.append(time.time() - newest / 1000)
                    time.sleep(args.sample_every)
                counts = FlinkRest(str(settings.flink.rest_url)).checkpoints(job_id)["counts"]
    report(args, lags, counts)
    return 0


def _keys(settings: Settings) -> tuple[str, str]:
    from upbitpipe.config import reveal

    return reveal(settings.s3.access_key) or "", reveal(settings.s3.secret_key) or ""


def _wait(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    msg = f"{what}: not ready within {timeout:.0f} s"
    raise SystemExit(msg)


def report(args: argparse.Namespace, lags: list[float], counts: dict[str, int]) -> None:
    load = os.getloadavg()[0]
    interval_s = float(args.interval.split()[0]) if args.interval.endswith(" s") else None
    print()
    print(
        f"freshness over {args.duration:.0f} s, {args.rate:.0f} msgs/s, {args.markets} markets, "
        f"checkpoint interval {args.interval}, load {load:.1f}"
    )
    print(f"  samples {len(lags)}")
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        print(f"  {name:<4} {percentile(lags, q):7.1f} s")
    print(f"  max  {max(lags):7.1f} s   (mean {statistics.fmean(lags):.1f} s)")
    print(f"  checkpoints completed {counts.get('completed')}, failed {counts.get('failed')}")
    if interval_s is not None:
        goal = interval_s + 5
        verdict = "met" if percentile(lags, 0.99) <= goal else "NOT met"
        print(f"  goal p99 <= interval + 5 s = {goal:.0f} s: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
