"""Drawing a result: in the terminal (plotext), to HTML (plotly) or PNG (matplotlib).

What to draw is decided from the result's columns alone (:func:`plan_chart`): ``open``,
``high``, ``low``, ``close`` over a time column make candles; other numbers over a time
column make one line per number (and per ``market``, or the first text column); numbers
next to a text column and no time make bars. plotly and matplotlib come with the
``charts`` extra; the terminal chart needs only plotext.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from upbitpipe.query.errors import ChartError

ChartKind = Literal["candles", "lines", "bars"]
OHLC = ("open", "high", "low", "close")
_EXTRA_HINT = "pip install 'upbitpipe[charts]'"


@dataclass(frozen=True)
class ChartPlan:
    """Which columns go where."""

    kind: ChartKind
    x: str
    ys: tuple[str, ...]
    series: str | None = None


@dataclass(frozen=True)
class Series:
    """One line (or the candles, or the bars): x values and y values by column."""

    name: str
    x: list[Any]
    y: dict[str, list[float]]


def plan_chart(result: pa.Table) -> ChartPlan:
    """What to draw for these columns; :class:`ChartError` when there is nothing to draw."""
    schema = result.schema
    times = [f.name for f in schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
    numbers = [
        f.name
        for f in schema
        if pa.types.is_integer(f.type)
        or pa.types.is_floating(f.type)
        or pa.types.is_decimal(f.type)
    ]
    texts = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    if result.num_rows == 0:
        msg = "nothing to draw: the result has no rows"
        raise ChartError(msg)
    if times:
        x = "time" if "time" in times else times[0]
        series = "market" if "market" in texts else (texts[0] if texts else None)
        if all(c in numbers for c in OHLC):
            return ChartPlan("candles", x, OHLC, series)
        if numbers:
            return ChartPlan("lines", x, tuple(numbers), series)
    elif texts and numbers:
        label = "market" if "market" in texts else texts[0]
        return ChartPlan("bars", label, (numbers[0],))
    msg = (
        "nothing to draw: a chart needs a time column with numbers (lines, or open/high/low/close "
        f"for candles), or a text column with numbers (bars); the result has {', '.join(result.column_names)}"
    )
    raise ChartError(msg)


def split_series(result: pa.Table, plan: ChartPlan) -> list[Series]:
    """The rows as one :class:`Series` per value of ``plan.series`` (rows with a NULL dropped)."""
    columns = {name: result.column(name).to_pylist() for name in (plan.x, *plan.ys)}
    keys = result.column(plan.series).to_pylist() if plan.series else [None] * result.num_rows
    groups: dict[Any, Series] = {}
    for i, key in enumerate(keys):
        values = [columns[y][i] for y in plan.ys]
        x = columns[plan.x][i]
        if x is None or any(v is None for v in values):
            continue
        group = groups.setdefault(
            key, Series("" if key is None else str(key), [], {y: [] for y in plan.ys})
        )
        group.x.append(x)
        for y, v in zip(plan.ys, values, strict=True):
            group.y[y].append(float(v))
    if not groups:
        msg = "nothing to draw: every row has a NULL in the drawn columns"
        raise ChartError(msg)
    return list(groups.values())


def _label(series: Series, column: str, plan: ChartPlan) -> str:
    if plan.kind == "candles":
        return series.name or "candles"
    if len(plan.ys) == 1:
        return series.name or column
    return f"{series.name} {column}".strip()


def _text_x(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d 00:00:00")
    return str(value)


def terminal_chart(
    result: pa.Table,
    title: str,
    width: int | None = None,
    height: int | None = None,
    color: bool = True,
) -> str:
    """The chart as text for a terminal (plotext; plain text with ``color=False``)."""
    import plotext as plt

    plan = plan_chart(result)
    groups = split_series(result, plan)
    size = shutil.get_terminal_size((100, 30))
    plt.clear_figure()
    plt.theme("clear")  # the terminal's own background
    plt.plotsize(width or size.columns, height or max(15, min(size.lines - 4, 40)))
    plt.title(title)
    if plan.kind == "bars":
        (group,) = groups
        plt.bar([str(x) for x in group.x], group.y[plan.ys[0]])
    else:
        plt.date_form("Y-m-d H:M:S")
        for group in groups:
            dates = [_text_x(x) for x in group.x]
            if plan.kind == "candles":
                data = {k.capitalize(): group.y[k] for k in OHLC}
                plt.candlestick(dates, data, label=_label(group, "", plan))
            else:
                for column in plan.ys:
                    plt.plot(dates, group.y[column], label=_label(group, column, plan))
    text: str = plt.build()
    plt.clear_figure()
    return text if color else str(plt.uncolorize(text))


def write_chart(result: pa.Table, path: Path, title: str) -> Path:
    """Write the chart to ``path``: ``.html`` with plotly, ``.png`` with matplotlib."""
    suffix = path.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        msg = f"--chart: write a .png or .html file, not {path.name!r}"
        raise ChartError(msg)
    plan = plan_chart(result)
    groups = split_series(result, plan)
    if path.parent and not path.parent.exists():
        msg = f"--chart: directory {path.parent} does not exist"
        raise ChartError(msg)
    if suffix == ".png":
        _write_png(plan, groups, path, title)
    else:
        _write_html(plan, groups, path, title)
    return path


def _write_html(plan: ChartPlan, groups: list[Series], path: Path, title: str) -> None:
    try:
        import plotly.graph_objects as go
    except ImportError:
        msg = f"--chart {path.name} needs plotly: {_EXTRA_HINT}"
        raise ChartError(msg) from None
    fig = go.Figure()
    for group in groups:
        if plan.kind == "candles":
            fig.add_trace(
                go.Candlestick(
                    x=group.x,
                    open=group.y["open"],
                    high=group.y["high"],
                    low=group.y["low"],
                    close=group.y["close"],
                    name=_label(group, "", plan),
                )
            )
        elif plan.kind == "bars":
            fig.add_trace(go.Bar(x=group.x, y=group.y[plan.ys[0]], name=plan.ys[0]))
        else:
            for column in plan.ys:
                fig.add_trace(
                    go.Scatter(
                        x=group.x, y=group.y[column], mode="lines", name=_label(group, column, plan)
                    )
                )
    fig.update_layout(title=title, xaxis_rangeslider_visible=False, template="plotly_white")
    # plotly.js inside the file: the chart opens without a network
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)


def _write_png(plan: ChartPlan, groups: list[Series], path: Path, title: str) -> None:
    try:
        from matplotlib import dates
        from matplotlib.figure import Figure
    except ImportError:
        msg = f"--chart {path.name} needs matplotlib: {_EXTRA_HINT}"
        raise ChartError(msg) from None
    fig = Figure(figsize=(11, 5.5), layout="constrained")  # no pyplot: no global figure state
    ax = fig.subplots()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if plan.kind == "bars":
        (group,) = groups
        ax.bar([str(x) for x in group.x], group.y[plan.ys[0]], color="tab:blue")
        ax.set_ylabel(plan.ys[0])
        ax.axhline(0, color="black", linewidth=0.8)
    elif plan.kind == "candles":
        for group in groups:
            to_num: Any = dates.date2num  # untyped in matplotlib's stubs
            xs = list(to_num(group.x))
            step = min((b - a for a, b in zip(xs, xs[1:], strict=False)), default=1 / 1440)
            o, h, lo, c = (group.y[k] for k in OHLC)
            colors = [
                "tab:green" if close >= open_ else "tab:red"
                for open_, close in zip(o, c, strict=True)
            ]
            ax.vlines(xs, lo, h, colors=colors, linewidth=1)
            bodies = [max(abs(close - open_), 1e-12) for open_, close in zip(o, c, strict=True)]
            ax.bar(
                xs,
                bodies,
                bottom=[min(a, b) for a, b in zip(o, c, strict=True)],
                width=step * 0.7,
                color=colors,
            )
        ax.xaxis_date()
        ax.set_ylabel("price")
    else:
        for group in groups:
            for column in plan.ys:
                ax.plot(group.x, group.y[column], label=_label(group, column, plan))
        ax.legend(loc="best", fontsize="small")
    if plan.kind != "bars":
        fig.autofmt_xdate()
    fig.savefig(path, dpi=100)
