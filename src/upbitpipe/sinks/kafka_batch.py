"""One transaction's sends of the Kafka sink: a partition's records into aiokafka's record
batches, sent; what became of them (:class:`Sends`).

``BatchBuilder.append`` (aiokafka's public batch API, ``producer.create_batch()``) is a
Python method around the record batch builder (Cython, or pure Python without aiokafka's
C extensions). Per record it checks the batch's closed flag, runs the serializers (the
sink's producer has none), calls the builder with keywords, counts the record in
``_relative_offset`` (the batch's record count: the producer takes the idempotence sequence
numbers from it) and returns the builder's metadata object: ~0.1 CPU-µs per record of the
Kafka sink's ~0.5 spent around the builder.

:class:`BatchFiller` hands :func:`send_lane` the builder's own ``append(offset, timestamp,
key, value, headers)``; the offsets are counted by the caller and set once per batch. Only
for a batch exactly as aiokafka 0.10-0.14 makes it (``BatchBuilder``, open, empty, no
serializers); any other (a changed aiokafka, a test's fake) gets an adapter over its
public ``append``. A unit test fails when aiokafka's ``BatchBuilder`` stops working this
way (``tests/unit/test_kafka_batch.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder

MAX_REQUEST_BYTES = 1_048_576  # the producer's max_request_size: a larger record cannot go
_RECORD_OVERHEAD = 128  # batch header and record framing, generously
LARGEST_RECORD = MAX_REQUEST_BYTES - _RECORD_OVERHEAD  # key + value bytes
#: A record on its way: (topic, key, value). A plain tuple, not a ``SpoolRecord`` (a frozen
#: dataclass costs ~1.2 µs more per record to make); one becomes a ``SpoolRecord`` only when
#: it goes to the spool.
Record = tuple[str, bytes, bytes]

#: ``append(offset, timestamp_ms, key, value, headers)``: the builder's metadata, or None
#: when the batch is full (the record was not added)
Append = Callable[[int, int, bytes, bytes, list[Any]], object | None]
NO_HEADERS: list[Any] = []  # never mutated (the builders only read it)


def _direct(batch: Any) -> Append | None:
    """The builder's own append of an untouched aiokafka batch, else None."""
    if type(batch) is not BatchBuilder:
        return None
    state = vars(batch)
    if (
        state.get("_relative_offset") != 0
        or state.get("_closed") is not False
        or state.get("_key_serializer") is not None
        or state.get("_value_serializer") is not None
    ):
        return None
    append = getattr(state.get("_builder"), "append", None)
    return append if callable(append) else None


class BatchFiller:
    """Adds records to one batch fresh from ``producer.create_batch()``: ``append(offset,
    timestamp_ms, key, value, headers)`` with offsets from 0 in the order added (None: the
    batch is full, the record was not added), then :meth:`close` with the number added,
    before the batch is sent."""

    __slots__ = ("_direct", "append", "batch")

    def __init__(self, batch: Any) -> None:
        self.batch = batch
        direct = _direct(batch)
        self._direct = direct is not None
        self.append: Append = direct if direct is not None else self._public

    def _public(
        self, offset: int, timestamp: int, key: bytes, value: bytes, headers: list[Any]
    ) -> object | None:
        result: object | None = self.batch.append(key=key, value=value, timestamp=timestamp)
        return result

    def size(self) -> int:
        """The batch's bytes so far (uncompressed, header included)."""
        size: int = self.batch.size()
        return size

    def close(self, records: int) -> None:
        """The batch is complete with ``records`` records: counted (when they went to the
        builder directly) and closed (sent at once, not lingering for more)."""
        if self._direct:
            self.batch._relative_offset = records  # noqa: SLF001
        self.batch.close()


@dataclass(slots=True)
class Sends:
    """What one transaction's sends did: each batch sent (its delivery future and its
    records), the records refused before sending (too large), whether sending stopped early
    (timed out, or the client failed)."""

    shipped: list[tuple[asyncio.Future[Any], list[Record]]] = field(default_factory=list)
    refused: list[tuple[Record, BaseException]] = field(default_factory=list)
    stopped: bool = False

    def all_acknowledged(self, records: int) -> bool:
        """True when the batches carried all ``records`` (none refused, nothing stopped)
        and every one was acknowledged."""
        return (
            not self.stopped
            and not self.refused
            and sum(len(batch) for _, batch in self.shipped) == records
            and all(
                future.done() and not future.cancelled() and future.exception() is None
                for future, _ in self.shipped
            )
        )


async def send_lane(
    producer: AIOKafkaProducer,
    tp: tuple[str, int],
    lane: list[Record],
    stamp: int,
    sends: Sends,
) -> None:
    """Send one partition's records, in order, with ``stamp`` as their timestamp: one batch,
    or more where one is full.

    The batch is filled in one go, not side by side with the transaction's other batches:
    a builder's buffer grows ~12.5 % at a time (``bytearray``), and while it is the only one
    growing, the allocator mostly extends it in place; batches filled record by record side
    by side had their buffers copied at nearly every step (the sink's ``write`` of 1,600
    records through aiokafka's builders, no network: 2.0 -> 0.9 CPU-µs/record, this and
    :class:`BatchFiller` together)."""
    filler = BatchFiller(producer.create_batch())
    append = filler.append
    start = 0
    for index, (_, key, value) in enumerate(lane):
        if append(index - start, stamp, key, value, NO_HEADERS) is None:
            if index == start:
                raise _first_refused(tp)
            await _ship(producer, tp, filler, lane[start:index], stamp, sends)
            start = index
            filler = BatchFiller(producer.create_batch())
            append = filler.append
            if append(0, stamp, key, value, NO_HEADERS) is None:
                raise _first_refused(tp)  # aiokafka's builders always take a first record
    await _ship(producer, tp, filler, lane[start:] if start else lane, stamp, sends)


def _first_refused(tp: tuple[str, int]) -> RuntimeError:
    """A new batch that refuses its first record (aiokafka changed): the write fails and is
    retried, instead of the record counting as sent in an empty batch."""
    msg = f"a new record batch for {tp[0]}[{tp[1]}] refused its first record"
    return RuntimeError(msg)


async def _ship(
    producer: AIOKafkaProducer,
    tp: tuple[str, int],
    filler: BatchFiller,
    records: list[Record],
    stamp: int,
    sends: Sends,
) -> None:
    """Send one filled batch of ``records``. A record too large for a request (then the
    batch is larger than that too) never leaves the client: it is refused, and the rest of
    its batch is filled again and sent without it."""
    if filler.size() > LARGEST_RECORD:  # only then can a record be too large
        kept: list[Record] = []
        for record in records:
            if len(record[1]) + len(record[2]) > LARGEST_RECORD:
                error = MessageSizeTooLargeError(
                    f"{len(record[2])} bytes, more than {MAX_REQUEST_BYTES} per request"
                )
                sends.refused.append((record, error))
            else:
                kept.append(record)
        if len(kept) < len(records):  # this batch is dropped unsent
            if kept:
                await send_lane(producer, tp, kept, stamp, sends)
            return
    filler.close(len(records))
    future: asyncio.Future[Any] = await producer.send_batch(filler.batch, tp[0], partition=tp[1])
    future.add_done_callback(consume_result)
    sends.shipped.append((future, records))


def consume_result(future: asyncio.Future[Any]) -> None:
    """Mark a delivery future's exception as seen (the sink inspects it, or spools its
    batch's records)."""
    if not future.cancelled():
        future.exception()
