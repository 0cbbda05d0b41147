"""The collector's per-batch frame path: one parse loop, one buffer operation per sink per
batch, and exactly the events, order, dead letters and durable-ledger marks that handling
the same frames one at a time gives."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.collector.sink_runner import SinkRunner
from upbitpipe.config import Settings
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.memory import MemorySink
from upbitpipe.upbit.rest import UpbitRestClient

NOW = 1_795_460_000_000
MARKETS = ["KRW-BTC", "KRW-ETH"]


class KafkaNamedSink(MemorySink):
    name = "kafka"


def trade(market: str, i: int) -> bytes:
    return orjson.dumps(
        {
            "ty": "trade",
            "cd": market,
            "tms": NOW + i,
            "td": "2026-11-24",
            "ttm": "00:00:00",
            "ttms": NOW + i,
            "tp": 100_000.0 + i,
            "tv": 0.5,
            "ab": "BID",
            "pcp": 99_000.0,
            "c": "RISE",
            "cp": 1000.0,
            "sid": (NOW + i) * 1000,
            "bap": 100_001.0,
            "bas": 1.0,
            "bbp": 100_000.0,
            "bbs": 1.0,
            "st": "REALTIME",
        }
    )


def book(market: str, i: int) -> bytes:
    units = [{"ap": 101.0 + i, "bp": 100.0, "as": 1.0, "bs": 2.0}]
    return orjson.dumps(
        {"ty": "orderbook", "cd": market, "tms": NOW + i, "tas": 1.0, "tbs": 2.0, "obu": units}
    )


def frames() -> list[tuple[bytes, int]]:
    """Trades and books of two markets, with a duplicate, garbage, a status answer, an
    exchange error and an unsubscribed market mixed in."""
    out: list[bytes] = []
    for i in range(30):
        out.append(trade(MARKETS[i % 2], i))
        out.append(book(MARKETS[i % 2], i))
        if i % 7 == 3:
            out.append(trade(MARKETS[i % 2], i))  # a re-sent snapshot: duplicate
        if i % 11 == 5:
            out.append(b"not json")
            out.append(b'{"status":"UP"}')
            out.append(b'{"error":{"name":"NO_TICKET","message":"x"}}')
            out.append(trade("KRW-ZZZ", 1000 + i))
    return [(raw, NOW + 5 + n) for n, raw in enumerate(out)]


def service(tmp_path: Path, *, kafka_has: set[tuple[str, int]] | None = None) -> CollectorService:
    plan = CollectorPlan(markets=MARKETS, types=["trade", "orderbook"], shards=[MARKETS])
    return CollectorService(
        Settings(),
        plan,
        [MemorySink(), KafkaNamedSink()],
        UpbitRestClient("http://127.0.0.1:9"),
        DeadLetterBox(tmp_path / "deadletter"),
        kafka_has=kafka_has,
    )


def records(runner: SinkRunner) -> list[dict[str, Any]]:
    return [e.record for e in runner.take_buffered()]


def test_a_batch_gives_what_frame_by_frame_gives_with_one_buffer_operation_per_sink(
    tmp_path: Path,
) -> None:
    batch = frames()
    one, many = service(tmp_path / "one"), service(tmp_path / "many")
    adds: list[tuple[str, int]] = []
    for runner in many.runners:

        def counting(
            events: Sequence[SinkEvent],
            *args: Any,
            original: Any = runner.add_all,
            name: str = runner.sink.name,
        ) -> bool:
            adds.append((name, len(events)))
            result: bool = original(events, *args)
            return result

        runner.add_all = counting  # type: ignore[method-assign]

    async def feed() -> tuple[list[bool], bool]:
        flags = [await one._on_shard_frames(0, ((raw, ms),)) for raw, ms in batch]
        return flags, await many._on_shard_frames(0, batch)

    flags, any_data = asyncio.run(feed())
    assert any_data is True and any(flags)
    one_out = [records(r) for r in one.runners]
    many_out = [records(r) for r in many.runners]
    expected = one_out[0]
    # 60 events: every trade and book once; duplicates, garbage, status and junk are not
    assert len(expected) == 60
    assert adds == [("memory", 60), ("kafka", 60)]
    assert many_out == one_out == [expected, expected]
    assert [r["sequential_id"] for r in expected if r["type"] == "trade"] == [
        (NOW + i) * 1000 for i in range(30)
    ]
    assert many.ledger.handed == one.ledger.handed == [60, 60]
    assert many.counters.frames == one.counters.frames == len(batch)
    assert many.counters.duplicates == one.counters.duplicates == 4
    assert many.counters.status_frames == one.counters.status_frames == 3
    assert many.dead_letters.counts == one.dead_letters.counts
    assert many.dead_letters.total == 9  # 3 garbage, 3 exchange errors, 3 unsubscribed
    assert many.last_trade_ms == one.last_trade_ms == {"KRW-ETH": NOW + 29, "KRW-BTC": NOW + 28}
    # the resume point: one move per batch (per frame when fed one by one), applied only
    # once every sink made the events handed so far durable; then both say the same
    assert len(many.ledger) == 1 and len(one.ledger) == 30
    for svc in (one, many):
        svc.runners[0].durable_events = 60
        assert svc.ledger.advance() == 0  # the kafka-named sink has nothing durable yet
        svc.runners[1].durable_events = 60
        svc.ledger.advance()
    tips = {m: (t.ms, t.sid) for m, t in many.state.resume.tips.items()}
    assert tips == {m: (t.ms, t.sid) for m, t in one.state.resume.tips.items()}
    assert tips == {
        "KRW-ETH": (NOW + 29, (NOW + 29) * 1000),
        "KRW-BTC": (NOW + 28, (NOW + 28) * 1000),
    }


def test_a_batch_without_market_data_does_not_feed_the_watchdog(tmp_path: Path) -> None:
    svc = service(tmp_path)
    batch = [(b'{"status":"UP"}', NOW), (b"garbage", NOW), (trade("KRW-ZZZ", 1), NOW)]
    assert asyncio.run(svc._on_shard_frames(0, batch)) is False
    assert [len(r.take_buffered()) for r in svc.runners] == [0, 0]
    assert svc.dead_letters.total == 2 and svc.counters.status_frames == 1


def test_trades_kafka_already_has_skip_only_kafka_and_its_ledger_counts(tmp_path: Path) -> None:
    batch = frames()
    has = {(MARKETS[i % 2], (NOW + i) * 1000) for i in range(0, 30, 3)}  # 10 trades
    svc = service(tmp_path, kafka_has=has)
    asyncio.run(svc._on_shard_frames(0, batch))
    memory, kafka = (r.take_buffered() for r in svc.runners)
    assert len(memory) == 60 and len(kafka) == 50
    assert [e for e in memory if (e.market, e.record.get("sequential_id")) not in has] == kafka
    assert svc.ledger.handed == [60, 50]
