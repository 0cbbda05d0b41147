"""Validation at the edge: a bad event goes to the dead letters alone, never to a sink or
into the resume point (issue #18: poison, future-dated and junk-market frames; #12: books)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.config import Settings
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.memory import MemorySink
from upbitpipe.upbit.codec import MalformedFrameError, MarketEvent, parse_frame
from upbitpipe.upbit.gate import (
    KIND_IMPLAUSIBLE,
    KIND_UNSUBSCRIBED,
    ExchangeClock,
    FrameGate,
    RejectedEventError,
)
from upbitpipe.upbit.rest import UpbitRestClient

NOW = 1_795_460_000_000  # 2026-11-24
YEAR_MS = 365 * 86_400_000


def trade(market: str = "KRW-BTC", ts: int = NOW, sid: Any = None, **over: Any) -> dict[str, Any]:
    frame = {
        "type": "trade",
        "code": market,
        "timestamp": ts,
        "trade_date": "2026-11-24",
        "trade_time": "00:00:00",
        "trade_timestamp": ts,
        "trade_price": 100_000.0,
        "trade_volume": 0.5,
        "ask_bid": "BID",
        "prev_closing_price": 99_000.0,
        "change": "RISE",
        "change_price": 1000.0,
        "sequential_id": ts * 1000 if sid is None else sid,
        "best_ask_price": 100_001.0,
        "best_ask_size": 1.0,
        "best_bid_price": 100_000.0,
        "best_bid_size": 1.0,
        "stream_type": "REALTIME",
    }
    frame.update(over)
    return frame


def raw(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)


POISON_FRAMES = {
    "ts_string": trade(trade_timestamp="now"),
    "ts_1e18": trade(trade_timestamp=10**18),
    "ts_float": trade(trade_timestamp=float(NOW)),
    "ts_before_upbit": trade(trade_timestamp=1000),
    "ts_future_1y": trade(trade_timestamp=NOW + YEAR_MS),
    "frame_ts_string": trade(timestamp="now"),
    "sid_2^70": trade(sid=2**62),  # written as 2^70 below (orjson cannot encode it)
    "sid_2^64": trade(sid=2**64 - 1),
    "sid_float": trade(sid=1.5),
    "sid_negative": trade(sid=-7),
    "sid_string": trade(sid="xyz"),
    "sid_bool": trade(sid=True),
    "price_string": trade(trade_price="abc"),
    "price_list": trade(trade_price=[1, 2]),
    "price_zero": trade(trade_price=0),
    "volume_numeric_string": trade(trade_volume="1.5"),
    "best_ask_string": trade(best_ask_price="1"),
}


POISON = {name: raw(frame) for name, frame in POISON_FRAMES.items()}
POISON["sid_2^70"] = POISON["sid_2^70"].replace(str(2**62).encode(), str(2**70).encode())


@pytest.mark.parametrize("name", list(POISON))
def test_poison_trade_is_malformed(name: str) -> None:
    with pytest.raises(MalformedFrameError) as info:
        parse_frame(POISON[name])
    assert info.value.raw == POISON[name]


def test_future_trade_names_the_exchange_time() -> None:
    with pytest.raises(MalformedFrameError, match="after the frame's exchange time"):
        parse_frame(raw(trade(trade_timestamp=NOW + 61_000)))
    event = parse_frame(raw(trade(trade_timestamp=NOW - 5)))  # trade before its frame: fine
    assert isinstance(event, MarketEvent)


@pytest.mark.parametrize("market", ["", "KRW-ZZZ", "../../etc/passwd", "krw-btc"])
def test_unsubscribed_market_is_rejected(market: str) -> None:
    gate = FrameGate(["KRW-BTC", "KRW-ETH"])
    with pytest.raises(RejectedEventError) as info:
        gate.parse(raw(trade(market)))
    assert info.value.kind == KIND_UNSUBSCRIBED
    assert isinstance(gate.parse(raw(trade("KRW-ETH"))), MarketEvent)


def test_exchange_clock_rejects_a_far_future_frame_but_follows_a_real_jump() -> None:
    clock = ExchangeClock(tolerance_ms=60_000, resync_after=5)
    assert clock.admit(NOW) is None
    assert clock.admit(NOW + 30_000) is None
    assert clock.admit(NOW - 10_000) is None  # late frames are fine
    assert clock.admit(NOW + YEAR_MS) is not None
    assert clock.now_ms == NOW + 30_000, "one bad frame must not move the clock"
    assert clock.admit(NOW + 31_000) is None
    jump = NOW + 3 * 3600_000  # a replay twin whose market clock ran ahead
    results = [clock.admit(jump + i) for i in range(5)]
    assert all(reason is not None for reason in results[:4])
    assert results[4] is None and clock.now_ms == jump + 4


def test_exchange_clock_re_anchors_after_the_stream_was_silent() -> None:
    clock = ExchangeClock(tolerance_ms=60_000, stale_after_ms=5_000)
    local = 1_000_000
    assert clock.admit(NOW, local) is None
    assert clock.admit(NOW + YEAR_MS, local + 100) is not None  # live stream: refused
    jump = NOW + 3 * 3600_000  # sockets down, meanwhile the twin's clock jumped
    assert clock.admit(jump, local + 100 + 6_000) is None
    assert clock.now_ms == jump


def test_gate_rejects_a_frame_ahead_of_the_exchange_clock() -> None:
    gate = FrameGate(["KRW-BTC"])
    gate.parse(raw(trade(ts=NOW)))
    future = NOW + YEAR_MS
    with pytest.raises(RejectedEventError) as info:
        gate.parse(raw(trade(ts=future, trade_timestamp=future)))
    assert info.value.kind == KIND_IMPLAUSIBLE


def book(units: list[dict[str, float]]) -> bytes:
    obu = [{"ap": u["ap"], "bp": u["bp"], "as": u["as"], "bs": u["bs"]} for u in units]
    return orjson.dumps({"ty": "orderbook", "cd": "BTC-XRP", "tms": NOW, "obu": obu})


def test_zero_size_padding_units_are_not_levels() -> None:
    event = parse_frame(
        book(
            [
                {"ap": 0.0000101, "bp": 0.0, "as": 5000.0, "bs": 0.0},
                {"ap": 0.0000102, "bp": 0.0000099, "as": 10.0, "bs": 7.0},
            ]
        )
    )
    assert isinstance(event, MarketEvent)
    assert event.data["best_ask_price"] == 0.0000101
    assert event.data["best_bid_price"] == 0.0000099  # the padded unit is not the best bid
    assert event.data["spread"] == round(0.0000101 - 0.0000099, 10)


def test_one_sided_book_has_null_best_price_and_spread() -> None:
    event = parse_frame(
        book(
            [
                {"ap": 2.0, "bp": 0.0, "as": 3.0, "bs": 0.0},
                {"ap": 2.1, "bp": 0.0, "as": 1.0, "bs": 0.0},
            ]
        )
    )
    assert isinstance(event, MarketEvent)
    assert event.data["best_ask_price"] == 2.0
    assert event.data["best_bid_price"] is None
    assert event.data["spread"] is None
    assert event.data["total_bid_size"] == 0.0
    empty = parse_frame(book([]))
    assert isinstance(empty, MarketEvent)
    assert empty.data["best_ask_price"] is empty.data["spread"] is None


def service(tmp_path: Path) -> tuple[CollectorService, DeadLetterBox]:
    settings = Settings()
    markets = ["KRW-BTC", "KRW-ETH"]
    plan = CollectorPlan(markets=markets, types=["trade"], shards=[markets])
    box = DeadLetterBox(tmp_path / "deadletter")
    rest = UpbitRestClient("http://127.0.0.1:9")
    return CollectorService(settings, plan, [MemorySink()], rest, box), box


def queued(svc: CollectorService) -> list[SinkEvent]:
    return svc.runners[0].take_buffered()


def test_every_bad_frame_is_dead_lettered_alone_and_never_reaches_the_resume_point(
    tmp_path: Path,
) -> None:
    svc, box = service(tmp_path)
    bad = [
        *POISON.values(),
        raw(trade("KRW-ZZZ", sid=NOW * 1000 + 1)),
        raw(trade("", sid=NOW * 1000 + 2)),
        raw(trade("../../etc/passwd", sid=NOW * 1000 + 3)),
    ]

    async def feed() -> list[bool]:
        out = []
        for i in range(40):
            good = trade("KRW-BTC" if i % 2 else "KRW-ETH", ts=NOW + i, sid=NOW * 1000 + 100 + i)
            out.append(await svc.on_frame(raw(good), NOW + i))
            out.append(await svc.on_frame(bad[i % len(bad)], NOW + i))
        return out

    data_flags = asyncio.run(feed())
    assert data_flags == [True, False] * 40
    events = queued(svc)
    assert len(events) == 40
    assert {e.market for e in events} == {"KRW-BTC", "KRW-ETH"}
    assert box.total == 40 and box.write_failures == 0
    assert set(box.counts) == {"malformed", KIND_UNSUBSCRIBED}
    assert svc.last_trade_ms == {"KRW-ETH": NOW + 38, "KRW-BTC": NOW + 39}
    written = (tmp_path / "deadletter").glob("*.jsonl")
    assert sum(len(p.read_bytes().splitlines()) for p in written) == 40


@pytest.mark.parametrize("broken", ["dir_as_file", "file_as_dir"])
def test_a_dead_letter_that_cannot_be_written_is_counted_not_raised(
    tmp_path: Path, broken: str
) -> None:
    svc, box = service(tmp_path)
    if broken == "file_as_dir":  # deadletter/ is a regular file
        (tmp_path / "deadletter").write_text("x")
    else:  # today's dead-letter file is a directory (and tomorrow's: a run near midnight)
        now_ms = int(time.time() * 1000)
        for day in (now_ms, now_ms + 86_400_000):
            box.path_for(day).mkdir(parents=True, exist_ok=True)

    async def feed() -> None:
        for i in range(5):
            assert await svc.on_frame(b"garbage", NOW + i) is False
        assert await svc.on_frame(raw(trade()), NOW) is True

    asyncio.run(feed())
    assert box.counts["malformed"] == 5
    assert box.write_failures == 5
    assert box.last_write_error
    snap = svc.snapshot()
    assert snap.dead_letter_write_failures == 5 and snap.dead_letters == {"malformed": 5}
    assert len(queued(svc)) == 1


def test_rest_trades_pass_the_same_checks() -> None:
    gate = FrameGate(["KRW-BTC"])
    gate.parse(raw(trade(ts=NOW)))
    rest = {k: v for k, v in trade(ts=NOW - 1000).items() if k != "code"}
    assert gate.trade_problem("KRW-BTC", {**rest, "market": "KRW-BTC"}) is None
    assert gate.trade_problem("KRW-ZZZ", {**rest, "market": "KRW-ZZZ"}) is not None
    assert gate.trade_problem("KRW-BTC", {**rest, "market": "KRW-ETH"}) is not None
    kind, _ = gate.trade_problem("KRW-BTC", {**rest, "market": "KRW-BTC", "trade_price": "x"}) or (
        "",
        "",
    )
    assert kind == "malformed"
    future = NOW + YEAR_MS
    problem = gate.trade_problem(
        "KRW-BTC", {**rest, "market": "KRW-BTC", "trade_timestamp": future, "timestamp": future}
    )
    assert problem is not None and problem[0] == KIND_IMPLAUSIBLE
