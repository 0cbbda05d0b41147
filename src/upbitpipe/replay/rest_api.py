"""The REST half of the replay server, answered from websockets' ``process_request`` hook.

Upbit quotation paths: ``/v1/market/all`` (``isDetails``/``is_details``),
``/v1/trades/ticks`` (``market``, ``count`` 1..500, ``cursor``, ``to``, ``daysAgo``/
``days_ago`` 1..7 - see :mod:`upbitpipe.replay.tradebook`), ``/v1/ticker`` and
``/v1/orderbook`` (``markets``: comma-separated or repeated, any case),
``/v1/ticker/all`` (``quote_currencies``), ``/v1/candles/minutes/{1,3,5,10,15,30,60,240}``
and ``/v1/candles/days`` (``market``, ``to``, ``count`` up to 200; see
:mod:`upbitpipe.replay.candles`).

As the live service answers (docs.upbit.com "REST API guide" and "rate limits"; probes of
api.upbit.com): every answer carries ``Remaining-Req: group=<family>; min=600; sec=N`` and
``limit-by-ip: Yes``, each family (``market``, ``trade``, ``ticker``, ``orderbook``,
``candles``) with its own ``rest_per_second`` allowance per client address, 429 over it;
errors are ``{"error": {"name": <HTTP status as an int>, "message": <fixed text>}}``, an
unknown path ``{"error": {"name": "not_found", "message": "no Route matched with those
values"}}`` without ``Remaining-Req``; one unknown market fails the whole call with 404.

``/_replay/*`` are test controls, see :mod:`upbitpipe.replay.control_api`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from websockets.http11 import Request, Response

from upbitpipe.replay.candles import DAY_UNIT_MS, MINUTE_UNITS, candles, parse_to
from upbitpipe.replay.control_api import ControlApi
from upbitpipe.replay.http import Query, error_response, json_response, one
from upbitpipe.replay.limits import KeyedLimits
from upbitpipe.replay.market import market_names
from upbitpipe.replay.tradebook import TicksQuery

if TYPE_CHECKING:
    from upbitpipe.replay.server import ReplayServer

TICKS_PATH = "/v1/trades/ticks"
MISSING = "Missing request parameter error. Check the required parameters!"
MISMATCH = "Type mismatch error. Check the parameters type!"
INVALID = "Invalid parameter. Check the given value!"
NOT_FOUND = "Code not found"
BAD_UNIT = "specified unit is not valid."
# REST ticker fields (the WebSocket ticker has more: ask_bid, acc_ask_volume, market_state...)
REST_TICKER_FIELDS = (
    "trade_price opening_price high_price low_price prev_closing_price change change_price "
    "change_rate signed_change_price signed_change_rate trade_volume acc_trade_price "
    "acc_trade_price_24h acc_trade_volume acc_trade_volume_24h highest_52_week_price "
    "highest_52_week_date lowest_52_week_price lowest_52_week_date timestamp"
).split()
_KST = timedelta(hours=9)


class ApiError(Exception):
    """An Upbit error answer: HTTP ``status`` with one of Upbit's fixed messages."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _int(query: Query, name: str, default: int) -> int:
    value = one(query, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, MISMATCH) from None


def _markets(query: Query, name: str) -> list[str]:
    """``markets=A,B`` or ``markets=A&markets=B`` (what requests sends for a list)."""
    codes = [code.strip().upper() for value in query.get(name, []) for code in value.split(",")]
    codes = [code for code in codes if code]
    if not codes:
        raise ApiError(400, MISSING)
    return codes


