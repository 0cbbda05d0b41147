"""The Python candle reference: order by trade time then sequential_id, duplicates once."""

from __future__ import annotations

import random
from datetime import datetime

from upbitpipe.lake.ohlcv import candles

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _t(
    seq: int, ts: int, price: float, volume: float = 1.0, market: str = "KRW-BTC"
) -> dict[str, object]:
    return {
        "market": market,
        "sequential_id": seq,
        "trade_timestamp": ts,
        "trade_price": price,
        "trade_volume": volume,
    }


def test_open_close_by_time_then_sequence_not_arrival() -> None:
    trades = [
        _t(5, T0 + 30_000, 105),
        _t(2, T0 + 1_000, 102),  # same ms as seq 1 but later sequence
        _t(1, T0 + 1_000, 101),
        _t(9, T0 + 59_999, 99, volume=3),
        _t(8, T0 + 59_999, 98),
        _t(10, T0 + 60_000, 200),  # next window
    ]
    random.Random(4).shuffle(trades)
    out = candles(trades)
    first = out[("KRW-BTC", datetime(2026, 1, 1, 0, 0))]  # noqa: DTZ001 - naive UTC
    assert (first.open, first.close, first.high, first.low) == (101, 99, 105, 98)
    assert first.trade_count == 5 and first.volume == 7
    assert first.quote_volume == 101 + 102 + 105 + 99 * 3 + 98
    assert first.vwap == first.quote_volume / 7
    assert first.window_end == datetime(2026, 1, 1, 0, 1)  # noqa: DTZ001
    assert out[("KRW-BTC", datetime(2026, 1, 1, 0, 1))].trade_count == 1  # noqa: DTZ001


def test_duplicates_count_once_and_markets_apart() -> None:
    trades = [_t(1, T0, 10), _t(1, T0, 10), _t(1, T0, 20, market="KRW-ETH")]
    out = candles(trades)
    assert len(out) == 2
    assert all(c.trade_count == 1 for c in out.values())
