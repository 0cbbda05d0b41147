"""The REST half of the replay server, answered from websockets' ``process_request`` hook.

Upbit paths: ``/v1/market/all`` (``isDetails``/``is_details``), ``/v1/trades/ticks``
(``market``, ``count``, ``cursor``, ``to``, ``daysAgo``), ``/v1/ticker`` (``markets``).
Every ``/v1`` answer carries ``Remaining-Req: group=default; min=1800; sec=N``; over
``rest_per_second`` it is 429 with ``sec=0``.

Test helpers (not Upbit): ``/_replay/trades?market=X`` (every trade generated, the
collector's trade shape), ``/_replay/stats`` (counters), ``/_replay/fault?rest_errors=N&
status=429`` (answer the next N ``/v1`` requests with an error) and ``/_replay/fault?drop=1``
(cut every open WebSocket connection now).
"""

from __future__ import annotations

import email.utils
import http
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from upbitpipe.replay.limits import KeyedLimits
from upbitpipe.replay.market import market_names

if TYPE_CHECKING:
    from upbitpipe.replay.server import ReplayServer

Query = dict[str, list[str]]


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    body = orjson.dumps(payload)
    all_headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "application/json; charset=utf-8"),
            *(headers or []),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, all_headers, body)


def _error(
    status: int, name: str, message: str, headers: list[tuple[str, str]] | None = None
) -> Response:
    return json_response(status, {"error": {"name": name, "message": message}}, headers)


def _one(query: Query, *names: str) -> str | None:
    for name in names:
        values = query.get(name)
        if values:
            return values[0]
    return None


def _int(query: Query, name: str, default: int | None = None) -> int | None:
    value = _one(query, name)
    if value is None or value == "":
        return default
    return int(value)


class RestApi:
    """Routes HTTP requests that are not WebSocket upgrades."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.limits = KeyedLimits(server.options.rest_per_second)
        self.error_budget = server.options.rest_error_count
        self.error_status = server.options.rest_error_status
        self._routes: dict[str, Callable[[Query], Response]] = {
            "/v1/market/all": self._markets,
            "/v1/trades/ticks": self._ticks,
            "/v1/ticker": self._ticker,
            "/_replay/trades": self._ground_truth,
            "/_replay/stats": self._stats,
            "/_replay/fault": self._fault,
        }

    def handle(self, client: str, request: Request) -> Response:
        path, _, raw_query = request.path.partition("?")
        path = path.rstrip("/") or "/"
        query = parse_qs(raw_query)
        route = self._routes.get(path)
        stats = self.server.stats
        if route is None:
            return _error(404, "not_found", f"no such path {path}")
        if not path.startswith("/v1/"):
            return route(query)
        stats["rest_requests"] += 1
        if self.error_budget > 0:
            self.error_budget -= 1
            stats["rest_errors_injected"] += 1
            status = self.error_status
            headers = [("Remaining-Req", _remaining(0))] if status == 429 else []
            return _error(status, str(status), "injected fault", headers)
        allowed, remaining = self.limits.take(client)
        if not allowed:
            stats["rest_rate_limited"] += 1
            return _error(
                429,
                "too_many_requests",
                "Too many API requests.",
                [("Remaining-Req", _remaining(0))],
            )
        try:
            response = route(query)
        except ValueError as exc:
            response = _error(400, "invalid_parameter", str(exc))
        response.headers["Remaining-Req"] = _remaining(remaining)
        return response

    def _markets(self, query: Query) -> Response:
        details = (_one(query, "isDetails", "is_details") or "").lower() == "true"
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
        market = _one(query, "market")
        if not market:
            return _error(400, "validation_error", "market is required")
        if market not in self.server.market_codes():
            return _error(404, "404", "Code not found")
        rows = self.server.trades.ticks(
            market,
            count=_int(query, "count", 1) or 1,
            cursor=_int(query, "cursor"),
            to=_one(query, "to"),
            days_ago=_int(query, "daysAgo") or _int(query, "days_ago"),
        )
        return json_response(200, rows)

    def _ticker(self, query: Query) -> Response:
        wanted = [m for m in (_one(query, "markets") or "").split(",") if m]
        if not wanted:
            return _error(400, "validation_error", "markets is required")
        rows = []
        for market in wanted:
            event = self.server.latest("ticker", market)
            if event is None:
                return _error(404, "404", "Code not found")
            wire = {("market" if k == "code" else k): v for k, v in event.wire.items()}
            wire.pop("type", None)
            wire.pop("stream_type", None)
            rows.append(wire)
        return json_response(200, rows)

    def _ground_truth(self, query: Query) -> Response:
        market = _one(query, "market")
        if not market:
            return _error(400, "validation_error", "market is required")
        return json_response(200, self.server.generated_trades(market))

    def _stats(self, _query: Query) -> Response:
        return json_response(200, self.server.stats_snapshot())

    def _fault(self, query: Query) -> Response:
        errors = _int(query, "rest_errors")
        if errors is not None:
            self.error_budget = errors
            self.error_status = _int(query, "status", 429) or 429
        dropped = self.server.drop_connections() if _one(query, "drop") in ("1", "true") else 0
        return json_response(200, {"rest_errors": self.error_budget, "dropped": dropped})


def _remaining(sec: int) -> str:
    return f"group=default; min=1800; sec={sec}"
