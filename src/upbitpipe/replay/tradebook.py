"""Every trade the server made, kept compactly so REST can serve exactly the same trades.

Columns live in ``array`` objects (about 41 bytes a trade), bounded to the newest
``keep`` trades per market and to 7 days of market time (:meth:`TradeStore.expire`). Order
is generation order, which is also trade-time order.

``/v1/trades/ticks`` as Upbit documents it (docs.upbit.com "list pair trades"): newest
first, ``count`` 1..500 (default 1), scoped to ONE UTC day - the request day of the market
clock, or ``daysAgo`` (1..7) days before it - and within that day before ``to``
(``HHmmss`` / ``HH:mm:ss``, UTC) and older than ``cursor`` (a ``sequential_id`` from an
earlier page). A gap across 00:00 UTC therefore needs a second walk with ``daysAgo``.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from upbitpipe.upbit.rest import normalise_rest_trade

MAX_COUNT = 500
MAX_DAYS_AGO = 7
DAY_MS = 86_400_000
_SID_SCALES = (10_000, 1_000)  # sequential_id = trade ms * 10^4 + k today, * 10^3 before


class TradeColumns:
    """One market's trades, oldest first."""

    __slots__ = ("ask_bid", "price", "prev", "sid", "ts", "volume")

    def __init__(self) -> None:
        self.sid = array("q")
        self.ts = array("q")
        self.price = array("d")
        self.volume = array("d")
        self.prev = array("d")
        self.ask_bid = bytearray()  # b"A" = ASK, b"B" = BID

    def __len__(self) -> int:
        return len(self.sid)

    def drop_first(self, n: int) -> None:
        if n > 0:
            for column in (self.sid, self.ts, self.price, self.volume, self.prev, self.ask_bid):
                del column[:n]

    def trim(self, keep: int) -> None:
        self.drop_first(len(self.sid) - keep)

    def find(self, sid: int) -> int | None:
        """Index of trade ``sid``: a bisect on its time when the id encodes it, else a scan."""
        ts = self.ts
        for scale in _SID_SCALES:
            ms = sid // scale
            i = bisect_left(ts, ms)
            while i < len(ts) and ts[i] == ms:
                if self.sid[i] == sid:
                    return i
                i += 1
        try:
            return self.sid.index(sid)
        except ValueError:
            return None


@dataclass(frozen=True)
class TicksQuery:
    """One ``/v1/trades/ticks`` request, already parsed."""

    count: int = 1
    cursor: int | None = None
    to: str | None = None
    days_ago: int | None = None


def utc_day_start(ms: int) -> int:
    return ms - ms % DAY_MS


