"""Emit each event once: a bounded memory of keys already seen.

Trades are keyed by (market, sequential_id) - the exchange's unique trade id, which arrives
again after reconnect snapshots and from REST backfill. Tickers and orderbooks carry no id;
a re-sent snapshot is recognised by (type, market, timestamp) plus a few fields that differ
between distinct updates of the same millisecond.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any


def event_key(event_type: str, market: str, data: dict[str, Any]) -> Hashable:
    if event_type == "trade":
        return ("trade", market, data.get("sequential_id"))
    get = data.get
    if event_type == "ticker":
        return (
            "ticker",
            market,
            get("timestamp"),
            get("trade_timestamp"),
            get("acc_trade_volume"),
            get("trade_price"),
        )
    return (
        event_type,
        market,
        get("timestamp"),
        get("total_ask_size"),
        get("total_bid_size"),
        get("best_ask_price"),
        get("best_bid_price"),
    )


class Deduplicator:
    """First-seen wins, over a window bounded by count and by time.

    Keys are kept as their 64-bit hashes in two generations of sets (~60 bytes a key
    instead of ~340 for the tuples in an ordered dict: 200,000 keys hold ~12 MB, reached
    after a few minutes at 1,000 msgs/s, and then memory stays flat). A generation is
    retired when it holds ``capacity / 2`` keys or is ``window_seconds`` old, so a key is
    remembered for at least the last ``capacity / 2`` keys (or ``window_seconds``) and
    at most ``capacity`` keys. Two distinct events share a hash with a chance of about
    ``capacity / 2**64`` each - far below any other loss.
    """

    def __init__(
        self,
        capacity: int,
        window_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.window_seconds = window_seconds
        self._clock = clock
        self._generation = max(1, capacity // 2)
        self._current: set[int] = set()
        self._previous: set[int] = set()
        self._started = clock()
        self.duplicates = 0

    def first_time(self, key: Hashable) -> bool:
        """Whether ``key`` is new (and remember it); the time window is checked first."""
        self.expire()
        return self.add(key)

    def expire(self) -> None:
        """Retire the current generation if it is ``window_seconds`` old. The collector
        calls this once per batch of frames and then :meth:`add` per event: the clock is
        read per batch, not per key."""
        if self._clock() - self._started >= self.window_seconds:
            self._rotate()

    def add(self, key: Hashable) -> bool:
        """Whether ``key`` is new (and remember it), without reading the clock."""
        digest = hash(key)
        current = self._current
        if digest in current or digest in self._previous:
            self.duplicates += 1
            return False
        if len(current) >= self._generation:
            current = self._rotate()
        current.add(digest)
        return True

    def _rotate(self) -> set[int]:
        current: set[int] = set()
        self._previous = self._current
        self._current = current
        self._started = self._clock()
        return current

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)
