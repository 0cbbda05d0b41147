"""Rows shaped like the data contract flow through the same views `ch init` creates.

The Kafka queue tables are swapped for Null tables with the same columns plus the Kafka
virtual columns, so inserting JSONEachRow into `<t>_queue` fires the real materialized views.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from upbitpipe.clickhouse.ddl import Statement, quote, render_statements
from upbitpipe.clickhouse.schema import KAFKA_VIRTUAL_COLUMNS, TOPICS
from upbitpipe.config import load_settings

chdb_session = pytest.importorskip("chdb.session")

DB = "flow"
BASE_MS = 1_795_460_400_000  # 2026-11-23 18:20:00 UTC, minute aligned
MARKETS = ("KRW-BTC", "KRW-ETH")


def swap_queue(stmt: Statement) -> str:
    """The queue table as a Null table: same columns, virtual columns made real."""
    schema = next(t for t in TOPICS if t.topic == stmt.topic)
    cols = ", ".join(f"`{c.name}` {c.type}" for c in (*schema.queue, *KAFKA_VIRTUAL_COLUMNS))
    return f"CREATE TABLE `{DB}`.`{stmt.topic}_queue` ({cols}) ENGINE = Null"


@pytest.fixture(scope="module")
def sess(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    session = chdb_session.Session(str(tmp_path_factory.mktemp("chdb-flow")))
    settings = load_settings(env={}, overrides={"clickhouse.database": DB}).settings
    for stmt in render_statements(settings):
        session.query(swap_queue(stmt) if stmt.kind == "queue" else stmt.sql)
    yield session
    session.close()


def rows(sess: Any, sql: str) -> list[dict[str, Any]]:
    sql += " SETTINGS output_format_json_quote_64bit_integers = 0"
    out = str(sess.query(sql, "JSONEachRow"))
    return [json.loads(line) for line in out.splitlines() if line]


def insert(sess: Any, table: str, events: list[dict[str, Any]]) -> None:
    body = "\n".join(json.dumps(e) for e in events)
    sess.query(f"INSERT INTO `{DB}`.`{table}` FORMAT JSONEachRow\n{body}")


def trade(market: str, seq: int, ts_ms: int, price: float, volume: float) -> dict[str, Any]:
    return {
        "market": market,
        "trade_price": price,
        "trade_volume": volume,
        "ask_bid": "BID" if seq % 2 else "ASK",
        "prev_closing_price": 100.0,
        "change": "RISE",
        "change_price": price - 100.0,
        "trade_date": "2026-11-23",
        "trade_time": "18:20:00",
        "trade_timestamp": ts_ms,
        "timestamp": ts_ms + 15,
        "sequential_id": seq,
        "best_ask_price": price + 1,
        "best_ask_size": 0.5,
        "best_bid_price": price - 1,
        "best_bid_size": 0.7,
        "stream_type": "REALTIME",
        "_ingested_at": ts_ms + 40,
        "_source": "upbit_websocket",
        "_collector": "test-1",
    }


def as_backfill(event: dict[str, Any]) -> dict[str, Any]:
    """The same trade as the REST backfill delivers it: no best_*, no stream_type."""
    out = {k: v for k, v in event.items() if not k.startswith("best_") and k != "stream_type"}
    return {**out, "_source": "upbit_rest_backfill", "_ingested_at": event["_ingested_at"] + 5000}


def make_trades(seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    ids = rnd.sample(range(10**15, 10**15 + 10**6), 240)  # unique, not ordered by time
    out = []
    for i, seq in enumerate(ids):
        market = MARKETS[i % 2]
        ts = BASE_MS + rnd.randrange(0, 3 * 60_000)
        if i % 17 == 0 and out:  # same millisecond as an earlier trade: sequential_id decides
            ts = out[-2]["trade_timestamp"] if out[-2]["market"] == market else ts
        out.append(trade(market, seq, ts, round(rnd.uniform(90, 110), 2), rnd.uniform(0.01, 2)))
    return out


def reference_ohlcv(
    trades: list[dict[str, Any]], resent: list[dict[str, Any]] | None = None
) -> dict[tuple[str, int], dict[str, float]]:
    """Candles per (market, minute) from each sequential_id once; ``resent`` trades (a later
    insert carrying an already-seen trade) are added to the sums only, as a sum-based
    aggregate sees them."""
    unique = {t["sequential_id"]: t for t in trades}.values()
    buckets: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for t in unique:
        buckets[(t["market"], t["trade_timestamp"] // 60_000 * 60)].append(t)
    extra: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for t in resent or []:
        extra[(t["market"], t["trade_timestamp"] // 60_000 * 60)].append(t)
    ref = {}
    for key, ts in buckets.items():
        ordered = sorted(ts, key=lambda t: (t["trade_timestamp"], t["sequential_id"]))
        summed = ts + extra[key]
        volume = sum(t["trade_volume"] for t in summed)
        quote_volume = sum(t["trade_price"] * t["trade_volume"] for t in summed)
        ref[key] = {
            "open": ordered[0]["trade_price"],
            "high": max(t["trade_price"] for t in ts),
            "low": min(t["trade_price"] for t in ts),
            "close": ordered[-1]["trade_price"],
            "volume": volume,
            "quote_volume": quote_volume,
            "vwap": quote_volume / volume,
            "trade_count": len(summed),
        }
    return ref


@dataclass(frozen=True)
class Fed:
    events: list[dict[str, Any]]  # every trade once
    resent: list[dict[str, Any]]  # trades delivered again in a later insert


@pytest.fixture(scope="module")
def trades(sess: Any) -> Fed:
    """Out of order, in three inserts, with duplicates inside one insert and across inserts."""
    events = make_trades()
    rnd = random.Random(11)
    shuffled = events[:]
    rnd.shuffle(shuffled)
    first, second = shuffled[:150], shuffled[150:]
    insert(sess, "trade_queue", first + first[:5])  # duplicates within a block
    insert(sess, "trade_queue", [as_backfill(e) for e in second[:10]] + second[10:])
    resent = [as_backfill(e) for e in first[40:90]]  # backfill overlapping after a restart
    insert(sess, "trade_queue", resent)
    return Fed(events, resent)


def test_trades_land_once_per_sequential_id(sess: Any, trades: Fed) -> None:
    stored = rows(sess, f"SELECT count() AS n, uniqExact(sequential_id) AS u FROM {DB}.trade")
    # Duplicates inside one insert collapse on insert (optimize_on_insert); those from later
    # inserts stay in the raw table until a merge.
    assert stored == [{"n": 240 + 50, "u": 240}]
    unique = rows(sess, f"SELECT count() AS n FROM {DB}.trade_unique")
    assert unique == [{"n": 240}]
    sess.query(f"OPTIMIZE TABLE {DB}.trade FINAL")
    assert rows(sess, f"SELECT count() AS n FROM {DB}.trade") == [{"n": 240}]


def test_trade_columns_and_missing_fields(sess: Any, trades: Fed) -> None:
    kept = rows(
        sess,
        f"SELECT source, count() AS n, countIf(best_ask_price IS NULL) AS no_best, "
        f"countIf(stream_type = '') AS no_stream, "
        f"countIf(toUnixTimestamp64Milli(trade_ts) != trade_timestamp) AS bad_ts "
        f"FROM {DB}.trade FINAL GROUP BY source ORDER BY source",
    )
    # Backfill rows lack best_* and stream_type: NULL and '' instead of a failed message.
    # Where a trade came both ways, the WebSocket copy (source_rank 1) is the one kept.
    assert kept == [
        {"source": "upbit_rest_backfill", "n": 10, "no_best": 10, "no_stream": 10, "bad_ts": 0},
        {"source": "upbit_websocket", "n": 230, "no_best": 0, "no_stream": 0, "bad_ts": 0},
    ]


OHLCV_SQL = (
    "SELECT market, toUnixTimestamp(time) AS minute, open, high, low, close, volume, "
    "quote_volume, vwap, trade_count FROM {db}.{view} ORDER BY market, minute"
)


def assert_candles(got: list[dict[str, Any]], ref: dict[tuple[str, int], dict[str, float]]) -> None:
    assert {(r["market"], int(r["minute"])) for r in got} == set(ref)
    for r in got:
        want = ref[(r["market"], int(r["minute"]))]
        for field in ("open", "high", "low", "close"):
            assert r[field] == want[field], (r["market"], r["minute"], field)
        for field in ("volume", "quote_volume", "vwap"):
            assert r[field] == pytest.approx(want[field], rel=1e-9), field
        assert int(r["trade_count"]) == want["trade_count"]


def test_ohlcv_exact_view_matches_python_reference(sess: Any, trades: Fed) -> None:
    got = rows(sess, OHLCV_SQL.format(db=DB, view="ohlcv_1m_exact"))
    assert_candles(got, reference_ohlcv(trades.events))


def test_ohlcv_aggregate_matches_reference(sess: Any, trades: Fed) -> None:
    """Open/close by trade time, high/low exact; in-insert duplicates dropped; a trade
    re-sent in a later insert lands in the sums again (documented: use ohlcv_1m_exact)."""
    got = rows(sess, OHLCV_SQL.format(db=DB, view="ohlcv_1m"))
    assert_candles(got, reference_ohlcv(trades.events, resent=trades.resent))


def test_ohlcv_unchanged_by_merges(sess: Any, trades: Fed) -> None:
    sess.query(f"OPTIMIZE TABLE {DB}.ohlcv_1m_agg FINAL")
    sess.query(f"OPTIMIZE TABLE {DB}.trade FINAL")
    parts = rows(
        sess,
        f"SELECT count() AS n FROM system.parts WHERE database = '{DB}' "
        "AND table = 'ohlcv_1m_agg' AND active",
    )
    assert parts == [{"n": 1}]
    assert_candles(
        rows(sess, OHLCV_SQL.format(db=DB, view="ohlcv_1m")),
        reference_ohlcv(trades.events, resent=trades.resent),
    )
    assert_candles(
        rows(sess, OHLCV_SQL.format(db=DB, view="ohlcv_1m_exact")), reference_ohlcv(trades.events)
    )


def test_malformed_message_goes_to_errors_table(sess: Any) -> None:
    """What the Kafka engine does in stream mode: defaults in the columns, _error/_raw_message set."""
    raw = '{"market": "KRW-BTC", "trade_price": "not-a-number"'
    sess.query(
        f"INSERT INTO {DB}.trade_queue (market, _topic, _partition, _offset, _key, _raw_message, "
        f"_error) VALUES ('', 'upbit-trade', 2, 4242, 'KRW-BTC', {quote(raw)}, "
        f"'Cannot parse input: expected \\'\"\\' before: \\'not-a-number\\'')"
    )
    errors = rows(sess, f"SELECT topic, partition, offset, key, raw_message FROM {DB}.kafka_errors")
    assert errors == [
        {
            "topic": "upbit-trade",
            "partition": 2,
            "offset": 4242,
            "key": "KRW-BTC",
            "raw_message": raw,
        }
    ]
    assert rows(sess, f"SELECT count() AS n FROM {DB}.trade WHERE market = ''") == [{"n": 0}]


def test_ticker_and_orderbook_keep_full_history(sess: Any) -> None:
    tickers = [
        {
            "market": "KRW-BTC",
            "trade_price": 100.0 + i,
            "signed_change_rate": 0.01,
            "trade_date": "20261123",
            "trade_time": "182000",
            "trade_timestamp": BASE_MS + i * 1000,
            "timestamp": BASE_MS + i * 1000 + 5,
            "acc_trade_price_24h": 1e9,
            "market_state": "ACTIVE",
            "is_trading_suspended": False,
            "delisting_date": None,
            "market_warning": "NONE",
            "stream_type": "REALTIME",
            "_ingested_at": BASE_MS + i * 1000 + 30,
            "_source": "upbit_websocket",
            "_collector": "test-1",
        }
        for i in range(5)
    ]
    insert(sess, "ticker_queue", tickers + tickers[:1])
    assert rows(sess, f"SELECT count() AS n FROM {DB}.ticker") == [{"n": 6}]
    latest = rows(sess, f"SELECT market, trade_price FROM {DB}.ticker_latest")
    assert latest == [{"market": "KRW-BTC", "trade_price": 104}]

    units = [{"ask_price": 101.0, "bid_price": 99.0, "ask_size": 1.5, "bid_size": 2.5}]
    books = [
        {
            "market": "KRW-ETH",
            "timestamp": BASE_MS + i * 500,
            "total_ask_size": 1.5,
            "total_bid_size": 2.5,
            "orderbook_units": units,
            "level": 0,
            "stream_type": "REALTIME",
            "best_ask_price": 101.0,
            "best_bid_price": 99.0,
            "spread": 2.0,
            "_ingested_at": BASE_MS + i * 500 + 20,
            "_source": "upbit_websocket",
            "_collector": "test-1",
        }
        for i in range(4)
    ]
    insert(sess, "orderbook_queue", books)
    got = rows(
        sess,
        f"SELECT count() AS n, any(orderbook_units.ask_price) AS asks, max(spread) AS spread "
        f"FROM {DB}.orderbook",
    )
    assert got == [{"n": 4, "asks": [101], "spread": 2}]
