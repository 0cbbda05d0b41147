"""The collector into a real 3-broker Kafka and a lake on a real S3 server.

* forced disconnects: every source trade exactly once in Kafka, in the lake (on S3) and in
  the archive;
* Kafka stopped mid-run and started again: nothing lost, the spool drains.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from collect_support import (
    archive_trade_ids,
    collector_settings,
    expected_trade_ids,
    kafka_trade_ids,
    lake_trade_ids,
)

from conftest import KafkaFixture, S3Fixture
from upbitpipe.collector.runtime import run_collector
from upbitpipe.config import Settings
from upbitpipe.infra.kafka import topic_specs
from upbitpipe.infra.kafka_admin import ensure_topics
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.storage.buckets import init_buckets

pytestmark = pytest.mark.integration
MARKETS = ["KRW-BTC", "KRW-ETH"]


def kafka_test_settings(
    tmp_path: Path, server: ReplayServer, kafka: KafkaFixture, **extra: object
) -> Settings:
    return collector_settings(
        tmp_path,
        server,
        **{
            "kafka.bootstrap_servers": ",".join(kafka.bootstrap_servers),
            "kafka.topic_prefix": f"t{uuid.uuid4().hex[:6]}-",
            "kafka.request_timeout_ms": 5000,
            "collector.markets": ",".join(MARKETS),
            **extra,
        },
    )


async def test_every_trade_once_in_kafka_lake_on_s3_and_archive(
    tmp_path: Path, kafka_cluster: KafkaFixture, s3_server: S3Fixture
) -> None:
    options = ReplayOptions(
        markets=MARKETS, seed=21, rate=250, drop_after_messages=350, duplicate_rate=0.05
    )
    async with ReplayServer(options) as server:
        settings = kafka_test_settings(
            tmp_path,
            server,
            kafka_cluster,
            **{
                "collector.sinks": "kafka,lake,archive",
                "lake.warehouse": "s3://upbit-lake/warehouse",
                "s3.endpoint": s3_server.endpoint,
                "s3.access_key": s3_server.access_key,
                "s3.secret_key": s3_server.secret_key,
            },
        )
        await asyncio.to_thread(
            init_buckets, settings.s3, s3_server.access_key, s3_server.secret_key
        )
        await ensure_topics(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3))
        result = await run_collector(settings, duration=8, handle_signals=False)
        kafka = await kafka_trade_ids(settings)
        lake = await asyncio.to_thread(lake_trade_ids, settings)
        expected = expected_trade_ids(server, lake, MARKETS)

    snap = result.snapshot
    assert snap.disconnects >= 1
    assert snap.backfilled_total > 0
    assert snap.sinks["kafka"]["delivery_errors"] == 0
    assert lake and max(lake.values()) == 1
    assert not expected - set(lake), "trades missing from the lake"
    assert set(kafka) == set(lake), "Kafka and the lake disagree"
    assert max(kafka.values()) == 1, "a trade reached Kafka twice"
    archive = archive_trade_ids(settings.collector.effective_archive_dir)
    assert set(archive) == set(lake) and max(archive.values()) == 1


async def test_kafka_outage_mid_run_loses_nothing(
    tmp_path: Path, kafka_cluster: KafkaFixture
) -> None:
    options = ReplayOptions(markets=MARKETS, seed=33, rate=150)
    async with ReplayServer(options) as server:
        settings = kafka_test_settings(
            tmp_path, server, kafka_cluster, **{"collector.sinks": "kafka,lake"}
        )
        await ensure_topics(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3))
        stop = asyncio.Event()
        run = asyncio.create_task(run_collector(settings, stop=stop, handle_signals=False))
        await asyncio.sleep(4)
        for index in range(3):
            await asyncio.to_thread(kafka_cluster.stop_broker, index)
        await asyncio.sleep(6)  # events arrive while no broker answers: they must be spooled
        # The whole KRaft quorum is down, so the three must start together (one alone has no
        # quorum): the cluster's own start does that. It runs on this (main) thread on purpose:
        # the brokers are tied to the thread that spawns them, and the event loop pausing
        # for it is one more stall the collector must absorb.
        kafka_cluster.cluster.start(120)
        await asyncio.sleep(8)  # spool drains, direct delivery resumes
        stop.set()
        result = await asyncio.wait_for(run, timeout=60)
        kafka = await kafka_trade_ids(settings)
        lake = await asyncio.to_thread(lake_trade_ids, settings)

    sink = result.snapshot.sinks["kafka"]
    assert sink["spooled_total"] > 0, f"the outage was not noticed: {sink}"
    assert sink["spool_records"] == 0, f"spool not drained: {sink}"
    assert sink["resent_from_spool"] >= sink["spooled_total"]
    assert set(lake) == set(kafka), f"{len(set(lake) - set(kafka))} trades lost in Kafka"
    dupes = sum(n - 1 for n in kafka.values())
    assert dupes <= sink["resent_from_spool"], "duplicates only from at-least-once re-sends"
