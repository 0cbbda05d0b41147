"""A lake with known content for the `upbitpipe sql` tests (unit and integration).

Written with the project's own writer (``event_to_row`` -> ``commit_arrow``), the way the
lake sink writes: trades, tickers and orderbooks of the last ten minutes, then a second
commit that repeats half the KRW-BTC trades and orderbooks (as a REST backfill or a replay
would), then the candles rebuilt by ``upbitpipe lake candles``. Until a compaction the
repeated rows sit in two data files each; a correct reader sees them once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from upbitpipe.config import Settings
from upbitpipe.lake.candles_job import rebuild_candles
from upbitpipe.lake.tables import (
    EVENT_TABLES,
    LAKE_TABLES,
    ensure_tables,
    event_to_row,
    lake_catalog_options,
    rows_to_arrow,
)
from upbitpipe.lake.write import commit_arrow

BTC_TRADES = 120  # one every 5 s over the last 10 minutes
REPEATED = 60  # BTC trades (and books) committed a second time
SPREAD = 2.0  # every book: ask 101, bid 99 -> 200 bps at mid 100
ETH_MOVE_PCT = 3.0


@dataclass(frozen=True)
class LakeContent:
    """Ground truth: what a merged read must return."""

    now_ms: int
    trades: list[dict[str, Any]]  # unique by (market, sequential_id), last commit's copy
    books: int
    tickers: int

    def trades_per_market(self) -> Counter[str]:
        return Counter(t["market"] for t in self.trades)


def trade_event(market: str, seq: int, ts_ms: int, price: float, source: str) -> dict[str, Any]:
    return {
        "market": market,
        "trade_price": price,
        "trade_volume": 0.5,
        "ask_bid": "BID",
        "trade_timestamp": ts_ms,
        "timestamp": ts_ms + 10,
        "sequential_id": seq,
        "best_ask_price": price + 1,
        "best_bid_price": price - 1,
        "_ingested_at": ts_ms + (5_000 if source != "upbit_websocket" else 50),
        "_source": source,
        "_collector": "test",
    }


def book_event(ts_ms: int) -> dict[str, Any]:
    return {
        "market": "KRW-BTC",
        "timestamp": ts_ms,
        "total_ask_size": 1.0,
        "total_bid_size": 1.0,
        "orderbook_units": [
            {"ask_price": 101.0, "bid_price": 99.0, "ask_size": 1.0, "bid_size": 1.0}
        ],
        "best_ask_price": 101.0,
        "best_bid_price": 99.0,
        "spread": SPREAD,
        "_ingested_at": ts_ms + 20,
        "_source": "upbit_websocket",
    }


def ticker_event(ts_ms: int, price: float) -> dict[str, Any]:
    return {
        "market": "KRW-BTC",
        "trade_price": price,
        "timestamp": ts_ms,
        "trade_timestamp": ts_ms,
        "acc_trade_volume": ts_ms / 1e9,
        "signed_change_rate": 0.01,
        "_ingested_at": ts_ms + 30,
        "_source": "upbit_websocket",
    }


def fill_lake(settings: Settings, now_ms: int) -> LakeContent:
    """Write the sample into ``settings.lake`` (local or S3); return the ground truth."""
    from pypaimon import CatalogFactory

    catalog = CatalogFactory.create(lake_catalog_options(settings))
    database = settings.lake.database
    ensure_tables(catalog, database, buckets=settings.lake.buckets)
    start = now_ms - 600_000
    btc = [
        trade_event(
            "KRW-BTC", 10_000 + i, start + i * 5_000, 100.0 + 0.01 * (i % 7), "upbit_websocket"
        )
        for i in range(BTC_TRADES)
    ]
    eth = [
        trade_event("KRW-ETH", 1, now_ms - 50_000, 100.0, "upbit_websocket"),
        trade_event("KRW-ETH", 2, now_ms - 10_000, 100.0 + ETH_MOVE_PCT, "upbit_websocket"),
    ]
    repeated = [
        {**t, "_source": "upbit_rest_backfill", "_ingested_at": t["_ingested_at"] + 5_000}
        for t in btc[:REPEATED]
    ]
    books = [book_event(start + i * 5_000) for i in range(BTC_TRADES)]
    tickers = [ticker_event(t["trade_timestamp"], t["trade_price"]) for t in btc]
    first = {"trade": btc + eth, "orderbook": books, "ticker": tickers}
    second = {"trade": repeated, "orderbook": books[:REPEATED]}
    for batch in (first, second):
        for event_type, events in batch.items():
            for name in EVENT_TABLES[event_type]:
                layout = LAKE_TABLES[name]
                rows = [event_to_row(layout, e, UTC) for e in events]
                table = catalog.get_table(f"{database}.{name}")
                commit_arrow(table, rows_to_arrow(layout, rows), layout.partition_keys)
    rebuild_candles(settings, since_minutes=None)
    merged = {(t["market"], t["sequential_id"]): t for t in btc + eth + repeated}
    return LakeContent(now_ms, list(merged.values()), len(books), len(tickers))
