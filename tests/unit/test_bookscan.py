"""The C book scanner (``upbit/_bookscan.c``) against the full parse, on real and broken books.

:func:`~upbitpipe.upbit.codec.parse_book_lite` reads a DEFAULT orderbook frame without its
units for a collector whose sinks read no records. Whenever it returns a dict, the full
:func:`~upbitpipe.upbit.codec.parse_data` must accept the frame too and say the same (less
the units; same values of the same types, floats to the bit) and
:func:`~upbitpipe.upbit.codec.splice_record` must give the same Kafka value from either:
checked on real books (DEFAULT, and the real SIMPLE books of tests/data renamed to DEFAULT
keys, which keeps the exchange's number spellings), the replay twin's books of 30 and 15
units, and thousands of mutations of them (numbers respelled, bytes flipped, keys reordered
or doubled, whitespace, escapes, non-ASCII, truncation, empty and zero-size units, tail
objects and arrays and clashing keys). Without the kernel (a pure-Python install) the
lite path always falls back to the full parse, which the service tests show too.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from frame_fuzz import mutants, mutate_common, typed

from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.config import Settings
from upbitpipe.replay.market import SyntheticMarket
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.memory import MemorySink
from upbitpipe.upbit import codec
from upbitpipe.upbit.codec import MalformedFrameError, parse_book_lite, parse_data, splice_record
from upbitpipe.upbit.gate import FrameGate
from upbitpipe.upbit.rest import UpbitRestClient

DATA = Path(__file__).parent.parent / "data"
MARKETS = ["KRW-BTC", "BTC-ETH", "KRW-LAMB"]
NOW = 1_795_460_000_000
ROUNDS = 20  # mutated copies of every base book (seeded): ~4,600 frames
SUFFIX = codec.metadata_suffix(NOW, "upbit_websocket", "c1")

kernel = pytest.mark.skipif(
    codec.BOOK_SCANNER is None,
    reason="the C book scanner (upbitpipe.upbit._bookscan) is not built: pure-Python install",
)

# SIMPLE book keys -> DEFAULT, replaced in the text so the numbers keep their spelling
_SIMPLE_KEYS = {
    b'"ty":': b'"type":',
    b'"cd":': b'"code":',
    b'"tms":': b'"timestamp":',
    b'"tas":': b'"total_ask_size":',
    b'"tbs":': b'"total_bid_size":',
    b'"obu":': b'"orderbook_units":',
    b'"ap":': b'"ask_price":',
    b'"bp":': b'"bid_price":',
    b'"as":': b'"ask_size":',
    b'"bs":': b'"bid_size":',
    b'"st":': b'"stream_type":',
    b'"lv":': b'"level":',
}

# what a number is respelled as: JSON and not JSON, beyond 64 bits, beyond a double, ...
SPELLINGS = (
    b"0",
    b"-0",
    b"0.0",
    b"-0.0",
    b"01",
    b"00.5",
    b"1.",
    b".5",
    b"-",
    b"+1",
    b"1e5",
    b"1E-3",
    b"1e+2",
    b"2.5E+3",
    b"1e",
    b"1e400",
    b"-1e400",
    b"1e-400",
    b"4.9e-324",
    b"1.7976931348623157e308",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"true",
    b"null",
    b'"1"',
    b"123456789012345678",
    b"-123456789012345678",
    b"1234567890123456789",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"123456789012345678901234567890",
    b"0.1000000000000000055511151231257827021181583404541015625",
    b"2.2250738585072011e-308",
    b"9007199254740993",
    b"9007199254740993.0",
    b"32287000",
    b"32287000.0",
    b"32287000.00000000",
)
# bytes a flip writes
FLIPS = b' \n\t",:{}[]\\-.eE0a\x00\x7f\xc3'
# tails appended before the closing brace
TAILS = (
    b',"level":1',
    b',"level":0,"level":0',
    b',"stream_type":"REALTIME","stream_type":"SNAPSHOT"',
    b',"x":{"a":1}',
    b',"x":[1]',
    b',"x":[]',
    b',"x":{}',
    b',"x":true,"y":false,"z":null',
    b',"x":"_private"',
    b',"x":"a]b"',
    b',"x":"a[b"',
    b',"x":"{"',
    b',"x":"code"',
    b',"x":"market"',
    b',"x":"spread"',
    b',"x":""',
    b',"":1',
    b',"_x":1',
    b',"code":"KRW-BTC"',
    b',"market":"KRW-BTC"',
    b',"type":"trade"',
    b',"timestamp":1795460000001',
    b',"total_ask_size":1',
    b',"total_bid_size":null',
    b',"orderbook_units":[]',
    b',"best_ask_price":1',
    b',"best_bid_price":1',
    b',"spread":1',
    b',"x":1.5e3',
    b',"x":-7',
    b',"x":"\\u0041"',
    b',"x":"caf\xc3\xa9"',
    b',"x":"tab\there"',
    b',"x" :1',
    b',"x":1 ',
    b",",
    b',"x"',
    b',"x":',
)
_NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*")


def _simple_books() -> list[bytes]:
    """The real SIMPLE books of tests/data in DEFAULT keys, with Upbit's number spellings."""
    books = []
    lines = gzip.decompress((DATA / "upbit_cryptofeed_2021.jsonl.gz").read_bytes()).splitlines()
    lines += (DATA / "upbit_simple_frames.jsonl").read_bytes().splitlines()
    for line in lines:
        frame = orjson.loads(line)["frame"].encode() if line.startswith(b'{"recv_ms"') else line
        if not frame.startswith(b'{"ty":"orderbook"'):
            continue
        for simple, default in _SIMPLE_KEYS.items():
            frame = frame.replace(simple, default)
        books.append(frame)
    return books


