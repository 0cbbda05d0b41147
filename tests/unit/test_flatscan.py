"""The C scanner of DEFAULT tickers and trades (``_bookscan.c``'s ``scan_flat``) against
the full parse, on real and broken frames.

:func:`~upbitpipe.upbit.codec.parse_flat_lite` reads only the fields a collector whose
sinks read no records reads. Whenever it returns a dict, the full
:func:`~upbitpipe.upbit.codec.parse_data` must accept the frame too and say the same of
those fields (same values of the same types, floats to the bit), the lite dict must hold
exactly the fields the checks and the collector read, and the value
:func:`~upbitpipe.upbit.codec.splice_record` splices from it must read back as exactly the
record the full path serialises. Checked on real frames (DEFAULT, and the real SIMPLE ones
of tests/data renamed to DEFAULT keys, which keeps the exchange's number spellings), the
replay twin's, and thousands of mutations of them (numbers respelled, digits and bytes
flipped, keys reordered, doubled or dropped, ``code`` twice, whitespace, escapes,
non-ASCII, nested values, truncation, nulls, 17-digit and over-int64 ``sequential_id``,
trades from the future). Without the kernel (a pure-Python install) the lite path always
falls back to the full parse, which the gate and service tests show too.
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
from upbitpipe.upbit.codec import MalformedFrameError, parse_data, parse_flat_lite, splice_record
from upbitpipe.upbit.fields import SIMPLE_TO_DEFAULT, TRADE_OPTIONAL_NUMBERS
from upbitpipe.upbit.gate import FrameGate
from upbitpipe.upbit.rest import UpbitRestClient

DATA = Path(__file__).parent.parent / "data"
MARKETS = ["KRW-BTC", "BTC-ETH", "KRW-LAMB"]
NOW = 1_795_460_000_000
ROUNDS = 12  # mutated copies of every base frame (seeded): ~8,000 frames
SUFFIX = codec.metadata_suffix(NOW, "upbit_websocket", "c1")
META = orjson.loads(b"{" + SUFFIX[1:])
MARK = "_lite"  # the key of parse_flat_lite's marker

#: what the lite dict holds of a trade (the fields trade_problem reads) and of a ticker
#: (the dedup key's), when the frame has them; type and market always
TRADE_FIELDS = frozenset(
    ("timestamp", "sequential_id", "trade_timestamp", "trade_price", "trade_volume")
    + TRADE_OPTIONAL_NUMBERS
)
TICKER_FIELDS = frozenset(("timestamp", "trade_timestamp", "acc_trade_volume", "trade_price"))

kernel = pytest.mark.skipif(
    codec.FLAT_SCANNER is None,
    reason="the C flat-frame scanner (upbitpipe.upbit._bookscan.scan_flat) is not built: "
    "pure-Python install",
)

SPELLINGS = (
    b"0",
    b"-0",
    b"0.0",
    b"-0.0",
    b"-1",
    b"01",
    b"1.",
    b".5",
    b"+1",
    b"1e5",
    b"1E-3",
    b"1e+2",
    b"1e",
    b"1e400",
    b"1e-400",
    b"NaN",
    b"Infinity",
    b"true",
    b"false",
    b"null",
    b'"1"',
    b"[1]",
    b'{"a":1}',
    b"12345678901234567",
    b"123456789012345678",
    b"1234567890123456789",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"0.1000000000000000055511151231257827021181583404541015625",
    b"9007199254740993.0",
    b"1795460000000",
    b"1795460000000.0",
    b"4102444800000",
    b"1483228799999",
)
FLIPS = b' \n\t",:{}[]\\-.eE0a\x00\x7f\xc3'
TAILS = (
    b',"x":{"a":1}',
    b',"x":[1]',
    b',"x":[]',
    b',"x":{}',
    b',"x":true,"y":false,"z":null',
    b',"x":"a]b{c"',
    b',"x":"code"',
    b',"x":""',
    b',"":1',
    b',"_x":1',
    b',"_ingested_at":1',
    b',"code":"KRW-BTC"',
    b',"code":"KRW-ZZZ"',
    b',"market":"KRW-BTC"',
    b',"type":"trade"',
    b',"type":"orderbook"',
    b',"timestamp":1795460000001',
    b',"sequential_id":17954600000000001',
    b',"trade_timestamp":1795460000000',
    b',"trade_price":1',
    b',"acc_trade_volume":1',
    b',"stream_type":"REALTIME"',
    b',"x":1.5e3',
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
_FIELD = re.compile(rb',"([a-z0-9_]+)":("[^"]*"|[^,}]*)')


def _simple_to_default(frame: bytes) -> bytes:
    """A SIMPLE frame in DEFAULT keys, replaced in the text (the numbers keep their spelling)."""
    kind = orjson.loads(frame)["ty"]
    table = SIMPLE_TO_DEFAULT[kind]
    return re.sub(
        rb'"([A-Za-z0-9_]+)":',
        lambda m: b'"%s":' % table.get(m.group(1).decode(), m.group(1).decode()).encode(),
        frame,
    )


def _real_frames() -> list[bytes]:
    frames = [
        line
        for line in (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()
        if line.startswith(b'{"type":"t')
    ]
    lines = gzip.decompress((DATA / "upbit_cryptofeed_2021.jsonl.gz").read_bytes()).splitlines()
    lines += (DATA / "upbit_simple_frames.jsonl").read_bytes().splitlines()
    for line in lines:
        frame = orjson.loads(line)["frame"].encode() if line.startswith(b'{"recv_ms"') else line
        if frame.startswith((b'{"ty":"trade"', b'{"ty":"ticker"')):
            frames.append(_simple_to_default(frame))
    return frames


def _base_frames() -> list[bytes]:
    market = SyntheticMarket(MARKETS[:2], 11, NOW, 0.3)
    synthetic = [
        event.frame("DEFAULT", 30)
        for event in market.generate(200, NOW)
        if event.type in ("trade", "ticker")
    ]
    return _real_frames() + synthetic


def _set_field(raw: bytes, rng: random.Random, values: tuple[bytes, ...]) -> bytes:
    fields = list(_FIELD.finditer(raw))
    if not fields:
        return raw
    m = rng.choice(fields)
    return raw[: m.start(2)] + rng.choice(values) + raw[m.end(2) :]


def _mutate_once(raw: bytes, rng: random.Random) -> bytes:
    how = rng.randrange(16)
    common = mutate_common(
        raw, rng, how, flips=FLIPS, spellings=SPELLINGS, number=_NUMBER, tails=TAILS
    )
    if common is not None:  # (0-5, as the other scanner's fuzz)
        return common
    if how == 6 and raw:  # whitespace or a byte inserted
        i = rng.randrange(len(raw))
        return raw[:i] + rng.choice((b" ", b"\n", b"\\", b"\xc3\xa9", b"\x00")) + raw[i:]
    if how == 7:  # an escape or non-ASCII in the market code or a string value
        if rng.random() < 0.5:
            return raw.replace(
                b'"KRW-', rng.choice((b'"KRW\\u002d', b'"KRW\\-', b'"KRW\xc3\xa9-')), 1
            )
        return raw.replace(b'"REALTIME"', rng.choice((b'"REAL\\u0054IME"', b'"R\xc3\xa9AL"')), 1)
    if how == 8:  # a key twice (the code too), early, where orjson keeps the later one
        return raw.replace(
            b',"timestamp":',
            rng.choice(
                (
                    b',"code":"KRW-BTC","timestamp":',
                    b',"timestamp":1795460000001,"timestamp":',
                    b',"trade_price":1,"timestamp":',
                    b',"sequential_id":1,"timestamp":',
                )
            ),
            1,
        )
    if how == 9:  # keys in another order (and numbers in orjson's spelling)
        try:
            items = list(orjson.loads(raw).items())
        except (orjson.JSONDecodeError, AttributeError):
            return raw
        if rng.random() < 0.5:
            rng.shuffle(items)
        else:
            head, rest = items[:2], items[2:]
            rng.shuffle(rest)
            items = head + rest
        return orjson.dumps(dict(items))
    if how == 10:  # a field gone
        fields = list(_FIELD.finditer(raw))
        if fields:
            m = rng.choice(fields)
            return raw[: m.start()] + raw[m.end() :]
    if how == 11:  # a field null, or of another kind
        return _set_field(raw, rng, (b"null", b"true", b'"x"', b"[]", b"{}", b"[null]"))
    if how == 12:  # sequential_id of 17, 18, 19 digits, over int64, not positive
        sid = rng.choice(
            (
                b"17954600000000001",
                b"179546000000000001",
                b"1795460000000000001",
                b"9223372036854775807",
                b"9223372036854775808",
                b"0",
                b"-1",
                b"1.0",
                b"null",
            )
        )
        return re.sub(rb'"sequential_id":[^,}]*', b'"sequential_id":' + sid, raw, count=1)
    if how == 13:  # a trade from the future, or times out of range
        m = re.search(rb'"timestamp":([0-9]+)', raw)
        if m is None:
            return raw
        stamp = int(m.group(1))
        traded = rng.choice((stamp + 60_000, stamp + 60_001, stamp + 86_400_000, 1_483_228_799_999))
        return re.sub(rb'"trade_timestamp":[^,}]*', b'"trade_timestamp":%d' % traded, raw, count=1)
    if how == 14:  # the type or its spelling
        return raw.replace(
            b'"type":"t',
            rng.choice((b'"type":"x', b'"type": "t', b'"type":"T', b'"ty":"t')),
            1,
        )
    return raw


def _mutants(frames: list[bytes], rounds: int) -> list[bytes]:
    return mutants(frames, rounds, _mutate_once, seed=17)


def _check(raw: bytes) -> bool:
    """The lite parse agrees with the full one; True when it read the frame itself."""
    lite = parse_flat_lite(raw)
    if lite is None:
        return False
    try:
        full = parse_data(raw)
    except MalformedFrameError as exc:  # pragma: no cover - the failure this test is for
        pytest.fail(f"the lite parse read a frame the full parse refuses ({exc}): {raw[:300]!r}")
    assert isinstance(full, dict)
    kind = full["type"]
    fields = TRADE_FIELDS if kind == "trade" else TICKER_FIELDS
    read = {key: value for key, value in lite.items() if key != MARK}
    expected = {key: full[key] for key in ("type", "market", *fields) if key in full}
    assert typed(read) == typed(expected), raw[:300]
    with pytest.raises(TypeError):  # a lite dict never becomes a record
        orjson.dumps(lite)
    assert splice_record(raw, kind, full, SUFFIX) is None  # a full parse is serialised
    spliced = splice_record(raw, kind, lite, SUFFIX)
    assert spliced is not None, raw[:300]
    record = {**full, **META}
    assert typed(orjson.loads(spliced)) == typed(orjson.loads(orjson.dumps(record)))
    assert typed(orjson.loads(spliced)) == typed(record)
    return True


@kernel
def test_every_real_and_synthetic_frame_is_read_as_the_full_parse_reads_it() -> None:
    frames = _base_frames()
    kinds = [orjson.loads(raw)["type"] for raw in frames]
    assert kinds.count("trade") > 300 and kinds.count("ticker") > 50
    assert all(_check(raw) for raw in frames)  # every frame as Upbit sends it: none falls back


@kernel
def test_mutated_frames_are_read_as_the_full_parse_reads_them_or_left_to_it() -> None:
    mutants = _mutants(_base_frames(), ROUNDS)
    read = sum(_check(raw) for raw in mutants)
    full = 0
    for raw in mutants:
        try:
            full += isinstance(parse_data(raw), dict)
        except MalformedFrameError:
            pass
    # the net catches both outcomes often: neither a scanner that refuses everything nor
    # one that reads everything the full parse reads would pass unnoticed
    assert len(mutants) > 5000
    assert 0.15 * len(mutants) < read < full


TRADE = (
    b'{"type":"trade","code":"KRW-BTC","timestamp":1795460000100,"trade_date":"2026-11-23",'
    b'"trade_time":"18:53:20","trade_timestamp":1795460000000,"trade_price":4889000.0,'
    b'"trade_volume":0.064,"ask_bid":"BID","prev_closing_price":4932000.0,"change":"FALL",'
    b'"change_price":43000.0,"sequential_id":17954600000000000,"best_ask_price":4889000.0,'
    b'"best_ask_size":1.28,"best_bid_price":4888000.0,"best_bid_size":0.93,'
    b'"stream_type":"REALTIME"}'
)
TICKER = (
    b'{"type":"ticker","code":"KRW-BTC","trade_price":32287000,"acc_trade_volume":2429.5,'
    b'"trade_timestamp":1795460000000,"is_trading_suspended":false,"delisting_date":null,'
    b'"timestamp":1795460000100,"stream_type":"REALTIME"}'
)


@kernel
@pytest.mark.parametrize(
    ("raw", "read"),
    [
        (TRADE, True),
        (TICKER, True),
        (TRADE.replace(b"17954600000000000", b"9223372036854775807"), False),  # 19 digits
        (TRADE.replace(b"17954600000000000", b"179546000000000001"), True),  # 18 digits
        (TRADE.replace(b":1795460000000,", b":1795460060100,"), True),  # 60 s ahead: fine
        (TRADE.replace(b":1795460000000,", b":1795460060101,"), False),  # from the future
        (TRADE.replace(b'"best_ask_size":1.28', b'"best_ask_size":null'), True),
        (TRADE.replace(b',"best_ask_size":1.28', b""), True),  # an optional field absent
        (TRADE.replace(b',"trade_volume":0.064', b""), False),  # a required one
        (TRADE.replace(b"0.064", b"0"), False),
        (TRADE.replace(b"0.064", b'"0.064"'), False),
        (TRADE.replace(b'"best_ask_size":1.28', b'"best_ask_size":"1.28"'), False),
        (TRADE[:-1] + b',"code":"KRW-BTC"}', False),  # code twice
        (TRADE[:-1] + b',"x":1,"x":1}', False),  # a key twice
        (TRADE[:-1] + b',"x":[1]}', False),
        (TRADE[:-1] + b',"x":{"a":1}}', False),
        (TRADE[:-1] + b',"_source":"x"}', False),
        (TRADE[:-1] + b',"market":"KRW-BTC"}', False),
        (TRADE[:-1] + b',"x":"a\\"b"}', False),
        (TRADE[:-1] + b',"x":"a{[b"}', True),
        (TRADE + b" ", False),
        (TRADE.replace(b":", b": ", 1), False),
        (TICKER.replace(b',"trade_timestamp":1795460000000', b""), True),
        (TICKER.replace(b'"trade_price":32287000', b'"trade_price":null'), True),
        (TICKER.replace(b'"acc_trade_volume":2429.5', b'"acc_trade_volume":null'), False),
        (TICKER.replace(b'"timestamp":1795460000100', b'"timestamp":1795460000100.0'), False),
        (TICKER.replace(b'"timestamp":1795460000100', b'"timestamp":4102444800000'), False),
        (TICKER.replace(b'"trade_timestamp":1795460000000', b'"trade_timestamp":1.5'), False),
        (TICKER.replace(b"KRW-BTC", b"KRW\\u002dBTC"), False),
        (TICKER.replace(b"KRW-BTC", b"KRW\xc3\xa9BTC"), False),
        (TICKER.replace(b"2429.5", b"1e400"), False),
        (TICKER.replace(b"false", b"1e400"), False),  # not read, still refused
        (TICKER.replace(b"false", b"1e-400"), True),
        (b'{"type":"trade","code":"KRW-BTC"}', False),
        (b'{"type":"orderbook","code":"KRW-BTC","timestamp":1795460000100}', False),
        (b"", False),
    ],
)
def test_the_lite_parse_reads_what_upbit_sends_and_leaves_the_rest(raw: bytes, read: bool) -> None:
    assert _check(raw) is read, raw
    if not read:  # what the full parse then says (read or refused) is the collector's answer
        try:
            parse_data(raw)
        except MalformedFrameError:
            pass


@kernel
def test_the_scanner_reads_only_bytes() -> None:
    assert codec.FLAT_SCANNER is not None
    for other in (TRADE.decode(), bytearray(TRADE), memoryview(TRADE), None, 1):
        assert codec.FLAT_SCANNER(other) is None


@kernel
def test_the_scanner_does_not_leak() -> None:
    """~200k calls of both outcomes and a refusal after values were built: RSS stays flat."""
    import resource

    scan = codec.FLAT_SCANNER
    assert scan is not None
    frames = [TRADE, TICKER, TRADE[:-1] + b',"x":[1]}', TRADE.replace(b"0.064", b'"0.064"')]

    def rounds(n: int) -> None:
        for _ in range(n):
            for raw in frames:
                scan(raw)
            for raw in frames[:2]:
                lite = parse_flat_lite(raw)
                assert lite is not None
                splice_record(raw, lite["type"], lite, SUFFIX)

    rounds(20_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rounds(50_000)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 4096, f"RSS grew by {grown_kb} kB over 200,000 scans and 100,000 splices"


@kernel
def test_the_scanner_keeps_refcounts_and_blocks_exact() -> None:
    """Exact where the RSS check above is coarse: no object block is left behind, and the
    singletons a read field can hold (null, true, false: not immortal on 3.11) keep their
    reference counts, over scans that build them and scans that refuse."""
    import gc
    import sys

    scan = codec.FLAT_SCANNER
    assert scan is not None
    built = [
        re.sub(rb'"best_ask_price":[^,}]+', b'"best_ask_price":null', TRADE),
        re.sub(rb'"trade_price":[^,}]+', b'"trade_price":true', TRADE),
        re.sub(rb'"trade_price":[^,}]+', b'"trade_price":false', TICKER),
    ]
    for raw, value in zip(built, (None, True, False), strict=True):
        read = scan(raw)
        assert read is not None and value in read.values(), raw[:120]
    frames = [*built, TRADE, TICKER, TRADE[:-1] + b',"x":[1]}', TRADE[:-9]]

    def rounds(n: int) -> None:
        for _ in range(n):
            for raw in frames:
                scan(raw)

    rounds(1_000)
    gc.collect()
    refs = [sys.getrefcount(x) for x in (None, True, False)]
    blocks = sys.getallocatedblocks()
    rounds(10_000)
    gc.collect()
    assert [sys.getrefcount(x) for x in (None, True, False)] == refs
    assert sys.getallocatedblocks() - blocks < 500, "object blocks left behind by scans"


@kernel
def test_a_flat_frame_of_more_than_64_keys_is_left_to_the_full_parse() -> None:
    """The scanner's key table holds 64 keys after ``type`` and ``code`` (Upbit's ticker
    has 35 in all): a frame of 66 keys is read, one of 67 is the full parse's."""
    scan = codec.FLAT_SCANNER
    assert scan is not None
    base = len(orjson.loads(TRADE))

    def with_keys(total: int) -> bytes:
        extra = b"".join(b',"x%02d":1' % i for i in range(total - base))
        return TRADE[:-1] + extra + b"}"

    assert len(orjson.loads(with_keys(66))) == 66
    assert scan(with_keys(66)) is not None
    assert scan(with_keys(67)) is None
    assert isinstance(parse_data(with_keys(67)), dict)


