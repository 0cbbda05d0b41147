"""1-minute candles from trades in plain Python - the reference the Flink job must match.

Same semantics as ``04-streaming-jobs.sql``: event-time tumbling windows of one minute (UTC),
one row per (market, window); a trade counted once per (market, sequential_id); open and
close are the first and last trade by ``(trade_timestamp, sequential_id)`` whatever the
arrival order; vwap = quote volume / volume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

WINDOW_MS = 60_000


@dataclass(frozen=True)
class Candle:
    market: str
    window_start: datetime  # naive UTC, like the lake's TIMESTAMP(3)
    window_end: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    vwap: float | None
    trade_count: int


def _naive_utc(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).replace(tzinfo=None)


def candles(trades: Iterable[Mapping[str, Any]]) -> dict[tuple[str, datetime], Candle]:
    """Candles keyed by (market, window_start) from data-contract trade events."""
    unique: dict[tuple[str, int], Mapping[str, Any]] = {}
    for trade in trades:
        unique.setdefault((str(trade["market"]), int(trade["sequential_id"])), trade)
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for (market, _), trade in unique.items():
        start = int(trade["trade_timestamp"]) // WINDOW_MS * WINDOW_MS
        groups.setdefault((market, start), []).append(trade)
    out: dict[tuple[str, datetime], Candle] = {}
    for (market, start), group in groups.items():
        ordered = sorted(group, key=lambda t: (int(t["trade_timestamp"]), int(t["sequential_id"])))
        prices = [float(t["trade_price"]) for t in ordered]
        volume = sum(float(t["trade_volume"]) for t in ordered)
        quote = sum(float(t["trade_price"]) * float(t["trade_volume"]) for t in ordered)
        window_start = _naive_utc(start)
        out[(market, window_start)] = Candle(
            market=market,
            window_start=window_start,
            window_end=_naive_utc(start + WINDOW_MS),
            open=prices[0],
            high=max(prices),
            low=min(prices),
            close=prices[-1],
            volume=volume,
            quote_volume=quote,
            vwap=quote / volume if volume else None,
            trade_count=len(ordered),
        )
    return out
