"""Upbit REST candles made from the trades the twin kept (``/v1/candles/minutes/N``, ``/days``).

As Upbit answers them (docs.upbit.com "list candles"; observed on the live service): newest
first, at most 200 (more is silently cut to 200), only intervals that had trades, ``to``
exclusive - a candle is returned when it starts before ``to`` - given as ISO 8601 with ``Z``
or an offset, or naive ``yyyy-MM-ddTHH:mm:ss`` / ``yyyy-MM-dd HH:mm:ss`` read as UTC. Day
candles start at 00:00 UTC (09:00 KST) and carry the previous close and the change.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from typing import Any

from upbitpipe.replay.tradebook import DAY_MS, TradeColumns

MINUTE_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)
MAX_CANDLES = 200
_KST = timedelta(hours=9)


def parse_to(value: str) -> int:
    """``to`` in epoch ms; raises ``ValueError`` when it is not a time Upbit would accept."""
    text = value.strip().replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _stamp(ms: int, shift: timedelta = timedelta(0)) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, tz=UTC) + shift:%Y-%m-%dT%H:%M:%S}"


def candles(
    market: str,
    columns: TradeColumns,
    *,
    unit_ms: int,
    count: int,
    to_ms: int | None,
    minute_unit: int | None,
) -> list[dict[str, Any]]:
    """Up to ``count`` candles of ``unit_ms`` ending before ``to_ms``, newest first."""
    ts, price, volume = columns.ts, columns.price, columns.volume
    rows = len(columns.ask_bid)  # complete rows even while another thread appends
    end = rows
    if to_ms is not None:
        cut = to_ms if to_ms % unit_ms == 0 else to_ms - to_ms % unit_ms + unit_ms
        end = bisect_left(ts, cut, 0, rows)
    out: list[dict[str, Any]] = []
    count = max(1, min(count, MAX_CANDLES))
    while end > 0 and len(out) < count:
        start_ms = ts[end - 1] - ts[end - 1] % unit_ms
        start = bisect_left(ts, start_ms, 0, end)
        prices = price[start:end]
        volumes = volume[start:end]
        close = prices[-1]
        row: dict[str, Any] = {
            "market": market,
            "candle_date_time_utc": _stamp(start_ms),
            "candle_date_time_kst": _stamp(start_ms, _KST),
            "opening_price": prices[0],
            "high_price": max(prices),
            "low_price": min(prices),
            "trade_price": close,
            "timestamp": ts[end - 1],
            "candle_acc_trade_price": round(
                sum(p * v for p, v in zip(prices, volumes, strict=True)), 8
            ),
            "candle_acc_trade_volume": round(sum(volumes), 8),
        }
        if minute_unit is not None:
            row["unit"] = minute_unit
        else:
            prev = columns.prev[start]
            if prev == prev:  # not NaN
                row["prev_closing_price"] = prev
                row["change_price"] = round(close - prev, 8)
                row["change_rate"] = round((close - prev) / prev, 10) if prev else 0.0
        out.append(row)
        end = start
    return out


DAY_UNIT_MS = DAY_MS
