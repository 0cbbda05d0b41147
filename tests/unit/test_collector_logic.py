"""Pure collector logic: dedup, market resolution, sharding, backoff, spool."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from upbitpipe.backoff import Backoff
from upbitpipe.collector.dedup import Deduplicator, event_key
from upbitpipe.collector.markets import resolve_markets, shard
from upbitpipe.errors import UnknownMarketError
from upbitpipe.sinks.spool import DiskSpool, SpoolFullError, SpoolRecord

LISTED = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "BTC-ETH", "USDT-BTC"]


def test_trade_seen_twice_is_emitted_once() -> None:
    dedup = Deduplicator(capacity=1000)
    trade = {"sequential_id": 17, "trade_timestamp": 1}
    assert dedup.first_time(event_key("trade", "KRW-BTC", trade))
    assert not dedup.first_time(event_key("trade", "KRW-BTC", dict(trade)))
    assert dedup.first_time(event_key("trade", "KRW-ETH", trade))  # other market, same id
    assert dedup.duplicates == 1


def test_dedup_forgets_oldest_beyond_capacity() -> None:
    dedup = Deduplicator(capacity=2)
    for sid in (1, 2, 3):
        assert dedup.first_time(("trade", "KRW-BTC", sid))
    assert dedup.first_time(("trade", "KRW-BTC", 1))  # evicted, so new again
    assert len(dedup) == 2


def test_distinct_tickers_in_one_millisecond_are_kept() -> None:
    a = {"timestamp": 5, "trade_timestamp": 5, "acc_trade_volume": 1.0, "trade_price": 10.0}
    b = {**a, "acc_trade_volume": 1.5}
    assert event_key("ticker", "KRW-BTC", a) != event_key("ticker", "KRW-BTC", b)
    assert event_key("ticker", "KRW-BTC", a) == event_key(
        "ticker", "KRW-BTC", {**a, "stream_type": "SNAPSHOT"}
    )


def test_resolve_selectors_and_codes() -> None:
    assert resolve_markets(["all-krw"], LISTED) == ["KRW-BTC", "KRW-ETH", "KRW-XRP"]
    assert resolve_markets(["KRW-ETH", "all-btc", "KRW-ETH"], LISTED) == ["KRW-ETH", "BTC-ETH"]
    assert resolve_markets(["all"], LISTED) == LISTED


def test_unknown_market_names_close_matches() -> None:
    with pytest.raises(UnknownMarketError, match=r"KRW-BTX \(did you mean KRW-BTC"):
        resolve_markets(["KRW-BTX"], LISTED)
    with pytest.raises(UnknownMarketError, match="unknown markets: KRW-AAA; KRW-BBB"):
        resolve_markets(["KRW-AAA", "KRW-BBB"], LISTED)


def test_shard_respects_per_connection_limit_and_keeps_every_market() -> None:
    markets = [f"KRW-C{i}" for i in range(23)]
    shards = shard(markets, 10)
    assert len(shards) == 3
    assert all(len(s) <= 10 for s in shards)
    assert sorted(m for s in shards for m in s) == sorted(markets)


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(initial=1.0, cap=60.0, rng=random.Random(3))
    delays = [backoff.next_delay() for _ in range(12)]
    assert delays[0] <= 1.0
    assert all(d <= 60.0 for d in delays)
    assert delays[-1] >= 30.0  # capped ceiling, jitter keeps at least half of it
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def _records(n: int, start: int = 0) -> list[SpoolRecord]:
    return [
        SpoolRecord("upbit-trade", b"KRW-BTC", f"v{i}".encode()) for i in range(start, start + n)
    ]


def test_spool_is_fifo_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=10_000_000, segment_bytes=200)
    spool.append(_records(10))
    spool.append(_records(10, start=10))
    assert len(spool) == 20
    got = spool.peek(7)
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(7)]
    spool.ack(7)
    reopened = DiskSpool(tmp_path, max_bytes=10_000_000, segment_bytes=200)
    assert len(reopened) == 13
    values = []
    while len(reopened):
        batch = reopened.peek(4)
        values.extend(r.value for r in batch)
        reopened.ack(len(batch))
    assert values == [f"v{i}".encode() for i in range(7, 20)]
    assert reopened.bytes == 0
    assert not list(tmp_path.glob("segment-*.bin"))


def test_spool_refuses_beyond_its_bound(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=100)
    spool.append(_records(2))
    with pytest.raises(SpoolFullError):
        spool.append(_records(20))
    assert len(spool) == 2


def test_spool_ignores_a_torn_tail(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=10_000)
    spool.append(_records(3))
    segment = next(tmp_path.glob("segment-*.bin"))
    with segment.open("ab") as fh:
        fh.write(b"\x00\x00\x01\x00partial")
    assert [r.value for r in DiskSpool(tmp_path, max_bytes=10_000).peek(10)] == [
        b"v0",
        b"v1",
        b"v2",
    ]


def test_dedup_forgets_keys_older_than_its_time_window() -> None:
    now = [0.0]
    dedup = Deduplicator(capacity=10**6, window_seconds=60, clock=lambda: now[0])
    assert dedup.first_time(("trade", "KRW-BTC", 1))
    now[0] = 61
    assert dedup.first_time(("trade", "KRW-BTC", 2))  # retires the first generation...
    assert not dedup.first_time(("trade", "KRW-BTC", 1))  # ...which is still consulted
    now[0] = 122
    assert dedup.first_time(("trade", "KRW-BTC", 3))
    assert dedup.first_time(("trade", "KRW-BTC", 1)), "older than two windows: forgotten"
