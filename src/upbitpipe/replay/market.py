"""A seeded synthetic KRW market: prices on Upbit's tick grid, a 30-level book, trades.

Every trade is followed by the ticker it produces (as on Upbit), trades hit the current best
ask (``BID``, a buyer took liquidity) or best bid (``ASK``), and the book and ticker always
agree with the last trade. ``sequential_id`` is ``trade_ms * 10000 + k`` (17 digits, above
2**53, like Upbit's ids today) where ``k`` walks 0..9999 in a scrambled order within each
millisecond: unique per market, not in order.
"""

from __future__ import annotations

import math
import random
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson

from upbitpipe.replay.frames import BookParts, WireEvent
from upbitpipe.replay.tradebook import TradeStore

# (lower bound, tick) for KRW markets, highest first (Upbit KRW tick table, 2024).
KRW_TICKS: tuple[tuple[float, float], ...] = (
    (2_000_000, 1000),
    (1_000_000, 500),
    (500_000, 100),
    (100_000, 50),
    (10_000, 10),
    (1_000, 1),
    (100, 0.1),
    (10, 0.01),
    (1, 0.001),
    (0.1, 0.0001),
    (0, 0.00001),
)

KNOWN_MARKETS: dict[str, tuple[float, str, str]] = {
    "KRW-BTC": (140_000_000, "비트코인", "Bitcoin"),
    "KRW-ETH": (5_000_000, "이더리움", "Ethereum"),
    "KRW-XRP": (3_200, "리플", "XRP"),
    "KRW-SOL": (250_000, "솔라나", "Solana"),
    "KRW-DOGE": (520, "도지코인", "Dogecoin"),
    "KRW-ADA": (1_100, "에이다", "Cardano"),
    "KRW-USDT": (1_400, "테더", "Tether"),
}

BOOK_LEVELS = 30
DAY_MS = 86_400_000
SID_SCALE = 10_000  # trade ms * 10^4 + k
_SID_STEP = 617  # coprime with 10^4: k = n * 617 % 10^4 is a permutation of 0..9999


def tick_size(price: float) -> float:
    for bound, tick in KRW_TICKS:
        if price >= bound:
            return tick
    return KRW_TICKS[-1][1]


def _decimals(tick: float) -> int:
    return max(0, -math.floor(math.log10(tick) + 1e-9))


def snap(price: float) -> float:
    """Round a price onto the tick grid (and strip float noise)."""
    tick = tick_size(price)
    return float(round(round(price / tick) * tick, _decimals(tick)))  # JSON floats, as Upbit


def market_names(market: str) -> tuple[str, str]:
    known = KNOWN_MARKETS.get(market)
    if known:
        return known[1], known[2]
    base = market.split("-", 1)[-1]
    return base, base


