"""The REST half of the replay server, answered from websockets' ``process_request`` hook.

Upbit paths: ``/v1/market/all`` (``isDetails``/``is_details``), ``/v1/trades/ticks``
(``market``, ``count`` 1..500, ``cursor``, ``to``, ``daysAgo``/``days_ago`` 1..7 - see
:mod:`upbitpipe.replay.tradebook` for the paging), ``/v1/ticker`` (``markets``).
Every ``/v1`` answer carries ``Remaining-Req: group=<family>; min=1800; sec=N``; each
endpoint family (Upbit's rate-limit group) has its own ``rest_per_second`` allowance per
client address; over it the answer is 429 with ``sec=0``. Errors have Upbit's body
``{"error": {"name": ..., "message": ...}}``.

``/_replay/*`` are test controls, see :mod:`upbitpipe.replay.control_api`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from websockets.http11 import Request, Response

from upbitpipe.replay.control_api import ControlApi
from upbitpipe.replay.http import Query, error_response, json_response, one, one_int
from upbitpipe.replay.limits import KeyedLimits
from upbitpipe.replay.market import market_names
from upbitpipe.replay.tradebook import TicksQuery

if TYPE_CHECKING:
    from upbitpipe.replay.server import ReplayServer

TICKS_PATH = "/v1/trades/ticks"
# path -> Upbit rate-limit group (each group has its own per-second allowance)
GROUPS: dict[str, str] = {
    "/v1/market/all": "market",
    TICKS_PATH: "trade",
    "/v1/ticker": "ticker",
}


class RestApi:
    """Routes HTTP requests that are not WebSocket upgrades."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        options = server.options
        self.faults = server.rest_faults
        self._limits: dict[str, KeyedLimits] = {}
        self._per_second = options.rest_per_second
        self._routes: dict[str, Callable[[Query], Response]] = {
            "/v1/market/all": self._markets,
            TICKS_PATH: self._ticks,
            "/v1/ticker": self._ticker,
        }
        self._control = ControlApi(server)

    def _limit(self, group: str) -> KeyedLimits:
        limit = self._limits.get(group)
        if limit is None:
            limit = self._limits[group] = KeyedLimits(self._per_second)
        return limit

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
        route = self._routes.get(path)
        if route is None:
            return error_response(404, "not_found", f"no such path {path}")
        stats = self.server.stats
        stats["rest_requests"] += 1
        group = GROUPS.get(path, "default")
        injected = self.faults.take_error()
        if injected is None and path == TICKS_PATH and self.faults.refusing_ticks():
            injected = self.faults.refuse_status
        if injected is not None:
            stats["rest_errors_injected"] += 1
            headers = [("Remaining-Req", _remaining(group, 0))] if injected == 429 else []
            return error_response(injected, str(injected), "injected fault", headers)
        allowed, remaining = self._limit(group).take(client)
        if not allowed:
            stats["rest_rate_limited"] += 1
            return error_response(
                429,
                "too_many_requests",
                "Too many API requests.",
                [("Remaining-Req", _remaining(group, 0))],
            )
        try:
            response = route(query)
        except ValueError as exc:
            response = error_response(400, "invalid_parameter", str(exc))
        response.headers["Remaining-Req"] = _remaining(group, remaining)
        return response

    def _markets(self, query: Query) -> Response:
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
        market = one(query, "market")
        if not market:
            return error_response(400, "validation_error", "market is required")
        if market not in self.server.market_codes():
            return error_response(404, "404", "Code not found")
        ticks = TicksQuery(
            count=one_int(query, "count") or 1,
            cursor=one_int(query, "cursor"),
            to=one(query, "to"),
            days_ago=one_int(query, "daysAgo", "days_ago"),
        )
        store = self.server.trades
        now_ms = self.server.market_now_ms()
        start, end = store.window(market, ticks, now_ms)
        if end > start and self.faults.refuses_page(store.oldest_ms(market, start)):
            self.server.stats["rest_errors_injected"] += 1
            status = self.faults.refuse_status
            return error_response(status, str(status), "injected fault: trades too old")
        return json_response(200, store.ticks(market, ticks, now_ms))

    def _ticker(self, query: Query) -> Response:
        wanted = [m for m in (one(query, "markets") or "").split(",") if m]
        if not wanted:
            return error_response(400, "validation_error", "markets is required")
        rows = []
        for market in wanted:
            event = self.server.latest("ticker", market)
            if event is None:
                return error_response(404, "404", "Code not found")
            wire = {("market" if k == "code" else k): v for k, v in event.wire.items()}
            wire.pop("type", None)
            wire.pop("stream_type", None)
            rows.append(wire)
        return json_response(200, rows)


def _remaining(group: str, sec: int) -> str:
    return f"group={group}; min=1800; sec={sec}"
