"""Exponential backoff with full jitter and a cap, reset after a healthy connection."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 1.0
    cap: float = 60.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Delay before the next attempt: uniform in [ceiling/2, ceiling], ceiling capped."""
        ceiling = min(self.cap, self.initial * (self.factor**self.attempt))
        self.attempt += 1
        return ceiling / 2 + self.rng.random() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0
