"""Output formats: which one is chosen, and what each writes (rendered by chDB / pyarrow)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from upbitpipe.config import load_settings
from upbitpipe.errors import UpbitpipeError
from upbitpipe.query.engine import SqlEngine
from upbitpipe.query.formats import choose_format, encode, rich_table
from upbitpipe.query.tables import Lake

pytest.importorskip("chdb")

RESULT = pa.table(
    {
        "market": ["KRW-BTC", "KRW-ETH"],
        "n": pa.array([9_007_199_254_740_993, 2], pa.int64()),  # > 2**53: must stay exact
        "price": [101.5, None],
        "time": pa.array(
            [datetime(2026, 11, 28, 9, 1, 2, 345000, tzinfo=UTC)] * 2, pa.timestamp("ms", tz="UTC")
        ),
    }
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlEngine]:
    path = tmp_path_factory.mktemp("formats")  # rendering never reads the lake
    with SqlEngine(
        Lake(load_settings(overrides={"lake.warehouse": str(path)}, env={}).settings)
    ) as eng:
        yield eng


@pytest.mark.parametrize(
    ("requested", "output", "tty", "chosen"),
    [
        (None, None, True, "table"),
        (None, None, False, "csv"),
        (None, "x.parquet", True, "parquet"),
        (None, "x.JSONL", True, "jsonl"),
        (None, "x.md", False, "markdown"),
        (None, "x.dat", True, "csv"),
        ("json", "x.csv", False, "json"),
        ("table", None, False, "table"),
    ],
)
def test_choose_format(requested: str | None, output: str | None, tty: bool, chosen: str) -> None:
    assert choose_format(requested, output, tty) == chosen


def test_choose_format_refuses() -> None:
    with pytest.raises(UpbitpipeError, match="use one of"):
        choose_format("xlsx", None, True)
    with pytest.raises(UpbitpipeError, match="--output"):
        choose_format("parquet", None, True)


def test_csv(engine: SqlEngine) -> None:
    rows = list(csv.DictReader(io.StringIO(encode(RESULT, "csv", engine.render).decode())))
    assert rows[0] == {
        "market": "KRW-BTC",
        "n": "9007199254740993",
        "price": "101.5",
        "time": "2026-11-28 09:01:02.345",
    }
    assert rows[1]["price"] == ""  # NULL as an empty field


def test_json_and_jsonl(engine: SqlEngine) -> None:
    as_array = json.loads(encode(RESULT, "json", engine.render))
    as_lines = [
        json.loads(line) for line in encode(RESULT, "jsonl", engine.render).decode().splitlines()
    ]
    assert as_array == as_lines
    assert as_array[0]["n"] == 9_007_199_254_740_993 and as_array[1]["price"] is None
    assert json.loads(encode(RESULT.slice(0, 0), "json", engine.render)) == []


def test_markdown(engine: SqlEngine) -> None:
    lines = encode(RESULT, "markdown", engine.render).decode().splitlines()
    assert lines[0] == "| market | n | price | time |" and len(lines) == 4


def test_parquet_keeps_types(engine: SqlEngine, tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(encode(RESULT, "parquet", engine.render))
    assert pq.read_table(path).equals(RESULT)


def test_rich_table() -> None:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(rich_table(RESULT))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "9007199254740993" in text and "2026-11-28 09:01:02.345" in text
    assert "NULL" in text and "2 rows" in text


def test_rich_table_too_wide_becomes_one_block_per_row() -> None:
    console = Console(file=io.StringIO(), width=40, color_system=None)
    console.print(rich_table(RESULT, console.width))
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert [line.split()[0] for line in lines if line.strip()] == [
        "row",
        "market",
        "n",
        "price",
        "time",
    ] * 2 + ["2"]
    assert max(len(line.rstrip()) for line in lines) <= 40
