"""What the lake sink's fast conversion checks and builds in C when it can.

Two jobs, each with a C kernel (``_fastrows.c``, built by ``pip install`` when a C compiler
is there, see ``setup.py``) and a pure-Python twin that gives the same answers:

* :meth:`FastRows.book_units`: a batch of orderbook records' ``orderbook_units`` as one
  Arrow list-of-struct column, built from buffers the kernel fills (pyarrow's own
  conversion of the nested dicts costs ~55 ns a value, 120 values a book). None when any
  record is irregular (a unit that is not a dict, a missing field, a value pyarrow would
  convert otherwise or refuse) or without the kernel: the caller then converts the units
  with pyarrow as before, which decides.
* :meth:`FastRows.only_ints`: whether the records' integer columns hold ints only (or
  nothing): pyarrow truncates a float in an int64 column silently, so anything else is for
  the checked path.

``UPBITPIPE_PURE_PYTHON=1`` (the switch that installs the package without native code) also
leaves a built kernel unused when set at run time: an A/B in one install.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import pyarrow as pa

from upbitpipe.lake.tables import ORDERBOOK_UNIT_FIELDS, UNIT_ARROW


def _load_native() -> ModuleType | None:
    if os.environ.get("UPBITPIPE_PURE_PYTHON", "").strip() not in ("", "0"):
        return None
    try:
        from upbitpipe.lake import _fastrows  # type: ignore[attr-defined]
    except ImportError:  # not built (no compiler at install, or a pure-Python install)
        return None
    module: ModuleType = _fastrows
    return module


#: the C kernels, or None (pure Python)
NATIVE = _load_native()

_INT_KINDS = frozenset({int, type(None)})
_UNIT_FIELDS = tuple(UNIT_ARROW.value_type)


class FastRows:
    """The fast conversion's helpers: on the C kernels when they are built and ``native``,
    else their Python twins."""

    def __init__(self, native: bool = True) -> None:
        self.native: ModuleType | None = NATIVE if native else None

    def book_units(self, records: list[dict[str, Any]]) -> pa.ListArray | None:
        """The records' ``orderbook_units`` as the lake's column, or None (irregular, or no
        kernel): then pyarrow converts them."""
        native = self.native
        if native is None:
            return None
        total: int = native.book_units_count(records, "orderbook_units")
        if total < 0:
            return None
        count = len(records)
        buffer = pa.allocate_buffer(native.book_units_size(count, total))
        nulls: tuple[int, int, int, int] | None = native.book_units_fill(
            records, "orderbook_units", ORDERBOOK_UNIT_FIELDS, buffer, total
        )
        if nulls is None:
            return None
        values = total * 8
        bitmap = (total + 63) // 64 * 8
        bitmaps = len(_UNIT_FIELDS) * values
        children = [
            pa.Array.from_buffers(
                pa.float64(),
                total,
                [
                    buffer.slice(bitmaps + i * bitmap, bitmap) if nulls[i] else None,
                    buffer.slice(i * values, values),
                ],
                null_count=nulls[i],
            )
            for i in range(len(_UNIT_FIELDS))
        ]
        offsets_at = bitmaps + len(_UNIT_FIELDS) * bitmap
        offsets = pa.Array.from_buffers(
            pa.int32(), count + 1, [None, buffer.slice(offsets_at, (count + 1) * 4)]
        )
        units = pa.StructArray.from_arrays(children, fields=_UNIT_FIELDS)
        return pa.ListArray.from_arrays(offsets, units, type=UNIT_ARROW)

    def only_ints(self, records: list[dict[str, Any]], names: Sequence[str]) -> bool:
        """True when every record's value of every name is an int, None or missing."""
        if self.native is not None:
            answer: bool = self.native.only_ints(records, tuple(names))
            return answer
        for name in names:
            if not {type(record.get(name, None)) for record in records} <= _INT_KINDS:
                return False
        return True
