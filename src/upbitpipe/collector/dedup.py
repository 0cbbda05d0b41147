"""Emit each event once: a bounded memory of keys already seen.

Trades are keyed by (market, sequential_id) - the exchange's unique trade id, which arrives
again after reconnect snapshots and from REST backfill. Tickers and orderbooks carry no id;
a re-sent snapshot is recognised by (type, market, timestamp) plus a few fields that differ
between distinct updates of the same millisecond.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


def event_key(event_type: str, market: str, data: dict[str, Any]) -> Hashable:
    if event_type == "trade":
        return ("trade", market, data.get("sequential_id"))
    if event_type == "ticker":
        return (
            "ticker",
            market,
            data.get("timestamp"),
            data.get("trade_timestamp"),
            data.get("acc_trade_volume"),
            data.get("trade_price"),
        )
    return (
        event_type,
        market,
        data.get("timestamp"),
        data.get("total_ask_size"),
        data.get("total_bid_size"),
        data.get("best_ask_price"),
        data.get("best_bid_price"),
    )


class Deduplicator:
    """First-seen wins; remembers the last ``capacity`` keys (LRU by insertion)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self.duplicates = 0

    def first_time(self, key: Hashable) -> bool:
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)
