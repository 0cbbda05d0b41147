"""Server-side frames: one event, serialised lazily once per (format, depth, snapshot).

An event is kept in Upbit's DEFAULT wire shape (``code``, ``stream_type: REALTIME``); every
client that wants the same variant gets the same ``bytes`` object, so fan-out to many
connections costs one ``orjson.dumps`` per variant, not per client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from upbitpipe.upbit.fields import DEFAULT_TO_SIMPLE, UNIT_TO_SIMPLE


@dataclass(slots=True)
class BookParts:
    """A synthetic book's units pre-serialised per level, so a book frame is a bytes join."""

    default_units: list[bytes]
    simple_units: list[bytes]
    ask_sizes: list[float]
    bid_sizes: list[float]


class WireEvent:
    """One ticker/trade/orderbook message ready to be sent in any format.

    ``parts`` (synthetic orderbooks only) holds per-level JSON fragments maintained
    incrementally by the market; realtime DEFAULT/SIMPLE book frames are then joined from
    them instead of serialising 30 unit objects each time.
    """

    __slots__ = (
        "_cache",
        "_framed",
        "is_trade",
        "key",
        "market",
        "parts",
        "snapshot",
        "type",
        "wire",
    )

    def __init__(
        self,
        kind: str,
        market: str,
        wire: dict[str, Any],
        parts: BookParts | None = None,
    ) -> None:
        self.type = kind
        self.market = market
        self.wire = wire
        self.parts = parts
        self.is_trade = kind == "trade"
        self.key = (kind, market)
        # recorded as a SNAPSHOT frame (a capture keeps SNAPSHOT vs REALTIME): sent as one,
        # and only to clients that asked for snapshots
        self.snapshot = False
        self._cache: dict[tuple[str, int, bool], bytes] = {}
        self._framed: dict[tuple[str, int, bool], bytes] = {}

    def frame(self, fmt: str = "DEFAULT", depth: int = 30, snapshot: bool = False) -> bytes:
        """The JSON payload."""
        key = (fmt, depth, snapshot)
        cached = self._cache.get(key)
        if cached is None:
            if self.parts is not None and not snapshot and fmt in ("DEFAULT", "SIMPLE"):
                cached = self._book_from_parts(self.parts, fmt, depth)
            else:
                cached = encode_wire(self.type, self.wire, fmt, depth, snapshot)
            self._cache[key] = cached
        return cached

    def _book_from_parts(self, parts: BookParts, fmt: str, depth: int) -> bytes:
        wire = self.wire
        if depth >= len(parts.default_units):
            asks, bids = wire["total_ask_size"], wire["total_bid_size"]
        else:
            asks = round(sum(parts.ask_sizes[:depth]), 8)
            bids = round(sum(parts.bid_sizes[:depth]), 8)
        dumps = orjson.dumps
        simple = fmt == "SIMPLE"
        units = parts.simple_units if simple else parts.default_units
        return b"".join(
            (
                b'{"ty":"orderbook","cd":' if simple else b'{"type":"orderbook","code":',
                dumps(self.market),
                b',"tms":' if simple else b',"timestamp":',
                dumps(wire["timestamp"]),
                b',"tas":' if simple else b',"total_ask_size":',
                dumps(asks),
                b',"tbs":' if simple else b',"total_bid_size":',
                dumps(bids),
                b',"obu":[' if simple else b',"orderbook_units":[',
                b",".join(units[:depth]),
                b'],"lv":0,"st":"REALTIME"}'
                if simple
                else b'],"level":0,"stream_type":"REALTIME"}',
            )
        )

    def seed(self, payload: bytes, fmt: str, snapshot: bool = False) -> None:
        """Use ``payload`` as the full-depth frame in ``fmt`` (e.g. a recorded frame)."""
        self._cache[(fmt, 30, snapshot)] = payload

    def ws_frame(self, fmt: str = "DEFAULT", depth: int = 30, snapshot: bool = False) -> bytes:
        """The payload as a complete unmasked binary WebSocket frame (no extensions)."""
        key = (fmt, depth, snapshot)
        cached = self._framed.get(key)
        if cached is None:
            cached = self._framed[key] = binary_frame(self.frame(fmt, depth, snapshot))
        return cached


def binary_frame(payload: bytes) -> bytes:
    """RFC 6455 server-to-client binary frame: FIN + opcode 2, no mask."""
    size = len(payload)
    if size < 126:
        return bytes((0x82, size)) + payload
    if size < 65536:
        return bytes((0x82, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x82, 127)) + size.to_bytes(8, "big") + payload


def encode_wire(
    kind: str,
    wire: dict[str, Any],
    fmt: str,
    depth: int,
    snapshot: bool,
) -> bytes:
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
    if fmt in ("SIMPLE", "SIMPLE_LIST"):
        table = DEFAULT_TO_SIMPLE[kind]
        short = {table.get(k, k): v for k, v in message.items()}
        if kind == "orderbook":
            short["obu"] = [{UNIT_TO_SIMPLE[k]: v for k, v in u.items()} for u in short["obu"]]
        message = short
    data = orjson.dumps(message)
    if fmt in ("JSON_LIST", "SIMPLE_LIST"):
        return b"[" + data + b"]"
    return data


def error_frame(name: str, message: str) -> bytes:
    return orjson.dumps({"error": {"name": name, "message": message}})


STATUS_UP = b'{"status":"UP"}'
GARBAGE_FRAME = b'{"ty":"trade","cd":"KRW-BTC","tp":'
