"""Crash-safe at every moment: ten SIGKILLs at random moments (the first within 5 s of the
start) and a SIGTERM in the middle of a backfill, each followed by a restart. The lake then
holds every trade the twin made over the whole run once (missing 0, duplicated 0), and
Kafka holds each trade once across the restarts.

The collector runs as its own process (``upbitpipe collect``) against the replay twin; the
kill moments come from a seeded RNG, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from pathlib import Path

import pytest
from collect_process import Collector, account, lake_trades
from collect_support import collector_settings, kafka_trade_ids

from conftest import KafkaFixture
from upbitpipe.infra.kafka import topic_specs
from upbitpipe.infra.kafka_admin import ensure_topics
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
MARKETS = ["KRW-BTC", "KRW-ETH"]
KILLS = 10
DOWN_MS = 20 * 60_000  # market time that passes before the SIGTERM-during-backfill run


def _crash_and_restart(tmp_path: Path, server: ReplayServer, sinks: list[str], **env: str) -> None:
    rng = random.Random(20261128)
    collector = Collector(
        tmp_path,
        server,
        ["--markets", ",".join(MARKETS), *(a for sink in sinks for a in ("--sink", sink))],
        LAKE__COMMIT_INTERVAL_SECONDS="1",
        COLLECTOR__STATUS_INTERVAL_SECONDS="0.5",
        UPBIT__REST_PER_SECOND="50",
        **env,
    )
    try:
        for kill in range(KILLS):
            collector.start()
            if kill == 0:
                time.sleep(rng.uniform(0.5, 4.5))  # within 5 s of the start, data or not
            else:  # a random moment while collecting (mid-commit, mid-backfill, ...)
                collector.wait_for("data", lambda s: s.events.get("trade", 0) > 0)
                time.sleep(rng.uniform(0.0, 5.0))
            collector.kill()  # SIGKILL: no flush, no final resume point
            time.sleep(rng.uniform(0.0, 1.5))

        # a long gap, then SIGTERM while its backfill runs
        server.advance_clock(DOWN_MS, trade_rate=50, force=True)
        collector.start()
        collector.wait_for(
            "a backfill under way",
            lambda s: s.backfill.running >= 1 and s.backfilled_total > 1000,
        )
        assert collector.signal(signal.SIGTERM) == 0, collector.log_tail()

        # the last run finishes what is left, then stops cleanly
        collector.start()
        collector.wait_for(
            "every gap closed",
            lambda s: s.gaps_open == 0 and s.backfill.running == 0 and s.events.get("trade", 0) > 0,
            timeout=300,
        )
        time.sleep(2)
        assert collector.signal(signal.SIGTERM) == 0, collector.log_tail()
    finally:
        collector.kill()


def test_sigkills_and_sigterm_during_backfill_lose_nothing(tmp_path: Path) -> None:
    options = ReplayOptions(
        markets=MARKETS, seed=44, rate=120, rest_per_second=None, connect_per_second=None
    )
    server = ReplayServer(options)
    server.start_in_thread()
    try:
        _crash_and_restart(tmp_path, server, ["lake"])
    finally:
        server.stop_thread()
    stored = lake_trades(collector_settings(tmp_path, server))
    expected, missing, duplicated = account(server, stored, MARKETS)
    assert len(expected) > DOWN_MS // 1000 * 50 * len(MARKETS)
    assert not missing, f"{len(missing)} of {len(expected)} trades missing from the lake"
    assert duplicated == 0


def test_kafka_holds_each_trade_once_across_crashes(
    tmp_path: Path, kafka_cluster: KafkaFixture
) -> None:
    options = ReplayOptions(
        markets=MARKETS, seed=45, rate=120, rest_per_second=None, connect_per_second=None
    )
    server = ReplayServer(options)
    server.start_in_thread()
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    bootstrap = ",".join(kafka_cluster.bootstrap_servers)
    settings = collector_settings(
        tmp_path,
        server,
        **{"kafka.bootstrap_servers": bootstrap, "kafka.topic_prefix": prefix},
    )
    asyncio.run(ensure_topics(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3)))
    try:
        _crash_and_restart(
            tmp_path,
            server,
            ["lake", "kafka"],
            KAFKA__BOOTSTRAP_SERVERS=bootstrap,
            KAFKA__TOPIC_PREFIX=prefix,
            KAFKA__REQUEST_TIMEOUT_MS="5000",
        )
    finally:
        server.stop_thread()
    stored = lake_trades(settings)
    expected, missing, duplicated = account(server, stored, MARKETS)
    assert not missing, f"{len(missing)} of {len(expected)} trades missing from the lake"
    assert duplicated == 0
    kafka = asyncio.run(kafka_trade_ids(settings))
    assert not expected - set(kafka), "trades missing from Kafka"
    assert set(kafka) == set(stored), "Kafka and the lake disagree"
    twice = sorted(key for key, n in kafka.items() if n > 1)
    print(f"kafka: {sum(kafka.values())} trade records, {len(kafka)} trades, {len(twice)} twice")
    # read_committed, as every consumer of the pipeline reads: the collector's transactions
    # and the restart's fenced read-back leave each trade in Kafka once
    assert not twice, f"{len(twice)} trades reached Kafka more than once, e.g. {twice[:3]}"
