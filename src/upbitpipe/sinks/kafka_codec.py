"""The zstd level of the Kafka sink's record batches.

aiokafka compresses a zstd batch at level 3 (the broker's default) and has no option for it:
its record batch builders (the Cython one, and the pure-Python one used when
``AIOKAFKA_NO_EXTENSIONS`` is set) call ``aiokafka.codec.zstd_encode(data)``, bound into
their modules at import. On the collector's records (JSON, ~1.5 KB each, a batch per
partition) level 1 takes ~0.66 CPU-µs per record instead of ~0.91 and packs them as tightly
(27.9x vs 25.1x): measured in one process on the records ``benchmarks/bench_producer.py``
prepares. Readers need nothing: a zstd frame decodes the same at any level.

Set in this one place, process-wide (only producers compress; the sink's is the only one in
the collector); a unit test fails when aiokafka stops calling ``zstd_encode`` that way, and
a builder module bound to anything else is left alone (logged).
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

#: aiokafka's own level (``aiokafka.codec.zstd_encode`` with ``level=None``)
AIOKAFKA_ZSTD_LEVEL = 3
#: the level the sink compresses at
ZSTD_LEVEL = 1
#: the modules whose ``zstd_encode`` global compresses produced record batches
BUILDER_MODULES = (
    "aiokafka.record._crecords.default_records",
    "aiokafka.record.default_records",
)


def _builder_modules() -> list[ModuleType]:
    modules = []
    for name in BUILDER_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:  # no C extensions built: the pure-Python builder only
            continue
    return modules


def compress_at_level_1(payload: Any, level: int | None = None) -> bytes:
    """``aiokafka.codec.zstd_encode`` at :data:`ZSTD_LEVEL` unless a level is given."""
    from aiokafka import codec

    compressed: bytes = codec.zstd_encode(payload, ZSTD_LEVEL if level is None else level)
    return compressed


def use_zstd_level_1() -> None:
    """Make aiokafka's record batch builders compress zstd at level 1 (idempotent)."""
    from aiokafka import codec

    for module in _builder_modules():
        current = getattr(module, "zstd_encode", None)
        if current is compress_at_level_1:
            continue
        if current is not codec.zstd_encode:
            log.warning(
                "%s.zstd_encode is %r, not aiokafka.codec.zstd_encode; zstd level left as it is",
                module.__name__,
                current,
            )
            continue
        module.zstd_encode = compress_at_level_1  # type: ignore[attr-defined]
