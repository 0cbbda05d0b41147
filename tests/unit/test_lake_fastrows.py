"""The lake's C kernels (``upbitpipe.lake._fastrows``) against pyarrow's own conversion."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from upbitpipe.config import load_settings
from upbitpipe.errors import ConfigError
from upbitpipe.lake import fastrows
from upbitpipe.lake.fastrows import FastRows
from upbitpipe.lake.tables import ORDERBOOK_UNIT_FIELDS, UNIT_ARROW

native = pytest.mark.skipif(fastrows.NATIVE is None, reason="the C kernels are not built")
UNITS_ONLY = pa.struct([pa.field("orderbook_units", UNIT_ARROW)])


def pyarrow_units(records: list[dict[str, Any]]) -> pa.Array:
    """What the sink converted the units with before the kernel (and still does without)."""
    return pa.array(records, type=UNITS_ONLY).field(0)


def value(rng: random.Random) -> Any:
    kind = rng.random()
    if kind < 0.45:
        return rng.uniform(0, 1e8)
    if kind < 0.6:
        return rng.randrange(0, 10**9)
    if kind < 0.75:
        return rng.randrange(-20, 20)
    if kind < 0.8:
        return rng.choice([2**53, -(2**53), -1.5, 0, -0.0, float("inf"), float("nan")])
    if kind < 0.9:
        return None
    return rng.uniform(-1, 1) * 1e-9


def book(rng: random.Random, levels: int) -> dict[str, Any]:
    units = [{f: value(rng) for f in ORDERBOOK_UNIT_FIELDS} for _ in range(levels)]
    for unit in units[::7]:
        unit["extra"] = "ignored"  # pyarrow ignores keys outside the struct, as the kernel
    return {"market": "KRW-BTC", "timestamp": 1, "orderbook_units": units}


@native
@pytest.mark.parametrize("seed", range(8))
def test_kernel_units_equal_pyarrows(seed: int) -> None:
    rng = random.Random(seed)
    records = [book(rng, rng.choice([0, 1, 2, 15, 30])) for _ in range(rng.randrange(1, 300))]
    records.append(book(rng, 30))
    records.append(book(rng, 0))
    built = FastRows().book_units(records)
    assert built is not None
    expected = pyarrow_units(records)
    built.validate(full=True)
    assert built.type == expected.type
    assert built.offsets.equals(expected.offsets)
    assert built.null_count == expected.null_count == 0  # no null book
    assert built.values.null_count == expected.values.null_count == 0  # no null unit
    # bit for bit (NaN is not equal to itself in Arrow's or Python's comparisons)
    for name in ORDERBOOK_UNIT_FIELDS:
        got, want = built.values.field(name), expected.values.field(name)
        assert got.null_count > 0, "the random books hold no null: the test tests less"
        assert got.is_null().equals(want.is_null()), name
        got_bits = got.fill_null(0.0).to_numpy().view(np.uint64)
        want_bits = want.fill_null(0.0).to_numpy().view(np.uint64)
        assert np.array_equal(got_bits, want_bits), name


@native
def test_kernel_units_of_no_books_and_of_empty_books() -> None:
    assert FastRows().book_units([]) is not None
    empty = [{"orderbook_units": []}, {"orderbook_units": []}]
    built = FastRows().book_units(empty)
    assert built is not None and built.equals(pyarrow_units(empty))


class Floaty(float):
    pass


IRREGULAR: list[tuple[str, Any]] = [
    ("a bool", True),
    ("a string", "1.0"),
    ("an int beyond 2**53", 2**53 + 1),
    ("an int beyond int64", 2**70),
    ("a float subclass", Floaty(1.0)),
    ("a numpy float", np.float64(1.0)),
    ("a list", [1.0]),
]


@native
@pytest.mark.parametrize(("what", "bad"), IRREGULAR, ids=[w for w, _ in IRREGULAR])
def test_kernel_hands_irregular_values_back(what: str, bad: Any) -> None:
    """None, so that the sink converts the batch as before (pyarrow decides: it refuses
    some of these, converts others, and the checked path rejects what it refuses)."""
    records = [book(random.Random(1), 30) for _ in range(3)]
    records[2]["orderbook_units"][29]["bid_size"] = bad
    assert FastRows().book_units(records) is None, what


@native
@pytest.mark.parametrize(
    "change",
    ["units missing", "units None", "units a tuple", "a unit not a dict", "a field missing"],
)
def test_kernel_hands_irregular_books_back(change: str) -> None:
    records = [book(random.Random(2), 5) for _ in range(3)]
    record = records[1]
    if change == "units missing":
        del record["orderbook_units"]
    elif change == "units None":
        record["orderbook_units"] = None
    elif change == "units a tuple":
        record["orderbook_units"] = tuple(record["orderbook_units"])
    elif change == "a unit not a dict":
        record["orderbook_units"][4] = [1.0, 2.0, 3.0, 4.0]
    else:
        del record["orderbook_units"][0]["ask_size"]
    assert FastRows().book_units(records) is None


def test_without_the_kernel_pyarrow_converts_the_units() -> None:
    assert FastRows(native=False).book_units([book(random.Random(3), 30)]) is None


INT_CASES: list[tuple[Any, bool]] = [
    (17_642_880_000_000_000, True),  # an Upbit sequential_id: more digits than a double holds
    (-5, True),
    (None, True),
    (2**70, True),  # pyarrow refuses it: the checked path then rejects it with a reason
    (1.0, False),
    (1.5, False),
    (True, False),
    ("1", False),
    (np.int64(1), False),
]


@pytest.mark.parametrize("native_kernel", [True, False], ids=["native", "pure"])
@pytest.mark.parametrize(("given", "ints"), INT_CASES)
def test_only_ints(native_kernel: bool, given: Any, ints: bool) -> None:
    if native_kernel and fastrows.NATIVE is None:
        pytest.skip("the C kernels are not built")
    fast = FastRows(native=native_kernel)
    records = [{"a": 1, "b": 2}, {"a": 3}, {"a": given, "b": 4}]
    assert fast.only_ints(records, ("a", "b")) is ints
    assert fast.only_ints(records, ("b", "c")) is True


FLAT = pa.struct(
    [
        pa.field("price", pa.float64()),
        pa.field("market", pa.string(), nullable=False),
        pa.field("sequential_id", pa.int64()),
        pa.field("suspended", pa.bool_()),
        pa.field("note", pa.string()),
    ]
)


def flat_record(rng: random.Random) -> dict[str, Any]:
    record = {
        "price": value(rng),
        "market": rng.choice(["KRW-BTC", "KRW-ETH", "", "KRW-비트", "x" * 300]),
        "sequential_id": rng.choice([17_642_880_000_000_000, -(2**63), 2**63 - 1, 0, None]),
        "suspended": rng.choice([True, False, None]),
        "note": rng.choice(["a", None, "é" * rng.randrange(5)]),
        "ignored": [1, 2],
    }
    for name in rng.sample(list(record), rng.randrange(2)):
        del record[name]  # a missing key is a null, as in pyarrow's conversion
    return record


@native
@pytest.mark.parametrize("seed", range(6))
def test_kernel_flat_rows_equal_pyarrows(seed: int) -> None:
    rng = random.Random(seed)
    records = [flat_record(rng) for _ in range(rng.choice([1, 2, 256, 700]))]
    plan = fastrows.flat_plan(FLAT)
    assert plan is not None and plan.kinds == b"dsibs"
    built = FastRows().flat_rows(records, plan)
    assert built is not None
    built.validate(full=True)
    expected = pa.array(records, type=FLAT)
    assert built.type == expected.type
    for name in ("market", "sequential_id", "suspended", "note"):
        assert built.field(name).equals(expected.field(name)), name
    got, want = built.field("price"), expected.field("price")  # NaN: bit for bit
    assert got.is_null().equals(want.is_null())
    assert np.array_equal(
        got.fill_null(0.0).to_numpy().view(np.uint64),
        want.fill_null(0.0).to_numpy().view(np.uint64),
    )
    if len(records) > 100:
        assert sum(a.null_count for a in built.flatten()) > 0, "no null: the test tests less"


@native
def test_kernel_flat_rows_of_no_records() -> None:
    plan = fastrows.flat_plan(FLAT)
    assert plan is not None
    built = FastRows().flat_rows([], plan)
    assert built is not None and built.equals(pa.array([], type=FLAT))


FLAT_IRREGULAR: list[tuple[str, Any]] = [
    ("price", True),
    ("price", "1.0"),
    ("price", 2**53 + 1),
    ("sequential_id", 1.0),  # pyarrow would truncate it: for the checked path
    ("sequential_id", True),
    ("sequential_id", 2**63),
    ("suspended", 1),
    ("suspended", "true"),
    ("market", b"KRW-BTC"),
    ("market", "\ud800"),  # a lone surrogate has no UTF-8
    ("note", 3),
]


@native
@pytest.mark.parametrize(("name", "bad"), FLAT_IRREGULAR)
def test_kernel_flat_rows_hand_irregular_values_back(name: str, bad: Any) -> None:
    records = [flat_record(random.Random(4)) for _ in range(5)]
    records[3][name] = bad
    plan = fastrows.flat_plan(FLAT)
    assert plan is not None
    assert FastRows().flat_rows(records, plan) is None
    assert FastRows().flat_rows([*records[:3], [("market", "x")]], plan) is None  # type: ignore[list-item]


def test_flat_plan_is_for_flat_structs_only() -> None:
    assert fastrows.flat_plan(pa.struct([pa.field("units", UNIT_ARROW)])) is None
    assert FastRows(native=False).flat_rows([{}], fastrows.flat_plan(FLAT)) is None  # type: ignore[arg-type]


def test_the_pure_python_switch_leaves_the_kernels_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    """``UPBITPIPE_PURE_PYTHON`` set at run time: no kernel, and no settings error (it is
    the build's switch, not a setting; another unknown ``UPBITPIPE_`` name still is one)."""
    monkeypatch.setenv("UPBITPIPE_PURE_PYTHON", "1")
    assert fastrows._load_native() is None
    assert load_settings(env={"UPBITPIPE_PURE_PYTHON": "1"}).settings
    with pytest.raises(ConfigError, match="UPBITPIPE_PURE_PYTHONS"):
        load_settings(env={"UPBITPIPE_PURE_PYTHONS": "1"})
