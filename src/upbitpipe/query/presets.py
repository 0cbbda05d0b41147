"""Named queries shared by the Grafana dashboards, the price-move alert and `upbitpipe sql`.

One template per question, written once. Grafana's copy (``compose/grafana/...``) is the
template rendered with Grafana's macros over the ClickHouse tables; the preset is the same
template rendered with concrete values over the lake's tables, where the ClickHouse column
names (``trade_ts``, ``event_ts``, ``time``) exist as aliases (see :mod:`.tables`).
``tests/unit/test_query_presets.py`` fails when a dashboard's text and its template part.

Placeholders: ``{table}``; ``{time_filter}`` (rows of the time range, on the preset's
``time_column``); ``{bucket}`` (the start of the time bucket of a row); ``{market_filter}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from upbitpipe.errors import UpbitpipeError

#: Where Grafana shows a preset: a dashboard panel (``file``, title) or the alert rule.
Target = Literal["panel", "alert"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MARKET = re.compile(r"^[A-Z]{3,4}-[A-Z0-9]{1,15}$")


@dataclass(frozen=True)
class Preset:
    """One shared question: its template and how each side names its table."""

    name: str
    summary: str
    template: str
    time_column: str
    lake_table: str
    grafana_table: str
    target: Target
    grafana_source: str  # dashboard file name (panel) or alert file name
    grafana_title: str  # panel title or alert rule title
    default_since: str = "1h"
    lake_order_by: str | None = None  # for a template without ORDER BY (the alert's)
    one_market: bool = False  # rows carry no market column: mixing markets is meaningless

    def render_grafana(self) -> str:
        """The text the dashboard panel / alert rule holds."""
        if self.target == "alert":
            time_filter = f"{self.time_column} >= now64(3, 'UTC') - INTERVAL 1 MINUTE"
        else:
            time_filter = f"$__timeFilter({self.time_column})"
        return self.template.format(
            table=self.grafana_table,
            time_filter=time_filter,
            bucket=f"$__timeInterval({self.time_column})",
            market_filter="market IN (${market:singlequote})",
        )

    def render_lake(self, params: PresetParams) -> str:
        """The query over the lake's tables for these values."""
        if self.one_market and len(params.markets) != 1:
            msg = f"--preset {self.name} needs one --market (e.g. --market KRW-BTC)"
            raise UpbitpipeError(msg)
        markets = ", ".join(f"'{m}'" for m in params.markets)
        sql = self.template.format(
            table=self.lake_table,
            time_filter=f"{self.time_column} >= now64(3, 'UTC') - INTERVAL {params.since_seconds} SECOND",
            bucket=f"toStartOfInterval(toDateTime({self.time_column}), INTERVAL {params.interval_seconds} second)",
            market_filter=f"market IN ({markets})" if markets else "true",
        )
        if "{market_filter}" in self.template and not self.lake_order_by:
            return sql
        where = f"\nWHERE market IN ({markets})" if markets else ""
        order = f"\nORDER BY {self.lake_order_by}" if self.lake_order_by else ""
        return f"SELECT *\nFROM\n(\n{sql}\n){where}{order}"


@dataclass(frozen=True)
class PresetParams:
    """Values a preset is rendered with (``--since``, ``--interval``, ``--market``)."""

    since_seconds: int
    interval_seconds: int = 60
    markets: tuple[str, ...] = ()


def partition_floor(since_seconds: int, timezone: str, now: datetime | None = None) -> str:
    """The first ``dt`` partition a range of ``since_seconds`` back from ``now`` can touch.

    ``dt`` is a date in ``lake.timezone``; a day earlier than the range start keeps rows
    whose partition date and UTC instant straddle midnight."""
    moment = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone))
    return (moment - timedelta(seconds=since_seconds, days=1)).strftime("%Y-%m-%d")


def parse_duration(text: str, what: str) -> int:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w`` (or bare seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text.lower())
    if not match or int(match.group(1)) == 0:
        msg = f"{what}: {text!r} is not a duration like 90s, 15m, 1h, 2d"
        raise UpbitpipeError(msg)
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_markets(values: list[str]) -> tuple[str, ...]:
    """``--market`` values (repeatable, comma-separated) checked and upper-cased."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            code = part.strip().upper()
            if not code:
                continue
            if not _MARKET.match(code):
                msg = f"--market: {part.strip()!r} is not a market code like KRW-BTC"
                raise UpbitpipeError(msg)
            out.append(code)
    return tuple(dict.fromkeys(out))


CANDLES = Preset(
    name="candles",
    summary="1-minute OHLCV candles (open, high, low, close, volume) per minute",
    template="""SELECT
    time,
    open,
    high,
    low,
    close,
    volume
FROM {table}
WHERE {time_filter} AND {market_filter}
ORDER BY time""",
    time_column="time",
    lake_table="ohlcv_1m",
    grafana_table="ohlcv_1m",
    target="panel",
    grafana_source="upbit-market.json",
    grafana_title="Candles 1m ($market)",
    one_market=True,
)

SPREAD = Preset(
    name="spread",
    summary="average bid-ask spread in basis points per market and time bucket",
    template="""SELECT
    {bucket} AS time,
    market,
    avg(spread / ((best_ask_price + best_bid_price) / 2)) * 10000 AS spread_bps
FROM {table}
WHERE {time_filter} AND {market_filter} AND best_ask_price > 0 AND best_bid_price > 0
GROUP BY time, market
ORDER BY time""",
    time_column="event_ts",
    lake_table="orderbook",
    grafana_table="orderbook",
    target="panel",
    grafana_source="upbit-market.json",
    grafana_title="Spread",
)

VOLUME_BY_MARKET = Preset(
    name="volume-by-market",
    summary="traded value (KRW) per market and minute, from the exact 1-minute candles",
    template="""SELECT
    time,
    market,
    quote_volume AS traded_krw
FROM {table}
WHERE {time_filter} AND {market_filter}
ORDER BY time""",
    time_column="time",
    lake_table="ohlcv_1m",  # the lake's candles are rebuilt from merged trades: exact
    grafana_table="ohlcv_1m_exact",
    target="panel",
    grafana_source="upbit-market.json",
    grafana_title="Traded value per minute",
)

PRICE_MOVE = Preset(
    name="price-move",
    summary="per market, the % move from the first to the last trade of the window (alert > 2 %)",
    template="""SELECT
    market,
    100 * (argMax(trade_price, (trade_timestamp, sequential_id))
           / argMin(trade_price, (trade_timestamp, sequential_id)) - 1) AS move_pct
FROM {table}
WHERE {time_filter}
GROUP BY market""",
    time_column="trade_ts",
    lake_table="trade",
    grafana_table="trade",
    target="alert",
    grafana_source="price-move.yaml",
    grafana_title="Price moved more than 2% in 1 minute",
    default_since="1m",
    lake_order_by="abs(move_pct) DESC, market",
)

PRESETS: dict[str, Preset] = {p.name: p for p in (CANDLES, SPREAD, VOLUME_BY_MARKET, PRICE_MOVE)}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        msg = f"--preset: unknown preset {name!r} (use {', '.join(PRESETS)})"
        raise UpbitpipeError(msg) from None
