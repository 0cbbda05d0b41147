"""The demo's ground truth: which trades a collector must have, given what it collected."""

from __future__ import annotations

from collections import Counter
from typing import Any

from upbitpipe.demo import expected_trade_ids

# (sequential_id, trade_timestamp) in the order the exchange made them; 101..103 share a ms
MADE = [(100, 1_000), (101, 2_000), (102, 2_000), (103, 2_000), (104, 3_000), (105, 9_000)]


def _generated(market: str) -> list[dict[str, Any]]:
    return [{"sequential_id": sid, "trade_timestamp": ts} for sid, ts in MADE]


def test_trades_made_before_the_first_collected_one_in_its_millisecond_are_not_expected() -> None:
    collected = Counter({("KRW-BTC", 103): 1, ("KRW-BTC", 105): 1})
    expected = expected_trade_ids(_generated, collected, ["KRW-BTC"], in_flight_ms=0)
    assert expected == {("KRW-BTC", 103), ("KRW-BTC", 104), ("KRW-BTC", 105)}


def test_a_hole_after_the_first_collected_trade_is_expected_and_the_in_flight_tail_is_not() -> None:
    collected = Counter({("KRW-BTC", 101): 1, ("KRW-BTC", 105): 1})
    expected = expected_trade_ids(_generated, collected, ["KRW-BTC"], in_flight_ms=1_000)
    assert expected == {("KRW-BTC", s) for s in (101, 102, 103, 104)}
