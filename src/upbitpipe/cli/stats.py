"""`upbitpipe stats`: one screen of pipeline health."""

from __future__ import annotations

import time
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.live import Live

from upbitpipe.cli.context import cli_context, fail
from upbitpipe.stats.report import as_json, gather, render
from upbitpipe.stats.sources import ALL_SOURCES


def stats(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between refreshes.")
    ] = 2.0,
    as_json_flag: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    only: Annotated[
        str | None,
        typer.Option("--only", help=f"Comma-separated parts: {','.join(ALL_SOURCES)}."),
    ] = None,
) -> None:
    """One screen of pipeline health.

    Collector rates and errors, Kafka offsets and consumer lag, Flink jobs and checkpoints,
    Paimon snapshots, ClickHouse freshness and bucket usage. A part that is not running shows
    as down or skipped; the command itself still succeeds.

    Examples:

      upbitpipe stats

      upbitpipe stats --only collector,lake --json

      upbitpipe stats --watch --interval 5
    """
    settings = cli_context(ctx).settings()
    names = list(ALL_SOURCES) if not only else [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_SOURCES]
    if unknown:
        fail(f"--only: unknown part {unknown[0]!r} (use {', '.join(ALL_SOURCES)})", code=2)
    if as_json_flag:
        typer.echo(
            orjson.dumps(as_json(gather(settings, names)), option=orjson.OPT_INDENT_2).decode()
        )
        return
    console = Console()
    if not watch:
        console.print(render(gather(settings, names)))
        return
    try:
        with Live(render(gather(settings, names)), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(interval)
                live.update(render(gather(settings, names)))
    except KeyboardInterrupt:
        pass
