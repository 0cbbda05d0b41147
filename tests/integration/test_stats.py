"""`upbitpipe stats --json` against real parts: a finished collector run, its lake, Kafka, S3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from collect_support import collector_settings, kafka_trade_ids
from typer.testing import CliRunner

from conftest import KafkaFixture, S3Fixture
from upbitpipe.cli.main import app
from upbitpipe.collector.runtime import run_collector
from upbitpipe.infra.kafka import topic_specs
from upbitpipe.infra.kafka_admin import ensure_topics
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer

pytestmark = pytest.mark.integration


async def test_stats_reports_every_part(
    tmp_path: Path,
    kafka_cluster: KafkaFixture,
    s3_server: S3Fixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with ReplayServer(ReplayOptions(markets=["KRW-BTC"], rate=100, seed=2)) as server:
        settings = collector_settings(
            tmp_path,
            server,
            **{
                "collector.markets": "KRW-BTC",
                "collector.sinks": "lake,kafka",
                "kafka.bootstrap_servers": ",".join(kafka_cluster.bootstrap_servers),
                "kafka.topic_prefix": "stats-",
            },
        )
        await ensure_topics(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3))
        result = await run_collector(settings, duration=4, handle_signals=False)
    trades = result.snapshot.events["trade"]

    for key, value in {
        "COLLECTOR__STATE_DIR": str(settings.collector.state_dir),
        "LAKE__WAREHOUSE": settings.lake.warehouse,
        "KAFKA__BOOTSTRAP_SERVERS": ",".join(kafka_cluster.bootstrap_servers),
        "KAFKA__TOPIC_PREFIX": "stats-",
        "S3__ENDPOINT": s3_server.endpoint,
        "S3__ACCESS_KEY": s3_server.access_key,
        "S3__SECRET_KEY": s3_server.secret_key,
        "FLINK__REST_URL": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(f"UPBITPIPE_{key}", value)
    out = CliRunner().invoke(app, ["stats", "--json"])
    assert out.exit_code == 0, out.output
    assert s3_server.secret_key not in out.output
    report = json.loads(out.output)
    assert report["collector"]["state"] == "stopped"
    collected = {r["what"]: r["value"] for r in report["collector"]["rows"]}
    assert collected["events trade"] == trades > 0
    lake = {r["what"]: r for r in report["lake"]["rows"]}
    assert report["lake"]["state"] == "ok" and lake["trade"]["value"] == trades
    assert report["kafka"]["state"] == "ok"
    # stats shows each partition's end offset: with the transactional producer every
    # commit adds a marker there, so the offsets bound the records from above; the records
    # themselves are counted the way a downstream consumer sees them (read_committed)
    offsets = sum(
        r["value"] for r in report["kafka"]["rows"] if r["what"].startswith("stats-trade[")
    )
    in_kafka = await kafka_trade_ids(settings)
    assert sum(in_kafka.values()) == len(in_kafka) == trades
    assert offsets >= trades
    assert report["s3"]["state"] == "ok"
    assert report["flink"]["state"] == "down"
