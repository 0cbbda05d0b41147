"""The Kafka sink's zstd level: aiokafka's batch builders compress at level 1 once the sink
set it, and a changed aiokafka is noticed here, not silently left at its own level."""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

import pytest
from aiokafka import codec
from aiokafka.record import default_records
from aiokafka.record.memory_records import MemoryRecords

from upbitpipe.sinks.kafka_codec import (
    AIOKAFKA_ZSTD_LEVEL,
    BUILDER_MODULES,
    ZSTD_LEVEL,
    compress_at_level_1,
    use_zstd_level_1,
)


def _modules() -> list[Any]:
    out = []
    for name in BUILDER_MODULES:
        try:
            out.append(importlib.import_module(name))
        except ImportError:
            continue
    return out


def _build(builder_class: Any, values: list[bytes]) -> bytes:
    builder = builder_class(
        2,
        default_records.DefaultRecordBatch.CODEC_ZSTD,
        is_transactional=1,
        producer_id=7,
        producer_epoch=0,
        base_sequence=0,
        batch_size=1 << 20,
    )
    for offset, value in enumerate(values):
        assert builder.append(offset, None, key=b"KRW-BTC", value=value, headers=[]) is not None
    return bytes(builder.build())


def test_aiokafka_still_compresses_zstd_batches_the_way_we_change() -> None:
    """Fails when aiokafka changes how its builders reach the codec: review kafka_codec."""
    signature = inspect.signature(codec.zstd_encode)
    assert list(signature.parameters) == ["payload", "level"]
    assert f"level = {AIOKAFKA_ZSTD_LEVEL}" in inspect.getsource(codec.zstd_encode)
    assert "compressed = zstd_encode(data)" in inspect.getsource(default_records)
    modules = _modules()
    assert default_records in modules
    for module in modules:
        assert getattr(module, "zstd_encode", None) in (codec.zstd_encode, compress_at_level_1)


@pytest.mark.parametrize("builder", ["cython", "python"])
def test_batches_are_compressed_at_level_1_and_read_back(
    monkeypatch: pytest.MonkeyPatch, builder: str
) -> None:
    if builder == "cython":
        cython = pytest.importorskip(BUILDER_MODULES[0])
        builder_class = cython.DefaultRecordBatchBuilder
    else:
        builder_class = default_records._DefaultRecordBatchBuilderPy
    levels: list[int | None] = []
    original = codec.zstd_encode

    def spy(payload: Any, level: int | None = None) -> bytes:
        levels.append(level)
        return original(payload, level)

    monkeypatch.setattr(codec, "zstd_encode", spy)
    for module in _modules():  # as aiokafka binds it at import
        monkeypatch.setattr(module, "zstd_encode", spy)
    values = [b'{"market":"KRW-BTC","trade_price":%d}' % i for i in range(50)]
    _build(builder_class, values)
    assert levels == [None], "aiokafka's own level before the sink sets it"

    use_zstd_level_1()
    use_zstd_level_1()  # idempotent
    data = _build(builder_class, values)
    assert levels == [None, ZSTD_LEVEL]
    batch = MemoryRecords(data).next_batch()
    assert batch is not None
    assert [record.value for record in batch] == values


def test_a_builder_bound_to_another_codec_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def other(payload: Any, level: int | None = None) -> bytes:
        return b""

    monkeypatch.setattr(default_records, "zstd_encode", other)
    with caplog.at_level(logging.WARNING):
        use_zstd_level_1()
    assert default_records.zstd_encode is other
    assert "zstd level left as it is" in caplog.text
