"""Each event is encoded once, where the collector makes it: sinks that read only bytes
(Kafka) get the data-contract JSON without the dict being kept, sinks that read records get
the dict, and both say the same; the stop spool round-trips either kind of event."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.config import Settings
from upbitpipe.sinks.base import SinkEvent, ValueEvent, needs_record
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.kafka import KafkaSink, encode_event
from upbitpipe.sinks.memory import MemorySink
from upbitpipe.sinks.spool import event_from_spool, event_to_spool
from upbitpipe.upbit.codec import MarketEvent, parse_frame
from upbitpipe.upbit.rest import UpbitRestClient

DATA = Path(__file__).parent.parent / "data"
MARKETS = ["KRW-BTC"]
NOW = 1_795_460_000_000


class BytesSink(MemorySink):
    """Reads only ``value`` (as the Kafka sink does)."""

    name = "kafka"
    needs_record = False


def frames() -> list[tuple[bytes, int]]:
    """The real ticker, trade and book in both formats (the SIMPLE ones cannot be spliced),
    restamped so both are first-seen events."""
    out: list[tuple[bytes, int]] = []
    for n, name in enumerate(("upbit_default_frames.jsonl", "upbit_simple_frames.jsonl")):
        for line in (DATA / name).read_bytes().splitlines():
            obj = orjson.loads(line)
            stamp = "timestamp" if "timestamp" in obj else "tms"
            obj[stamp] = NOW + n
            for sid in ("sequential_id", "sid"):
                if sid in obj:
                    obj[sid] += n
            out.append((orjson.dumps(obj), NOW + 10))
    return out


def collect(tmp_path: Path, sinks: list[Any]) -> CollectorService:
    plan = CollectorPlan(markets=MARKETS, types=["ticker", "trade", "orderbook"], shards=[MARKETS])
    settings = Settings()
    settings.collector.backfill = False
    svc = CollectorService(
        settings,
        plan,
        sinks,
        UpbitRestClient("http://127.0.0.1:9"),
        DeadLetterBox(tmp_path / "deadletter"),
    )
    asyncio.run(svc._on_shard_frames(0, frames()))
    return svc


def test_the_kafka_sink_reads_only_bytes() -> None:
    assert needs_record(KafkaSink) is False
    assert needs_record(MemorySink()) is True


def test_a_bytes_only_collector_keeps_no_dicts_and_says_what_records_say(tmp_path: Path) -> None:
    reference = collect(tmp_path / "ref", [MemorySink()]).runners[0].take_buffered()
    events = collect(tmp_path / "bytes", [BytesSink()]).runners[0].take_buffered()
    assert len(events) == len(reference) == 6  # ticker, trade, book in both formats
    assert [e.has_record for e in events] == [False] * 6
    assert [e.has_record for e in reference] == [True] * 6
    book = events[2]  # the DEFAULT book is spliced from its frame
    assert book.value.startswith(book.raw.replace(b'"code"', b'"market"')[:-1])
    for event, ref in zip(events, reference, strict=True):
        assert (event.type, event.market, event.raw) == (ref.type, ref.market, ref.raw)
        assert orjson.loads(event.value) == ref.record
        assert encode_event(event, "t").value == event.value


def test_with_both_kinds_of_sink_each_event_has_its_dict_and_its_bytes(tmp_path: Path) -> None:
    svc = collect(tmp_path, [MemorySink(), BytesSink()])
    memory, kafka = (r.take_buffered() for r in svc.runners)
    assert memory == kafka and len(memory) == 6
    for event in memory:
        assert event.has_record
        assert orjson.loads(event.value) == event.record
        assert event.record["_collector"] == svc.instance_id


def test_the_stop_spool_round_trips_events_with_or_without_their_dict() -> None:
    raw = (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()[2]
    parsed = parse_frame(raw)
    assert isinstance(parsed, MarketEvent)
    record = {**parsed.data, "_ingested_at": NOW, "_source": "upbit_websocket", "_collector": "c"}
    value = orjson.dumps(record)
    for event in (
        SinkEvent("orderbook", "KRW-BTC", None, raw, value),
        SinkEvent("orderbook", "KRW-BTC", record, raw),
    ):
        back = event_from_spool(event_to_spool(event))
        assert back == event
        assert (back.type, back.market, back.raw, back.value) == (
            "orderbook",
            "KRW-BTC",
            raw,
            value,
        )
        assert back.record == record


def test_an_event_needs_its_record_or_its_json() -> None:
    with pytest.raises(ValueError, match="record or its JSON"):
        SinkEvent("trade", "KRW-BTC", None, b"")
    event = SinkEvent("trade", "KRW-BTC", None, b"", b'{"a":1}')
    assert event.record == {"a": 1} and event.has_record  # decoded once, then kept


def test_an_event_made_with_one_of_its_forms_derives_the_other_once_and_becomes_plain() -> None:
    record = {"a": 1, "b": [2, 3]}
    value = orjson.dumps(record)
    for event in (
        ValueEvent("trade", "KRW-BTC", b"raw", value),
        SinkEvent("trade", "KRW-BTC", None, b"raw", value),
        SinkEvent("trade", "KRW-BTC", record, b"raw"),
    ):
        assert isinstance(event, SinkEvent)
        assert type(event) is not SinkEvent  # a lazy one until the missing form is read
        assert (event.type, event.market, event.raw) == ("trade", "KRW-BTC", b"raw")
        assert event.record == record and orjson.loads(event.value) == record
        assert type(event) is SinkEvent and event.has_record
        assert event.record is event.record  # derived once, then kept in the slot
        assert event.value is event.value
    both = SinkEvent("trade", "KRW-BTC", record, b"raw", value)
    assert type(both) is SinkEvent
    assert both == ValueEvent("trade", "KRW-BTC", b"raw", value)


def test_the_sinks_hot_loops_read_slots_not_a_getattr_hook() -> None:
    """The reads of every kind of event are plain slot reads: no class in the family has
    ``__getattr__`` (it would route every attribute read through a generic slow path)."""
    for cls in (SinkEvent, ValueEvent, type(SinkEvent("t", "m", {}, b""))):
        assert not hasattr(cls, "__getattr__")
        assert cls.__getattribute__ is object.__getattribute__


def test_a_subclass_of_its_own_gets_the_missing_form_at_once() -> None:
    """A subclass with its own layout cannot become one of the lazy classes: it derives
    the form it was made without when it is made, and reads like any event."""

    class Tagged(SinkEvent):
        __slots__ = ("tag",)

    record = {"a": 1}
    value = orjson.dumps(record)
    from_record = Tagged("trade", "KRW-BTC", record, b"raw")
    from_value = Tagged("trade", "KRW-BTC", None, b"raw", value)
    for event in (from_record, from_value):
        assert type(event) is Tagged
        assert event.has_record
        assert event.record == record and event.value == value
