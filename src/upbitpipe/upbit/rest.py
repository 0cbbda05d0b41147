"""Upbit quotation REST client: market list and recent trades (the backfill source).

Politeness is built in: requests are spaced to ``requests_per_second``; a ``Remaining-Req``
header with ``sec=0`` makes the next request wait for the next second; 429/418/5xx and
transport errors back off exponentially (``Retry-After`` wins when present) and, after
``max_retries``, raise :class:`~upbitpipe.errors.ServiceUnavailableError` with one line.

``/v1/trades/ticks`` rows look like::

    {"market":"KRW-BTC","trade_date_utc":"2023-02-21","trade_time_utc":"07:41:02",
     "timestamp":1676965262139,"trade_price":32287000.0,"trade_volume":0.03103806,
     "prev_closing_price":31883000.0,"change_price":404000.0,"ask_bid":"ASK",
     "sequential_id":1676965262139000}

and are returned normalised to the WebSocket trade shape (see :func:`normalise_rest_trade`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import orjson

from upbitpipe.errors import ServiceUnavailableError, UnknownMarketError, UpbitpipeError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})
MAX_PAGE = 500  # rows per /v1/trades/ticks request
MAX_DAYS_AGO = 7  # REST serves the newest trade date and the 7 days before it
DAY_MS = 86_400_000


@dataclass
class MarketInfo:
    """One row of ``/v1/market/all``."""

    market: str
    korean_name: str
    english_name: str
    warning: bool = False


def parse_remaining_req(header: str | None) -> int | None:
    """``group=default; min=1800; sec=29`` -> 29 (None when absent or unreadable)."""
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "sec":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _change(price: float, prev: float | None) -> str | None:
    if prev is None:
        return None
    return "RISE" if price > prev else "FALL" if price < prev else "EVEN"


def normalise_rest_trade(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/v1/trades/ticks`` row in the WebSocket trade ``data`` shape (DEFAULT names).

    REST has one timestamp (the trade's), so ``timestamp == trade_timestamp``; ``change`` is
    derived from the price against ``prev_closing_price``; ``change_price`` is unsigned as in
    the WebSocket stream.
    """
    price = row["trade_price"]
    prev = row.get("prev_closing_price")
    change_price = row.get("change_price")
    ts = row["timestamp"]
    return {
        "type": "trade",
        "market": row["market"],
        "trade_price": price,
        "trade_volume": row["trade_volume"],
        "ask_bid": row.get("ask_bid"),
        "prev_closing_price": prev,
        "change": _change(price, prev),
        "change_price": abs(change_price) if change_price is not None else None,
        "trade_date": row.get("trade_date_utc"),
        "trade_time": row.get("trade_time_utc"),
        "trade_timestamp": ts,
        "timestamp": ts,
        "sequential_id": row["sequential_id"],
    }


