"""Charts: what is drawn from which columns, and real files from plotly and matplotlib."""

from __future__ import annotations

import struct
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest

from upbitpipe.query.charts import ChartPlan, plan_chart, split_series, terminal_chart, write_chart
from upbitpipe.query.errors import ChartError

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
TIME = pa.timestamp("ms", tz="UTC")


def candles(n: int = 12) -> pa.Table:
    opens = [100.0 + (i % 5) for i in range(n)]
    closes = [o + (1 if i % 2 else -1) for i, o in enumerate(opens)]
    return pa.table(
        {
            "time": pa.array([T0 + timedelta(minutes=i) for i in range(n)], TIME),
            "open": opens,
            "high": [max(o, c) + 0.5 for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) - 0.5 for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": [1.0] * n,
        }
    )


def lines() -> pa.Table:
    times = [T0 + timedelta(minutes=i) for i in range(10)]
    return pa.table(
        {
            "time": pa.array(times + times, TIME),
            "market": ["KRW-BTC"] * 10 + ["KRW-ETH"] * 10,
            "spread_bps": [float(i) for i in range(20)],
        }
    )


BARS = pa.table({"market": ["KRW-BTC", "KRW-ETH"], "move_pct": [0.4, 3.0]})


def test_plans() -> None:
    assert plan_chart(candles()) == ChartPlan("candles", "time", ("open", "high", "low", "close"))
    assert plan_chart(lines()) == ChartPlan("lines", "time", ("spread_bps",), "market")
    assert plan_chart(BARS) == ChartPlan("bars", "market", ("move_pct",))


@pytest.mark.parametrize(
    "table",
    [pa.table({"a": ["x"], "b": ["y"]}), pa.table({"n": [1, 2]}), BARS.slice(0, 0)],
    ids=["only-text", "only-numbers", "no-rows"],
)
def test_nothing_to_draw(table: pa.Table) -> None:
    with pytest.raises(ChartError, match="nothing to draw"):
        plan_chart(table)


def test_series_split_by_market_and_nulls_dropped() -> None:
    table = lines().set_column(2, "spread_bps", pa.array([None] + [float(i) for i in range(1, 20)]))
    groups = split_series(table, plan_chart(table))
    assert [(g.name, len(g.x)) for g in groups] == [("KRW-BTC", 9), ("KRW-ETH", 10)]


@pytest.mark.parametrize("table", [candles(), lines(), BARS], ids=["candles", "lines", "bars"])
def test_terminal_chart(table: pa.Table) -> None:
    text = terminal_chart(table, "the title", width=90, height=20, color=False)
    rows = text.splitlines()
    assert "the title" in rows[0] and len(rows) >= 18
    assert "\x1b[" not in text and max(len(r) for r in rows) <= 90


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.endswith(b"IEND\xaeB`\x82"), "PNG is cut short"
    return width, height


@pytest.mark.parametrize("table", [candles(), lines(), BARS], ids=["candles", "lines", "bars"])
def test_png_is_a_whole_png(tmp_path: Path, table: pa.Table) -> None:
    path = write_chart(table, tmp_path / "chart.png", "title")
    assert png_size(path) == (1100, 550)  # figsize 11 x 5.5 at 100 dpi


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


@pytest.mark.parametrize(
    ("table", "trace"),
    [(candles(), "candlestick"), (lines(), "scatter"), (BARS, "bar")],
    ids=["candles", "lines", "bars"],
)
def test_html_parses_and_holds_the_chart(tmp_path: Path, table: pa.Table, trace: str) -> None:
    path = write_chart(table, tmp_path / "chart.html", "title")
    parser = _Collect()
    parser.feed(path.read_text())
    parser.close()
    assert {"html", "body", "div", "script"} <= set(parser.tags)
    code = "".join(parser.scripts)
    assert "Plotly.newPlot" in code and f'"type":"{trace}"' in code
    assert len(code) > 1_000_000  # plotly.js is inside: the file opens offline


def test_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ChartError, match=r"\.png or \.html"):
        write_chart(BARS, tmp_path / "chart.svg", "t")


def test_missing_library_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ChartError, match=r"needs plotly: pip install 'upbitpipe\[charts\]'"):
        write_chart(BARS, tmp_path / "chart.html", "t")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ChartError, match="needs matplotlib"):
        write_chart(BARS, tmp_path / "chart.png", "t")
