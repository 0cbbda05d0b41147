"""1-minute candles for the embedded lake, rebuilt from the stored trades.

On the cluster path the Flink job fills ``ohlcv_1m`` with event-time windows. The embedded
path has no Flink, so `upbitpipe lake candles` recomputes the candles of recent minutes from
the ``trade`` table - which is deduplicated and complete once backfills landed - and upserts
them (``ohlcv_1m`` deduplicates on (dt, market, window_start)). Run it from cron every few
minutes: a minute is exact once it is over and its trades are committed, and every run
corrects the minutes it covers, the still-open one included. Same semantics as the Flink job
and ``upbitpipe.lake.ohlcv``: open and close by (trade_timestamp, sequential_id), not
arrival order; vwap = quote volume / volume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from upbitpipe.config import Settings
from upbitpipe.lake.catalog import open_catalog
from upbitpipe.lake.ohlcv import WINDOW_MS
from upbitpipe.lake.tables import LAKE_TABLES, ensure_tables, event_dt
from upbitpipe.lake.write import commit_arrow

TRADE_COLUMNS = ["market", "sequential_id", "trade_timestamp", "trade_price", "trade_volume"]


@dataclass
class CandleReport:
    trades_read: int
    candles_written: int
    first_window: datetime | None
    last_window: datetime | None


def compute_candles(trades: pa.Table, tz: ZoneInfo) -> pa.Table:
    """Candles (``ohlcv_1m`` schema) from a trade table with :data:`TRADE_COLUMNS`."""
    schema = LAKE_TABLES["ohlcv_1m"].arrow_schema()
    if trades.num_rows == 0:
        return schema.empty_table()
    start_ms = pc.multiply(pc.divide(trades["trade_timestamp"], WINDOW_MS), WINDOW_MS)
    enriched = trades.append_column("window_ms", start_ms).append_column(
        "quote", pc.multiply(trades["trade_price"], trades["trade_volume"])
    )
    ordered = enriched.sort_by(
        [
            ("market", "ascending"),
            ("window_ms", "ascending"),
            ("trade_timestamp", "ascending"),
            ("sequential_id", "ascending"),
        ]
    )
    grouped = ordered.group_by(["market", "window_ms"], use_threads=False).aggregate(
        [
            ("trade_price", "first"),
            ("trade_price", "max"),
            ("trade_price", "min"),
            ("trade_price", "last"),
            ("trade_volume", "sum"),
            ("quote", "sum"),
            ("sequential_id", "count"),
        ]
    )
    windows = grouped["window_ms"].to_pylist()
    volume = grouped["trade_volume_sum"]
    quote = grouped["quote_sum"]
    vwap = pc.if_else(
        pc.greater(volume, 0), pc.divide(quote, volume), pa.scalar(None, pa.float64())
    )
    return pa.table(
        {
            "dt": [event_dt(w, tz) for w in windows],
            "market": grouped["market"],
            "window_start": pa.array([_naive(w) for w in windows], pa.timestamp("ms")),
            "window_end": pa.array([_naive(w + WINDOW_MS) for w in windows], pa.timestamp("ms")),
            "open": grouped["trade_price_first"],
            "high": grouped["trade_price_max"],
            "low": grouped["trade_price_min"],
            "close": grouped["trade_price_last"],
            "volume": volume,
            "quote_volume": quote,
            "vwap": vwap,
            "trade_count": grouped["sequential_id_count"],
        },
        schema=schema,
    )


def rebuild_candles(
    settings: Settings, *, since_minutes: float | None = 60.0, now_ms: int | None = None
) -> CandleReport:
    """Recompute and upsert the candles of every minute from ``since_minutes`` ago on
    (``None``: all stored trades)."""
    tz = ZoneInfo(settings.lake.timezone)
    catalog = open_catalog(settings)
    ensure_tables(
        catalog, settings.lake.database, [LAKE_TABLES["ohlcv_1m"]], buckets=settings.lake.buckets
    )
    trade_table = catalog.get_table(f"{settings.lake.database}.trade")
    builder = trade_table.new_read_builder().with_projection(TRADE_COLUMNS)
    since_ms: int | None = None
    if since_minutes is not None:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        since_ms = (now - int(since_minutes * 60_000)) // WINDOW_MS * WINDOW_MS
        # partition pruning: dt is a local date, so start a day early to be zone-safe
        first_dt = (datetime.fromtimestamp(since_ms / 1000, tz) - timedelta(days=1)).strftime(
            "%Y-%m-%d"
        )
        unprojected = trade_table.new_read_builder()
        predicate = unprojected.new_predicate_builder().greater_or_equal("dt", first_dt)
        builder = unprojected.with_filter(predicate).with_projection(TRADE_COLUMNS)
    trades = builder.new_read().to_arrow(builder.new_scan().plan().splits())
    trades = trades.select(TRADE_COLUMNS)
    if since_ms is not None and trades.num_rows:
        trades = trades.filter(pc.greater_equal(trades["trade_timestamp"], since_ms))
    candles = compute_candles(trades, tz)
    if candles.num_rows:
        ohlcv = catalog.get_table(f"{settings.lake.database}.ohlcv_1m")
        commit_arrow(ohlcv, candles, LAKE_TABLES["ohlcv_1m"].partition_keys)
    starts = candles["window_start"].to_pylist() if candles.num_rows else []
    return CandleReport(
        trades_read=trades.num_rows,
        candles_written=candles.num_rows,
        first_window=min(starts) if starts else None,
        last_window=max(starts) if starts else None,
    )


def _naive(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).replace(tzinfo=None)
