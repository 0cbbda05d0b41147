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
    """Per key (client address), at most ``limit`` per wall-clock second; None = unlimited.

    Fixed windows on whole seconds, like Upbit's ``Remaining-Req: sec=``: a client told
    ``sec=0`` that waits for the next second gets a fresh allowance.
    """

    def __init__(self, limit: float | None) -> None:
        self.limit = None if limit is None else max(1, int(limit))
        self._by_key: dict[str, tuple[int, int]] = {}  # key -> (second, count)

    def take(self, key: str) -> tuple[bool, int]:
        """(allowed, remaining in this second after this request)."""
        if self.limit is None:
            return True, 1_000
        second = int(time.time())
        window, count = self._by_key.get(key, (second, 0))
        if window != second:
            count = 0
        if count >= self.limit:
            return False, 0
        count += 1
        if len(self._by_key) > 10_000:
            self._by_key.clear()
        self._by_key[key] = (second, count)
        return True, self.limit - count
