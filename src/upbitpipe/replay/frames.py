"""Server-side frames: one event, serialised lazily once per (format, depth, snapshot).

An event is kept in Upbit's DEFAULT wire shape (``code``, ``stream_type: REALTIME``); every
client that wants the same variant gets the same ``bytes`` object, so fan-out to many
connections costs one ``orjson.dumps`` per variant, not per client.
"""

from __future__ import annotations

from typing import Any

import orjson

from upbitpipe.upbit.fields import DEFAULT_TO_SIMPLE, UNIT_TO_SIMPLE

_DERIVED_BOOK_FIELDS = ("best_ask_price", "best_bid_price", "spread")


class WireEvent:
    """One ticker/trade/orderbook message ready to be sent in any format."""

    __slots__ = ("_cache", "is_trade", "key", "market", "type", "wire")

    def __init__(self, kind: str, market: str, wire: dict[str, Any]) -> None:
        self.type = kind
        self.market = market
        self.wire = wire
        self.is_trade = kind == "trade"
        self.key = (kind, market)
        self._cache: dict[tuple[str, int, bool], bytes] = {}

    def frame(self, fmt: str = "DEFAULT", depth: int = 30, snapshot: bool = False) -> bytes:
        key = (fmt, depth, snapshot)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = encode_wire(self.type, self.wire, fmt, depth, snapshot)
        return cached


def encode_wire(kind: str, wire: dict[str, Any], fmt: str, depth: int, snapshot: bool) -> bytes:
    """Serialise a DEFAULT-shaped message as ``fmt`` with ``depth`` orderbook levels."""
    message = wire
    if snapshot:
        message = {**wire, "stream_type": "SNAPSHOT"}
    if kind == "orderbook":
        units = message.get("orderbook_units") or []
        if depth < len(units):
            units = units[:depth]
            message = {
                **message,
                "orderbook_units": units,
                "total_ask_size": round(sum(u["ask_size"] for u in units), 8),
                "total_bid_size": round(sum(u["bid_size"] for u in units), 8),
            }
    simple = fmt in ("SIMPLE", "SIMPLE_LIST")
    if simple:
        table = DEFAULT_TO_SIMPLE[kind]
        short = {table.get(k, k): v for k, v in message.items()}
        if kind == "orderbook":
            short["obu"] = [{UNIT_TO_SIMPLE[k]: v for k, v in u.items()} for u in short["obu"]]
        message = short
    data = orjson.dumps(message)
    if fmt in ("JSON_LIST", "SIMPLE_LIST"):
        return b"[" + data + b"]"
    return data


def normal_to_wire(data: dict[str, Any]) -> dict[str, Any]:
    """A parsed event's ``data`` back in Upbit's DEFAULT wire shape (``market`` -> ``code``)."""
    kind = data.get("type")
    wire = {("code" if k == "market" else k): v for k, v in data.items()}
    if kind == "orderbook":
        for name in _DERIVED_BOOK_FIELDS:
            wire.pop(name, None)
    return wire


def error_frame(name: str, message: str) -> bytes:
    return orjson.dumps({"error": {"name": name, "message": message}})


STATUS_UP = b'{"status":"UP"}'
GARBAGE_FRAME = b'{"ty":"trade","cd":"KRW-BTC","tp":'
