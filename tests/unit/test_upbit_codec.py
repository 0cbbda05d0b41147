"""Parser and request-builder tests on real-shaped frames (tests/data/upbit_*_frames.jsonl)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import orjson
import pytest

from upbitpipe.upbit.codec import (
    ErrorFrame,
    MalformedFrameError,
    MarketEvent,
    StatusFrame,
    _spread,
    parse_frame,
    subscribe_request,
)
from upbitpipe.upbit.fields import SIMPLE_TO_DEFAULT, UNIT_SIMPLE

DATA = Path(__file__).parent.parent / "data"
DEFAULT_NAMES = {long for table in SIMPLE_TO_DEFAULT.values() for long in table.values()}
DEFAULT_NAMES |= {"market", "best_ask_price", "best_bid_price", "spread"}
DERIVED = {"best_ask_price", "best_bid_price", "spread"}


def _frames(name: str) -> list[bytes]:
    return [line for line in (DATA / name).read_bytes().splitlines() if line.strip()]


def _events(name: str) -> list[MarketEvent]:
    events = [parse_frame(raw) for raw in _frames(name)]
    assert all(isinstance(event, MarketEvent) for event in events)
    return events  # type: ignore[return-value]


@pytest.mark.parametrize("name", ["upbit_default_frames.jsonl", "upbit_simple_frames.jsonl"])
def test_both_formats_give_default_names(name: str) -> None:
    ticker, trade, book = _events(name)
    assert [e.type for e in (ticker, trade, book)] == ["ticker", "trade", "orderbook"]
    for event in (ticker, trade, book):
        assert event.market == "KRW-BTC" == event.data["market"]
        assert "code" not in event.data and "cd" not in event.data
        assert set(event.data) <= DEFAULT_NAMES, set(event.data) - DEFAULT_NAMES
    assert trade.sequential_id == 1676965262139000
    assert trade.data["trade_date"] == "2023-02-21"
    assert trade.data["ask_bid"] == "ASK"
    assert ticker.data["trade_date"] == "20230221"
    assert book.data["best_ask_price"] == 32288000.0
    assert book.data["best_bid_price"] == 32287000.0
    assert book.data["spread"] == 1000.0
    assert book.data["total_ask_size"] == 4.79158413
    assert set(book.data["orderbook_units"][0]) == set(UNIT_SIMPLE.values())
    assert book.stream_type == "SNAPSHOT"


def test_simple_and_default_agree_field_by_field() -> None:
    defaults = _events("upbit_default_frames.jsonl")
    simples = _events("upbit_simple_frames.jsonl")
    for default, simple in zip(defaults, simples, strict=True):
        for key, value in default.data.items():
            assert simple.data[key] == value, key


def test_raw_bytes_are_kept_and_text_frames_accepted() -> None:
    raw = _frames("upbit_simple_frames.jsonl")[1]
    event = parse_frame(raw.decode())
    assert isinstance(event, MarketEvent)
    assert event.raw == raw


def test_book_totals_derived_when_absent() -> None:
    frame = b'{"ty":"orderbook","cd":"KRW-ETH","tms":1676965262177,"obu":[{"ap":2.0,"bp":1.0,"as":3.0,"bs":4.0},{"ap":3.0,"bp":0.5,"as":1.0,"bs":1.0}]}'
    event = parse_frame(frame)
    assert isinstance(event, MarketEvent)
    assert event.data["total_ask_size"] == 4.0
    assert event.data["total_bid_size"] == 5.0
    assert event.data["spread"] == 1.0


def test_status_and_error_frames() -> None:
    status, no_ticket, invalid = (parse_frame(raw) for raw in _frames("upbit_control_frames.jsonl"))
    assert status == StatusFrame("UP")
    assert isinstance(no_ticket, ErrorFrame) and no_ticket.name == "NO_TICKET"
    assert isinstance(invalid, ErrorFrame) and invalid.name == "INVALID_PARAM"
    assert invalid.message.startswith("codes")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'{"ty":"trade","cd":', "not JSON"),
        (b"\x00\xff garbage", "not JSON"),
        (b"[1,2]", "expected a JSON object"),
        (b'{"ty":"candle.1s","cd":"KRW-BTC","tms":1676965262177}', "unknown type"),
        (b'{"type":"myOrder","code":"KRW-BTC","timestamp":1676965262177}', "unknown type"),
        (b'{"ty":"ticker","tms":1676965262177}', "missing field 'code'"),
        (b'{"type":"ticker","timestamp":1676965262177}', "missing field 'code'"),
        (b'{"ty":"ticker","cd":"KRW-BTC"}', "missing field 'timestamp'"),
        (
            b'{"ty":"trade","cd":"KRW-BTC","tms":1676965262177,"tp":1.0,"tv":1.0,"ttms":1676965262177}',
            "sequential_id",
        ),
        (b'{"ty":"orderbook","cd":"KRW-BTC","tms":1676965262177}', "orderbook_units"),
        (
            b'{"ty":"orderbook","cd":"KRW-BTC","tms":1676965262177,"obu":[{"ap":1}]}',
            "bad orderbook unit",
        ),
        (b'{"hello":"world"}', "no 'type'"),
        # the dedup key's fields: a list there is unhashable (the collector would stop)
        (
            b'{"ty":"ticker","cd":"KRW-BTC","tms":1676965262177,"atv":1.0,"tp":[]}',
            "field 'trade_price' is not a number",
        ),
        (
            b'{"ty":"ticker","cd":"KRW-BTC","tms":1676965262177,"atv":1.0,"ttms":{"a":1}}',
            "field 'trade_timestamp' is not an epoch-ms integer",
        ),
        # a BIGINT in the lake: beyond int64 pyarrow would refuse the whole batch
        (
            b'{"ty":"ticker","cd":"KRW-BTC","tms":1676965262177,"atv":1.0,'
            b'"ttms":18446744073709551616}',
            "field 'trade_timestamp' is not an epoch-ms integer",
        ),
        (
            b'{"ty":"ticker","cd":"KRW-BTC","tms":1676965262177,"atv":1.0,"ttms":1.5e12}',
            "field 'trade_timestamp' is not an epoch-ms integer",
        ),
        (
            b'{"ty":"orderbook","cd":"KRW-BTC","tms":1676965262177,"tas":1,"tbs":0,'
            b'"obu":[{"ap":[1],"bp":1,"as":1,"bs":0}]}',
            "best price is not a number",
        ),
    ],
)
def test_malformed_frames(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrameError) as info:
        parse_frame(frame)
    assert reason in info.value.reason
    assert info.value.raw == frame


def test_subscribe_request_shape() -> None:
    text = subscribe_request(
        "abc", ["ticker", "orderbook"], ["krw-btc", "KRW-ETH"], orderbook_depth=15, fmt="DEFAULT"
    )
    assert orjson.loads(text) == [
        {"ticket": "abc"},
        {"type": "ticker", "codes": ["KRW-BTC", "KRW-ETH"]},
        {"type": "orderbook", "codes": ["KRW-BTC.15", "KRW-ETH.15"]},
        {"format": "DEFAULT"},
    ]
    snap = orjson.loads(subscribe_request("t", ["trade"], ["KRW-BTC"], only_snapshot=True))
    assert snap[1]["is_only_snapshot"] is True and snap[2] == {"format": "SIMPLE"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"orderbook_depth": 7},
        {"fmt": "XML"},
        {"only_realtime": True, "only_snapshot": True},
    ],
)
def test_subscribe_request_rejects_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"depth|format|exclude"):
        subscribe_request("t", ["orderbook"], ["KRW-BTC"], **kwargs)  # type: ignore[arg-type]


def test_subscribe_request_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        subscribe_request("t", ["candle"], ["KRW-BTC"])


def test_to_default_wire_is_the_inverse_of_parse_frame() -> None:
    """One inverse of the codec serves the REST-backfill frames and the capture replay."""
    import orjson

    from upbitpipe.upbit.codec import MarketEvent, parse_frame, to_default_wire

    frames = [
        b'{"ty":"trade","cd":"KRW-BTC","tms":1730336862082,"td":"2024-10-31","ttm":"01:07:42",'
        b'"ttms":1730336862080,"tp":100473000.0,"tv":0.0001,"ab":"BID","pcp":100500000.0,'
        b'"c":"FALL","cp":27000.0,"sid":17303368620800000,"st":"REALTIME"}',
        b'{"type":"orderbook","code":"KRW-BTC","timestamp":1730336862082,'
        b'"total_ask_size":1.5,"total_bid_size":2.0,"orderbook_units":[{"ask_price":101.0,'
        b'"bid_price":100.0,"ask_size":1.5,"bid_size":2.0}],"stream_type":"REALTIME"}',
    ]
    for raw in frames:
        event = parse_frame(raw)
        assert isinstance(event, MarketEvent)
        wire = to_default_wire(event.type, event.data)
        assert wire["code"] == event.market and "market" not in wire
        again = parse_frame(orjson.dumps(wire))
        assert isinstance(again, MarketEvent)
        assert again.data == event.data
    record = {"market": "KRW-ETH", "sequential_id": 1, "_source": "upbit_rest_backfill"}
    assert to_default_wire("trade", record) == {
        "type": "trade",
        "code": "KRW-ETH",
        "sequential_id": 1,
    }


def _generic(simple: dict[str, object]) -> dict[str, object]:
    """The declared key maps applied key by key (what the literal fast paths must equal)."""
    kind = str(simple["ty"])
    table = {
        short: ("market" if long == "code" else long)
        for short, long in SIMPLE_TO_DEFAULT[kind].items()
    }
    data = {table.get(k, k): v for k, v in simple.items()}
    if kind == "orderbook":
        data["orderbook_units"] = [
            {UNIT_SIMPLE.get(k, k): v for k, v in u.items()}  # type: ignore[attr-defined]
            for u in data["orderbook_units"]  # type: ignore[attr-defined]
        ]
    return data


def _synthetic_simple() -> list[bytes]:
    from upbitpipe.replay.market import SyntheticMarket

    market = SyntheticMarket(["KRW-BTC", "BTC-ETH"], 7, 1_795_460_000_000, 0.5)
    return [e.frame("SIMPLE") for e in market.generate(60, 1_795_460_000_000)]


@pytest.mark.parametrize("variant", ["as sent", "extra key", "key missing"])
def test_simple_fast_paths_equal_the_declared_key_maps(variant: str) -> None:
    """Real and synthetic SIMPLE frames, and the same with a key Upbit may add tomorrow (kept
    under its own name) or one it left out: the parser gives exactly the declared mapping."""
    seen = set()
    for raw in _frames("upbit_simple_frames.jsonl") + _synthetic_simple():
        simple = orjson.loads(raw)
        if variant == "extra key":
            simple["zz"] = 1
            simple.get("obu", [{}])[0]["zz"] = 2
        elif variant == "key missing":
            simple.pop("ab" if simple["ty"] != "orderbook" else "lv", None)
            simple.get("obu", [{}])[-1].pop("bs", None)
        event = parse_frame(orjson.dumps(simple))
        assert isinstance(event, MarketEvent)
        expected = _generic(simple)
        got = dict(event.data)
        if event.type == "orderbook":  # the derived fields come last, after the frame's
            for name in (*DERIVED, "total_ask_size", "total_bid_size"):
                if name not in expected:
                    got.pop(name)
        assert got == expected  # JSON objects: names and values, not key order
        seen.add(event.type)
    assert seen == {"ticker", "trade", "orderbook"}


def test_the_memoised_spread_is_round_to_ten_digits() -> None:
    rng = random.Random(7)
    prices = [round(rng.uniform(0.0001, 2e8), rng.randint(0, 8)) for _ in range(300)]
    differences: list[float | int] = [a - b for a in prices[:40] for b in prices[:40]]
    differences += [0.0, -0.0, 3, -7, 0, 0.1 + 0.2, 1e-11, -1e-11]
    for difference in differences * 2:  # the second pass reads the memo
        got = _spread(difference)
        want = round(difference, 10)
        assert (got, type(got), math.copysign(1, got)) == (want, type(want), math.copysign(1, want))
