"""Test controls of the replay server (not Upbit): under ``/_replay/``, never rate limited.

``GET /_replay/stats``
    counters (connections, frames, REST requests, faults, trades kept per market).
``GET /_replay/clock``
    ``{"now_ms", "offset_ms", "skipped": [{"from_ms", "to_ms", "trades": {market: n}}]}``.
``GET /_replay/advance?hours=H|minutes=M|seconds=S[&trade_rate=R][&force=1]``
    jump the synthetic market clock forward, making the skipped span's trades (R per market
    per second; default ``--gap-trade-rate`` or the live share). Refused (409) while a
    WebSocket client is subscribed unless ``force=1`` (that client then misses the span).
``GET /_replay/trades?market=X[&from_ms=&to_ms=]``
    ground truth: every kept trade in the collector's trade shape, oldest first.
``GET /_replay/trade_ids?market=X[&from_ms=&to_ms=]``
    ground truth, compact: ``{"market", "count", "sequential_ids": [...]}``.
``GET /_replay/fault?...``
    ``rest_errors=N[&status=429]`` the next N ``/v1`` answers are errors;
    ``rest_refuse_seconds=S[&status=503]`` every ``/v1/trades/ticks`` answer is an error
    for S seconds; ``rest_refuse_before_ms=T[&status=...]`` a ticks page holding a trade
    older than market time T is an error; ``rest_forget_before_ms=T`` REST serves no trade
    older than T (as if Upbit no longer kept it; ground truth still has it);
    ``clear=1`` removes every REST fault; ``drop=1`` cuts every WebSocket connection now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from websockets.http11 import Response

from upbitpipe.replay.http import Query, error_response, json_response, one, one_int

if TYPE_CHECKING:
    from upbitpipe.replay.server import ReplayServer


class ControlApi:
    """Routes ``/_replay/*``."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.routes: dict[str, Callable[[Query], Response | Awaitable[Response]]] = {
            "/_replay/stats": self._stats,
            "/_replay/clock": self._clock,
            "/_replay/advance": self._advance,
            "/_replay/trades": self._trades,
            "/_replay/trade_ids": self._trade_ids,
            "/_replay/fault": self._fault,
        }

    def _stats(self, _query: Query) -> Response:
        return json_response(200, self.server.stats_snapshot())

    def _clock(self, _query: Query) -> Response:
        return json_response(200, self.server.clock_snapshot())

    def _advance(self, query: Query) -> Awaitable[Response]:
        span_ms = (
            (one_int(query, "hours") or 0) * 3_600_000
            + (one_int(query, "minutes") or 0) * 60_000
            + int(float(one(query, "seconds") or 0) * 1000)
        )
        rate = one(query, "trade_rate")
        force = (one(query, "force") or "").lower() in ("1", "true")
        return self._advance_async(span_ms, None if rate is None else float(rate), force)

    async def _advance_async(self, span_ms: int, rate: float | None, force: bool) -> Response:
        try:
            span = await self.server.advance_clock_async(span_ms, trade_rate=rate, force=force)
        except ValueError as exc:
            return error_response(409, "conflict", str(exc))
        return json_response(200, {**span.as_json(), "now_ms": self.server.market_now_ms()})

    def _span(self, query: Query) -> tuple[str, int, int | None] | Response:
        market = one(query, "market")
        if not market:
            return error_response(400, "validation_error", "market is required")
        return market, one_int(query, "from_ms") or 0, one_int(query, "to_ms")

    def _trades(self, query: Query) -> Response:
        span = self._span(query)
        if isinstance(span, Response):
            return span
        return json_response(200, self.server.generated_trades(*span))

    def _trade_ids(self, query: Query) -> Response:
        span = self._span(query)
        if isinstance(span, Response):
            return span
        ids = self.server.trades.ids(*span)
        return json_response(200, {"market": span[0], "count": len(ids), "sequential_ids": ids})

    def _fault(self, query: Query) -> Response:
        faults = self.server.rest_faults
        status = one_int(query, "status")
        if (one(query, "clear") or "") in ("1", "true"):
            faults.clear()
            self.server.trades.served_from_ms = 0
        errors = one_int(query, "rest_errors")
        if errors is not None:
            faults.error_budget = errors
            faults.error_status = status or 429
        refuse = one(query, "rest_refuse_seconds")
        if refuse is not None:
            faults.refuse_for(float(refuse), status or 503)
        before = one_int(query, "rest_refuse_before_ms")
        if before is not None:
            faults.refuse_before_ms = before
            faults.refuse_status = status or faults.refuse_status
        forget = one_int(query, "rest_forget_before_ms")
        if forget is not None:
            self.server.trades.served_from_ms = forget
        dropped = self.server.drop_connections() if one(query, "drop") in ("1", "true") else 0
        return json_response(
            200,
            {
                **faults.as_json(),
                "rest_forget_before_ms": self.server.trades.served_from_ms,
                "dropped": dropped,
            },
        )
