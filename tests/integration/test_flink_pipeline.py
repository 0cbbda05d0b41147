"""Kafka (3 brokers) -> Flink SQL (bounded, native cluster) -> Paimon on the S3 server.

The records are produced here with aiokafka in the data-contract shape, so every case is
under control: re-delivered trades (WebSocket + REST backfill copies), trades out of order
within the watermark, two trades in the same millisecond whose sequential_ids decide open
and close, malformed JSON, duplicated tickers, orderbooks with units. The tables are created
by pypaimon first (as the embedded lake sink would), so Flink writes into pypaimon's tables,
and read back with pypaimon.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from conftest import KafkaFixture, S3Fixture, settings_for
from upbitpipe.cli.main import app
from upbitpipe.config import Settings
from upbitpipe.flink.render import render_files, resolve_files
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.flink.submit import SubmitOptions, submit
from upbitpipe.infra.kafka import topic_specs
from upbitpipe.infra.kafka_admin import ensure_topics_sync
from upbitpipe.lake.ohlcv import candles
from upbitpipe.lake.read import read_table
from upbitpipe.lake.tables import ensure_tables, event_dt, lake_catalog_options
from upbitpipe.storage.buckets import init_buckets

if TYPE_CHECKING:
    from conftest_flink import FlinkFixture

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_flink"]

MARKETS = ("KRW-BTC", "KRW-ETH")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
JOB_TIMEOUT = 300.0


def _trade(
    market: str, seq: int, ts: int, price: float, volume: float, **extra: Any
) -> dict[str, Any]:
    return {
        "market": market,
        "trade_price": price,
        "trade_volume": volume,
        "ask_bid": "BID" if seq % 2 else "ASK",
        "trade_date": "2026-01-01",
        "trade_time": "00:00:00",
        "trade_timestamp": ts,
        "timestamp": ts + 3,
        "sequential_id": seq,
        "stream_type": "REALTIME",
        "_ingested_at": ts + 10,
        "_source": "upbit_websocket",
        "_collector": "test",
        **extra,
    }


def make_trades(rng: random.Random) -> list[dict[str, Any]]:
    """~4 minutes of trades per market, 2-3 per second, in exchange order."""
    trades: list[dict[str, Any]] = []
    for m, market in enumerate(MARKETS):
        seq, ts, price = 1_000_000 * (m + 1), T0 + 7_000, 100.0 * (m + 1)
        while ts < T0 + 4 * 60_000 + 20_000:
            ts += rng.randint(50, 700)
            price = round(price * (1 + rng.uniform(-0.002, 0.002)), 4)
            seq += rng.randint(1, 3)
            trades.append(_trade(market, seq, ts, price, round(rng.uniform(0.001, 2.0), 6)))
        # two trades in the same millisecond at a window edge: sequential_id decides
        trades.append(_trade(market, seq + 10, T0 + 119_999, price + 1, 0.5))
        trades.append(_trade(market, seq + 11, T0 + 119_999, price + 2, 0.25))
    return trades


def arrival_order(trades: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Shuffled within 3 s blocks of event time (inside the 5 s watermark), with re-deliveries;
    then late trades: 40 of the first two minutes held back and sent after everything else
    (minutes behind the watermark, as a REST backfill after a reconnect delivers them)."""
    late = rng.sample([t for t in trades if t["trade_timestamp"] < T0 + 120_000], 40)
    late_ids = {id(t) for t in late}
    blocks: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for trade in (t for t in trades if id(t) not in late_ids):
        blocks.setdefault((trade["market"], trade["trade_timestamp"] // 3_000), []).append(trade)
    out: list[dict[str, Any]] = []
    for key in sorted(blocks, key=lambda k: (k[1], k[0])):
        block = blocks[key]
        rng.shuffle(block)
        if len(block) > 1:
            block = [*block, dict(block[0])]  # a WebSocket re-delivery, in the same block
        out.extend(block)
    # REST backfill: the late trades, and copies of some trades (late duplicates)
    backfill = late + rng.sample(trades, 25)
    rng.shuffle(backfill)
    return out + [{**t, "_source": "upbit_rest_backfill"} for t in backfill]


def make_tickers() -> list[dict[str, Any]]:
    out = []
    for m, market in enumerate(MARKETS):
        for i in range(6):
            out.append(
                {
                    "market": market,
                    "trade_price": 100.0 * (m + 1) + i,
                    "acc_trade_volume": 10.0 + i,
                    "trade_timestamp": T0 + 10_000 * i,
                    "timestamp": T0 + 10_000 * i + 5,
                    "signed_change_rate": 0.01 * i,
                    "is_trading_suspended": False,
                    "_source": "upbit_websocket",
                }
            )
    return out


def make_orderbooks() -> list[dict[str, Any]]:
    out = []
    for m, market in enumerate(MARKETS):
        for i in range(4):
            units = [
                {
                    "ask_price": 101.0 + j + m,
                    "bid_price": 99.0 - j,
                    "ask_size": 1.0 + i,
                    "bid_size": 2.0,
                }
                for j in range(3)
            ]
            out.append(
                {
                    "market": market,
                    "timestamp": T0 + 15_000 * i,
                    "total_ask_size": 3.0 * (1.0 + i),
                    "total_bid_size": 6.0,
                    "orderbook_units": units,
                    "best_ask_price": units[0]["ask_price"],
                    "best_bid_price": units[0]["bid_price"],
                    "spread": units[0]["ask_price"] - units[0]["bid_price"],
                    "level": 0,
                }
            )
    return out


async def produce(settings: Settings, topic: str, values: list[Any]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        for value in values:
            if isinstance(value, bytes):
                await producer.send(topic, value, key=b"KRW-BTC")
            else:
                await producer.send(topic, json.dumps(value).encode(), key=value["market"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def pipeline_settings(
    tmp_path: Path, kafka: KafkaFixture, s3: S3Fixture, flink: FlinkFixture
) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return settings_for(
        tmp_path,
        kafka,
        s3,
        **{
            "kafka.topic_prefix": f"f{tag}-",
            "lake.warehouse": f"s3://upbit-lake/flink-{tag}",
            "lake.buckets": 2,
            "flink.consumer_group": f"flink-{tag}",
            **flink.overrides(),
        },
    )


def test_kafka_to_paimon_on_s3(
    tmp_path: Path,
    kafka_cluster: KafkaFixture,
    s3_server: S3Fixture,
    flink_cluster: FlinkFixture,
    flink_runtime: FlinkRuntime,
) -> None:
    settings = pipeline_settings(tmp_path, kafka_cluster, s3_server, flink_cluster)
    rng = random.Random(7)
    trades = make_trades(rng)
    tickers = make_tickers()
    books = make_orderbooks()

    init_buckets(settings.s3, s3_server.access_key, s3_server.secret_key)
    ensure_topics_sync(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3), 60.0)
    from pypaimon import CatalogFactory

    created = ensure_tables(
        CatalogFactory.create(lake_catalog_options(settings)),
        settings.lake.database,
        buckets=settings.lake.buckets,
    )
    assert len(created) == 5
    garbage = [b"{not json", b'{"market": "KRW-BTC", "trade_price": 1.0}', b"[]"]
    asyncio.run(
        produce(settings, settings.kafka.topic("trade"), arrival_order(trades, rng) + garbage)
    )
    asyncio.run(produce(settings, settings.kafka.topic("ticker"), tickers + tickers[:3]))
    asyncio.run(produce(settings, settings.kafka.topic("orderbook"), books + books[:2]))

    statements = render_files(resolve_files(["all"], settings), settings, bounded=True)
    result = submit(
        statements,
        settings,
        flink_runtime,
        SubmitOptions(bounded=True, wait=True, timeout=JOB_TIMEOUT),
    )
    assert len(result.job_ids) == 1 and result.finished_jobs == result.job_ids

    # every trade exactly once, whatever arrived twice
    rows = read_table(settings, "trade")
    ids = [(r["market"], r["sequential_id"]) for r in rows]
    assert len(ids) == len(set(ids)), "a trade is stored twice"
    assert set(ids) == {(t["market"], t["sequential_id"]) for t in trades}
    sample = next(r for r in rows if r["sequential_id"] == trades[0]["sequential_id"])
    assert sample["dt"] == event_dt(trades[0]["trade_timestamp"], _utc())
    assert sample["trade_price"] == trades[0]["trade_price"]

    # candles equal the Python reference (out-of-order and minutes-late arrivals included)
    reference = candles(trades)
    lake = {(r["market"], r["window_start"]): r for r in read_table(settings, "ohlcv_1m")}
    assert set(lake) == set(reference)
    for key, want in reference.items():
        got = lake[key]
        assert got["dt"] == want.window_start.strftime("%Y-%m-%d")
        assert got["window_end"] == want.window_end
        assert (got["open"], got["close"]) == (want.open, want.close), key
        assert (got["high"], got["low"]) == (want.high, want.low), key
        assert got["trade_count"] == want.trade_count, key
        assert got["volume"] == pytest.approx(want.volume, rel=1e-9), key
        assert got["quote_volume"] == pytest.approx(want.quote_volume, rel=1e-9), key
        assert got["vwap"] == pytest.approx(want.vwap, rel=1e-9), key

    # ticker history without re-deliveries; the latest by exchange time per market
    history = read_table(settings, "ticker")
    assert len(history) == len(tickers)
    latest = {r["market"]: r for r in read_table(settings, "ticker_latest")}
    for market in MARKETS:
        newest = max((t for t in tickers if t["market"] == market), key=lambda t: t["timestamp"])
        assert latest[market]["timestamp"] == newest["timestamp"]
        assert latest[market]["trade_price"] == newest["trade_price"]

    stored_books = read_table(settings, "orderbook")
    assert len(stored_books) == len(books)
    first = next(b for b in stored_books if b["market"] == "KRW-ETH" and b["timestamp"] == T0)
    assert first["orderbook_units"][0] == {
        "ask_price": 102.0,
        "bid_price": 99.0,
        "ask_size": 1.0,
        "bid_size": 2.0,
    }


def _utc() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("UTC")


def test_queries_run_locally_on_pypaimon_tables(
    tmp_path: Path,
    artifact_cache: Path,
    flink_runtime: FlinkRuntime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`flink submit 05-queries.sql --local` on a lake written by pypaimon (Flink reads it)."""
    from pypaimon import CatalogFactory

    from upbitpipe.lake.tables import LAKE_TABLES, event_to_row, rows_to_arrow

    warehouse = tmp_path / "lake"
    monkeypatch.setenv("UPBITPIPE_LAKE__WAREHOUSE", str(warehouse))
    monkeypatch.setenv("UPBITPIPE_INFRA__CACHE_DIR", str(artifact_cache))
    monkeypatch.setenv("UPBITPIPE_FLINK__PARALLELISM", "1")
    catalog = CatalogFactory.create({"warehouse": str(warehouse)})
    ensure_tables(catalog, "upbit")
    rng = random.Random(3)
    tz = _utc()
    writes = {
        "trade": make_trades(rng)[:50],
        "orderbook": make_orderbooks(),
        "ticker_latest": make_tickers(),
    }
    for name, events in writes.items():
        table = catalog.get_table(f"upbit.{name}")
        builder = table.new_batch_write_builder()
        write, commit = builder.new_write(), builder.new_commit()
        write.write_arrow(
            rows_to_arrow(
                LAKE_TABLES[name], [event_to_row(LAKE_TABLES[name], e, tz) for e in events]
            )
        )
        commit.commit(write.prepare_commit())
        write.close()
        commit.close()
    units_sql = tmp_path / "units.sql"
    units_sql.write_text(
        "SET 'execution.runtime-mode' = 'batch';\n"
        "SELECT `market`, `orderbook_units`[1].`ask_price` AS `ask1`, CARDINALITY(`orderbook_units`) AS `n`\n"
        "FROM `lake`.`upbit`.`orderbook` WHERE `timestamp` = 1767225600000 ORDER BY `market`;\n"
    )
    result = CliRunner().invoke(
        app, ["flink", "submit", "05-queries.sql", str(units_sql), "--local", "--timeout", "240"]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "05-queries.sql" in out
    assert "KRW-BTC" in out and "KRW-ETH" in out
    # the ARRAY<ROW> column written by pypaimon, read by Flink
    assert "units.sql:2" in out
    assert "101.0" in out and "102.0" in out
