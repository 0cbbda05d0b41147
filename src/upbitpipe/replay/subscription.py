"""Server-side reading of a subscribe request, with Upbit's error names and fixed messages.

Accepted: ``[{"ticket": ...}, {"type": ..., "codes": [...], "is_only_snapshot"|
"isOnlySnapshot": bool, "is_only_realtime"|"isOnlyRealtime": bool}, ..., {"format": ...}]``
with the format object anywhere after the ticket (cryptofeed sends it second). Orderbook
codes may carry a depth suffix ``KRW-BTC.15`` (1, 5, 15 or 30; anything else means 30).
As on Upbit, a JSON object instead of an array is ``WRONG_FORMAT``, and codes Upbit does
not list (``KRW-NOPE``, lower case ``krw-btc``) are accepted and simply never sent.
Messages are the ones Upbit documents (docs.upbit.com "websocket error").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from upbitpipe.upbit.fields import DEFAULT_ORDERBOOK_DEPTH, EVENT_TYPES, FORMATS, ORDERBOOK_DEPTHS


class RequestError(ValueError):
    """A request Upbit would answer with ``{"error": {"name": ..., "message": ...}}``."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass
class TypeRequest:
    """One type object: which codes (with orderbook depth) and which stream parts."""

    type: str
    codes: dict[str, int]  # market -> orderbook depth (30 for other types)
    snapshot: bool = True
    realtime: bool = True


@dataclass
class Subscription:
    ticket: str
    format: str = "DEFAULT"
    types: list[TypeRequest] = field(default_factory=list)

    def routes(self) -> dict[tuple[str, str], int]:
        """``(type, market) -> depth`` of everything to stream in real time."""
        return {
            (item.type, market): depth
            for item in self.types
            if item.realtime
            for market, depth in item.codes.items()
        }

    def snapshots(self) -> list[tuple[str, str, int]]:
        """``(type, market, depth)`` of the snapshot to send right after the request."""
        return [
            (item.type, market, depth)
            for item in self.types
            if item.snapshot
            for market, depth in item.codes.items()
        ]


WRONG_FORMAT = "Format 이 맞지 않습니다."
NO_TICKET = "티켓이 존재하지 않거나, 유효하지 않습니다."
NO_TYPE = "type 필드가 존재하지 않습니다."
NO_CODES = "codes 필드가 존재하지 않습니다."
EMPTY_CODES = "codes 필드가 비어 있습니다."


def _flag(item: dict[str, Any], snake: str, camel: str) -> bool:
    value = item.get(snake, item.get(camel, False))
    if not isinstance(value, bool):
        raise RequestError(name="INVALID_PARAM", message=f"{snake} must be true or false")
    return value


def _codes(kind: str, raw: Any) -> dict[str, int]:
    if raw is None:
        raise RequestError(name="NO_CODES", message=NO_CODES)
    if raw == []:
        raise RequestError(name="INVALID_PARAM", message=EMPTY_CODES)
    if not isinstance(raw, list) or not all(isinstance(code, str) for code in raw):
        raise RequestError(name="INVALID_PARAM", message="codes must be a list of strings")
    codes: dict[str, int] = {}
    for code in raw:
        market, dot, suffix = code.partition(".")
        depth = DEFAULT_ORDERBOOK_DEPTH
        if dot:
            if kind != "orderbook" or not suffix.isdigit():
                raise RequestError(name="INVALID_PARAM", message=f"invalid code {code!r}")
            depth = int(suffix) if int(suffix) in ORDERBOOK_DEPTHS else DEFAULT_ORDERBOOK_DEPTH
        if not market:
            raise RequestError(name="INVALID_PARAM", message=EMPTY_CODES)
        codes[market] = depth  # unknown or lower-case codes: accepted, never sent
    return codes


def parse_request(raw: bytes | str) -> Subscription:
    """Read one request frame; raises :class:`RequestError` with Upbit's error name."""
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(name="WRONG_FORMAT", message=WRONG_FORMAT) from None
    if not isinstance(request, list) or not request:
        raise RequestError(name="WRONG_FORMAT", message=WRONG_FORMAT)
    if not all(isinstance(item, dict) for item in request):
        raise RequestError(name="WRONG_FORMAT", message=WRONG_FORMAT)
    tickets = [item["ticket"] for item in request if "ticket" in item]
    if not tickets or not isinstance(tickets[0], str) or not tickets[0]:
        raise RequestError(name="NO_TICKET", message=NO_TICKET)
    subscription = Subscription(ticket=tickets[0])
    for item in request:
        if "format" in item:
            fmt = item["format"]
            if fmt not in FORMATS:
                raise RequestError(
                    name="INVALID_PARAM", message=f"{fmt}은 지원하지 않는 포맷입니다."
                )
            subscription.format = fmt
        if "type" not in item:
            continue
        kind = item["type"]
        if kind not in EVENT_TYPES:
            raise RequestError(name="INVALID_PARAM", message=f"{kind} 은 지원하지 않는 타입입니다.")
        only_snapshot = _flag(item, "is_only_snapshot", "isOnlySnapshot")
        only_realtime = _flag(item, "is_only_realtime", "isOnlyRealtime")
        subscription.types.append(
            TypeRequest(
                type=kind,
                codes=_codes(kind, item.get("codes")),
                snapshot=not only_realtime,
                realtime=not only_snapshot,
            )
        )
    if not subscription.types:
        raise RequestError(name="NO_TYPE", message=NO_TYPE)
    return subscription
