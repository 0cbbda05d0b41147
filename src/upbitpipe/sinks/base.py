"""The one interface every sink implements, and the record it receives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

SOURCE_WEBSOCKET = "upbit_websocket"
SOURCE_BACKFILL = "upbit_rest_backfill"


@dataclass(slots=True)
class SinkEvent:
    """One deduplicated event on its way to the sinks.

    ``record`` is the data-contract object (DEFAULT field names, ``market``, ``_ingested_at``,
    ``_source``, ``_collector``); ``raw`` is the frame as received from the exchange (for
    REST-backfilled trades, a DEFAULT-format frame rebuilt from the record).
    """

    type: str
    market: str
    record: dict[str, Any]
    raw: bytes


@runtime_checkable
class Sink(Protocol):
    """A destination. The collector service drives it from one writer task, so a sink's
    methods are never called concurrently with each other.

    Contract:
    - ``open()`` is awaited once before the first ``write``. It may raise
      ``ServiceUnavailableError`` only for configuration problems that retrying cannot fix;
      a destination that is merely down must be handled inside the sink (spool, retry).
    - ``write(events)`` takes ownership of the batch, in arrival order. It must not drop an
      event silently: either the event is delivered/buffered, or it is counted in
      ``stats()`` under a failure key and logged. It may block (backpressure).
    - ``flush()`` makes everything written so far durable at the destination (or in the
      sink's own on-disk spool) before returning; if it cannot, it raises (the events stay
      with the sink and the next ``flush()`` tries again).
    - ``take_unflushed()`` hands back, in order, the events written but not yet durable and
      forgets them (a commit still running in a worker thread counts as not durable). The
      runner calls it at a shutdown that cannot wait for the destination, and puts them in
      its own on-disk spool, which the next start delivers first. A redelivery of an event
      whose commit did complete after all must be harmless (the lake's primary keys
      deduplicate it; the Kafka sink does not hand back a batch whose transaction commit
      is in doubt, it spools it with a marker that the next start settles).
    - ``close()`` is awaited once at shutdown after a final ``flush()``; it is also awaited
      after a failed ``open()``, so it must tolerate a half-opened sink.
    - ``stats()`` returns cheap counters (ints/floats/strings) for the status file and
      ``upbitpipe stats``; it never blocks.
    """

    name: str
    #: how often the collector asks for ``flush()`` (seconds): a sink's own commit cadence,
    #: so the collector needs no rule per sink
    flush_interval: float

    async def open(self) -> None: ...

    async def write(self, events: Sequence[SinkEvent]) -> None: ...

    async def flush(self) -> None: ...

    def take_unflushed(self) -> list[SinkEvent]: ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...
