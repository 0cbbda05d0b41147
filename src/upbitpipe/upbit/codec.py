"""Parse Upbit WebSocket frames (DEFAULT or SIMPLE) into normalised events; build requests.

This is the collector's hot path: one ``orjson.loads``, one dict comprehension for SIMPLE
frames (an in-place rename for DEFAULT ones), a few required-field checks, no pydantic.
``benchmarks/bench_parse.py`` measures it.

A SIMPLE trade frame as Upbit sends it (binary WebSocket frame, UTF-8 JSON)::

    {"ty":"trade","cd":"KRW-BTC","tms":1730336862082,"td":"2024-10-31","ttm":"01:07:42",
     "ttms":1730336862047,"tp":100473000.0,"tv":0.00014208,"ab":"BID","pcp":100571000.0,
     "c":"FALL","cp":98000.0,"sid":17303368620470000,"bap":100473000,"bas":0.43,
     "bbp":100465000,"bbs":0.01,"st":"REALTIME"}

becomes ``MarketEvent(type="trade", market="KRW-BTC", data={"type": "trade",
"market": "KRW-BTC", "timestamp": 1730336862082, "trade_date": "2024-10-31", ...})``. The
key maps live in :mod:`upbitpipe.upbit.fields`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from upbitpipe.upbit.fields import (
    DEFAULT_ORDERBOOK_DEPTH,
    EVENT_TYPES,
    FORMATS,
    MAX_BIGINT,
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    ORDERBOOK_DEPTHS,
    SIMPLE_TO_NORMAL,
    TRADE_AHEAD_TOLERANCE_MS,
    TRADE_OPTIONAL_NUMBERS,
    UNIT_SIMPLE,
)

__all__ = [
    "EVENT_TYPES",
    "ErrorFrame",
    "MalformedFrameError",
    "MarketEvent",
    "StatusFrame",
    "metadata_suffix",
    "parse_book_lite",
    "parse_data",
    "parse_flat_lite",
    "parse_frame",
    "splice_record",
    "subscribe_request",
    "trade_problem",
]

# Module constants are Final: compiled (mypyc), a Final is a C static, any other global a
# dict lookup on every use.
_MISSING: Final[Any] = object()  # a key's absence, apart from a null value
_NUMBER: Final = frozenset((int, float))
_OPTIONAL_NUMBER: Final = frozenset((int, float, type(None)))
_EVENT_TYPES: Final = EVENT_TYPES
_TICKER_MAP: Final = SIMPLE_TO_NORMAL["ticker"]
_TRADE_MAP: Final = SIMPLE_TO_NORMAL["trade"]
_ORDERBOOK_MAP: Final = SIMPLE_TO_NORMAL["orderbook"]
_loads: Final = orjson.loads


class MalformedFrameError(ValueError):
    """A frame that is not a valid Upbit message; keeps the raw bytes for the dead letters."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


@dataclass(slots=True)
class MarketEvent:
    """One ticker/trade/orderbook message, normalised to DEFAULT names with ``market``."""

    type: str
    market: str
    data: dict[str, Any]
    raw: bytes

    @property
    def timestamp(self) -> int:
        """Exchange message time, epoch ms."""
        return int(self.data["timestamp"])

    @property
    def sequential_id(self) -> int | None:
        """Trade identity (unique per market, not ordered); None for ticker/orderbook."""
        value = self.data.get("sequential_id")
        return None if value is None else int(value)

    @property
    def trade_timestamp(self) -> int | None:
        value = self.data.get("trade_timestamp")
        return None if value is None else int(value)

    @property
    def stream_type(self) -> str | None:
        """``SNAPSHOT`` or ``REALTIME`` (None when the frame did not say)."""
        value = self.data.get("stream_type")
        return None if value is None else str(value)


@dataclass(slots=True)
class StatusFrame:
    """``{"status":"UP"}``, the answer to a text ``PING``."""

    status: str


@dataclass(slots=True)
class ErrorFrame:
    """``{"error":{"name":"NO_TICKET","message":"..."}}`` sent by the exchange."""

    name: str
    message: str
    raw: bytes


