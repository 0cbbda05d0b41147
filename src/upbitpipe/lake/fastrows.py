"""What the lake sink's fast conversion builds and checks in C when it can.

Three jobs, each with a C kernel (``_fastrows.c``, built by ``pip install`` when a C
compiler is there, see ``setup.py``) and a pure-Python twin:

* :meth:`FastRows.flat_rows`: a batch of records' flat fields (float64, int64, bool,
  string) as one Arrow struct array, handed to pyarrow through the Arrow C data interface
  (pyarrow's own conversion of the dicts costs ~55-80 ns a value, the kernel ~20).
* :meth:`FastRows.book_units`: a batch of orderbook records' ``orderbook_units`` as one
  Arrow list-of-struct column, built from buffers the kernel fills (120 values a book).

  Both answer None when any record is irregular (a value pyarrow would convert otherwise
  or refuse, a unit that is not a dict, ...) and always without the kernel: the caller
  then converts with pyarrow as before, which decides. What they build equals pyarrow's
  conversion (``tests/unit/test_lake_fastrows.py``).
* :meth:`FastRows.only_ints`: whether the records' integer columns hold ints only (or
  nothing): pyarrow truncates a float in an int64 column silently, so anything else is for
  the checked path (the twin answers the same, in Python).

``UPBITPIPE_PURE_PYTHON=1`` (the switch that installs the package without native code) also
leaves a built kernel unused when set at run time: an A/B in one install.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, NamedTuple

import pyarrow as pa

from upbitpipe.lake.tables import ORDERBOOK_UNIT_FIELDS, UNIT_ARROW
from upbitpipe.native import pure_python_requested


def _load_native() -> ModuleType | None:
    if pure_python_requested():
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


#: the flat Arrow types :meth:`FastRows.flat_rows` builds, and the kernel's code for each
_KINDS = {pa.float64(): b"d", pa.int64(): b"i", pa.bool_(): b"b", pa.string(): b"s"}


class FlatPlan(NamedTuple):
    """A struct of flat fields as the kernel builds it: the type, names and kind codes."""

    struct: pa.StructType
    names: tuple[str, ...]
    kinds: bytes


def flat_plan(struct: pa.StructType) -> FlatPlan | None:
    """The kernel's plan for a struct, or None when a field is not flat."""
    codes = [_KINDS.get(field.type) for field in struct]
    if any(code is None for code in codes):
        return None
    kinds = b"".join(code for code in codes if code is not None)
    return FlatPlan(struct, tuple(field.name for field in struct), kinds)


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

    def flat_rows(self, records: list[dict[str, Any]], plan: FlatPlan) -> pa.StructArray | None:
        """The records as one struct array of ``plan.struct``, built by the kernel; None
        when a value is irregular or without the kernel: then pyarrow converts them."""
        if self.native is None:
            return None
        exported: tuple[Any, int] | None = self.native.flat_rows(records, plan.names, plan.kinds)
        if exported is None:
            return None
        capsule, address = exported
        array: pa.StructArray = pa.Array._import_from_c(address, plan.struct)
        del capsule  # frees the moved ArrowArray struct; its buffers live on in ``array``
        return array

    def only_ints(self, records: list[dict[str, Any]], names: Sequence[str]) -> bool:
        """True when every record's value of every name is an int, None or missing."""
        if self.native is not None:
            answer: bool = self.native.only_ints(records, tuple(names))
            return answer
        for name in names:
            if not {type(record.get(name, None)) for record in records} <= _INT_KINDS:
                return False
        return True
