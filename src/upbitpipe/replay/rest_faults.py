"""Opt-in REST faults of the replay server: errors for N requests, for a time, or for old data."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class RestFaults:
    """What the REST half refuses right now (all off by default).

    ``error_budget`` the next N ``/v1`` requests get ``error_status``; until
    ``refuse_until`` (monotonic) every ``/v1/trades/ticks`` request gets ``refuse_status``;
    a ticks page that would hold a trade older than ``refuse_before_ms`` (market time) gets
    ``refuse_status`` too.
    """

    error_budget: int = 0
    error_status: int = 429
    refuse_until: float = 0.0
    refuse_status: int = 503
    refuse_before_ms: int | None = None

    def refuse_for(self, seconds: float, status: int) -> None:
        self.refuse_until = time.monotonic() + seconds
        self.refuse_status = status

    def take_error(self) -> int | None:
        """Status of an injected error for this ``/v1`` request, or None."""
        if self.error_budget > 0:
            self.error_budget -= 1
            return self.error_status
        return None

    def refusing_ticks(self) -> bool:
        return time.monotonic() < self.refuse_until

    def refuses_page(self, oldest_ms: int | None) -> bool:
        return (
            self.refuse_before_ms is not None
            and oldest_ms is not None
            and oldest_ms < self.refuse_before_ms
        )

    def clear(self) -> None:
        self.error_budget = 0
        self.refuse_until = 0.0
        self.refuse_before_ms = None

    def as_json(self) -> dict[str, Any]:
        return {
            "rest_errors": self.error_budget,
            "rest_refuse_seconds_left": round(max(0.0, self.refuse_until - time.monotonic()), 3),
            "rest_refuse_before_ms": self.refuse_before_ms,
        }