class UpbitRestClient:
    """Async client for the public quotation endpoints; use as ``async with``."""

    def __init__(
        self,
        base_url: str,
        *,
        requests_per_second: float = 10.0,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 8.0,
    ) -> None:
        if requests_per_second <= 0:
            msg = f"requests_per_second must be > 0, got {requests_per_second}"
            raise ValueError(msg)
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._interval = 1.0 / requests_per_second
        self._next_at = 0.0  # monotonic time before which no request starts
        self._lock = asyncio.Lock()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self.requests_sent = 0
        self.retries = 0
        self.last_remaining: int | None = None

    async def __aenter__(self) -> UpbitRestClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def list_markets(self, details: bool = False) -> list[MarketInfo]:
        """Every listed market (``details`` adds the warning flag)."""
        params = {"is_details": "true"} if details else {}
        rows = await self._get("/v1/market/all", params)
        if not isinstance(rows, list) or not all(
            isinstance(row, dict) and isinstance(row.get("market"), str) for row in rows
        ):
            shown = repr(rows)[:80]
            msg = f"{self.base_url}/v1/market/all did not answer a list of markets: {shown}"
            raise ServiceUnavailableError(msg)
        markets = []
        for row in rows:
            event = row.get("market_event") or {}
            warning = bool(event.get("warning")) or row.get("market_warning") == "CAUTION"
            markets.append(
                MarketInfo(
                    market=row["market"],
                    korean_name=row.get("korean_name", ""),
                    english_name=row.get("english_name", ""),
                    warning=warning,
                )
            )
        return markets

    async def trade_ticks(
        self,
        market: str,
        *,
        count: int = 200,
        cursor: int | None = None,
        to: str | None = None,
        days_ago: int | None = None,
    ) -> list[dict[str, Any]]:
        """One page of recent trades, newest first, normalised (see module docstring)."""
        params: dict[str, str] = {"market": market, "count": str(count)}
        if cursor is not None:
            params["cursor"] = str(cursor)
        if to is not None:
            params["to"] = to
        if days_ago is not None:
            params["daysAgo"] = str(days_ago)
        rows = await self._get("/v1/trades/ticks", params, market=market)
        return [normalise_rest_trade(row) for row in rows]

    async def iter_recent_trades(
        self, market: str, *, stop_before_ms: int, max_pages: int = 20, page_size: int = 200
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of trades with ``trade_timestamp >= stop_before_ms``, newest page first, at
        most ``max_pages`` (a quick look back; the collector's backfill uses
        :class:`TradeWindow`, which is bounded by time instead)."""
        window = TradeWindow(self, market, since_ms=stop_before_ms, page_size=page_size)
        pages = 0
        async for page in window.pages():
            yield page
            pages += 1
            if pages >= max_pages:
                return

    async def _pace(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next_at - now
            if wait > 0:
                await asyncio.sleep(wait)
                now = time.monotonic()
            self._next_at = now + self._interval

    def _note_remaining(self, response: httpx.Response) -> None:
        remaining = parse_remaining_req(response.headers.get("Remaining-Req"))
        self.last_remaining = remaining
        if remaining is not None and remaining <= 0:
            until_next_second = 1.0 - (time.time() % 1.0) + 0.005
            self._next_at = max(self._next_at, time.monotonic() + until_next_second)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("Retry-After")
            if retry_after:
                try:
                    return min(float(retry_after), self.backoff_cap * 4)
                except ValueError:
                    pass
        base = min(self.backoff_cap, self.backoff_base * (2**attempt))
        if response is not None and response.status_code == 418:
            base = min(self.backoff_cap * 4, base * 4)  # a ban: be much more patient
        return float(base * (0.5 + random.random() / 2))

    async def _get(self, path: str, params: Mapping[str, str], *, market: str | None = None) -> Any:
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
            await self._pace()
            response: httpx.Response | None = None
            try:
                response = await self._client.get(path, params=params)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                self.requests_sent += 1
                self._note_remaining(response)
                status = response.status_code
                if status == 200:
                    try:
                        return orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        last = f"HTTP 200 with a body that is not JSON: {response.text[:80]!r}"
                elif status in RETRY_STATUSES:
                    last = f"HTTP {status} {response.reason_phrase}"
                elif status == 404 and market is not None:
                    msg = f"Upbit does not know market {market!r} ({path})"
                    raise UnknownMarketError(msg)
                else:
                    msg = f"Upbit REST {path} refused the request: HTTP {status} {response.text[:200]}"
                    raise UpbitpipeError(msg)
            if attempt < self.max_retries:
                delay = self._delay(attempt, response)
                log.debug("GET %s: %s; retrying in %.2fs", path, last, delay)
                await asyncio.sleep(delay)
        msg = (
            f"Upbit REST {self.base_url}{path} failed after {self.max_retries + 1} attempts: {last}"
        )
        raise ServiceUnavailableError(msg)


def _utc_day_start(ms: int) -> int:
    return ms - ms % DAY_MS


def _hhmmss(ms: int) -> str:
    seconds = (ms % DAY_MS) // 1000
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


def _row_day_start(row: Mapping[str, Any]) -> int:
    return _utc_day_start(int(row["trade_timestamp"]))


class TradeWindow:
    """Every trade of ``market`` with ``since_ms <= trade_timestamp <= until_ms`` that REST
    still serves, as pages newest first (``until_ms`` None: up to the newest trade).

    Upbit's ``/v1/trades/ticks`` answers one UTC day per request: the newest trade date, or
    ``daysAgo`` (1..7) days before it, paged backwards with ``cursor`` (a ``sequential_id``)
    at up to 500 rows. So the walk is: find the day of ``until_ms`` (relative to the newest
    trade date, which is the exchange's clock, not ours), start there (``to`` = just past
    ``until_ms``), page back by cursor, and when a day runs out step to the day before, until
    a trade older than ``since_ms`` shows up or the day boundary passes it. The walk is bounded
    by the window's time, never by a page count; the rate limit is the client's pacing.

    After the iteration, ``complete`` says whether REST reached back to ``since_ms``: a
    trade older than it showed up, or the day it falls in ran out - and, when the caller
    knows a trade existed at ``known_ms`` (the last one it saw before a gap), REST still
    had trades that old. If not, ``reached_ms`` is the oldest trade time REST did give
    (None: none), so ``[since_ms, reached_ms)`` is what REST no longer serves.
    """

    def __init__(
        self,
        client: UpbitRestClient,
        market: str,
        *,
        since_ms: int,
        until_ms: int | None = None,
        known_ms: int | None = None,
        page_size: int = MAX_PAGE,
    ) -> None:
        self.client = client
        self.known_ms = known_ms
        self.market = market
        self.since_ms = since_ms
        self.until_ms = until_ms
        self.page_size = max(1, min(page_size, MAX_PAGE))
        self.complete = False
        self.reached_ms: int | None = None  # the oldest trade time REST gave
        self.requests = 0

    async def _get(
        self, *, cursor: int | None = None, days_ago: int = 0, to: str | None = None
    ) -> list[dict[str, Any]]:
        self.requests += 1
        return await self.client.trade_ticks(
            self.market,
            count=self.page_size,
            cursor=cursor,
            to=to if cursor is None else None,
            days_ago=days_ago or None,
        )

    async def pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        until = self.until_ms
        page = await self._get()
        # the newest trade date is the exchange's "today"; with no trade today (a quiet
        # market just after midnight) the day of the window's end stands in for it
        if page:
            newest_day = _row_day_start(page[0])
        else:
            newest_day = _utc_day_start(until if until is not None else int(time.time() * 1000))
        days_ago = 0
        if until is not None and page and page[-1]["trade_timestamp"] > until:
            # the window ends before this page: jump to its day, just past ``until``
            days_ago = (newest_day - _utc_day_start(until)) // DAY_MS
            if days_ago > MAX_DAYS_AGO:
                return
            to = None if until % DAY_MS >= DAY_MS - 1000 else _hhmmss(until + 1000)
            page = await self._get(days_ago=days_ago, to=to)
        while True:
            rows = page if until is None else [r for r in page if r["trade_timestamp"] <= until]
            fresh = [r for r in rows if r["trade_timestamp"] >= self.since_ms]
            if fresh:
                yield fresh
            if page:
                oldest = page[-1]["trade_timestamp"]
                self.reached_ms = (
                    oldest if self.reached_ms is None else min(self.reached_ms, oldest)
                )
                if oldest < self.since_ms:
                    self.complete = True
                    return
            if len(page) >= self.page_size:
                page = await self._get(cursor=int(page[-1]["sequential_id"]), days_ago=days_ago)
                continue
            # this day has nothing older
            if newest_day - days_ago * DAY_MS <= self.since_ms:
                # the window starts within it: REST has no older trade in the window. That is
                # the whole story unless a trade we know of (``known_ms``) is not among them:
                # then REST no longer keeps what happened before ``reached_ms``
                known = self.known_ms
                self.complete = known is None or (
                    self.reached_ms is not None and self.reached_ms <= known
                )
                return
            days_ago += 1
            if days_ago > MAX_DAYS_AGO:
                return
            page = await self._get(days_ago=days_ago)
