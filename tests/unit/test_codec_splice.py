"""The Kafka value spliced from a DEFAULT book's bytes (``codec.splice_record``) says exactly
what serialising the record says, for every book the collector sees; any frame of another
shape (and every trade and ticker: serialising those is cheaper) falls back (None), never
to a different record."""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from upbitpipe.replay.market import SyntheticMarket
from upbitpipe.upbit.codec import (
    MalformedFrameError,
    MarketEvent,
    metadata_suffix,
    parse_frame,
    splice_record,
    to_default_wire,
)

DATA = Path(__file__).parent.parent / "data"
NOW = 1_795_460_000_000
RECEIVED = NOW + 7
COLLECTOR = "host-1"
SUFFIX = metadata_suffix(RECEIVED, "upbit_websocket", COLLECTOR)


def record_json(raw: bytes) -> tuple[MarketEvent, Any]:
    """The parsed event and what ``orjson.dumps(record)`` reads back as (the reference)."""
    event = parse_frame(raw)
    assert isinstance(event, MarketEvent)
    record = dict(event.data)
    record["_ingested_at"] = RECEIVED
    record["_source"] = "upbit_websocket"
    record["_collector"] = COLLECTOR
    return event, orjson.loads(orjson.dumps(record))


def spliced(raw: bytes) -> tuple[bytes | None, Any]:
    event, expected = record_json(raw)
    return splice_record(event.raw, event.type, event.data, SUFFIX), expected


def default(obj: dict[str, Any]) -> bytes:
    """A DEFAULT frame from a SIMPLE one (real captures are SIMPLE)."""
    event = parse_frame(orjson.dumps(obj))
    assert isinstance(event, MarketEvent)
    return orjson.dumps(to_default_wire(event.type, event.data))


def synthetic_frames() -> list[bytes]:
    market = SyntheticMarket(["KRW-BTC", "KRW-XRP", "KRW-DOGE"], 7, NOW, 0.4)
    out: list[bytes] = []
    for wire in market.generate(600, NOW):
        out.append(wire.frame("DEFAULT"))
        out.append(wire.frame("DEFAULT", snapshot=True))
        if wire.type == "orderbook":
            out.append(wire.frame("DEFAULT", depth=15))
    return out


