"""The twin's market clock: wall time plus an offset that tests can move forward.

A synthetic market stamps every event with :meth:`MarketClock.now_ms`. ``start_ms`` puts the
clock anywhere (e.g. 22:30 UTC, so a jump crosses midnight); :meth:`MarketClock.jump` moves
it forward by a span and records that span, so a test can simulate a collector that was
stopped for hours without waiting for them. The trades of a skipped span are made by the
market (see :meth:`upbitpipe.replay.market.MarketState.fill`), not here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class SkippedSpan:
    """One jump of the clock: market time ``[from_ms, to_ms)`` and the trades made in it."""

    from_ms: int
    to_ms: int
    trades: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"from_ms": self.from_ms, "to_ms": self.to_ms, "trades": dict(self.trades)}


class MarketClock:
    """Market time in epoch ms; monotonic even when the wall clock steps back."""

    def __init__(self, start_ms: int | None = None) -> None:
        now = wall_ms()
        self.offset_ms = 0 if start_ms is None else start_ms - now
        self.skipped: list[SkippedSpan] = []
        self._last = 0

    def now_ms(self) -> int:
        now = wall_ms() + self.offset_ms
        if now < self._last:
            return self._last
        self._last = now
        return now

    def jump(self, span_ms: int) -> SkippedSpan:
        """Move market time forward by ``span_ms``; returns the span (fill in its trades)."""
        if span_ms <= 0:
            msg = f"a clock jump must be > 0 ms, got {span_ms}"
            raise ValueError(msg)
        start = self.now_ms()
        self.offset_ms += span_ms
        span = SkippedSpan(start, start + span_ms)
        self.skipped.append(span)
        return span

    def as_json(self) -> dict[str, Any]:
        return {
            "now_ms": self.now_ms(),
            "offset_ms": self.offset_ms,
            "skipped": [span.as_json() for span in self.skipped],
        }