class RestApi:
    """Routes HTTP requests that are not WebSocket upgrades."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.faults = server.rest_faults
        self._limits: dict[str, KeyedLimits] = {}
        self._per_second = server.options.rest_per_second
        self._routes: dict[str, tuple[str, Callable[[Query], Response]]] = {
            "/v1/market/all": ("market", self._market_all),
            TICKS_PATH: ("trade", self._ticks),
            "/v1/ticker": ("ticker", self._ticker),
            "/v1/ticker/all": ("ticker", self._ticker_all),
            "/v1/orderbook": ("orderbook", self._orderbook),
            "/v1/candles/days": ("candles", self._day_candles),
        }
        self._control = ControlApi(server)

    def _limit(self, group: str) -> KeyedLimits:
        limit = self._limits.get(group)
        if limit is None:
            limit = self._limits[group] = KeyedLimits(self._per_second)
        return limit

    def _route(self, path: str) -> tuple[str, Callable[[Query], Response]] | None:
        found = self._routes.get(path)
        if found is None and path.startswith("/v1/candles/minutes/"):
            unit = path.rsplit("/", 1)[-1]
            return "candles", lambda query: self._minute_candles(unit, query)
        return found

    def handle(self, client: str, request: Request) -> Response | Awaitable[Response]:
        path, _, raw_query = request.path.partition("?")
        path = path.rstrip("/") or "/"
        query = parse_qs(raw_query)
        control = self._control.routes.get(path)
        if control is not None:
            try:
                return control(query)
            except ValueError as exc:
                return error_response(400, "validation_error", str(exc))
        found = self._route(path)
        if found is None:
            return error_response(404, "not_found", "no Route matched with those values")
        group, route = found
        stats = self.server.stats
        stats["rest_requests"] += 1
        injected = self.faults.take_error()
        if injected is None and path == TICKS_PATH and self.faults.refusing_ticks():
            injected = self.faults.refuse_status
        if injected is not None:
            stats["rest_errors_injected"] += 1
            headers = _budget(group, 0) if injected == 429 else []
            return error_response(injected, injected, "injected fault", headers)
        allowed, remaining = self._limit(group).take(client)
        if not allowed:
            stats["rest_rate_limited"] += 1
            return error_response(429, 429, "Too many API requests.", _budget(group, 0))
        try:
            response = route(query)
        except ApiError as exc:
            response = error_response(exc.status, exc.status, exc.message)
        for name, value in _budget(group, remaining):
            response.headers[name] = value
        return response

    # --- routes ------------------------------------------------------------------------
    def _known(self, codes: list[str]) -> list[str]:
        listed = set(self.server.market_codes())
        if any(code not in listed for code in codes):
            raise ApiError(404, NOT_FOUND)
        return codes

    def _market_all(self, query: Query) -> Response:
        details = (one(query, "isDetails", "is_details") or "").lower() == "true"
        rows: list[dict[str, Any]] = []
        for market in self.server.market_codes():
            korean, english = market_names(market)
            row: dict[str, Any] = {"market": market, "korean_name": korean, "english_name": english}
            if details:
                row["market_warning"] = "NONE"
                row["market_event"] = {
                    "warning": False,
                    "caution": {
                        "PRICE_FLUCTUATIONS": False,
                        "TRADING_VOLUME_SOARING": False,
                        "DEPOSIT_AMOUNT_SOARING": False,
                        "GLOBAL_PRICE_DIFFERENCES": False,
                        "CONCENTRATION_OF_SMALL_ACCOUNTS": False,
                    },
                }
            rows.append(row)
        return json_response(200, rows)

    def _ticks(self, query: Query) -> Response:
        market = (one(query, "market") or "").upper()
        if not market:
            raise ApiError(400, MISSING)
        self._known([market])
        cursor = one(query, "cursor")
        days = one(query, "daysAgo", "days_ago")
        try:
            ticks = TicksQuery(
                count=_int(query, "count", 1),
                cursor=int(cursor) if cursor else None,
                to=one(query, "to"),
                days_ago=int(days) if days else None,
            )
        except ValueError:
            raise ApiError(400, MISMATCH) from None
        store = self.server.trades
        now_ms = self.server.market_now_ms()
        try:
            start, end = store.window(market, ticks, now_ms)
        except ValueError:
            raise ApiError(400, INVALID) from None
        if end > start and self.faults.refuses_page(store.oldest_ms(market, start)):
            self.server.stats["rest_errors_injected"] += 1
            status = self.faults.refuse_status
            return error_response(status, status, "injected fault: trades too old")
        return json_response(200, store.ticks(market, ticks, now_ms))

    def _ticker_rows(self, codes: list[str]) -> list[dict[str, Any]]:
        rows = []
        for market in codes:
            event = self.server.latest("ticker", market)
            if event is not None:
                rows.append(rest_ticker(market, event.wire))
        return rows

    def _ticker(self, query: Query) -> Response:
        return json_response(200, self._ticker_rows(self._known(_markets(query, "markets"))))

    def _ticker_all(self, query: Query) -> Response:
        quotes = {
            q.strip().upper() for v in query.get("quote_currencies", []) for q in v.split(",")
        }
        quotes.discard("")
        codes = [m for m in self.server.market_codes() if not quotes or m.split("-")[0] in quotes]
        return json_response(200, self._ticker_rows(codes))

    def _orderbook(self, query: Query) -> Response:
        depth = max(1, min(_int(query, "count", 30), 30))
        rows = []
        for market in self._known(_markets(query, "markets")):
            event = self.server.latest("orderbook", market)
            if event is None:
                continue
            wire = event.wire
            units = [
                {
                    "ask_price": unit["ask_price"],
                    "bid_price": unit["bid_price"],
                    "ask_size": unit["ask_size"],
                    "bid_size": unit["bid_size"],
                }
                for unit in (wire.get("orderbook_units") or [])[:depth]
            ]
            rows.append(
                {
                    "market": market,
                    "timestamp": wire["timestamp"],
                    "total_ask_size": round(sum(u["ask_size"] for u in units), 8),
                    "total_bid_size": round(sum(u["bid_size"] for u in units), 8),
                    "orderbook_units": units,
                    "level": 0,
                }
            )
        return json_response(200, rows)

    def _candles(self, query: Query, unit_ms: int, minute_unit: int | None) -> Response:
        market = (one(query, "market") or "").upper()
        if not market:
            raise ApiError(400, MISSING)
        self._known([market])
        to = one(query, "to")
        try:
            to_ms = parse_to(to) if to else None
        except ValueError:
            raise ApiError(400, INVALID) from None
        columns = self.server.trades.columns_of(market)
        if columns is None:
            return json_response(200, [])
        rows = candles(
            market,
            columns,
            unit_ms=unit_ms,
            count=_int(query, "count", 1),
            to_ms=to_ms,
            minute_unit=minute_unit,
        )
        return json_response(200, rows)

    def _minute_candles(self, unit: str, query: Query) -> Response:
        if not unit.isdigit() or int(unit) not in MINUTE_UNITS:
            raise ApiError(400, BAD_UNIT)
        return self._candles(query, int(unit) * 60_000, int(unit))

    def _day_candles(self, query: Query) -> Response:
        return self._candles(query, DAY_UNIT_MS, None)


def rest_ticker(market: str, wire: dict[str, Any]) -> dict[str, Any]:
    """A WebSocket ticker as REST ``/v1/ticker`` answers it (REST fields only)."""
    row: dict[str, Any] = {"market": market}
    trade_ms = int(wire.get("trade_timestamp") or wire.get("timestamp") or 0)
    moment = datetime.fromtimestamp(trade_ms / 1000, tz=UTC)
    row["trade_date"], row["trade_time"] = f"{moment:%Y%m%d}", f"{moment:%H%M%S}"
    kst = moment + _KST
    row["trade_date_kst"], row["trade_time_kst"] = f"{kst:%Y%m%d}", f"{kst:%H%M%S}"
    row["trade_timestamp"] = trade_ms
    for name in REST_TICKER_FIELDS:
        if name in wire:
            row[name] = wire[name]
    return row


def _budget(group: str, sec: int) -> list[tuple[str, str]]:
    return [("Remaining-Req", f"group={group}; min=600; sec={sec}"), ("limit-by-ip", "Yes")]
