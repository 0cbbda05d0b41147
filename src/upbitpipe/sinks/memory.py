"""An in-memory sink: keeps every event it is given (tests, benchmarks, embedding)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from upbitpipe.sinks.base import SinkEvent


class MemorySink:
    """The smallest complete :class:`~upbitpipe.sinks.base.Sink`: ``events`` holds, in order,
    everything written; a write is durable at once (nothing is ever handed back)."""

    name = "memory"
    flush_interval = 1.0

    def __init__(self) -> None:
        self.events: list[SinkEvent] = []
        self.flushes = 0

    async def open(self) -> None:
        return None

    async def write(self, events: Sequence[SinkEvent]) -> None:
        self.events.extend(events)

    async def flush(self) -> None:
        self.flushes += 1

    def take_unflushed(self) -> list[SinkEvent]:
        return []

    async def close(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"events": len(self.events), "flushes": self.flushes}