def _base_books() -> list[bytes]:
    real = [
        line
        for line in (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()
        if line.startswith(b'{"type":"orderbook"')
    ]
    market = SyntheticMarket(MARKETS[:2], 11, NOW, 0.5)
    synthetic = []
    for event in market.generate(90, NOW):
        if event.type == "orderbook":
            synthetic.append(event.frame("DEFAULT", 30))
            synthetic.append(event.frame("DEFAULT", 15, snapshot=True))
    return real + _simple_books() + synthetic


def _reorder(raw: bytes, rng: random.Random) -> bytes:
    obj = orjson.loads(raw)
    if rng.random() < 0.5 or not obj.get("orderbook_units"):
        items = list(obj.items())
        rng.shuffle(items)
        return orjson.dumps(dict(items))
    unit = rng.choice(obj["orderbook_units"])
    items = list(unit.items())
    rng.shuffle(items)
    unit.clear()
    unit.update(items)
    return orjson.dumps(obj)


def _units(raw: bytes, rng: random.Random) -> bytes:
    """Units emptied, padded with zero sizes, or their whole floats written as integers."""
    obj = orjson.loads(raw)
    units = obj["orderbook_units"]
    how = rng.randrange(4)
    if how == 0:
        obj["orderbook_units"] = []
    elif how == 1:
        side = rng.choice(("ask_size", "bid_size"))
        zero = rng.choice((0, 0.0, -0.0, -1, -0.5))
        for unit in units[: rng.randrange(len(units) + 1)]:
            unit[side] = zero
    elif how == 2:
        for unit in units:
            for key, value in unit.items():
                if isinstance(value, float) and value.is_integer():
                    unit[key] = int(value)
    else:
        for unit in units:
            for key in unit:
                if rng.random() < 0.3:
                    unit[key] = float(unit[key])
    return orjson.dumps(obj)


def _mutate_once(raw: bytes, rng: random.Random) -> bytes:
    how = rng.randrange(12)
    common = mutate_common(
        raw, rng, how, flips=FLIPS, spellings=SPELLINGS, number=_NUMBER, tails=TAILS
    )
    if common is not None:  # (0-5, as the other scanner's fuzz)
        return common
    if how == 6 and raw:  # whitespace or a byte inserted
        i = rng.randrange(len(raw))
        return raw[:i] + rng.choice((b" ", b"\n", b"\\", b"\xc3\xa9", b"\x00")) + raw[i:]
    if how == 7:  # an escape or non-ASCII in the market code
        return raw.replace(b'"KRW-', rng.choice((b'"KRW\\u002d', b'"KRW\\-', b'"KRW\xc3\xa9-')), 1)
    if how == 8:  # a head key doubled
        return raw.replace(
            b',"total_ask_size"',
            rng.choice(
                (b',"timestamp":1795460000001', b',"total_ask_size":7', b',"code":"KRW-BTC"')
            )
            + b',"total_ask_size"',
            1,
        )
    try:
        if how == 9:
            return _reorder(raw, rng)
        if how == 10:
            return _units(raw, rng)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        return raw
    # a unit key doubled or gone, or a unit of another shape
    return raw.replace(
        b',"bid_size":',
        rng.choice((b',"bid_size":1,"bid_size":', b',"x":1,"bid_size":', b',"bid_size":[1],"y":')),
        1,
    )


def _mutants(books: list[bytes], rounds: int) -> list[bytes]:
    return mutants(books, rounds, _mutate_once, seed=13)


def _check(raw: bytes) -> bool:
    """The lite parse agrees with the full one; True when it read the frame itself."""
    lite = parse_book_lite(raw)
    if lite is None:
        return False
    try:
        full = parse_data(raw)
    except MalformedFrameError as exc:  # pragma: no cover - the failure this test is for
        pytest.fail(f"the lite parse read a frame the full parse refuses ({exc}): {raw[:300]!r}")
    assert isinstance(full, dict)
    assert "orderbook_units" not in lite
    expected = {key: value for key, value in full.items() if key != "orderbook_units"}
    assert typed(lite) == typed(expected), raw[:300]
    spliced = splice_record(raw, "orderbook", lite, SUFFIX)
    assert spliced is not None, raw[:300]
    assert spliced == splice_record(raw, "orderbook", full, SUFFIX)
    assert orjson.loads(spliced) == {**full, **orjson.loads(b"{" + SUFFIX[1:])}
    return True


@kernel
def test_every_real_and_synthetic_book_is_read_as_the_full_parse_reads_it() -> None:
    books = _base_books()
    assert len(books) > 100
    assert all(_check(raw) for raw in books)  # every book as Upbit sends it: none falls back


@kernel
def test_mutated_books_are_read_as_the_full_parse_reads_them_or_left_to_it() -> None:
    mutants = _mutants(_base_books(), ROUNDS)
    read = sum(_check(raw) for raw in mutants)
    full = 0
    for raw in mutants:
        try:
            full += isinstance(parse_data(raw), dict)
        except MalformedFrameError:
            pass
    # the net catches both outcomes often: neither a scanner that refuses everything nor
    # one that reads everything the full parse reads would pass unnoticed
    assert len(mutants) > 3000
    assert 0.15 * len(mutants) < read < full


@kernel
@pytest.mark.parametrize(
    ("number", "value"),
    [
        (b"1e5", 1e5),
        (b"1E-3", 1e-3),
        (b"-0", 0),
        (b"-0.0", -0.0),
        (b"123456789012345678", 123456789012345678),
        (b"0.1000000000000000055511151231257827021181583404541015625", 0.1),
        (b"9007199254740993.0", 9007199254740992.0),
        (b"1e-400", 0.0),
        (b"01", None),
        (b"1.", None),
        (b".5", None),
        (b"NaN", None),
        (b"Infinity", None),
        (b"1e400", None),
        (b"9223372036854775808", None),
    ],
)
def test_number_spellings(number: bytes, value: float | None) -> None:
    raw = (
        b'{"type":"orderbook","code":"KRW-BTC","timestamp":1795460000000,"total_ask_size":'
        + number
        + b',"total_bid_size":2,"orderbook_units":[{"ask_price":2.5,"bid_price":2,'
        b'"ask_size":1,"bid_size":1}],"stream_type":"REALTIME","level":0}'
    )
    lite = parse_book_lite(raw)
    if value is None:
        assert lite is None
    else:
        assert lite is not None and _check(raw)
        assert repr(lite["total_ask_size"]) == repr(value)
        assert (lite["best_ask_price"], lite["best_bid_price"], lite["spread"]) == (2.5, 2, 0.5)


@kernel
def test_random_decimals_round_as_orjson_rounds_them() -> None:
    """The scanner's fast division and its strtod fallback against orjson, bit for bit:
    short and 17-to-25-digit mantissas, halfway cases, exponents, both signs."""
    rng = random.Random(7)
    head = b'{"type":"orderbook","code":"KRW-BTC","timestamp":1795460000000,"total_ask_size":'
    tail = b',"orderbook_units":[]}'
    checked = 0
    for _ in range(20_000):
        whole = str(rng.randrange(10 ** rng.randrange(1, 18))).encode()
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 26)))
        number = b"-" * (rng.random() < 0.2) + whole + b"." + fraction.encode()
        if rng.random() < 0.2:
            number += b"e" + str(rng.randrange(-30, 30)).encode()
        raw = head + number + b',"total_bid_size":' + number + tail
        lite = parse_book_lite(raw)
        if lite is None:  # a literal the scanner leaves to orjson (over 64 bytes)
            assert len(number) > 64
            continue
        expected = orjson.loads(number)
        assert repr(lite["total_ask_size"]) == repr(expected) == repr(lite["total_bid_size"])
        checked += 1
    assert checked > 19_000


