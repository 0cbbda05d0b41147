"""The pipeline as it runs for real, under faults: twin (disconnects + duplicates) ->
`upbitpipe collect --sink kafka` -> 3 brokers -> the *streaming* Flink job -> Paimon on S3.

During the run one TaskManager is killed (SIGKILL), one Kafka broker is killed, and the
collector is restarted (its REST backfill delivers the gap's trades well behind the
watermark). Then a second `flink submit all` must be refused and `--replace` must move the
job to a new one through a savepoint. Afterwards: every trade the exchange made in the span
exactly once in the lake, every candle equal to the one computed from the deduplicated trade
table, and every complete minute's candle equal to the twin's ground truth. The job's state
is RocksDB with checkpoints on the S3 server.

The test runs its own Flink cluster (it kills a TaskManager) and restarts the killed broker
of the shared Kafka cluster before it ends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from collect_support import collector_process_env, kafka_trade_ids
from conftest_flink import s3_settings
from typer.testing import CliRunner

from conftest import KafkaFixture, S3Fixture, settings_for
from upbitpipe.cli.main import app
from upbitpipe.config import FlinkSettings, InfraSettings, Settings
from upbitpipe.demo import expected_trade_ids
from upbitpipe.flink.cluster import FlinkCluster
from upbitpipe.flink.jobs import FlinkRest
from upbitpipe.flink.pipeline import alive_pipeline, pipeline_name
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.infra.base import free_port
from upbitpipe.infra.kafka import topic_specs
from upbitpipe.infra.kafka_admin import ensure_topics_sync
from upbitpipe.lake.ohlcv import candles
from upbitpipe.lake.read import read_table
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.storage.buckets import init_buckets, make_client

#: seconds the new job keeps ingesting after --replace; the by-hand long run sets e.g. 600
RUN_AFTER_REPLACE = float(os.environ.get("FLINK_STREAM_TEST_SECONDS", "15"))
#: the collection spans at least this long, so that complete minutes exist to check even
#: when a quiet machine gets through the faults quickly
MIN_COLLECTION_SECONDS = 135.0
pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1200 + RUN_AFTER_REPLACE),
]
pytest_plugins = ["conftest_flink"]

MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]
PARALLELISM = 2  # one TaskManager (2 slots) can run the whole job
WAIT = 240.0  # generous: the machine is shared


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    print(f"{time.strftime('%H:%M:%S')} waiting for {what}", flush=True)
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"{what}: not reached within {timeout:.0f} s (last: {last!r})")


@pytest.fixture
def own_flink(
    tmp_path: Path, artifact_cache: Path, flink_runtime: FlinkRuntime, s3_server: S3Fixture
) -> Iterator[FlinkCluster]:
    """A cluster of its own (1 JM + 2 TMs x 2 slots): this test kills one of its TMs."""
    flink = FlinkSettings(
        rest_url=f"http://127.0.0.1:{free_port()}",  # type: ignore[arg-type]
        parallelism=PARALLELISM,
        taskmanagers=2,
        slots_per_taskmanager=2,
        checkpoint_interval="5 s",
    )
    infra = InfraSettings(state_dir=tmp_path / "flink-infra", cache_dir=artifact_cache)
    cluster = FlinkCluster(flink, infra, progress=False, s3=s3_settings(s3_server))
    try:
        cluster.start(WAIT)
        yield cluster
    finally:
        cluster.stop(30.0)


class Collector:
    """`upbitpipe collect --sink kafka` as its own process, like a user runs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "upbitpipe", "collect", "--markets", ",".join(MARKETS)]
        argv += ["--types", "trade", "--sink", "kafka"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=out)  # noqa: S603

    def stop(self) -> None:
        """SIGTERM: the collector flushes Kafka and records where to resume."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            pytest.fail(f"the collector did not stop on SIGTERM: {self.log.read_text()[-2000:]}")


def cli_env(settings: Settings, s3: S3Fixture, artifact_cache: Path) -> dict[str, str]:
    return {
        "UPBITPIPE_INFRA__CACHE_DIR": str(artifact_cache),
        "UPBITPIPE_INFRA__STATE_DIR": str(settings.infra.state_dir),
        "UPBITPIPE_KAFKA__BOOTSTRAP_SERVERS": ",".join(settings.kafka.bootstrap_servers),
        "UPBITPIPE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "UPBITPIPE_LAKE__WAREHOUSE": settings.lake.warehouse,
        "UPBITPIPE_LAKE__BUCKETS": str(settings.lake.buckets),
        "UPBITPIPE_S3__ENDPOINT": s3.endpoint,
        "UPBITPIPE_S3__ACCESS_KEY": s3.access_key,
        "UPBITPIPE_S3__SECRET_KEY": s3.secret_key,
        "UPBITPIPE_FLINK__REST_URL": str(settings.flink.rest_url),
        "UPBITPIPE_FLINK__PARALLELISM": str(PARALLELISM),
        "UPBITPIPE_FLINK__CHECKPOINT_INTERVAL": settings.flink.checkpoint_interval,
        "UPBITPIPE_FLINK__CHECKPOINT_DIR": settings.flink.checkpoint_dir or "",
        "UPBITPIPE_FLINK__CONSUMER_GROUP": settings.flink.consumer_group,
    }


def flink_cli(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(app, ["flink", *args], env=env, catch_exceptions=False)


def healthy_job(rest: FlinkRest, settings: Settings) -> str | None:
    job = alive_pipeline(rest, settings)
    return job.job_id if job is not None and job.fully_running else None


def busy_taskmanager(cluster: FlinkCluster, rest: FlinkRest) -> Any:
    """The TaskManager process that runs tasks of the job (found by its ResourceID)."""
    busy = [t["id"] for t in rest.taskmanagers() if t["freeSlots"] < t["slotsNumber"]]
    for proc in cluster.taskmanagers:
        text = proc.log_path.read_text(encoding="utf-8", errors="replace")
        if any(f"ResourceID: {rid}" in text for rid in busy):
            return proc
    pytest.fail(f"no TaskManager process runs the job's tasks ({busy})")


def completed_checkpoints(rest: FlinkRest, job_id: str) -> int:
    return int(rest.checkpoints(job_id).get("counts", {}).get("completed", 0))


def test_streaming_job_under_faults(
    tmp_path: Path,
    artifact_cache: Path,
    kafka_cluster: KafkaFixture,
    s3_server: S3Fixture,
    own_flink: FlinkCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = settings_for(
        tmp_path,
        kafka_cluster,
        s3_server,
        **{
            "kafka.topic_prefix": f"s{tag}-",
            "lake.warehouse": f"s3://upbit-lake/stream-{tag}",
            "lake.buckets": 2,
            "flink.rest_url": own_flink.rest_url,
            "flink.parallelism": PARALLELISM,
            "flink.checkpoint_interval": "5 s",
            "flink.checkpoint_dir": f"s3://upbit-lake/stream-{tag}-state/checkpoints",
            "flink.consumer_group": f"stream-{tag}",
        },
    )
    init_buckets(settings.s3, s3_server.access_key, s3_server.secret_key)
    ensure_topics_sync(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3), 60.0)
    env = cli_env(settings, s3_server, artifact_cache)
    for key in [k for k in os.environ if k.startswith("UPBITPIPE_")]:
        monkeypatch.delenv(key)
    rest = FlinkRest(own_flink.rest_url)

    twin = ReplayServer(
        ReplayOptions(
            markets=MARKETS,
            seed=17,
            rate=60,
            drop_after_seconds=25,  # forced disconnects: reconnect + REST backfill
            duplicate_rate=0.03,
            reorder_rate=0.05,
        )
    )
    twin.start_in_thread()
    collector = Collector(
        collector_process_env(
            tmp_path,
            twin,
            KAFKA__BOOTSTRAP_SERVERS=",".join(settings.kafka.bootstrap_servers),
            KAFKA__TOPIC_PREFIX=settings.kafka.topic_prefix,
        ),
        tmp_path / "collector.log",
    )
    broker_down: int | None = None
    try:
        collector.start()
        collection_began = time.monotonic()
        submitted = flink_cli(["submit", "all"], env)
        assert submitted.exit_code == 0, submitted.output
        first = wait_for(lambda: healthy_job(rest, settings), WAIT, "the pipeline job running")
        config = rest._request("GET", f"/jobs/{first}/checkpoints/config")
        assert "RocksDB" in str(config.get("state_backend")), config
        wait_for(lambda: completed_checkpoints(rest, first) >= 1, WAIT, "a first checkpoint")

        # faults: a TaskManager, a broker, the collector (its restart backfills the gap)
        busy_taskmanager(own_flink, rest).kill()
        broker_down = 2
        kafka_cluster.kill_broker(broker_down)
        collector.stop()
        time.sleep(12)  # the gap's trades arrive by REST, > 5 s behind the watermark
        collector.start()
        kafka_cluster.start_broker(broker_down)
        broker_down = None
        wait_for(lambda: rest.restart_count(first) >= 1, WAIT, "the TaskManager loss as a restart")
        wait_for(lambda: healthy_job(rest, settings) == first, WAIT, "the job running again")
        jobs = flink_cli(["jobs", "--json"], env)
        assert jobs.exit_code == 0, jobs.output
        assert '"restarts"' in jobs.output

        # one job per lake: a second submit is refused, --replace goes through a savepoint
        second = flink_cli(["submit", "all"], env)
        assert second.exit_code == 1
        assert "already RUNNING" in second.output and "--replace" in second.output
        assert [j.job_id for j in rest.list_jobs() if j.name == pipeline_name(settings)] == [first]
        replaced = flink_cli(["submit", "all", "--replace"], env)
        assert replaced.exit_code == 0, replaced.output
        assert "savepoint at s3://" in replaced.output
        new = wait_for(
            lambda: (j := healthy_job(rest, settings)) != first and j, WAIT, "the new job"
        )
        assert rest.state(first) == "FINISHED"
        time.sleep(RUN_AFTER_REPLACE)  # trades keep flowing into the new job
        time.sleep(max(0.0, MIN_COLLECTION_SECONDS - (time.monotonic() - collection_began)))
        collector.stop()

        def stored() -> list[tuple[str, int]]:
            rows = read_table(settings, "trade", ["market", "sequential_id"])
            return [(r["market"], int(r["sequential_id"])) for r in rows]

        generated = {m: twin.generated_trades(m) for m in MARKETS}
        by_id = {(m, int(t["sequential_id"])): t for m in MARKETS for t in generated[m]}

        def missing() -> set[tuple[str, int]]:
            ids = stored()
            return expected_trade_ids(twin.generated_trades, _count(ids), MARKETS) - set(ids)

        # the collector has stopped, so Kafka's committed trades are final; the job
        # stores them at its next checkpoints (the tail of the run comes last)
        in_kafka = set(asyncio.run(kafka_trade_ids(settings)))
        deadline = time.monotonic() + WAIT
        while ((gone := missing()) or not in_kafka <= set(stored())) and (
            time.monotonic() < deadline
        ):
            time.sleep(3.0)
        ids = stored()
        assert len(ids) == len(set(ids)), "a trade is stored twice"
        assert set(ids) <= set(by_id), "a trade the exchange never made"
        assert set(ids) == in_kafka, (
            f"Flink lost {len(in_kafka - set(ids))} / invented {len(set(ids) - in_kafka)} trades"
        )
        assert not gone, (
            f"{len(gone)} trades of the span missing, {len(gone - in_kafka)} of them never "
            f"reached Kafka, e.g. {sorted(gone)[:5]}; collector: {collector.log.read_text()[-1500:]}"
        )

        # candles = candles of the deduplicated trade table (late trades included) ...
        reference = candles([by_id[key] for key in ids])

        def lake_candles() -> dict[tuple[str, Any], dict[str, Any]]:
            return {(r["market"], r["window_start"]): r for r in read_table(settings, "ohlcv_1m")}

        wait_for(lambda: _same(lake_candles(), reference), 60.0, "candles = the trade table's")
        # ... and every complete minute equals the twin's own ground truth
        expected = expected_trade_ids(twin.generated_trades, _count(ids), MARKETS)
        truth = candles([by_id[key] for key in expected])
        whole = _complete_minutes(expected, by_id)
        assert whole, "the run must span at least one complete minute"
        lake = lake_candles()
        for key in whole:
            assert _differs(lake.get(key), truth[key]) is None, key

        # state on S3, restorable: retained checkpoints exist under the checkpoint dir
        client = make_client(
            s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1"
        )
        metas = [
            o.object_name
            for o in client.list_objects(
                "upbit-lake", prefix=f"stream-{tag}-state/", recursive=True
            )
            if o.object_name.endswith("/_metadata")
        ]
        assert any(f"/{new}/" in m or "savepoints" in m for m in metas), metas
    finally:
        collector.stop()
        if broker_down is not None:
            kafka_cluster.start_broker(broker_down)
        for job in rest.list_jobs():
            if job.state == "RUNNING":
                rest.cancel(job.job_id)
        twin.stop_thread()


def _count(ids: list[tuple[str, int]]) -> Any:
    from collections import Counter

    return Counter(ids)


def _complete_minutes(
    expected: set[tuple[str, int]], by_id: dict[tuple[str, int], dict[str, Any]]
) -> list[tuple[str, Any]]:
    """(market, minute start) of minutes wholly inside each market's expected span."""
    from datetime import UTC, datetime

    out = []
    for market in MARKETS:
        times = [int(by_id[k]["trade_timestamp"]) for k in expected if k[0] == market]
        if not times:
            continue
        first_minute = -(-min(times) // 60_000)  # the first minute starting inside the span
        last_minute = (max(times) + 1) // 60_000  # minutes ending at or before the span's end
        for minute in range(first_minute, last_minute):
            start = datetime.fromtimestamp(minute * 60, UTC).replace(tzinfo=None)
            out.append((market, start))
    return out


def _differs(got: dict[str, Any] | None, want: Any) -> str | None:
    if got is None:
        return "missing"
    pairs = {
        "open": (got["open"], want.open),
        "high": (got["high"], want.high),
        "low": (got["low"], want.low),
        "close": (got["close"], want.close),
        "trade_count": (got["trade_count"], want.trade_count),
    }
    for name, (a, b) in pairs.items():
        if a != b:
            return f"{name} {a} != {b}"
    if got["volume"] != pytest.approx(want.volume, rel=1e-9):
        return f"volume {got['volume']} != {want.volume}"
    if got["vwap"] != pytest.approx(want.vwap, rel=1e-9):
        return f"vwap {got['vwap']} != {want.vwap}"
    return None


def _same(lake: dict[tuple[str, Any], dict[str, Any]], reference: dict[Any, Any]) -> bool:
    return set(lake) == set(reference) and all(
        _differs(lake[k], v) is None for k, v in reference.items()
    )
