"""`upbitpipe sql`: ClickHouse SQL over the lake's tables, in-process (chDB), no services."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import pyarrow as pa
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

from upbitpipe.cli.context import cli_context, err_console, fail
from upbitpipe.errors import UpbitpipeError

if TYPE_CHECKING:
    from upbitpipe.config import Settings
    from upbitpipe.query.engine import SqlEngine

_CHART_TERMINAL = "terminal"


class SqlCommand(TyperCommand):
    """``--chart`` takes an optional value, which Typer options cannot: a bare ``--chart``
    (last, before another option, or before the SQL) is given the value ``terminal`` here."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, chart_value_filled(args))


def chart_value_filled(args: list[str]) -> list[str]:
    """``args`` with ``terminal`` after each ``--chart`` that is not followed by a file."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--chart":
            following = args[i + 1] if i + 1 < len(args) else None
            if following is None or following.startswith("-") or not _names_a_file(following):
                out.append(_CHART_TERMINAL)
    return out


@dataclass
class _Output:
    """Where results go, decided once per command."""

    fmt: str
    chart: str | None
    data_wanted: bool  # rows are printed/written (not only a chart)
    stream: BinaryIO | None  # --output file, or None for stdout
    color: bool


def sql(
    ctx: typer.Context,
    statement: Annotated[
        str | None,
        typer.Argument(
            help="ClickHouse SQL; without it (and without --preset) an interactive prompt, "
            "or the statements on stdin when it is not a terminal.",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help="A dashboard query: candles, spread, volume-by-market, price-move.",
        ),
    ] = None,
    market: Annotated[
        list[str] | None,
        typer.Option(
            "--market", "-m", help="Market(s) for --preset (repeatable, or KRW-BTC,KRW-ETH)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Time range of --preset: 90s, 15m, 1h, 2d (default 1h; price-move 1m)."
        ),
    ] = None,
    interval: Annotated[
        str, typer.Option("--interval", help="Time bucket of --preset spread.")
    ] = "1m",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="table, csv, json, jsonl, parquet, markdown (default: table on a terminal, "
            "else csv; or from the --output suffix).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the rows to FILE.")
    ] = None,
    chart: Annotated[
        str | None,
        typer.Option(
            "--chart",
            metavar="[FILE]",
            help="Draw the result: in the terminal (--chart), or to FILE.png / FILE.html.",
        ),
    ] = None,
    warehouse: Annotated[
        str | None, typer.Option("--warehouse", help="Paimon warehouse (default lake.warehouse).")
    ] = None,
) -> None:
    """ClickHouse SQL over the lake: trade, ticker, orderbook, ticker_latest, ohlcv_1m.

    In-process (chDB), on a local lake or one on S3 (lake.warehouse, s3.*).
    Tables are read merged on their primary key, as pypaimon reads them,
    with the ClickHouse tables' time columns added (trade_ts, event_ts;
    time on ohlcv_1m). Times are UTC.

    Examples:

      upbitpipe sql "SELECT market, count() FROM trade GROUP BY market"

      upbitpipe sql "SELECT * FROM trade WHERE market = 'KRW-BTC'
      ORDER BY trade_timestamp DESC LIMIT 10"

      upbitpipe sql "SELECT * FROM ohlcv_1m" -o candles.parquet

      upbitpipe sql --preset candles --chart   (collector.markets' first market)

      upbitpipe sql --preset candles --market KRW-ETH --since 1h --chart

      upbitpipe sql --preset candles --market KRW-BTC --chart candles.html

      upbitpipe sql --preset price-move --since 5m

      upbitpipe sql      (a prompt with history; `reload` re-reads the lake)

      echo "SELECT count() FROM ticker; SELECT 1" | upbitpipe sql -f csv
    """
    settings = cli_context(ctx).settings({"lake.warehouse": warehouse})
    _quiet_lake_reader()
    try:
        text, title, min_dt = _statement_and_title(
            statement, preset, market or [], since, interval, settings
        )
        out_fmt = _choose_format(fmt, output, chart)
    except UpbitpipeError as exc:
        fail(str(exc), code=2)

    from upbitpipe.query.engine import SqlEngine
    from upbitpipe.query.tables import Lake

    lake = Lake(settings)
    lake.table_names()  # a missing or empty lake says so before chDB starts or a file is made
    with ExitStack() as stack:
        stream = stack.enter_context(output.open("wb")) if output is not None else None
        target = _Output(
            out_fmt,
            chart,
            data_wanted=chart is None or fmt is not None or output is not None,
            stream=stream,
            color=sys.stdout.isatty(),
        )
        # a domain error (unknown table, bad SQL, no lake, S3 down) propagates: the root
        # group prints it as one line with exit code 1
        engine = stack.enter_context(SqlEngine(lake, min_dt))
        if text is not None:
            _show(engine, text, title, target)
        elif not sys.stdin.isatty():
            from upbitpipe.query.prompt import read_stdin, run_statements

            run_statements(read_stdin(sys.stdin), lambda s: _show(engine, s, s[:80], target))
        else:
            _interactive(engine, target)


def _quiet_lake_reader() -> None:
    """pypaimon logs every scan plan at INFO; a query prints rows, not that (--log-level
    debug still shows it)."""
    import logging

    reader = logging.getLogger("pypaimon")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        reader.setLevel(logging.WARNING)


def _names_a_file(arg: str) -> bool:
    """A chart file (``x.png``, or a wrong ``x.txt`` to be refused) rather than SQL."""
    return not any(c.isspace() for c in arg) and bool(Path(arg).suffix)


def _is_chart_target(value: str) -> bool:
    return value == _CHART_TERMINAL or Path(value).suffix.lower() in (".png", ".html", ".htm")


def _statement_and_title(
    statement: str | None,
    preset: str | None,
    markets: list[str],
    since: str | None,
    interval: str,
    settings: Settings,
) -> tuple[str | None, str, str | None]:
    """The SQL to run, a title for it, and (a preset) the first ``dt`` partition it needs.

    A one-market preset (candles) without ``--market`` takes the first market of
    ``collector.markets``: the one collected by default."""
    from upbitpipe.query.presets import (
        PresetParams,
        get_preset,
        parse_duration,
        parse_markets,
        partition_floor,
    )

    if preset is None:
        for flag, value in (("--market", markets), ("--since", since)):
            if value:
                msg = f"{flag} goes with --preset"
                raise UpbitpipeError(msg)
        return statement, (statement or "")[:80], None
    if statement is not None:
        msg = "give either SQL or --preset, not both"
        raise UpbitpipeError(msg)
    chosen = get_preset(preset)
    if chosen.one_market and not markets:
        from upbitpipe.config import MARKET_SELECTORS

        markets = [m for m in settings.collector.markets if m.lower() not in MARKET_SELECTORS][:1]
    span = since or chosen.default_since
    params = PresetParams(
        since_seconds=parse_duration(span, "--since"),
        interval_seconds=parse_duration(interval, "--interval"),
        markets=parse_markets(markets),
    )
    where = ", ".join(params.markets) or "all markets"
    title = f"{chosen.name}: {where}, last {span} (UTC)"
    floor = partition_floor(params.since_seconds, settings.lake.timezone)
    return chosen.render_lake(params), title, floor


def _choose_format(fmt: str | None, output: Path | None, chart: str | None) -> str:
    from upbitpipe.query.formats import choose_format

    if chart is not None and chart != _CHART_TERMINAL and not _is_chart_target(chart):
        msg = f"--chart: write a .png or .html file, not {chart!r}"
        raise UpbitpipeError(msg)
    return choose_format(fmt, None if output is None else str(output), sys.stdout.isatty())


def _show(engine: SqlEngine, statement: str, title: str, target: _Output) -> None:
    result = engine.query(statement)
    if result is None:
        return
    if target.chart == _CHART_TERMINAL:
        from upbitpipe.query.charts import terminal_chart

        typer.echo(terminal_chart(result, title, color=target.color))
    elif target.chart is not None:
        from upbitpipe.query.charts import write_chart

        path = write_chart(result, Path(target.chart), title)
        err_console.print(f"chart: {path} ({path.stat().st_size:,} bytes)")
    if target.data_wanted:
        _write_rows(engine, result, target)


def _write_rows(engine: SqlEngine, result: pa.Table, target: _Output) -> None:
    from upbitpipe.query.formats import encode, rich_table

    if target.fmt == "table":
        if target.stream is None:
            console = Console()
            console.print(rich_table(result, console.width))
        else:
            import io

            buffer = io.StringIO()
            console = Console(file=buffer, width=200, color_system=None)
            console.print(rich_table(result, console.width))
            target.stream.write(buffer.getvalue().encode())
        return
    data = encode(result, target.fmt, engine.render)
    if target.stream is not None:
        target.stream.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _interactive(engine: SqlEngine, target: _Output) -> None:
    from upbitpipe.config import default_data_dir
    from upbitpipe.query.prompt import interactive

    names = engine.lake.table_names()
    err_console.print(
        f"upbitpipe sql on {engine.lake.where}: tables {', '.join(names)}. "
        "One statement per line (end a line with \\ to go on); `reload` re-reads the lake; "
        "exit with Ctrl-D."
    )

    def on_error(exc: Exception) -> None:
        err_console.print(f"[bold red]error[/]: {escape(str(exc))}", markup=True, highlight=False)

    interactive(
        lambda s: _show(engine, s, s[:80], target),
        on_error,
        engine.reload,
        default_data_dir() / "sql_history",
        names,
    )