class MarketState:
    """One market's book, day statistics and trade id sequence."""

    def __init__(self, market: str, seed: int, now_ms: int) -> None:
        self.market = market
        self.rng = random.Random(seed * 1_000_003 + zlib.crc32(market.encode()))
        rng = self.rng
        base = KNOWN_MARKETS.get(market, (10 ** rng.uniform(1, 5), "", ""))[0]
        self.bid = snap(base * rng.uniform(0.97, 1.03))
        self.prev_close = snap(self.bid * rng.uniform(0.97, 1.03))
        self.open = self.prev_close
        self.high = max(self.open, self.bid)
        self.low = min(self.open, self.bid)
        self.acc_volume = self.acc_price = self.acc_ask = self.acc_bid = 0.0
        self.h52 = snap(max(self.high, base) * 1.6)
        self.l52 = snap(min(self.low, base) * 0.55)
        self._log_level_notional = math.log(2_000_000)
        self._set_bid(self.bid)
        self.ask_sizes = [self._level_size() for _ in range(BOOK_LEVELS)]
        self.bid_sizes = [self._level_size() for _ in range(BOOK_LEVELS)]
        # Thin BTC- and USDT-market books: Upbit pads the short side with zero-price,
        # zero-size units up to 30; here the bid side of non-KRW markets is that short.
        self.real_bids = BOOK_LEVELS
        if market.split("-", 1)[0] != "KRW":
            self.real_bids = rng.randint(4, BOOK_LEVELS - 3)
            for i in range(self.real_bids, BOOK_LEVELS):
                self.bid_sizes[i] = 0.0
        # The book's units, DEFAULT and SIMPLE, rebuilt only where something changed.
        self._units: list[dict[str, Any]] = []
        self._frag_default: list[bytes] = []
        self._frag_simple: list[bytes] = []
        self._dirty: set[int] = set(range(BOOK_LEVELS))
        self._ladder_moved = True
        self.last_trade: WireEvent | None = None
        self.last_price = self.bid  # of the last trade, live or filled
        self.last_ticker: WireEvent | None = None
        self.last_book: WireEvent | None = None
        self._sid_ms = 0
        self._sid_n = 0
        self._clock_second = -1
        self._date = self._time = self._tdate = self._ttime = ""
        self._median_notional = 200_000.0 if base > 100 else 50_000.0
        self.book(now_ms)

    def _level_size(self) -> float:
        notional = math.exp(self.rng.gauss(self._log_level_notional, 1.2))
        return round(notional / self.bid, 8)

    def _set_bid(self, price: float) -> None:
        """Move the best bid; tick, rounding and best ask follow (computed once here)."""
        self.bid = price
        self.tick = tick_size(price)
        self.digits = _decimals(self.tick)
        self.ask = snap(price + self.tick)
        self._ladder_moved = True

    def _clock(self, ms: int) -> None:
        second = ms // 1000
        if second != self._clock_second:
            self._clock_second = second
            moment = datetime.fromtimestamp(second, tz=UTC)
            date = f"{moment:%Y-%m-%d}"
            if self._date and date != self._date:
                self._new_day()
            self._date, self._time = date, f"{moment:%H:%M:%S}"
            self._tdate, self._ttime = f"{moment:%Y%m%d}", f"{moment:%H%M%S}"

    def _new_day(self) -> None:
        """UTC midnight: yesterday's last price closes the day; day statistics restart."""
        last = self.last_price
        self.prev_close = self.open = self.high = self.low = last
        self.acc_volume = self.acc_price = self.acc_ask = self.acc_bid = 0.0

    def _next_sid(self, ms: int) -> int:
        if ms > self._sid_ms:
            self._sid_ms, self._sid_n = ms, 0
        elif self._sid_n >= SID_SCALE:
            self._sid_ms, self._sid_n = self._sid_ms + 1, 0
        sid = self._sid_ms * SID_SCALE + (self._sid_n * _SID_STEP) % SID_SCALE
        self._sid_n += 1
        return sid

    def _move(self) -> None:
        """Between two book messages: sometimes the price ticks, two levels get new sizes."""
        rng = self.rng
        if rng.random() < 0.06:  # a tick move rebuilds all 30 levels, so keep it occasional
            drift = 1 if self.bid < self.open else -1  # weak pull towards the open
            step = drift if rng.random() < 0.55 else -drift
            self._set_bid(max(snap(self.bid + step * self.tick), self.tick))
        level = rng.randrange(BOOK_LEVELS)
        self.ask_sizes[level] = self._level_size()
        self._dirty.add(level)
        level = rng.randrange(BOOK_LEVELS)
        if level < self.real_bids:
            self.bid_sizes[level] = self._level_size()
            self._dirty.add(level)

    def trade(self, now_ms: int) -> tuple[WireEvent, WireEvent]:
        """One trade and the ticker it produces."""
        rng = self.rng
        self._clock(now_ms)
        buyer_takes = rng.random() < 0.5
        ask, bid = self.ask, self.bid
        price = ask if buyer_takes else bid
        volume = round(math.exp(rng.gauss(math.log(self._median_notional), 1.5)) / price, 8)
        volume = max(volume, 1e-8)
        ask_bid = "BID" if buyer_takes else "ASK"
        prev = self.prev_close
        change = "RISE" if price > prev else "FALL" if price < prev else "EVEN"
        change_price = round(abs(price - prev), 8)
        sid = self._next_sid(now_ms)
        trade_wire: dict[str, Any] = {
            "type": "trade",
            "code": self.market,
            "timestamp": now_ms,
            "trade_date": self._date,
            "trade_time": self._time,
            "trade_timestamp": now_ms,
            "trade_price": price,
            "trade_volume": volume,
            "ask_bid": ask_bid,
            "prev_closing_price": prev,
            "change": change,
            "change_price": change_price,
            "sequential_id": sid,
            "best_ask_price": ask,
            "best_ask_size": self.ask_sizes[0],
            "best_bid_price": bid,
            "best_bid_size": self.bid_sizes[0],
            "stream_type": "REALTIME",
        }
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.acc_volume += volume
        self.acc_price += volume * price
        if buyer_takes:
            self.acc_bid += volume
        else:
            self.acc_ask += volume
        trade = WireEvent("trade", self.market, trade_wire)
        ticker = self._ticker(now_ms, trade_wire)
        self.last_trade, self.last_ticker = trade, ticker
        self.last_price = price
        return trade, ticker

    def fill(self, from_ms: int, to_ms: int, per_second: float, store: TradeStore) -> int:
        """Make the trades of market time ``[from_ms, to_ms)`` straight into ``store``.

        For a clock jump: ``per_second`` (at most 1000) trades evenly spread, one per
        millisecond at most, with the same price walk, UTC day roll-over and id sequence as
        live trades, but no frames (nobody is listening). Returns how many were made.
        """
        n = int((to_ms - from_ms) * min(per_second, 1000.0) / 1000)
        if n <= 0:
            return 0
        columns = store.columns(self.market)
        sid_add, ts_add, price_add = columns.sid.append, columns.ts.append, columns.price.append
        vol_add, prev_add, side_add = (
            columns.volume.append,
            columns.prev.append,
            columns.ask_bid.append,
        )
        rng = self.rng
        random, gauss, exp = rng.random, rng.gauss, math.exp
        log_median = math.log(self._median_notional)
        step = (to_ms - from_ms) / n
        self._clock(from_ms)  # a UTC midnight since the last live trade starts a new day
        next_day = (from_ms // DAY_MS + 1) * DAY_MS
        bid, ask, prev = self.bid, self.ask, self.prev_close
        acc_v = acc_p = acc_a = acc_b = 0.0
        high, low = self.high, self.low
        price = self.last_price
        for i in range(n):
            ms = from_ms + int(i * step)
            if ms >= next_day:
                self._fold(high, low, price, acc_v, acc_p, acc_a, acc_b)
                acc_v = acc_p = acc_a = acc_b = 0.0
                self._clock(ms)  # new UTC day: prev close = last price, statistics restart
                next_day += DAY_MS
                prev, high, low = self.prev_close, self.high, self.low
            if random() < 0.02:
                drift = 1 if bid < self.open else -1
                step_ticks = drift if random() < 0.55 else -drift
                self._set_bid(max(snap(bid + step_ticks * self.tick), self.tick))
                bid, ask = self.bid, self.ask
            buyer_takes = random() < 0.5
            price = ask if buyer_takes else bid
            volume = int(exp(gauss(log_median, 1.5)) / price * 1e8 + 0.5) / 1e8 or 1e-8
            sid_add(self._next_sid(ms) if i == 0 else ms * SID_SCALE)  # one trade per ms
            ts_add(ms)
            price_add(price)
            vol_add(volume)
            prev_add(prev)
            if price > high:
                high = price
            elif price < low:
                low = price
            acc_v += volume
            acc_p += volume * price
            if buyer_takes:
                side_add(66)
                acc_b += volume
            else:
                side_add(65)
                acc_a += volume
        self._fold(high, low, price, acc_v, acc_p, acc_a, acc_b)
        self._sid_ms, self._sid_n = max(self._sid_ms, ms), 1
        store.added(self.market, n)
        return n

    def _fold(
        self,
        high: float,
        low: float,
        last: float,
        vol: float,
        notional: float,
        ask: float,
        bid: float,
    ) -> None:
        """Add a run of filled trades to the day statistics."""
        self.high, self.low, self.last_price = high, low, last
        self.acc_volume += vol
        self.acc_price += notional
        self.acc_ask += ask
        self.acc_bid += bid

    def _ticker(self, now_ms: int, trade: dict[str, Any]) -> WireEvent:
        price, prev = trade["trade_price"], self.prev_close
        signed = round(price - prev, 8)
        rate = round(signed / prev, 10) if prev else 0.0
        wire: dict[str, Any] = {
            "type": "ticker",
            "code": self.market,
            "opening_price": self.open,
            "high_price": self.high,
            "low_price": self.low,
            "trade_price": price,
            "prev_closing_price": prev,
            "change": trade["change"],
            "change_price": abs(signed),
            "signed_change_price": signed,
            "change_rate": abs(rate),
            "signed_change_rate": rate,
            "trade_volume": trade["trade_volume"],
            "acc_trade_volume": round(self.acc_volume, 8),
            "acc_trade_volume_24h": round(self.acc_volume * 2.1, 8),
            "acc_trade_price": round(self.acc_price, 8),
            "acc_trade_price_24h": round(self.acc_price * 2.1, 8),
            "trade_date": self._tdate,
            "trade_time": self._ttime,
            "trade_timestamp": trade["trade_timestamp"],
            "ask_bid": trade["ask_bid"],
            "acc_ask_volume": round(self.acc_ask, 8),
            "acc_bid_volume": round(self.acc_bid, 8),
            "highest_52_week_price": self.h52,
            "highest_52_week_date": "2024-03-14",
            "lowest_52_week_price": self.l52,
            "lowest_52_week_date": "2023-09-11",
            "trade_status": None,
            "market_state": "ACTIVE",
            "market_state_for_ios": None,
            "is_trading_suspended": False,
            "delisting_date": None,
            "market_warning": "NONE",
            "timestamp": now_ms,
            "stream_type": "REALTIME",
        }
        return WireEvent("ticker", self.market, wire)

    def book(self, now_ms: int) -> WireEvent:
        """A full 30-level orderbook snapshot of the current state."""
        self._move()
        if self._ladder_moved:
            self._ladder_moved = False
            self._dirty = set(range(BOOK_LEVELS))
            self._units = [{}] * BOOK_LEVELS
            self._frag_default = [b""] * BOOK_LEVELS
            self._frag_simple = [b""] * BOOK_LEVELS
        else:  # copy-on-write: earlier events keep their own lists
            self._units = list(self._units)
            self._frag_default = list(self._frag_default)
            self._frag_simple = list(self._frag_simple)
        tick, digits, ask0, bid0 = self.tick, self.digits, self.ask, self.bid
        dumps = orjson.dumps
        for i in self._dirty:
            ask_price = round(ask0 + i * tick, digits)
            bid_price = max(round(bid0 - i * tick, digits), tick) if i < self.real_bids else 0.0
            ask_size, bid_size = self.ask_sizes[i], self.bid_sizes[i]
            unit = {
                "ask_price": ask_price,
                "bid_price": bid_price,
                "ask_size": ask_size,
                "bid_size": bid_size,
            }
            self._units[i] = unit
            self._frag_default[i] = dumps(unit)
            self._frag_simple[i] = dumps(
                {"ap": ask_price, "bp": bid_price, "as": ask_size, "bs": bid_size}
            )
        self._dirty.clear()
        wire: dict[str, Any] = {
            "type": "orderbook",
            "code": self.market,
            "timestamp": now_ms,
            "total_ask_size": round(sum(self.ask_sizes), 8),
            "total_bid_size": round(sum(self.bid_sizes), 8),
            "orderbook_units": self._units,
            "level": 0,
            "stream_type": "REALTIME",
        }
        parts = BookParts(
            self._frag_default, self._frag_simple, list(self.ask_sizes), list(self.bid_sizes)
        )
        event = WireEvent("orderbook", self.market, wire, parts)
        self.last_book = event
        return event


class SyntheticMarket:
    """All markets together; :meth:`generate` yields about ``n`` messages in a seeded mix."""

    def __init__(self, markets: list[str], seed: int, now_ms: int, orderbook_share: float) -> None:
        self.states = {m: MarketState(m, seed, now_ms) for m in markets}
        self._order = list(self.states.values())
        self._rng = random.Random(seed)
        # A trade step yields 2 messages (trade + ticker), a book step 1: pick the step odds
        # so that orderbooks are ``orderbook_share`` of the messages.
        share = orderbook_share
        self._p_book = 2 * share / (1 + share) if share < 1 else 1.0

    def generate(self, n: int, now_ms: int) -> list[WireEvent]:
        out: list[WireEvent] = []
        rng = self._rng
        order = self._order
        count = len(order)
        while len(out) < n:
            state = order[rng.randrange(count)] if count > 1 else order[0]
            if rng.random() < self._p_book:
                out.append(state.book(now_ms))
            else:
                out.extend(state.trade(now_ms))
        return out

    def trade_rate(self, rate: float) -> float:
        """Trades per second per market when the whole market makes ``rate`` messages/s."""
        trade_steps = rate * (1 - self._p_book) / (2 * (1 - self._p_book) + self._p_book)
        return trade_steps / max(1, len(self._order))

    def fill(
        self, from_ms: int, to_ms: int, per_second: float, store: TradeStore
    ) -> dict[str, int]:
        """Every market's trades of a skipped span (see :meth:`MarketState.fill`)."""
        return {
            market: state.fill(from_ms, to_ms, per_second, store)
            for market, state in self.states.items()
        }

    def latest(self, market: str, kind: str) -> WireEvent | None:
        state = self.states.get(market)
        if state is None:
            return None
        if kind == "trade":
            return state.last_trade
        if kind == "ticker":
            return state.last_ticker
        return state.last_book