def real_frames() -> list[bytes]:
    out = [line for line in (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()]
    for line in (DATA / "upbit_simple_frames.jsonl").read_bytes().splitlines():
        out.append(default(orjson.loads(line)))
    with gzip.open(DATA / "upbit_cryptofeed_2021.jsonl.gz") as fh:
        for line in fh:
            frame = orjson.loads(line)["frame"]
            out.append(default(orjson.loads(frame)))
    return out


def check_books_spliced(frames: list[bytes]) -> int:
    """Every book splices to its record, every trade and ticker falls back; the books."""
    books = 0
    for raw in frames:
        value, expected = spliced(raw)
        if expected["type"] != "orderbook":
            assert value is None
            continue
        books += 1
        assert value is not None, raw[:80]
        assert orjson.loads(value) == expected
        assert value.count(b'"market"') == 1 and b'"code"' not in value
    return books


def test_every_synthetic_book_splices_to_its_record() -> None:
    frames = synthetic_frames()
    kinds = {parse_frame(f).type for f in frames}  # type: ignore[union-attr]
    assert kinds == {"ticker", "trade", "orderbook"}
    assert check_books_spliced(frames) > 300


def test_every_real_book_splices_to_its_record() -> None:
    frames = real_frames()
    assert len(frames) == 3 + 3 + 449
    assert check_books_spliced(frames) == 1 + 1 + 145


def book(units: list[dict[str, Any]], **extra: Any) -> bytes:
    frame: dict[str, Any] = {"type": "orderbook", "code": "KRW-BTC", "timestamp": NOW}
    frame.update(extra)
    frame["orderbook_units"] = units
    frame["stream_type"] = "REALTIME"
    return orjson.dumps(frame)


def unit(ask: float, bid: float, ask_size: float, bid_size: float) -> dict[str, float]:
    return {"ask_price": ask, "bid_price": bid, "ask_size": ask_size, "bid_size": bid_size}


def test_thin_books_with_an_empty_side() -> None:
    thin = [unit(101.0, 99.0, 0.0, 2.0), unit(102.0, 98.0, 0.0, 1.0)]
    no_bids = [unit(101.0, 99.0, 1.0, 0.0)]
    for raw in (
        book(thin, total_ask_size=0.0, total_bid_size=3.0),  # no asks: best ask and spread None
        book(no_bids, total_ask_size=1.0, total_bid_size=0.0),
        book([], total_ask_size=0, total_bid_size=0),  # no units at all
    ):
        value, expected = spliced(raw)
        assert value is not None, raw
        assert orjson.loads(value) == expected
    value, expected = spliced(book(thin, total_ask_size=0.0, total_bid_size=3.0))
    assert expected["best_ask_price"] is None and expected["spread"] is None
    assert value is not None and b'"best_ask_price":null' in value


# Frames of other shapes: each must fall back (None) - or, where splicing is still right,
# give the same record. The reference is always orjson.dumps(record).
TRADE = (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()[1]
TICKER = (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()[0]
BOOK = (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()[2]
UNITS = orjson.loads(BOOK)["orderbook_units"]


def with_keys(raw: bytes, **extra: Any) -> bytes:
    obj = orjson.loads(raw)
    obj.update(extra)
    return orjson.dumps(obj)


FALLBACKS = {
    "trade": TRADE,
    "ticker": TICKER,
    "simple trade": (DATA / "upbit_simple_frames.jsonl").read_bytes().splitlines()[1],
    "simple book": (DATA / "upbit_simple_frames.jsonl").read_bytes().splitlines()[2],
    "pretty-printed": orjson.dumps(orjson.loads(TRADE), option=orjson.OPT_INDENT_2),
    "space after the code key": TRADE.replace(b'"code":', b'"code" :'),
    "trailing newline": TRADE + b"\n",
    "code not second": with_keys(TRADE.replace(b'"code":"KRW-BTC",', b""), code="KRW-BTC"),
    "a market key too": with_keys(TRADE, market="KRW-ETH"),
    "a nested code key": with_keys(TRADE, extra={"code": "KRW-ETH"}),
    "a nested market key": with_keys(TICKER, extra={"market": "x"}),
    "metadata in the frame": with_keys(TRADE, _source="elsewhere"),
    "an escaped string": with_keys(TRADE, note='say "code":"KRW-ETH"'),
    "a unicode escape": TRADE.replace(b'"REALTIME"', b'"REAL\\u0054IME"'),
    "a second code key": TRADE[:-1] + b',"code":"KRW-ETH"}',
    "a second type key": TRADE[:-1] + b',"type":null,"ty":"trade","cd":"KRW-ETH"}',
    "book: derived key in the frame": with_keys(BOOK, spread=5.0),
    "book: best price in the frame": with_keys(BOOK, best_bid_price=1.0),
    "book: null total": with_keys(BOOK, total_ask_size=None),
    # the parser sums missing totals: spliced, they would have to be appended
    "book: no totals": book(UNITS),
    "book: one total": book(UNITS, total_bid_size=3.0),
    "book: totals only in a unit": book([{**UNITS[0], "total_ask_size": 5.0}, *UNITS[1:]]),
    "book: a total after the units": book(UNITS, total_ask_size=1.0)[:-1]
    + b',"total_bid_size":2.0}',
    "book: whitespace in its head": BOOK.replace(b'"total_ask_size":', b'"total_ask_size" : '),
    "book: total twice": BOOK[:-1] + b',"total_ask_size":9.5}',
    "book: object before the units": with_keys(BOOK, x={"total_ask_size": 1}),
    "book: object after the units": BOOK[:-1] + b',"x":{"a":1}}',
    "book: array in a unit": book([{**UNITS[0], "x": [1]}, *UNITS[1:]]),
    "book: array after the units": BOOK[:-1] + b',"x":[1]}',
    "book: ] in a string of the last unit": book(
        [*UNITS[:-1], {"x": "}],", "total_ask_size": 5.0, **UNITS[-1]}]
    ),
}


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_frames_of_another_shape_fall_back(name: str) -> None:
    raw = FALLBACKS[name]
    try:
        value, expected = spliced(raw)
    except MalformedFrameError:
        return  # not an event at all (the collector dead-letters it)
    assert value is None, value


def spaced(raw: bytes) -> bytes:
    """Whitespace around every separator in and after a book's units."""
    cut = raw.index(b'"orderbook_units":[') + 19
    return raw[:cut] + raw[cut:].replace(b",", b" ,\n\t").replace(b'":', b'" :\r ')


FITS = ["nested keys of units", "keys like code", "whitespace in the units and after"]


@pytest.mark.parametrize("name", FITS)
def test_frames_that_still_fit_splice_right(name: str) -> None:
    raw = {
        # keys named like the special ones, but inside the units: not the record's
        "nested keys of units": book(
            [{**u, "code": "x", "market": "y", "_a": 1, "spread": 0} for u in UNITS],
            total_ask_size=1.5,
            total_bid_size=2.5,
        ),
        # a key that ends in code, values that contain it
        "keys like code": BOOK[:-1] + b',"market_code":"KRW-ETH","note":"code market type"}',
        "whitespace in the units and after": spaced(BOOK),
    }[name]
    value, expected = spliced(raw)
    assert value is not None
    assert orjson.loads(value) == expected


def test_metadata_suffix_escapes_the_collector_id() -> None:
    suffix = metadata_suffix(RECEIVED, "upbit_websocket", 'a"b')
    assert orjson.loads(b'{"x":1' + suffix) == {
        "x": 1,
        "_ingested_at": RECEIVED,
        "_source": "upbit_websocket",
        "_collector": 'a"b',
    }


SNIPPETS = [
    b" ",
    b"\n",
    b',"code":"KRW-ETH"',
    b',"market":"KRW-ETH"',
    b',"type":null',
    b',"_source":"x"',
    b',"spread":1',
    b',"total_ask_size":null',
    b',"total_bid_size":7',
    b',"x":{"code":"a"}',
    b',"x":[1,2]',
    b',"y":"]"',
    b',"z":"\\"code\\":1"',
    b"{",
    b"}",
    b"]",
]


def test_random_edits_never_splice_a_different_record() -> None:
    """Edits at random places: whatever still parses as an event either falls back or
    splices to exactly its record."""
    rng = random.Random(13)
    frames = [TRADE, TICKER, BOOK, *synthetic_frames()[:30]]
    tried = spliced_ok = 0
    for _ in range(4000):
        raw = rng.choice(frames)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(raw) + 1)
            raw = raw[:at] + rng.choice(SNIPPETS) + raw[at:]
        try:
            value, expected = spliced(raw)
        except (MalformedFrameError, orjson.JSONDecodeError, AssertionError):
            continue
        tried += 1
        if value is not None:
            spliced_ok += 1
            assert orjson.loads(value) == expected, raw
    assert tried > 200 and spliced_ok > 20 and tried - spliced_ok > 20  # both outcomes