def test_without_a_lite_read_the_gate_parses_in_full() -> None:
    """Whatever the kernel, the gate's lite path says what its full path says of the
    fields it reads and raises the same errors: the fallback of a pure-Python install."""
    gate, lite_gate = FrameGate(MARKETS), FrameGate(MARKETS)
    frames = _base_frames()[:60] + _mutants(_base_frames()[:40], 4)
    frames += [TRADE.replace(b":1795460000000,", b":1795460060101,"), b"[]"]
    frames.append(frames[0].replace(b"KRW-", b"KRW-ZZ"))
    for raw in frames:
        try:
            full: Any = gate.parse_data(raw, NOW)
        except MalformedFrameError as exc:
            full = (type(exc), exc.reason)
        try:
            lite: Any = lite_gate.parse_data_lite(raw, NOW)
        except MalformedFrameError as exc:
            lite = (type(exc), exc.reason)
        if isinstance(lite, dict) and MARK in lite:
            assert codec.FLAT_SCANNER is not None  # only the kernel reads a part
            lite = {key: value for key, value in lite.items() if key != MARK}
            full = {key: value for key, value in full.items() if key in lite}
        assert lite == full, raw[:200]
    assert gate.clock.now_ms == lite_gate.clock.now_ms > 0


@kernel
def test_what_the_lite_read_leaves_to_the_full_parse_is_counted() -> None:
    """A DEFAULT frame the scanner refuses is still parsed (in full) and counted as a lite
    fallback (status.json ``lite_fallbacks``, a Prometheus counter): a format change at
    Upbit shows as a rising count instead of only as more CPU. SIMPLE frames are no
    DEFAULT frames: not counted."""
    gate = FrameGate(MARKETS)
    frames = [f for f in _base_frames() if f.startswith(b'{"type":"t')][:20]
    for raw in frames:
        assert MARK in gate.parse_data_lite(raw, NOW)  # type: ignore[operator]
    assert gate.lite_fallbacks == 0
    spaced = frames[0].replace(b'","', b'", "', 1)  # valid JSON, not the compact form
    parsed = gate.parse_data_lite(spaced, NOW)
    assert isinstance(parsed, dict) and MARK not in parsed
    simple = b'{"ty":"trade","cd":"KRW-BTC","tms":1795460000000}'
    with pytest.raises(MalformedFrameError):
        gate.parse_data_lite(simple, NOW)
    assert gate.lite_fallbacks == 1


