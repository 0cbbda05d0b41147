"""Candles rebuilt from the embedded lake's trades equal the Python reference."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from upbitpipe.config import load_settings
from upbitpipe.lake.candles_job import rebuild_candles
from upbitpipe.lake.ohlcv import candles
from upbitpipe.lake.read import read_table
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.lake import LakeSink

BASE_MS = 1_763_900_040_000  # 12:14:00 UTC


def make_trades(seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for market in ("KRW-BTC", "KRW-ETH"):
        for i in range(300):
            out.append(
                {
                    "market": market,
                    "sequential_id": rng.randrange(10**15),
                    "trade_timestamp": BASE_MS + rng.randrange(0, 3 * 60_000),
                    "trade_price": round(rng.uniform(100, 110), 2),
                    "trade_volume": round(rng.uniform(0.01, 2), 4),
                    "timestamp": BASE_MS + i,
                }
            )
    rng.shuffle(out)  # arrival order is not trade order
    return out


async def test_candles_match_the_reference_and_reruns_are_idempotent(tmp_path: Path) -> None:
    settings = load_settings(overrides={"lake.warehouse": str(tmp_path / "lake")}, env={}).settings
    trades = make_trades(7)
    sink = LakeSink(settings, DeadLetterBox(tmp_path / "dead"))
    await sink.open()
    events = [SinkEvent("trade", str(t["market"]), t, b"") for t in trades]
    await sink.write(events[:400])
    await sink.flush()
    await sink.write(events[350:])  # overlapping re-delivery: stored once
    await sink.flush()

    first = rebuild_candles(settings, since_minutes=None)
    again = rebuild_candles(settings, since_minutes=None)
    assert first.trades_read == len(trades)
    assert first.candles_written == again.candles_written == 6  # 2 markets x 3 minutes

    expected = candles(trades)
    rows = read_table(settings, "ohlcv_1m")
    assert len(rows) == len(expected)
    for row in rows:
        ref = expected[(row["market"], row["window_start"])]
        assert (row["open"], row["high"], row["low"], row["close"]) == (
            ref.open,
            ref.high,
            ref.low,
            ref.close,
        )
        assert row["trade_count"] == ref.trade_count
        assert row["volume"] == pytest.approx(ref.volume)
        assert row["quote_volume"] == pytest.approx(ref.quote_volume)
        assert row["vwap"] == pytest.approx(ref.vwap)
        assert row["dt"] == "2025-11-23"


async def test_since_minutes_limits_the_window(tmp_path: Path) -> None:
    settings = load_settings(overrides={"lake.warehouse": str(tmp_path / "lake")}, env={}).settings
    trades = make_trades(3)
    sink = LakeSink(settings, DeadLetterBox(tmp_path / "dead"))
    await sink.open()
    await sink.write([SinkEvent("trade", str(t["market"]), t, b"") for t in trades])
    await sink.flush()
    report = rebuild_candles(settings, since_minutes=1.5, now_ms=BASE_MS + 3 * 60_000)
    assert report.candles_written == 4  # the last two minutes of each market
