"""Every trade the server streamed, kept compactly so REST can serve exactly the same trades.

Columns live in ``array`` objects (about 41 bytes a trade), bounded to the newest
``keep`` trades per market. Order is generation order, which is also trade-time order; the
REST ``cursor`` (a ``sequential_id``) is found by a C-speed ``array.index`` scan.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from typing import Any

from upbitpipe.upbit.rest import normalise_rest_trade

MAX_COUNT = 500


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

    def trim(self, keep: int) -> None:
        extra = len(self.sid) - keep
        if extra > 0:
            for column in (self.sid, self.ts, self.price, self.volume, self.prev, self.ask_bid):
                del column[:extra]


class TradeStore:
    """Trades per market with Upbit's ``/v1/trades/ticks`` paging over them."""

    def __init__(self, keep: int = 1_000_000) -> None:
        self.keep = keep
        self._markets: dict[str, TradeColumns] = {}
        self.total = 0

    def add(self, trade: dict[str, Any]) -> None:
        """Record a trade given in DEFAULT wire shape (``code``) or normalised (``market``)."""
        market = trade.get("code") or trade["market"]
        columns = self._markets.get(market)
        if columns is None:
            columns = self._markets[market] = TradeColumns()
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

    def markets(self) -> list[str]:
        return list(self._markets)

    def count(self, market: str) -> int:
        columns = self._markets.get(market)
        return len(columns) if columns else 0

    def rest_row(self, market: str, columns: TradeColumns, i: int) -> dict[str, Any]:
        """Row ``i`` as Upbit's REST returns it."""
        ts = columns.ts[i]
        moment = datetime.fromtimestamp(ts / 1000, tz=UTC)
        price, prev = columns.price[i], columns.prev[i]
        has_prev = prev == prev  # not NaN
        return {
            "market": market,
            "trade_date_utc": f"{moment:%Y-%m-%d}",
            "trade_time_utc": f"{moment:%H:%M:%S}",
            "timestamp": ts,
            "trade_price": price,
            "trade_volume": columns.volume[i],
            "prev_closing_price": prev if has_prev else None,
            "change_price": round(price - prev, 8) if has_prev else None,
            "ask_bid": "ASK" if columns.ask_bid[i] == 65 else "BID",
            "sequential_id": columns.sid[i],
        }

    def ticks(
        self,
        market: str,
        *,
        count: int = 1,
        cursor: int | None = None,
        to: str | None = None,
        days_ago: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, at most ``count``: older than ``cursor`` and before ``to``.

        ``to`` is ``HHmmss`` or ``HH:mm:ss`` (UTC) on the day of the newest trade, or
        ``days_ago`` days before it. Raises ``ValueError`` for a bad parameter.
        """
        columns = self._markets.get(market)
        if not columns:
            return []
        count = max(1, min(int(count), MAX_COUNT))
        end = len(columns)
        if cursor is not None:
            try:
                end = columns.sid.index(int(cursor))
            except ValueError:
                return []
        if to is not None or days_ago is not None:
            end = min(end, bisect_left(columns.ts, _cutoff_ms(columns.ts[-1], to, days_ago)))
        start = max(0, end - count)
        return [self.rest_row(market, columns, i) for i in range(end - 1, start - 1, -1)]

    def normalised(self, market: str) -> list[dict[str, Any]]:
        """All kept trades of ``market`` (oldest first) in the collector's trade shape."""
        columns = self._markets.get(market)
        if not columns:
            return []
        # ask_bid is appended last: its length counts complete rows even while another
        # thread (start_in_thread mode) is appending.
        rows = len(columns.ask_bid)
        return [normalise_rest_trade(self.rest_row(market, columns, i)) for i in range(rows)]


def _cutoff_ms(newest_ms: int, to: str | None, days_ago: int | None) -> int:
    if days_ago is not None and not 1 <= days_ago <= 7:
        msg = f"daysAgo must be 1..7, got {days_ago}"
        raise ValueError(msg)
    day = datetime.fromtimestamp(newest_ms / 1000, tz=UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) - timedelta(days=days_ago or 0)
    if to is None:
        return int((day + timedelta(days=1)).timestamp() * 1000)
    digits = to.replace(":", "")
    if len(digits) != 6 or not digits.isdigit():
        msg = f"to must be HHmmss or HH:mm:ss, got {to!r}"
        raise ValueError(msg)
    hours, minutes, seconds = int(digits[:2]), int(digits[2:4]), int(digits[4:])
    if hours > 23 or minutes > 59 or seconds > 59:
        msg = f"to is not a time of day: {to!r}"
        raise ValueError(msg)
    moment = day + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return int(moment.timestamp() * 1000)