class TradeStore:
    """Trades per market with Upbit's ``/v1/trades/ticks`` paging over them."""

    def __init__(self, keep: int = 1_000_000) -> None:
        self.keep = keep
        self._markets: dict[str, TradeColumns] = {}
        self.total = 0
        self.served_from_ms = 0  # fault: REST serves nothing older (as if expired)

    def columns(self, market: str) -> TradeColumns:
        columns = self._markets.get(market)
        if columns is None:
            columns = self._markets[market] = TradeColumns()
        return columns

    def add(self, trade: dict[str, Any]) -> None:
        """Record a trade given in DEFAULT wire shape (``code``) or normalised (``market``)."""
        columns = self.columns(trade.get("code") or trade["market"])
        columns.sid.append(int(trade["sequential_id"]))
        columns.ts.append(int(trade["trade_timestamp"]))
        columns.price.append(float(trade["trade_price"]))
        columns.volume.append(float(trade["trade_volume"]))
        prev = trade.get("prev_closing_price")
        columns.prev.append(float(prev) if prev is not None else float("nan"))
        columns.ask_bid.append(65 if trade.get("ask_bid") == "ASK" else 66)
        self.total += 1
        if len(columns) > 2 * self.keep:  # amortised: trim in big steps
            columns.trim(self.keep)

    def added(self, market: str, n: int) -> None:
        """``n`` trades were appended to ``columns(market)`` directly (bulk fill)."""
        self.total += n
        columns = self._markets[market]
        if len(columns) > self.keep:
            columns.trim(self.keep)

    def expire(self, now_ms: int) -> None:
        """Forget trades REST can no longer reach: before the UTC day 7 days ago."""
        floor = utc_day_start(now_ms) - MAX_DAYS_AGO * DAY_MS
        for columns in self._markets.values():
            columns.drop_first(bisect_left(columns.ts, floor))

    def columns_of(self, market: str) -> TradeColumns | None:
        return self._markets.get(market)

    def markets(self) -> list[str]:
        return list(self._markets)

    def count(self, market: str) -> int:
        columns = self._markets.get(market)
        return len(columns) if columns else 0

    def newest_ms(self) -> int | None:
        newest = [c.ts[-1] for c in self._markets.values() if len(c)]
        return max(newest) if newest else None

    def rest_row(self, market: str, columns: TradeColumns, i: int) -> dict[str, Any]:
        """Row ``i`` as Upbit's REST returns it."""
        ts = columns.ts[i]
        date, time = _utc_date_time(ts // 1000)
        price, prev = columns.price[i], columns.prev[i]
        has_prev = prev == prev  # not NaN
        return {
            "market": market,
            "trade_date_utc": date,
            "trade_time_utc": time,
            "timestamp": ts,
            "trade_price": price,
            "trade_volume": columns.volume[i],
            "prev_closing_price": prev if has_prev else None,
            "change_price": round(price - prev, 8) if has_prev else None,
            "ask_bid": "ASK" if columns.ask_bid[i] == 65 else "BID",
            "sequential_id": columns.sid[i],
        }

    def window(self, market: str, query: TicksQuery, now_ms: int) -> tuple[int, int]:
        """Index range ``[start, end)`` of the page: the newest ``count`` of the scoped day.

        Raises ``ValueError`` for a bad parameter (Upbit answers 400).
        """
        columns = self._markets.get(market)
        if not columns:
            return 0, 0
        day_from, day_to = _day_bounds(now_ms, query.days_ago)
        limit = day_to if query.to is None else day_from + _time_of_day_ms(query.to)
        end = bisect_left(columns.ts, min(limit, day_to))
        if query.cursor is not None:
            at = columns.find(query.cursor)
            if at is None:  # not kept (or never existed): older than its trade time
                at = bisect_left(columns.ts, query.cursor // _SID_SCALES[0])
            end = min(end, at)
        start = bisect_left(columns.ts, max(day_from, self.served_from_ms))
        count = max(1, min(int(query.count), MAX_COUNT))
        return max(start, end - count), max(start, end)

    def ticks(self, market: str, query: TicksQuery, now_ms: int) -> list[dict[str, Any]]:
        """The page, newest first, as Upbit's REST returns it."""
        start, end = self.window(market, query, now_ms)
        columns = self._markets.get(market)
        if columns is None:
            return []
        return [self.rest_row(market, columns, i) for i in range(end - 1, start - 1, -1)]

    def oldest_ms(self, market: str, start: int) -> int | None:
        columns = self._markets.get(market)
        return columns.ts[start] if columns and start < len(columns) else None

    def ids(self, market: str, from_ms: int = 0, to_ms: int | None = None) -> list[int]:
        """``sequential_id`` of every kept trade with ``from_ms <= trade time < to_ms``."""
        columns = self._markets.get(market)
        if not columns:
            return []
        rows = len(columns.ask_bid)  # complete rows even while another thread appends
        ts = columns.ts
        start = bisect_left(ts, from_ms, 0, rows)
        end = rows if to_ms is None else bisect_left(ts, to_ms, 0, rows)
        return columns.sid[start:end].tolist()

    def normalised(
        self, market: str, from_ms: int = 0, to_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """Kept trades of ``market`` (oldest first) in the collector's trade shape."""
        columns = self._markets.get(market)
        if not columns:
            return []
        # ask_bid is appended last: its length counts complete rows even while another
        # thread (start_in_thread mode) is appending.
        rows = len(columns.ask_bid)
        start = bisect_left(columns.ts, from_ms, 0, rows)
        end = rows if to_ms is None else bisect_left(columns.ts, to_ms, 0, rows)
        return [normalise_rest_trade(self.rest_row(market, columns, i)) for i in range(start, end)]


@lru_cache(maxsize=4096)
def _utc_date_time(second: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(second, tz=UTC)
    return f"{moment:%Y-%m-%d}", f"{moment:%H:%M:%S}"


def _day_bounds(now_ms: int, days_ago: int | None) -> tuple[int, int]:
    if days_ago is not None and not 1 <= days_ago <= MAX_DAYS_AGO:
        msg = f"daysAgo must be 1..{MAX_DAYS_AGO}, got {days_ago}"
        raise ValueError(msg)
    day = utc_day_start(now_ms) - (days_ago or 0) * DAY_MS
    return day, day + DAY_MS


def _time_of_day_ms(to: str) -> int:
    digits = to.replace(":", "")
    if len(digits) != 6 or not digits.isdigit():
        msg = f"to must be HHmmss or HH:mm:ss, got {to!r}"
        raise ValueError(msg)
    hours, minutes, seconds = int(digits[:2]), int(digits[2:4]), int(digits[4:])
    if hours > 23 or minutes > 59 or seconds > 59:
        msg = f"to is not a time of day: {to!r}"
        raise ValueError(msg)
    return int(timedelta(hours=hours, minutes=minutes, seconds=seconds).total_seconds() * 1000)
