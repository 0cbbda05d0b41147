"""`upbitpipe config show|init`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from upbitpipe.cli.context import cli_context, fail
from upbitpipe.config import redacted_items
from upbitpipe.config_template import render_config_template

app = typer.Typer(help="Show or create the configuration.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the effective configuration and where each value came from (secrets masked).

    Examples:

      upbitpipe config show

      UPBITPIPE_KAFKA__BOOTSTRAP_SERVERS=k1:9092 upbitpipe config show --json
    """
    loaded = cli_context(ctx).load()
    rows = redacted_items(loaded)
    if as_json:
        import orjson

        payload = {key: {"value": value, "source": source} for key, value, source in rows}
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"upbitpipe config ({loaded.config_file or 'no config file'})")
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", style="dim")
    for key, value, source in rows:
        table.add_row(key, value, source)
    Console(soft_wrap=True).print(table)


@app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the file.")] = Path("upbitpipe.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented upbitpipe.yaml with every key at its default.

    Examples:

      upbitpipe config init

      upbitpipe config init ~/.config/upbitpipe/upbitpipe.yaml --force
    """
    if path.exists() and not force:
        fail(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_config_template(), encoding="utf-8")
    typer.echo(f"wrote {path}")
