"""The Kafka sink fills aiokafka's record batches through their builder
(``kafka_batch.BatchFiller``): the batches must be exactly those aiokafka's public
``append`` makes, record count included (the idempotence sequence numbers come from it),
and a changed aiokafka must be noticed here, not mis-filled."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from aiokafka.producer import message_accumulator
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords

from upbitpipe.sinks.kafka_batch import NO_HEADERS, BatchFiller, Sends, send_lane

RECORDS = [
    (f"KRW-M{i % 3}".encode(), b'{"sequential_id":%d,"pad":"%s"}' % (i, b"x" * i))
    for i in range(40)
]


def _new(batch_size: int = 1 << 20) -> BatchBuilder:
    return BatchBuilder(batch_size, DefaultRecordBatch.CODEC_ZSTD, is_transactional=1)


def _built(batch: BatchBuilder) -> bytes:
    batch._set_producer_state(7, 1, 100)  # noqa: SLF001 - as the sender does before a send
    return bytes(batch._build())  # noqa: SLF001


def _fill_public(batch_size: int) -> list[BatchBuilder]:
    batches = [_new(batch_size)]
    for key, value in RECORDS:
        if batches[-1].append(key=key, value=value, timestamp=1_700_000_000_000) is None:
            batches.append(_new(batch_size))
            assert batches[-1].append(key=key, value=value, timestamp=1_700_000_000_000)
    return batches


def _fill_direct(batch_size: int) -> list[BatchBuilder]:
    batches: list[BatchBuilder] = []
    filler = BatchFiller(_new(batch_size))
    count = 0
    for key, value in RECORDS:
        if filler.append(count, 1_700_000_000_000, key, value, NO_HEADERS) is None:
            filler.close(count)
            batches.append(filler.batch)
            filler = BatchFiller(_new(batch_size))
            count = 0
            assert filler.append(count, 1_700_000_000_000, key, value, NO_HEADERS) is not None
        count += 1
    filler.close(count)
    batches.append(filler.batch)
    return batches


def test_aiokafka_still_fills_batches_the_way_we_bypass() -> None:
    """Fails when aiokafka changes its ``BatchBuilder``: review sinks/kafka_batch.py."""
    source = inspect.getsource(BatchBuilder.append)
    assert "self._builder.append(" in source
    assert "self._relative_offset," in source
    assert "self._relative_offset += 1" in source
    assert "return self._relative_offset" in inspect.getsource(BatchBuilder.record_count)
    batch = _new()
    assert set(vars(batch)) >= {
        "_builder",
        "_relative_offset",
        "_closed",
        "_key_serializer",
        "_value_serializer",
    }
    filler = BatchFiller(batch)
    assert filler.append == batch._builder.append  # noqa: SLF001 - the direct path is taken
    parameters = list(inspect.signature(message_accumulator.MessageBatch.append).parameters)
    assert parameters[:4] == ["self", "key", "value", "timestamp_ms"]


@pytest.mark.parametrize("batch_size", [1 << 20, 600])
def test_direct_filling_builds_the_batches_public_append_builds(batch_size: int) -> None:
    public, direct = _fill_public(batch_size), _fill_direct(batch_size)
    assert len(public) == len(direct) == (1 if batch_size > 10_000 else len(public))
    if batch_size == 600:
        assert len(direct) > 3  # the small batches split
    for mine, theirs in zip(direct, public, strict=True):
        assert mine.record_count() == theirs.record_count()
        assert mine.closed()
    built = [_built(batch) for batch in direct]
    assert built == [_built(batch) for batch in public]
    read = [
        (record.key, record.value)
        for data in built
        for record in MemoryRecords(data).next_batch()  # type: ignore[union-attr]
    ]
    assert read == RECORDS


def test_anything_else_is_filled_through_its_public_append() -> None:
    class Other:
        def __init__(self) -> None:
            self.added: list[tuple[bytes, bytes, int]] = []
            self.closed = False

        def append(self, *, key: bytes, value: bytes, timestamp: int) -> Any:
            self.added.append((key, value, timestamp))
            return object()

        def close(self) -> None:
            self.closed = True

    other = Other()
    filler = BatchFiller(other)
    assert filler.append(0, 5, b"k", b"v", NO_HEADERS) is not None
    filler.close(1)
    assert other.added == [(b"k", b"v", 5)] and other.closed

    used = _new()  # a batch something else added to already: its own count stays in charge
    assert used.append(key=b"k", value=b"v", timestamp=5) is not None
    filler = BatchFiller(used)
    assert filler.append(1, 5, b"k", b"w", NO_HEADERS) is not None
    filler.close(2)
    assert used.record_count() == 2


async def test_a_new_batch_refusing_its_first_record_fails_the_send() -> None:
    """A changed aiokafka whose fresh batch refuses a record: the send fails (the runner
    retries the write) instead of counting the record as sent in an empty batch."""

    class Refusing:
        def append(self, *, key: bytes, value: bytes, timestamp: int) -> Any:
            return None

        def close(self) -> None:
            pass

    class Producer:
        def create_batch(self) -> Refusing:
            return Refusing()

    sends = Sends()
    with pytest.raises(RuntimeError, match=r"t\[0\] refused its first record"):
        await send_lane(Producer(), ("t", 0), [("t", b"k", b"v")], 5, sends)  # type: ignore[arg-type]
    assert sends.shipped == []
