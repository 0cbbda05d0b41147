"""`upbitpipe collect`: stream Upbit data into the chosen sinks until stopped."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from upbitpipe.cli.context import cli_context, fail
from upbitpipe.collector.eventloop import run_on_loop
from upbitpipe.collector.runtime import run_collector


def collect(
    ctx: typer.Context,
    markets: Annotated[
        str | None,
        typer.Option(
            "--markets",
            "-m",
            help="Comma-separated codes (KRW-BTC,KRW-ETH) or all, all-krw, all-btc, all-usdt.",
        ),
    ] = None,
    types: Annotated[
        str | None, typer.Option("--types", "-t", help="Comma-separated: ticker,trade,orderbook.")
    ] = None,
    sink: Annotated[
        list[str] | None,
        typer.Option(
            "--sink", "-s", help="lake (embedded default), kafka or archive; repeat for several."
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", "-d", min=0.1, help="Stop after this many seconds."),
    ] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            "--warehouse", help="Paimon warehouse for the lake sink (path or s3://bucket/path)."
        ),
    ] = None,
) -> None:
    """Collect every ticker, trade and orderbook update without loss.

    Runs until Ctrl-C / SIGTERM (then flushes every sink and exits 0) or --duration.
    After each reconnect, trades missed during the outage are fetched from REST and merged;
    each trade is emitted once. Malformed frames go to <state_dir>/deadletter/.

    Examples:

      upbitpipe collect --markets KRW-BTC,KRW-ETH

      upbitpipe collect --markets all-krw --types trade --sink kafka --sink archive

      UPBITPIPE_UPBIT__WEBSOCKET_URL=ws://127.0.0.1:8765/websocket/v1 \\
      UPBITPIPE_UPBIT__REST_URL=http://127.0.0.1:8765 upbitpipe collect --duration 30
    """
    overrides = {
        "collector.markets": markets,
        "collector.types": types,
        "collector.sinks": sink or None,
        "lake.warehouse": warehouse,
    }
    settings = cli_context(ctx).settings(overrides)
    try:
        result = run_on_loop(
            run_collector(settings, duration=duration), settings.collector.event_loop
        )
    except KeyboardInterrupt:  # second Ctrl-C during shutdown
        fail(
            "interrupted during shutdown; spooled data is kept and re-sent on next start", code=130
        )
    snap = result.snapshot
    events = ", ".join(f"{k}={v}" for k, v in sorted(snap.events.items())) or "none"
    unwritten = (
        f" ({snap.dead_letter_write_failures} could not be written)"
        if snap.dead_letter_write_failures
        else ""
    )
    Console(stderr=True).print(
        f"collected {events}; duplicates dropped={snap.duplicates}; "
        f"backfilled={snap.backfilled_total}; dead letters={snap.dead_letters_total}{unwritten}; "
        f"status: {result.status_file}",
        highlight=False,
    )