@kernel
def test_zero_size_units_are_not_levels_and_an_empty_side_has_no_best_price() -> None:
    raw = (
        b'{"type":"orderbook","code":"BTC-ETH","timestamp":1795460000000,"total_ask_size":1.5,'
        b'"total_bid_size":0,"orderbook_units":[{"ask_price":0.031,"bid_price":0,"ask_size":0,'
        b'"bid_size":0.0},{"ask_price":0.032,"bid_price":0,"ask_size":1.5,"bid_size":0}],'
        b'"level":0}'
    )
    lite = parse_book_lite(raw)
    assert lite is not None and _check(raw)
    assert (lite["best_ask_price"], lite["best_bid_price"], lite["spread"]) == (0.032, None, None)
    empty = raw[: raw.index(b"[")] + b'[],"level":0}'
    lite = parse_book_lite(empty)
    assert lite is not None and _check(empty)
    assert (lite["best_ask_price"], lite["best_bid_price"]) == (None, None)


@kernel
def test_what_the_full_parse_refuses_or_reads_otherwise_is_left_to_it() -> None:
    good = _base_books()[0]
    assert parse_book_lite(good) is not None
    for raw in (
        good.replace(b'"timestamp":', b'"timestamp":1', 1),  # beyond 2100: the full parse says
        good + b" ",
        good[:-1] + b',"level":0}',  # a key twice: orjson keeps the last one
        good.replace(b":", b": ", 1),
        b'{"type":"orderbook","code":"KRW-BTC"}',
        b'{"ty":"orderbook"}',
        b"",
    ):
        assert parse_book_lite(raw) is None, raw[:100]
    assert codec.BOOK_SCANNER is not None
    for other in (good.decode(), bytearray(good), memoryview(good), None, 1):
        assert codec.BOOK_SCANNER(other) is None