def _as_bytes(raw: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    return bytes(raw)


def parse_frame(raw: bytes | str) -> MarketEvent | StatusFrame | ErrorFrame:
    """Parse one WebSocket frame (binary or text; DEFAULT or SIMPLE format).

    Raises :class:`MalformedFrameError` for non-JSON, a non-object, an unknown type, and
    any field a sink or the dedup keys on or the resume point depends on that is missing,
    of the wrong type or out of range: ``code`` (a string), ``timestamp`` (epoch ms); trades
    :func:`trade_problem`; tickers ``acc_trade_volume`` (and ``trade_price``,
    ``trade_timestamp`` numbers when present); orderbooks the units, best prices and totals.
    Which markets are subscribed and whether a time is plausible against the exchange's
    clock are the caller's checks (:class:`upbitpipe.upbit.gate.FrameGate`).
    """
    parsed = parse_data(raw)
    if isinstance(parsed, dict):
        return MarketEvent(parsed["type"], parsed["market"], parsed, _as_bytes(raw))
    return parsed


def parse_data(raw: bytes | str) -> dict[str, Any] | StatusFrame | ErrorFrame:
    """:func:`parse_frame` without the :class:`MarketEvent` around a market event: its
    normalised dict, whose ``type`` and ``market`` keys say what it is (the collector's hot
    path: one object less per message). Same checks, same errors."""
    try:
        obj = _loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = f"not JSON: {exc}"
        raise MalformedFrameError(msg, _as_bytes(raw)) from None
    if type(obj) is not dict:
        msg = f"expected a JSON object, got {type(obj).__name__}"
        raise MalformedFrameError(msg, _as_bytes(raw))
    fields: dict[str, Any] = obj
    kind = fields.get("type")
    if kind is not None:  # DEFAULT format: already the long names; rename code in place
        market = fields.pop("code", _MISSING)
        if market is _MISSING:
            msg = "missing field 'code'"
            raise MalformedFrameError(msg, _as_bytes(raw))
        fields["market"] = market
        data = fields
    else:
        kind = fields.get("ty")
        if kind == "trade":
            data = _simple_trade(fields)
        elif kind == "ticker":
            data = _simple_ticker(fields)
        elif kind == "orderbook":
            data = {_ORDERBOOK_MAP.get(k, k): v for k, v in fields.items()}
            units = data.get("orderbook_units")
            if type(units) is list:
                data["orderbook_units"] = _simple_units(units, raw)
        elif kind is None:
            return _control_frame(fields, raw)
        else:
            msg = f"unknown type {kind!r}"
            raise MalformedFrameError(msg, _as_bytes(raw))
        market = data.get("market", _MISSING)
        if market is _MISSING:
            msg = "missing field 'code'"
            raise MalformedFrameError(msg, _as_bytes(raw))
    # what every event must hold (unrolled: this runs for every message)
    if kind not in _EVENT_TYPES:
        msg = f"unknown type {kind!r}"
        raise MalformedFrameError(msg, _as_bytes(raw))
    if type(market) is not str:
        msg = "field 'code' is not a string"
        raise MalformedFrameError(msg, _as_bytes(raw))
    stamp = data.get("timestamp")
    if type(stamp) is not int or not MIN_EPOCH_MS <= stamp < MAX_EPOCH_MS:
        msg = _bad("timestamp", stamp, "an epoch-ms integer")
        raise MalformedFrameError(msg, _as_bytes(raw))
    if kind == "trade":
        reason = trade_problem(data, stamp)
        if reason is not None:
            raise MalformedFrameError(reason, _as_bytes(raw))
    elif kind == "orderbook":
        _derive_book(data, raw)
    else:
        reason = _ticker_problem(data)
        if reason is not None:
            raise MalformedFrameError(reason, _as_bytes(raw))
    return data


def _ticker_problem(data: dict[str, Any]) -> str | None:
    """Why a ticker cannot be used, or None (the full parse's and the lite read's check)."""
    volume = data.get("acc_trade_volume")  # part of the ticker table's primary key
    if type(volume) not in _NUMBER:
        return _bad("acc_trade_volume", volume, "a number")
    # the rest of the dedup key (collector/dedup.py): a list or an object there would
    # make the key unhashable, and the collector's loop would stop on a TypeError
    price = data.get("trade_price")
    if type(price) not in _OPTIONAL_NUMBER:
        return _bad("trade_price", price, "a number")
    traded = data.get("trade_timestamp")  # a BIGINT column: an epoch-ms int or absent
    if traded is not None and (
        type(traded) is not int or not MIN_EPOCH_MS <= traded < MAX_EPOCH_MS
    ):
        return _bad("trade_timestamp", traded, "an epoch-ms integer")
    return None


def _bad(name: str, value: Any, wanted: str) -> str:
    if value is None:
        return f"missing field {name!r}"
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"field {name!r} is not {wanted}: {shown}"


def trade_problem(data: dict[str, Any], exchange_ms: int | None = None) -> str | None:
    """Why a normalised trade cannot be used, or None when it can.

    Every field that a sink keys on or the resume point is computed from is checked for
    type and range: ``sequential_id`` a positive 64-bit integer, ``trade_timestamp`` an
    epoch-ms integer in [2017, 2100) and, when ``exchange_ms`` (the frame's own exchange
    time) is given, no later than it by more than :data:`TRADE_AHEAD_TOLERANCE_MS` - a
    trade from the future would otherwise pin the market's resume point and land in a
    ``dt`` partition ahead of time. Prices and volumes are numbers (never strings), the
    price and volume positive. Shared by the WebSocket path and the REST backfill.
    """
    try:  # the usual trade, all of whose fields are there and fine: one expression
        sid = data["sequential_id"]
        ts = data["trade_timestamp"]
        price = data["trade_price"]
        volume = data["trade_volume"]
        if (
            type(sid) is int
            and 0 < sid < MAX_BIGINT
            and type(ts) is int
            and MIN_EPOCH_MS <= ts < MAX_EPOCH_MS
            and (exchange_ms is None or ts <= exchange_ms + TRADE_AHEAD_TOLERANCE_MS)
            and type(price) in _NUMBER
            and price > 0
            and type(volume) in _NUMBER
            and volume > 0
            and type(data["prev_closing_price"]) in _OPTIONAL_NUMBER
            and type(data["change_price"]) in _OPTIONAL_NUMBER
            and type(data["best_ask_price"]) in _OPTIONAL_NUMBER
            and type(data["best_ask_size"]) in _OPTIONAL_NUMBER
            and type(data["best_bid_price"]) in _OPTIONAL_NUMBER
            and type(data["best_bid_size"]) in _OPTIONAL_NUMBER
        ):
            return None
    except KeyError:  # a field missing: the checks below say whether that matters
        pass
    return _trade_problem(data, exchange_ms)


def _trade_problem(data: dict[str, Any], exchange_ms: int | None) -> str | None:
    get = data.get
    sid = get("sequential_id")
    if type(sid) is not int or not 0 < sid < MAX_BIGINT:
        return _bad("sequential_id", sid, "a positive 64-bit integer")
    ts = get("trade_timestamp")
    if type(ts) is not int or not MIN_EPOCH_MS <= ts < MAX_EPOCH_MS:
        return _bad("trade_timestamp", ts, "an epoch-ms integer")
    if exchange_ms is not None and ts > exchange_ms + TRADE_AHEAD_TOLERANCE_MS:
        return (
            f"trade_timestamp {ts} is {(ts - exchange_ms) / 1000:.0f}s after the frame's "
            f"exchange time {exchange_ms}"
        )
    price: Any = get("trade_price")
    if type(price) not in _NUMBER or not price > 0:
        return _bad("trade_price", price, "a positive number")
    volume: Any = get("trade_volume")
    if type(volume) not in _NUMBER or not volume > 0:
        return _bad("trade_volume", volume, "a positive number")
    for name in TRADE_OPTIONAL_NUMBERS:
        if type(get(name)) not in _OPTIONAL_NUMBER:
            return _bad(name, get(name), "a number")
    return None


def _simple_trade(f: dict[str, Any]) -> dict[str, Any]:
    """SIMPLE trade -> normalised; a literal dict when the frame has exactly Upbit's 18 keys."""
    if len(f) == 18:
        try:
            return {
                "type": f["ty"],
                "market": f["cd"],
                "timestamp": f["tms"],
                "trade_date": f["td"],
                "trade_time": f["ttm"],
                "trade_timestamp": f["ttms"],
                "trade_price": f["tp"],
                "trade_volume": f["tv"],
                "ask_bid": f["ab"],
                "prev_closing_price": f["pcp"],
                "change": f["c"],
                "change_price": f["cp"],
                "sequential_id": f["sid"],
                "best_ask_price": f["bap"],
                "best_ask_size": f["bas"],
                "best_bid_price": f["bbp"],
                "best_bid_size": f["bbs"],
                "stream_type": f["st"],
            }
        except KeyError:
            pass
    return {_TRADE_MAP.get(k, k): v for k, v in f.items()}


def _simple_ticker(f: dict[str, Any]) -> dict[str, Any]:
    """SIMPLE ticker -> normalised; a literal dict (in Upbit's key order) when the frame has
    exactly Upbit's 35 keys, ~2x the generic key map."""
    if len(f) == 35:
        try:
            return {
                "type": f["ty"],
                "market": f["cd"],
                "opening_price": f["op"],
                "high_price": f["hp"],
                "low_price": f["lp"],
                "trade_price": f["tp"],
                "prev_closing_price": f["pcp"],
                "acc_trade_price": f["atp"],
                "change": f["c"],
                "change_price": f["cp"],
                "signed_change_price": f["scp"],
                "change_rate": f["cr"],
                "signed_change_rate": f["scr"],
                "ask_bid": f["ab"],
                "trade_volume": f["tv"],
                "acc_trade_volume": f["atv"],
                "trade_date": f["tdt"],
                "trade_time": f["ttm"],
                "trade_timestamp": f["ttms"],
                "acc_ask_volume": f["aav"],
                "acc_bid_volume": f["abv"],
                "highest_52_week_price": f["h52wp"],
                "highest_52_week_date": f["h52wdt"],
                "lowest_52_week_price": f["l52wp"],
                "lowest_52_week_date": f["l52wdt"],
                "trade_status": f["ts"],
                "market_state": f["ms"],
                "market_state_for_ios": f["msfi"],
                "is_trading_suspended": f["its"],
                "delisting_date": f["dd"],
                "market_warning": f["mw"],
                "timestamp": f["tms"],
                "acc_trade_price_24h": f["atp24h"],
                "acc_trade_volume_24h": f["atv24h"],
                "stream_type": f["st"],
            }
        except KeyError:
            pass
    return {_TICKER_MAP.get(k, k): v for k, v in f.items()}


def _simple_units(units: list[Any], raw: bytes | str) -> list[dict[str, Any]]:
    """Expand ``obu`` entries; the literal-dict fast path is ~4x a generic key map."""
    try:
        return [
            {"ask_price": u["ap"], "bid_price": u["bp"], "ask_size": u["as"], "bid_size": u["bs"]}
            if len(u) == 4
            else _simple_unit(u, raw)
            for u in units
        ]
    except (KeyError, TypeError):
        return [_simple_unit(u, raw) for u in units]


def _simple_unit(unit: Any, raw: bytes | str) -> dict[str, Any]:
    if type(unit) is not dict:
        msg = "orderbook unit is not an object"
        raise MalformedFrameError(msg, _as_bytes(raw))
    fields: dict[str, Any] = unit
    return {UNIT_SIMPLE.get(k, k): v for k, v in fields.items()}


#: Fields ``parse_frame`` adds to a book; they are not on the wire.
DERIVED_BOOK_FIELDS = ("best_ask_price", "best_bid_price", "spread")


def to_default_wire(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`parse_frame`: an event's data (or a data-contract record) as an
    Upbit DEFAULT-format message -- ``market`` back to ``code``, no ``_`` metadata, no
    derived book fields. ``parse_frame(orjson.dumps(to_default_wire(k, d)))`` gives ``d``
    back (less the metadata)."""
    wire: dict[str, Any] = {"type": kind}
    for key, value in data.items():
        if key == "market":
            wire["code"] = value
        elif not key.startswith("_"):
            wire[key] = value
    if kind == "orderbook":
        for name in DERIVED_BOOK_FIELDS:
            wire.pop(name, None)
    return wire


def metadata_suffix(ingested_at: int, source: str, collector: str) -> bytes:
    """The end of a record's JSON that :func:`splice_record` appends: the ``_`` metadata
    fields and the closing brace (one per batch of frames received in the same millisecond)."""
    return b',"_ingested_at":%d,"_source":%b,"_collector":%b}' % (
        ingested_at,
        orjson.dumps(source),
        orjson.dumps(collector),
    )


# What splicing needs of a DEFAULT book, checked on its bytes (see ``splice_record``).
_BOOK_PREFIX: Final = b'{"type":"orderbook","code":"'
_JSON_NUMBER = rb"-?[0-9][-+.0-9eE]*"  # a JSON number (the frame is valid JSON: orjson read it)
# a book as Upbit sends it, from the market code to its units: timestamp and both totals
_BOOK_HEAD: Final = re.compile(
    rb'[^"\\]*","timestamp":[0-9]+,"total_ask_size":%b,"total_bid_size":%b,"orderbook_units":\['
    % (_JSON_NUMBER, _JSON_NUMBER)
)
# a key the record gets (or loses) apart from the frame's own: after the units it makes
# the splice fall back
_BOOK_TAIL_CLASH: Final = re.compile(
    rb'"(?:code"|market"|type"|_|best_ask_price"|best_bid_price"|spread"|total_ask_size"'
    rb'|total_bid_size")'
)


def splice_record(raw: bytes, kind: str, data: dict[str, Any], suffix: bytes) -> bytes | None:
    """The data-contract JSON of a live DEFAULT-format orderbook, spliced from its frame
    bytes instead of serialising ``data`` again; None for anything else (the caller then
    serialises the record).

    ``data`` is what :func:`parse_frame` made of ``raw``, ``suffix`` the
    :func:`metadata_suffix`. The result is ``raw`` with the top-level ``"code"`` key renamed
    ``"market"``, the derived best prices and spread, and the metadata appended before the
    closing brace: ``orjson.loads`` of it equals the record. Key order and number spelling
    are the exchange's, which no reader depends on.

    Books, and the tickers and trades of :func:`parse_flat_lite` (whose scanner proved
    them flat: the record is the frame with its ``"code"`` key renamed ``"market"`` and the
    metadata appended). A trade or ticker the full parse read is never spliced: it is a
    flat dict that ``orjson.dumps`` encodes faster than a splice could prove it safe
    (benchmarks/README.md, "Kafka values spliced"); a book's 30 unit dicts are what makes
    encoding it dear.

    The shape, checked on the bytes: the frame starts ``{"type":"orderbook","code":"`` (as
    Upbit sends it, so that ``code`` key is the top-level one), goes on with ``timestamp``,
    ``total_ask_size`` and ``total_bid_size`` (numbers), then ``orderbook_units``, one flat
    array of objects, and ends with ``}``; it has no backslash (so every ``"`` delimits a
    string, and no key hides in one); after the units come no object, no array and none of
    the keys the record sets (``code``, ``market``, ``type``, ``_…``, the derived ones, the
    totals). A book without units is :func:`parse_book_lite`'s, whose scanner proved all
    that: it is spliced without checking again.
    """
    if kind != "orderbook":
        if data.get(_LITE_KEY) is _LITE:  # parse_flat_lite's: the scanner proved the shape
            start = _TICKER_CODE if kind == "ticker" else _TRADE_CODE
            return b"".join((raw[:start], b'"market"', raw[start + 6 : -1], suffix))
        return None
    if not raw.startswith(_BOOK_PREFIX) or raw[-1] != 0x7D:
        return None
    if "orderbook_units" not in data:  # parse_book_lite's: the scanner proved the shape
        return _splice(raw, data, suffix)
    if b"\\" in raw:
        return None
    start = len(_BOOK_PREFIX)
    head = _BOOK_HEAD.match(raw, start)
    if head is None:
        return None
    first = head.end()
    end = raw.find(b"]", first)
    # the first "]" closes the units when no "[" comes before it and nothing after it is
    # an array or an object: then the rest of the frame is top-level text
    if (
        end < 0
        or raw.find(b"[", first, end) >= 0
        or raw.find(b"]", end + 1) >= 0
        or raw.find(b"{", end) >= 0
        or _BOOK_TAIL_CLASH.search(raw, end) is not None
    ):
        return None
    return _splice(raw, data, suffix)


def _splice(raw: bytes, data: dict[str, Any], suffix: bytes) -> bytes:
    """:func:`splice_record` of a book whose shape is proven."""
    derived = orjson.dumps(
        {
            "best_ask_price": data["best_ask_price"],
            "best_bid_price": data["best_bid_price"],
            "spread": data["spread"],
        }
    )
    return b"".join((raw[:20], b'"market"', raw[26:-1], b",", derived[1:-1], suffix))


#: spread -> the spread rounded (``round`` of a float with digits costs ~250 ns; a market's
#: best prices change far less often than its book, so most books repeat a recent spread)
_ROUNDED: Final[dict[float, float]] = {}
_ROUNDED_MAX: Final = 4096


def _spread(difference: Any) -> Any:
    """``round(difference, 10)``: float noise off the spread (``ask - bid``), memoised."""
    if type(difference) is not float or not difference:  # ints; 0.0 and -0.0 are equal keys
        return round(difference, 10)
    rounded = _ROUNDED.get(difference)
    if rounded is None:
        if len(_ROUNDED) >= _ROUNDED_MAX:
            _ROUNDED.clear()
        rounded = _ROUNDED[difference] = round(difference, 10)
    return rounded


def _derive_book(data: dict[str, Any], raw: bytes | str) -> None:
    """Add best prices, spread and totals (totals only if the frame lacks them).

    Thin BTC- and USDT-market books pad the missing side with zero-size units: those are
    not levels. The best ask (bid) is the first unit with a positive ask (bid) size; a side
    with none is empty, and then its best price and the spread are None, never 0.
    """
    units = data.get("orderbook_units")
    if type(units) is not list:
        msg = "orderbook without 'orderbook_units' list"
        raise MalformedFrameError(msg, _as_bytes(raw))
    try:
        ask = bid = None
        for unit in units:
            if unit["ask_size"] > 0:
                ask = unit["ask_price"]
                break
        for unit in units:
            if unit["bid_size"] > 0:
                bid = unit["bid_price"]
                break
        if type(ask) not in _OPTIONAL_NUMBER or type(bid) not in _OPTIONAL_NUMBER:
            # part of the dedup key: a list there would make it unhashable (and the
            # spread is taken only when both sides have one)
            msg = f"best price is not a number: ask {ask!r:.40}, bid {bid!r:.40}"
            raise MalformedFrameError(msg, _as_bytes(raw))
        data["best_ask_price"] = ask
        data["best_bid_price"] = bid
        data["spread"] = None if ask is None or bid is None else _spread(ask - bid)
        if data.get("total_ask_size") is None:
            data["total_ask_size"] = sum(unit["ask_size"] for unit in units)
        if data.get("total_bid_size") is None:
            data["total_bid_size"] = sum(unit["bid_size"] for unit in units)
    except (KeyError, TypeError) as exc:
        msg = f"bad orderbook unit: {exc!r}"
        raise MalformedFrameError(msg, _as_bytes(raw)) from None
    for name in ("total_ask_size", "total_bid_size"):  # part of the table's primary key
        value = data[name]
        if type(value) not in _NUMBER:
            msg = _bad(name, value, "a number")
            raise MalformedFrameError(msg, _as_bytes(raw))


def _load_scanner(name: str) -> Callable[[bytes], Any] | None:
    """``name`` (``scan_book`` or ``scan_flat``) of the C frame scanner (``_bookscan.c``), or
    None when it is not built or ``UPBITPIPE_PURE_PYTHON`` is set (then the lite reads
    always say None and the full parse reads every frame)."""
    # by name at run time: an import statement would make native.py (and what it imports)
    # part of the compiled codec for the stale check (native._own_imports)
    native = importlib.import_module("upbitpipe.native")
    if native.pure_python_requested():
        return None
    try:
        module = importlib.import_module("upbitpipe.upbit._bookscan")
    except ImportError:  # no compiler at install, or a pure-Python install
        return None
    scan: Callable[[bytes], Any] | None = getattr(module, name, None)
    return scan


#: ``_bookscan.scan_book``, or None (pure Python: :func:`parse_book_lite` always says None)
BOOK_SCANNER: Final = _load_scanner("scan_book")

#: ``_bookscan.scan_flat``, or None (pure Python: :func:`parse_flat_lite` always says None)
FLAT_SCANNER: Final = _load_scanner("scan_flat")

# A lite ticker or trade carries this object under this key: no parsed frame can (orjson
# makes no such object), splice_record splices only what carries it, and orjson.dumps
# refuses it, so a dict without all the frame's fields can never become a record.
_LITE_KEY: Final = "_lite"
_LITE: Final[Any] = object()
_TRADE_PREFIX: Final = b'{"type":"trade","code":"'
_TICKER_PREFIX: Final = b'{"type":"ticker","code":"'
_TRADE_CODE: Final = 16  # where the "code" key starts in a trade or ticker frame
_TICKER_CODE: Final = 17


def is_partial(data: dict[str, Any]) -> bool:
    """Whether ``data`` is a lite read (:func:`parse_book_lite`, :func:`parse_flat_lite`):
    a dict that must be spliced, never serialised as a record."""
    return _LITE_KEY in data or (data["type"] == "orderbook" and "orderbook_units" not in data)


def parse_book_lite(raw: bytes) -> dict[str, Any] | None:
    """:func:`parse_data` of a DEFAULT orderbook frame without ``orderbook_units``, or None.

    For a collector whose sinks read no records (Kafka alone): its Kafka value is spliced
    from the frame's bytes (:func:`splice_record`), and dedup and the gate read only the
    head fields and the best prices, so the 30 unit dicts and 120 floats a full parse
    builds would be freed unread (~6 of the ~8 µs a book costs). The C scanner reads the
    frame in one pass in the narrow form Upbit sends (``_bookscan.c`` says which); None
    for anything else, for a timestamp out of range, and always without the scanner: the
    caller then runs :func:`parse_data`, which decides (and names the fault). What it
    returns equals :func:`parse_data`'s dict less the units, with the same types
    (tests/unit/test_bookscan.py), and :func:`splice_record` never refuses it.
    """
    scan = BOOK_SCANNER
    if scan is None or not raw.startswith(_BOOK_PREFIX) or raw[-1] != 0x7D:
        return None  # (the scanner checks both too: all splice_record needs of this book)
    data: dict[str, Any] | None = scan(raw)
    if data is None:
        return None
    stamp: int = data["timestamp"]
    if not MIN_EPOCH_MS <= stamp < MAX_EPOCH_MS:
        return None
    ask = data["best_ask_price"]
    bid = data["best_bid_price"]
    data["spread"] = None if ask is None or bid is None else _spread(ask - bid)
    return data


def parse_flat_lite(raw: bytes) -> dict[str, Any] | None:
    """:func:`parse_data` of a DEFAULT ticker or trade frame, only the fields a collector
    whose sinks read no records reads, or None.

    Such a collector's Kafka value is the frame with ``code`` renamed (spliced by
    :func:`splice_record`), and the gate, dedup and the resume point read ``type``,
    ``market``, ``timestamp`` and a few more (``_bookscan.c``'s ``wanted_key``): the ~30
    other values a full parse builds, and serialising them again, are work for nobody.
    The C scanner reads the frame in the flat form Upbit sends; the checks are the full
    parse's (:func:`trade_problem` with the frame's time, the ticker's). None for
    anything else, for any check that fails and always without the scanner: the caller
    then runs :func:`parse_data`, which decides (and names the fault). What it returns
    equals :func:`parse_data`'s dict restricted to its keys, with the same types, plus a
    marker that makes :func:`splice_record` splice it and ``orjson.dumps`` refuse it
    (tests/unit/test_flatscan.py).
    """
    scan = FLAT_SCANNER
    if scan is None or raw[-1:] != b"}":
        return None
    if not (raw.startswith(_TRADE_PREFIX) or raw.startswith(_TICKER_PREFIX)):
        return None  # (the scanner checks both too: all splice_record needs of the frame)
    data: dict[str, Any] | None = scan(raw)
    if data is None:
        return None
    stamp = data.get("timestamp")
    if type(stamp) is not int or not MIN_EPOCH_MS <= stamp < MAX_EPOCH_MS:
        return None
    if data["type"] == "trade":
        problem = trade_problem(data, stamp)
    else:
        problem = _ticker_problem(data)
    if problem is not None:
        return None
    data[_LITE_KEY] = _LITE
    return data


def _control_frame(obj: dict[str, Any], raw: bytes | str) -> StatusFrame | ErrorFrame:
    if "status" in obj:
        return StatusFrame(str(obj["status"]))
    error = obj.get("error")
    if error is not None:
        if isinstance(error, dict):
            return ErrorFrame(
                str(error.get("name", "UNKNOWN")), str(error.get("message", "")), _as_bytes(raw)
            )
        return ErrorFrame(str(error), "", _as_bytes(raw))
    msg = "no 'type'/'ty', 'status' or 'error' field"
    raise MalformedFrameError(msg, _as_bytes(raw))


def orderbook_code(code: str, depth: int) -> str:
    """``KRW-BTC`` with depth 15 -> ``KRW-BTC.15``; depth 30 (Upbit's default) stays bare."""
    if depth not in ORDERBOOK_DEPTHS:
        msg = f"orderbook depth must be one of {ORDERBOOK_DEPTHS}, got {depth}"
        raise ValueError(msg)
    return code if depth == DEFAULT_ORDERBOOK_DEPTH else f"{code}.{depth}"


def subscribe_request(
    ticket: str,
    types: Sequence[str],
    codes: Sequence[str],
    *,
    fmt: str = "SIMPLE",
    orderbook_depth: int = 30,
    only_realtime: bool = False,
    only_snapshot: bool = False,
) -> str:
    """The JSON text of one subscribe request: ``[{ticket}, {type, codes, ...}..., {format}]``.

    >>> subscribe_request("t1", ["trade"], ["KRW-BTC"], only_realtime=True)
    '[{"ticket":"t1"},{"type":"trade","codes":["KRW-BTC"],"is_only_realtime":true},{"format":"SIMPLE"}]'
    """
    if not ticket:
        msg = "ticket must not be empty"
        raise ValueError(msg)
    if fmt not in FORMATS:
        msg = f"format must be one of {FORMATS}, got {fmt!r}"
        raise ValueError(msg)
    if only_realtime and only_snapshot:
        msg = "only_realtime and only_snapshot exclude each other"
        raise ValueError(msg)
    upper = [code.upper() for code in codes]
    request: list[dict[str, Any]] = [{"ticket": ticket}]
    for kind in types:
        if kind not in EVENT_TYPES:
            msg = f"unknown type {kind!r}; use one of {EVENT_TYPES}"
            raise ValueError(msg)
        item: dict[str, Any] = {"type": kind}
        if kind == "orderbook":
            item["codes"] = [orderbook_code(code, orderbook_depth) for code in upper]
        else:
            item["codes"] = upper
        if only_realtime:
            item["is_only_realtime"] = True
        if only_snapshot:
            item["is_only_snapshot"] = True
        request.append(item)
    request.append({"format": fmt})
    return orjson.dumps(request).decode()