def test_pure_python_requested_leaves_the_scanners_unused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``UPBITPIPE_PURE_PYTHON`` at run time: the codec loads no scanner, so every lite
    read says None, whether or not the kernel is built."""
    monkeypatch.setenv("UPBITPIPE_PURE_PYTHON", "1")
    assert codec._load_scanner("scan_book") is None  # noqa: SLF001
    assert codec._load_scanner("scan_flat") is None  # noqa: SLF001
    monkeypatch.delenv("UPBITPIPE_PURE_PYTHON")
    assert (codec._load_scanner("scan_flat") is None) == (codec.FLAT_SCANNER is None)  # noqa: SLF001


# -- the collector ----------------------------------------------------------------------------


class BytesSink(MemorySink):
    """Reads only ``value``, as the Kafka sink does."""

    name = "kafka"
    needs_record = False


def _collector(tmp_path: Path) -> CollectorService:
    plan = CollectorPlan(markets=MARKETS, types=["ticker", "trade", "orderbook"], shards=[MARKETS])
    settings = Settings()
    settings.collector.backfill = False
    settings.collector.state_dir = tmp_path / "state"
    return CollectorService(
        settings,
        plan,
        [BytesSink()],
        UpbitRestClient("http://127.0.0.1:9"),
        DeadLetterBox(tmp_path / "deadletter"),
    )


def _stream() -> list[tuple[bytes, int]]:
    """Synthetic frames of all types in both formats, mutated tickers and trades, repeats
    (duplicates), trades from the future, one unsubscribed market."""
    market = SyntheticMarket(MARKETS[:2], 5, NOW, 0.3)
    frames = []
    for event in market.generate(200, NOW):
        frames.append(event.frame("DEFAULT"))
        if event.type != "orderbook" and len(frames) % 5 == 0:
            frames.append(event.frame("SIMPLE"))
    flat = [f for f in frames if f.startswith(b'{"type":"t')]
    frames += _mutants(flat[:40], 3)
    frames += frames[:30]
    frames.append(flat[0].replace(b"KRW-BTC", b"KRW-ZZZ").replace(b"BTC-ETH", b"KRW-ZZZ"))
    return [(raw, NOW + 1_000) for raw in frames]


def _run(tmp_path: Path, lite: bool) -> tuple[list[Any], Any, Any, list[Any]]:
    svc = _collector(tmp_path)
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
    assert all(e.value is not None for e in events)
    values = [(e.type, e.market, e.raw, typed(orjson.loads(e.value or b""))) for e in events]
    return values, svc.counters, dict(svc._last_seen), dead


def test_a_kafka_only_collector_makes_the_same_records_with_the_lite_parse(
    tmp_path: Path,
) -> None:
    lite, lite_counters, lite_tips, lite_dead = _run(tmp_path / "lite", True)
    full, full_counters, full_tips, full_dead = _run(tmp_path / "full", False)
    assert len(full) > 200
    read = sum(
        parse_flat_lite(raw) is not None for _, _, raw, _ in full if raw.startswith(b'{"type":"t')
    )
    assert read > 100 if codec.FLAT_SCANNER is not None else read == 0
    assert lite == full  # the same Kafka records, in the same order
    assert lite_counters.events == full_counters.events
    assert lite_counters.duplicates == full_counters.duplicates > 0
    assert lite_tips == full_tips and len(full_tips) == 2  # the resume points to be
    assert lite_dead == full_dead and len(full_dead) > 10
    kinds = {kind for kind, _, _ in full_dead}
    assert {"malformed", "unsubscribed_market"} <= kinds


def test_a_lite_read_the_splice_refused_becomes_the_full_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never today (the splice takes every lite read, tested above); if a change made the
    splice refuse one, the collector must store the full parse's record, not serialise the
    part (nor stop on orjson refusing the lite marker)."""
    from upbitpipe.collector import service

    monkeypatch.setattr(service, "splice_record", lambda *args: None)
    lite, lite_counters, lite_tips, lite_dead = _run(tmp_path / "lite", True)
    full, full_counters, full_tips, full_dead = _run(tmp_path / "full", False)
    assert len(full) > 200
    assert lite == full
    assert lite_counters.events == full_counters.events
    assert lite_tips == full_tips and lite_dead == full_dead


@kernel
def test_every_byte_at_every_offset_of_a_string() -> None:
    """The scanner's strings are read eight bytes at a time: a byte it must refuse is
    refused wherever it falls in the word, and every printable one is read."""
    scan = codec.FLAT_SCANNER
    assert scan is not None
    printable = [c for c in range(0x20, 0x7F) if c not in (0x22, 0x5C)]
    for length in range(1, 20):
        for at in range(length):
            for byte in range(256):
                text = bytearray(b"a" * length)
                text[at] = byte
                for raw in (
                    TICKER[:-1] + b',"x":"' + bytes(text) + b'"}',  # a value
                    TICKER[:-1] + b',"' + bytes(text) + b'":1}',  # a key
                    TICKER.replace(b"KRW-BTC", bytes(text), 1),  # the code
                ):
                    got = scan(raw)
                    if raw.endswith(b'":1}') and text.startswith(b"_"):
                        assert got is None  # a key from "_": the record's metadata
                    elif byte in printable:
                        assert got is not None, (raw, byte)
                    elif byte == 0x22:  # a shorter string, then no ':' or ',' where due
                        assert got is None or _check(raw), (raw, byte)
                    else:
                        assert got is None, (raw, byte)
