"""`upbitpipe lake candles`: maintenance of the embedded Paimon lake."""

from __future__ import annotations

from typing import Annotated

import typer

from upbitpipe.cli.context import cli_context, fail

app = typer.Typer(help="Maintain the embedded Paimon lake.", no_args_is_help=True)


@app.command("candles")
def candles(
    ctx: typer.Context,
    since_minutes: Annotated[
        float,
        typer.Option("--since-minutes", min=1, help="Recompute minutes from this long ago on."),
    ] = 60,
    all_trades: Annotated[
        bool, typer.Option("--all", help="Recompute every stored minute.")
    ] = False,
    warehouse: Annotated[
        str | None, typer.Option("--warehouse", help="Paimon warehouse (default lake.warehouse).")
    ] = None,
) -> None:
    """Rebuild ohlcv_1m (1-minute candles) from the lake's trades - the embedded path's
    stand-in for the Flink job. Idempotent: run it from cron every few minutes.

    Examples:

      upbitpipe lake candles

      upbitpipe lake candles --since-minutes 15

      upbitpipe lake candles --all --warehouse s3://upbit-lake/warehouse
    """
    from upbitpipe.lake.candles_job import rebuild_candles

    settings = cli_context(ctx).settings({"lake.warehouse": warehouse})
    try:
        report = rebuild_candles(settings, since_minutes=None if all_trades else since_minutes)
    except Exception as exc:  # pypaimon/pyarrow errors: one line, not a traceback
        fail(f"lake {settings.lake.warehouse}: {type(exc).__name__}: {exc}")
    span = f" ({report.first_window} .. {report.last_window} UTC)" if report.first_window else ""
    typer.echo(f"{report.candles_written} candles from {report.trades_read} trades{span}")
