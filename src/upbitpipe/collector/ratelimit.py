"""An asyncio token bucket: at most ``rate`` acquisitions per second, bursts up to ``burst``."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    def __init__(self, rate: float, burst: int | None = None) -> None:
        if rate <= 0:
            msg = "rate must be positive"
            raise ValueError(msg)
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, int(rate)))
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)
