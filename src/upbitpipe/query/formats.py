"""Writing a result: a rich table for people, ClickHouse's own output formats for programs.

``csv`` (header row, NULL as an empty field), ``json`` (one array of objects), ``jsonl``
(an object per line), ``markdown`` are rendered by ClickHouse from the result, so numbers and
times read exactly as ClickHouse prints them; 64-bit integers stay JSON numbers. ``parquet``
is the Arrow result written by pyarrow, types intact (needs ``--output``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyarrow as pa
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from upbitpipe.errors import UpbitpipeError

FORMATS = ("table", "csv", "json", "jsonl", "parquet", "markdown")

#: format -> (ClickHouse output format, SETTINGS clause)
_CLICKHOUSE: dict[str, tuple[str, str]] = {
    "csv": ("CSVWithNames", " SETTINGS format_csv_null_representation = ''"),
    "json": (
        "JSONEachRow",
        " SETTINGS output_format_json_array_of_rows = 1, output_format_json_quote_64bit_integers = 0",
    ),
    "jsonl": ("JSONEachRow", " SETTINGS output_format_json_quote_64bit_integers = 0"),
    "markdown": ("Markdown", ""),
}

_BY_SUFFIX = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".md": "markdown",
}

#: What renders a result in a ClickHouse format: (result, format, settings) -> bytes.
Renderer = Callable[[pa.Table, str, str], bytes]


def choose_format(requested: str | None, output: str | None, stdout_is_terminal: bool) -> str:
    """The format to write: as asked; else from the output file's suffix; else a table on a
    terminal and CSV into a pipe (as clickhouse-client prints TSV when piped)."""
    if requested is not None:
        if requested not in FORMATS:
            msg = f"--format: use one of {', '.join(FORMATS)}, not {requested!r}"
            raise UpbitpipeError(msg)
        chosen = requested
    elif output is not None:
        suffix = "." + output.rsplit(".", 1)[-1].lower() if "." in output else ""
        chosen = _BY_SUFFIX.get(suffix, "csv")
    else:
        chosen = "table" if stdout_is_terminal else "csv"
    if chosen == "parquet" and output is None:
        msg = "--format parquet writes a binary file: add --output FILE.parquet"
        raise UpbitpipeError(msg)
    return chosen


def encode(result: pa.Table, fmt: str, render: Renderer) -> bytes:
    """``result`` as the bytes of ``fmt`` (any format but ``table``)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(result, sink)
        return sink.getvalue()
    ch_format, settings = _CLICKHOUSE[fmt]
    if fmt == "json" and result.num_rows == 0:
        return b"[]\n"
    return render(result, ch_format, settings)


def rich_table(result: pa.Table, width: int | None = None) -> RenderableType:
    """The result for a person: a table, or one block per row (``column  value`` lines,
    like ClickHouse's ``Vertical`` format) when the table would not fit in ``width``."""
    rows = result.num_rows
    caption = f"{rows} row{'s' if rows != 1 else ''}"
    cells = [[_cell(v) for v in row.values()] for row in result.to_pylist()]
    numeric = [_is_numeric(f.type) for f in result.schema]
    if width is not None and _natural_width(result.column_names, cells) > width:
        return _vertical(result.column_names, cells, numeric, caption)
    table = Table(caption=caption, header_style="bold")
    for name, right in zip(result.column_names, numeric, strict=True):
        table.add_column(name, justify="right" if right else "left", overflow="fold")
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


def _natural_width(names: list[str], cells: list[list[str]]) -> int:
    widths = [len(n) for n in names]
    for row in cells:
        widths = [max(w, Text.from_markup(c).cell_len) for w, c in zip(widths, row, strict=True)]
    return sum(widths) + 3 * len(widths) + 1


def _vertical(names: list[str], cells: list[list[str]], numeric: list[bool], caption: str) -> Group:
    blocks: list[RenderableType] = []
    for i, row in enumerate(cells, 1):
        block = Table(
            title=f"row {i}", title_justify="left", show_header=False, box=None, pad_edge=False
        )
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        for name, value in zip(names, row, strict=True):
            block.add_row(name, value)
        blocks.append(block)
    blocks.append(Text(caption, style="dim"))
    return Group(*blocks)


def _is_numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]NULL[/]"
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return text.removesuffix(".000")
    if isinstance(value, float):
        return f"{value:.10g}"
    from rich.markup import escape

    return escape(str(value))
