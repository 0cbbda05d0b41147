"""End to end: replay server -> `upbitpipe collect --sink kafka` -> Kafka (3 brokers) ->
Flink SQL (bounded, native cluster) -> Paimon on the S3 server, read back with pypaimon.

The exchange (the replay server) re-sends and swaps trade frames (duplicates, out-of-order
arrivals inside the watermark). What must come out: every trade the collector saw exactly
once, none missing between the first and the last; 1-minute candles equal to a reference
computed in Python from the exchange's own trades.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from collect_support import kafka_trade_ids

from conftest import KafkaFixture, S3Fixture, settings_for
from upbitpipe.demo import expected_trade_ids
from upbitpipe.flink.render import render_files, resolve_files
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.flink.submit import SubmitOptions, submit
from upbitpipe.infra.kafka import topic_specs
from upbitpipe.infra.kafka_admin import ensure_topics
from upbitpipe.lake.ohlcv import candles
from upbitpipe.lake.read import read_table
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.storage.buckets import init_buckets

if TYPE_CHECKING:
    from conftest_flink import FlinkFixture

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
pytest_plugins = ["conftest_flink"]

MARKETS = ["KRW-BTC", "KRW-ETH"]
COLLECT_SECONDS = 15


async def run_collect(settings_env: dict[str, str], state: Path) -> None:
    """`upbitpipe collect --sink kafka --duration N` as its own process, like a user runs it."""
    cli = Path(sys.executable).with_name("upbitpipe")
    proc = await asyncio.create_subprocess_exec(
        str(cli),
        "collect",
        "--markets",
        ",".join(MARKETS),
        "--types",
        "trade,ticker,orderbook",
        "--sink",
        "kafka",
        "--duration",
        str(COLLECT_SECONDS),
        env={**os.environ, **settings_env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), COLLECT_SECONDS + 90)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]


async def test_replay_collect_kafka_flink_paimon(
    tmp_path: Path,
    kafka_cluster: KafkaFixture,
    s3_server: S3Fixture,
    flink_cluster: FlinkFixture,
    flink_runtime: FlinkRuntime,
) -> None:
    tag = uuid.uuid4().hex[:8]
    options = ReplayOptions(
        markets=MARKETS, seed=11, rate=120, duplicate_rate=0.05, reorder_rate=0.1
    )
    async with ReplayServer(options) as server:
        settings = settings_for(
            tmp_path,
            kafka_cluster,
            s3_server,
            **{
                "kafka.topic_prefix": f"e{tag}-",
                "lake.warehouse": f"s3://upbit-lake/e2e-{tag}",
                "flink.consumer_group": f"e2e-{tag}",
                **flink_cluster.overrides(),
            },
        )
        await ensure_topics(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3))
        env = {
            "UPBITPIPE_UPBIT__WEBSOCKET_URL": server.ws_url,
            "UPBITPIPE_UPBIT__REST_URL": server.rest_url,
            "UPBITPIPE_KAFKA__BOOTSTRAP_SERVERS": ",".join(settings.kafka.bootstrap_servers),
            "UPBITPIPE_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
            "UPBITPIPE_COLLECTOR__STATE_DIR": str(tmp_path / "collector"),
            "UPBITPIPE_METRICS__PORT": "0",
        }
        await run_collect(env, tmp_path)
        generated = {m: server.generated_trades(m) for m in MARKETS}
    in_kafka = await kafka_trade_ids(settings)

    await asyncio.to_thread(init_buckets, settings.s3, s3_server.access_key, s3_server.secret_key)
    statements = render_files(resolve_files(["all"], settings), settings, bounded=True)
    result = await asyncio.to_thread(
        submit,
        statements,
        settings,
        flink_runtime,
        SubmitOptions(bounded=True, wait=True, timeout=300),
    )
    assert result.finished_jobs == result.job_ids and len(result.job_ids) == 1

    rows = await asyncio.to_thread(read_table, settings, "trade")
    stored = [(r["market"], int(r["sequential_id"])) for r in rows]
    assert stored, "no trade reached the lake"
    assert len(stored) == len(set(stored)), "a trade is stored twice"
    by_id: dict[tuple[str, int], dict[str, Any]] = {
        (m, int(t["sequential_id"])): t for m in MARKETS for t in generated[m]
    }
    assert set(stored) <= set(by_id), "a trade the exchange never made"
    assert set(stored) == set(in_kafka), "Flink lost or invented trades between Kafka and the lake"
    missing = expected_trade_ids(lambda m: generated[m], Counter(stored), MARKETS) - set(stored)
    assert not missing, f"{len(missing)} trades missing (already missing in Kafka)"

    source = [by_id[key] for key in stored]
    reference = candles(source)
    lake = {
        (r["market"], r["window_start"]): r
        for r in await asyncio.to_thread(read_table, settings, "ohlcv_1m")
    }
    assert set(lake) == set(reference)
    for key, want in reference.items():
        got = lake[key]
        assert (got["open"], got["high"], got["low"], got["close"]) == (
            want.open,
            want.high,
            want.low,
            want.close,
        ), key
        assert got["trade_count"] == want.trade_count, key
        assert got["volume"] == pytest.approx(want.volume, rel=1e-9), key
        assert got["vwap"] == pytest.approx(want.vwap, rel=1e-9), key

    assert await asyncio.to_thread(read_table, settings, "ticker")
    latest = await asyncio.to_thread(read_table, settings, "ticker_latest")
    assert {r["market"] for r in latest} == set(MARKETS)
    books = await asyncio.to_thread(read_table, settings, "orderbook")
    assert books and all(b["orderbook_units"] for b in books)
