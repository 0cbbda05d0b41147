"""The one interface every sink implements, and the record it receives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson

SOURCE_WEBSOCKET = "upbit_websocket"
SOURCE_BACKFILL = "upbit_rest_backfill"


class SinkEvent:
    """One deduplicated event on its way to the sinks.

    ``record`` is the data-contract object (DEFAULT field names, ``market``, ``_ingested_at``,
    ``_source``, ``_collector``); ``value`` is the same record as JSON bytes (what Kafka
    carries); ``raw`` is the frame as received from the exchange (for REST-backfilled
    trades, a DEFAULT-format frame rebuilt from the record).

    An event is made with the record, its JSON, or both; the other is derived on first use
    and kept. The collector encodes each event once, where it is made (for a DEFAULT frame
    by splicing the frame's bytes, :func:`upbitpipe.upbit.codec.splice_record`), and when no
    sink reads records (``needs_record = False`` on every sink, as on the Kafka sink) it
    keeps only the bytes (:class:`ValueEvent`): the dict is freed at once instead of after
    the write.

    Every attribute is a plain slot, read at the cost of one (CPython specialises the reads
    of a type without ``__getattr__`` or properties). An event made without one of the two
    is of a subclass (:class:`ValueEvent`, or the one ``__init__`` picks for a record
    without its JSON) whose property for the missing one derives it on first read, fills
    the slot and turns the event into a plain ``SinkEvent``; so the sinks' hot loops read
    slots whichever kind of event they get.
    """

    __slots__ = ("market", "raw", "record", "type", "value")

    type: str
    market: str
    raw: bytes
    #: the data-contract record (decoded from ``value`` on first use if made without)
    record: dict[str, Any]
    #: the record as JSON (encoded on first use if made without)
    value: bytes

    def __init__(
        self,
        type: str,
        market: str,
        record: dict[str, Any] | None,
        raw: bytes,
        value: bytes | None = None,
    ) -> None:
        self.type = type
        self.market = market
        self.raw = raw
        # a subclass of its own (none in the package) cannot swap classes (its layout
        # differs): it gets the missing form at once instead of on first use
        lazy = self.__class__ is SinkEvent  # (`type` is the parameter here)
        if record is not None:
            self.record = record
            if value is not None:
                self.value = value
            elif lazy:
                self.__class__ = _RecordEvent
            else:
                self.value = orjson.dumps(record)
        elif value is not None:
            self.value = value
            if lazy:
                self.__class__ = ValueEvent
            else:
                self.record = orjson.loads(value)
        else:
            msg = "a SinkEvent needs its record or its JSON value"
            raise ValueError(msg)

    @property
    def has_record(self) -> bool:
        """Whether the record dict is held (else ``record`` decodes ``value``)."""
        try:
            _RECORD_SLOT.__get__(self)
        except AttributeError:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SinkEvent):
            return NotImplemented
        return (self.type, self.market, self.raw, self.record) == (
            other.type,
            other.market,
            other.raw,
            other.record,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        return f"SinkEvent(type={self.type!r}, market={self.market!r}, record={self.record!r})"


# the base's slots, read and set past the subclasses' properties
_RECORD_SLOT: Any = SinkEvent.__dict__["record"]
_VALUE_SLOT: Any = SinkEvent.__dict__["value"]


class ValueEvent(SinkEvent):
    """An event made with its JSON only (``SinkEvent(type, market, None, raw, value)`` makes
    one too, a little slower): what the collector makes when no sink reads records. Its
    ``record`` is decoded on first read and kept, and the event is a plain
    :class:`SinkEvent` from then on."""

    __slots__ = ()

    def __init__(self, type: str, market: str, raw: bytes, value: bytes) -> None:
        self.type = type
        self.market = market
        self.raw = raw
        self.value = value

    if not TYPE_CHECKING:  # to mypy, the base's attribute (always readable)

        @property
        def record(self) -> dict[str, Any]:
            record = orjson.loads(self.value)
            self.record = record
            return record

        @record.setter
        def record(self, record: dict[str, Any]) -> None:
            _RECORD_SLOT.__set__(self, record)
            self.__class__ = SinkEvent


class _RecordEvent(SinkEvent):
    """An event made with its record only: ``value`` is encoded on first read and kept, and
    the event is a plain :class:`SinkEvent` from then on."""

    __slots__ = ()

    if not TYPE_CHECKING:

        @property
        def value(self) -> bytes:
            value = orjson.dumps(_RECORD_SLOT.__get__(self))
            self.value = value
            return value

        @value.setter
        def value(self, value: bytes) -> None:
            _VALUE_SLOT.__set__(self, value)
            self.__class__ = SinkEvent


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

    A sink that reads only an event's ``type``, ``market``, ``raw`` and ``value`` (not
    ``record``) says so with a class attribute ``needs_record = False`` (optional, read with
    :func:`needs_record`): when no configured sink needs records, the collector does not keep
    the dicts alive in the buffers.
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


def needs_record(sink: object) -> bool:
    """Whether ``sink`` reads ``SinkEvent.record`` (True unless it says otherwise)."""
    return bool(getattr(sink, "needs_record", True))