@kernel
def test_the_kernel_is_listed_with_its_c_source_for_the_stale_check() -> None:
    from upbitpipe.native import native_status

    listed = {module.name: module for module in native_status().modules}
    scanner = listed["upbitpipe.upbit._bookscan"]
    assert scanner.source.name == "_bookscan.c" and not scanner.stale


def test_without_a_lite_read_the_gate_parses_in_full() -> None:
    """Whatever the kernel, the gate's lite path gives what its full path gives (units
    aside) and raises the same errors: the fallback of a pure-Python install."""
    gate, lite_gate = FrameGate(MARKETS), FrameGate(MARKETS)
    frames = _base_books()[:40] + [
        line for line in (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines() if line
    ]
    for raw in [*frames, b"[]", frames[0].replace(b"KRW-BTC", b"KRW-ZZZ")]:
        try:
            full: Any = gate.parse_data(raw, NOW)
        except MalformedFrameError as exc:
            full = (type(exc), exc.reason)
        try:
            lite: Any = lite_gate.parse_data_lite(raw, NOW)
        except MalformedFrameError as exc:
            lite = (type(exc), exc.reason)
        if isinstance(full, dict) and "orderbook_units" in full and "orderbook_units" not in lite:
            assert codec.BOOK_SCANNER is not None  # only the kernel leaves units out
            full = {key: value for key, value in full.items() if key != "orderbook_units"}
        if isinstance(lite, dict) and "_lite" in lite:  # a ticker or trade: test_flatscan.py
            lite = {key: value for key, value in lite.items() if key != "_lite"}
            full = {key: value for key, value in full.items() if key in lite}
        assert lite == full
    assert gate.clock.now_ms == lite_gate.clock.now_ms > 0


# -- the collector ----------------------------------------------------------------------------


class BytesSink(MemorySink):
    """Reads only ``value``, as the Kafka sink does."""

    name = "kafka"
    needs_record = False


def _collector(tmp_path: Path, sinks: list[Any]) -> CollectorService:
    plan = CollectorPlan(markets=MARKETS, types=["ticker", "trade", "orderbook"], shards=[MARKETS])
    settings = Settings()
    settings.collector.backfill = False
    settings.collector.state_dir = tmp_path / "state"
    return CollectorService(
        settings,
        plan,
        sinks,
        UpbitRestClient("http://127.0.0.1:9"),
        DeadLetterBox(tmp_path / "deadletter"),
    )


def _stream() -> list[tuple[bytes, int]]:
    """Synthetic ticker, trade and book frames in both formats, some books mutated, a few
    repeated (duplicates) and one unsubscribed."""
    market = SyntheticMarket(MARKETS[:2], 5, NOW, 0.5)
    frames = []
    for event in market.generate(120, NOW):
        frames.append(event.frame("DEFAULT"))
        if event.type == "orderbook":
            frames.append(event.frame("SIMPLE"))
    frames += _mutants([f for f in frames if f.startswith(b'{"type":"orderbook"')][:30], 2)
    frames += frames[:20]
    frames.append(frames[0].replace(b"KRW-BTC", b"KRW-ZZZ").replace(b"BTC-ETH", b"KRW-ZZZ"))
    return [(raw, NOW + 1_000) for raw in frames]


def _run(tmp_path: Path, lite: bool) -> tuple[list[Any], Any, list[Any]]:
    svc = _collector(tmp_path, [BytesSink()])
    assert svc._lite_books is (codec.BOOK_SCANNER is not None)
    svc._lite_books = lite
    asyncio.run(svc.on_frames(_stream()))
    events = svc.runners[0].take_buffered()
    dead = sorted(
        (entry["kind"], entry["reason"], entry["raw_b64"])
        for path in (tmp_path / "deadletter").rglob("*")
        if path.is_file()
        for entry in map(orjson.loads, path.read_bytes().splitlines())
    )
    # tickers and trades are spliced in one case and serialised in the other: the same
    # records, not the same bytes (books are the same bytes: both splice them)
    values = [
        (
            e.type,
            e.market,
            e.raw,
            e.value if e.type == "orderbook" else orjson.loads(e.value or b""),
        )
        for e in events
    ]
    return values, svc.counters, dead


def test_a_kafka_only_collector_makes_the_same_values_with_the_lite_parse(tmp_path: Path) -> None:
    lite, lite_counters, lite_dead = _run(tmp_path / "lite", True)
    full, full_counters, full_dead = _run(tmp_path / "full", False)
    assert len(full) > 100
    read = sum(parse_book_lite(raw) is not None for _, _, raw, _ in full)
    assert read > 30 if codec.BOOK_SCANNER is not None else read == 0
    assert lite == full  # the same Kafka values, in the same order
    assert lite_counters.events == full_counters.events
    assert lite_counters.duplicates == full_counters.duplicates > 0
    assert lite_dead == full_dead and len(full_dead) > 5


def test_a_collector_whose_sinks_read_records_parses_books_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _collector(tmp_path / "a", [MemorySink()])._lite_books is False
    assert _collector(tmp_path / "b", [MemorySink(), BytesSink()])._lite_books is False
    assert _collector(tmp_path / "d", [])._lite_books is False  # no value is made
    monkeypatch.setenv("UPBITPIPE_PURE_PYTHON", "1")
    assert _collector(tmp_path / "c", [BytesSink()])._lite_books is False
