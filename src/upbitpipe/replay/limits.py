"""Upbit-style rate limits: per-second windows (what ``Remaining-Req: sec=`` counts)."""

from __future__ import annotations

import time
from collections import deque


class WindowLimit:
    """At most ``limit`` events per ``window`` seconds (sliding window over event times)."""

    def __init__(self, limit: float, window: float = 1.0) -> None:
        self.limit = max(1, int(limit))
        self.window = window
        self._times: deque[float] = deque()

    def remaining(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        times = self._times
        while times and now - times[0] >= self.window:
            times.popleft()
        return self.limit - len(times)

    def take(self, now: float | None = None) -> bool:
        """Count one event if allowed; False when over the limit."""
        now = time.monotonic() if now is None else now
        if self.remaining(now) <= 0:
            return False
        self._times.append(now)
        return True


class KeyedLimits:
    """One :class:`WindowLimit` per key (client address); None limit = unlimited."""

    def __init__(self, limit: float | None, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._by_key: dict[str, WindowLimit] = {}

    def take(self, key: str) -> tuple[bool, int]:
        """(allowed, remaining after this request)."""
        if self.limit is None:
            return True, 1_000
        bucket = self._by_key.get(key)
        if bucket is None:
            if len(self._by_key) > 10_000:
                self._by_key.clear()
            bucket = self._by_key[key] = WindowLimit(self.limit, self.window)
        allowed = bucket.take()
        return allowed, max(0, bucket.remaining())
