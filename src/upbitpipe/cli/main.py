"""The `upbitpipe` root command: global options and the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from upbitpipe import __version__
from upbitpipe.cli import (
    archive,
    buckets,
    ch,
    collect,
    config_cmd,
    demo,
    flink,
    infra,
    lake,
    replay,
    sql,
    stats,
)
from upbitpipe.cli.context import CliContext, fail
from upbitpipe.errors import ConfigError, UpbitpipeError
from upbitpipe.logs import LogFormat, configure_logging
from upbitpipe.native import native_status


def exit_code_for(exc: UpbitpipeError) -> int:
    """The one place that maps a domain error to an exit code: a bad value 2, the rest 1."""
    return 2 if isinstance(exc, ConfigError) else 1


class RootGroup(TyperGroup):
    """Every subcommand runs inside this group's ``invoke``: a domain error from any of them
    becomes one ``error: ...`` line and its exit code here, not in each command."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors click privately)
        try:
            return super().invoke(ctx)
        except UpbitpipeError as exc:
            fail(str(exc), code=exit_code_for(exc))


app = typer.Typer(
    cls=RootGroup,
    name="upbitpipe",
    help=(
        "Real-time Upbit market data: collect every ticker, trade and orderbook update into "
        "Kafka, a Paimon lake on S3 and ClickHouse, without loss.\n\n"
        "Examples:\n\n"
        "  upbitpipe demo\n\n"
        "  upbitpipe collect --markets KRW-BTC,KRW-ETH --sink lake --duration 60\n\n"
        "  upbitpipe infra up kafka minio flink"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"upbitpipe {__version__}")
        typer.echo(native_status().summary())
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="YAML config file (else $UPBITPIPE_CONFIG, ./upbitpipe.yaml, user dir).",
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning, error.")
    ] = "info",
    log_format: Annotated[
        str,
        typer.Option("--log-format", help="auto (rich on a terminal, else JSON), human or json."),
    ] = "auto",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        fail(f"--log-level: unknown level {log_level!r}", code=2)
    if log_format not in ("auto", "human", "json"):
        fail(f"--log-format: use auto, human or json, not {log_format!r}", code=2)
    fmt: LogFormat = log_format  # type: ignore[assignment]
    configure_logging(log_level, fmt)
    ctx.obj = CliContext(config_file=config)


app.add_typer(config_cmd.app, name="config")
# --- command groups (one module each; keep this block sorted) ---
app.add_typer(archive.app, name="archive")
app.add_typer(buckets.app, name="buckets")
app.add_typer(ch.app, name="ch")
app.add_typer(flink.app, name="flink")
app.add_typer(infra.app, name="infra")
app.add_typer(lake.app, name="lake")
app.add_typer(replay.app, name="replay")
app.command("collect")(collect.collect)
app.command("demo")(demo.demo)
app.command("sql", cls=sql.SqlCommand)(sql.sql)
app.command("stats")(stats.stats)


def run() -> None:
    """Console-script entry point (errors are mapped by :class:`RootGroup`)."""
    app()
