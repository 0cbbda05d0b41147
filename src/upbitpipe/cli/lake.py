"""`upbitpipe lake candles|maintain`: maintenance of the Paimon lake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from upbitpipe.cli.context import cli_context, fail
from upbitpipe.config import Settings

if TYPE_CHECKING:
    from upbitpipe.lake.maintain import MaintainPlan

app = typer.Typer(help="Maintain the Paimon lake.", no_args_is_help=True)


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


@app.command("maintain")
def maintain(
    ctx: typer.Context,
    compact: Annotated[
        bool,
        typer.Option(
            "--compact/--no-compact",
            help="Merge small files (skipped by itself while the Flink pipeline job runs: it compacts as it writes).",
        ),
    ] = True,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep", min=1, help="Snapshots to keep at most (default: snapshot.num-retained.max)."
        ),
    ] = None,
    older_than_minutes: Annotated[
        float | None,
        typer.Option(
            "--older-than-minutes",
            min=0,
            help="Expire snapshots older than this (default: snapshot.time-retained).",
        ),
    ] = None,
    orphans_older_than_hours: Annotated[
        float,
        typer.Option(
            "--orphans-older-than-hours",
            min=0,
            help="Delete unreferenced files older than this (younger ones may be a commit in flight).",
        ),
    ] = 24.0,
    tables: Annotated[
        str | None, typer.Option("--tables", help="Comma-separated tables (default: all).")
    ] = None,
    warehouse: Annotated[
        str | None, typer.Option("--warehouse", help="Paimon warehouse (default lake.warehouse).")
    ] = None,
) -> None:
    """Keep the lake small: set the declared retention options, compact, expire old
    snapshots (and the files only they used), remove orphan files.

    Works on the embedded lake (written by the collector's lake sink) and on the
    Flink-written lake on S3 alike: Paimon's own procedures run in a local Flink
    mini-cluster (the Flink runtime; no cluster needed). Safe while writers run. Run it from
    cron (hourly for the embedded lake, which never expires snapshots by itself).

    Examples:

      upbitpipe lake maintain

      upbitpipe lake maintain --keep 20 --tables trade,ticker_latest

      upbitpipe lake maintain --no-compact --warehouse s3://upbit-lake/warehouse
    """
    from upbitpipe.lake.maintain import MaintainPlan
    from upbitpipe.lake.tables import LAKE_TABLES

    settings = cli_context(ctx).settings({"lake.warehouse": warehouse})
    wanted = [t.strip() for t in tables.split(",") if t.strip()] if tables else list(LAKE_TABLES)
    unknown = [t for t in wanted if t not in LAKE_TABLES]
    if unknown:
        fail(f"--tables: unknown table {unknown[0]!r} (use {', '.join(LAKE_TABLES)})", code=2)
    plan = MaintainPlan(
        compact=compact,
        keep_snapshots=keep,
        snapshot_age_seconds=None if older_than_minutes is None else older_than_minutes * 60,
        orphan_age_seconds=orphans_older_than_hours * 3600,
    )
    _run_maintenance(settings, wanted, plan)


def _run_maintenance(settings: Settings, wanted: list[str], plan: MaintainPlan) -> None:
    """Existing tables only; the catalog statements from 01-create-catalogs.sql; one local
    Flink run; one line per table and action."""
    from dataclasses import replace

    from upbitpipe.flink.render import CATALOG, CATALOG_FILE, RenderedStatement, render_files
    from upbitpipe.flink.render import sql_dir as flink_sql_dir
    from upbitpipe.flink.runtime import FlinkRuntime
    from upbitpipe.flink.split import Statement, classify
    from upbitpipe.flink.submit import SubmitOptions, submit
    from upbitpipe.lake.catalog import open_catalog
    from upbitpipe.lake.maintain import maintenance_steps, summarize, table_footprint
    from upbitpipe.lake.tables import LAKE_TABLES

    catalog = open_catalog(settings, create=False)
    present = []
    current: dict[str, dict[str, str]] = {}
    for name in wanted:
        try:
            table = catalog.get_table(f"{settings.lake.database}.{name}")
        except Exception:  # pypaimon's TableNotExistException: nothing to maintain
            typer.echo(f"{name}: not in the lake, skipped")
            continue
        present.append(LAKE_TABLES[name])
        current[name] = dict(table.table_schema.options)
    if not present:
        return
    if plan.compact and _pipeline_job_running(settings):
        typer.echo("the Flink pipeline job is running and compacts as it writes: no --compact")
        plan = replace(plan, compact=False)
    steps = maintenance_steps(settings.lake.database, present, plan, current_options=current)
    before = {t.name: table_footprint(settings, t.name) for t in present}
    head = render_files([flink_sql_dir(settings) / CATALOG_FILE], settings)
    head.append(
        RenderedStatement(
            "maintain", Statement(f"USE CATALOG `{CATALOG}`", "ddl", 0), f"USE CATALOG `{CATALOG}`"
        )
    )
    labelled = {f"maintain:{i + 1}": step for i, step in enumerate(steps)}
    statements = head + [
        RenderedStatement("maintain", Statement(s.sql, classify(s.sql), i + 1), s.sql)
        for i, s in enumerate(steps)
    ]
    runtime = FlinkRuntime.in_cache(settings.infra.cache_dir).ensure(settings.infra.cache_dir)
    result = submit(
        statements, settings, runtime, SubmitOptions(local=True, wait=True, timeout=1800)
    )
    shown = {q.label: q for q in result.queries}
    for label, step in labelled.items():
        query = shown.get(label)
        if query is not None and query.rows:
            typer.echo(f"{step.table:<14} {step.action:<8} {summarize(query.columns, query.rows)}")
    for table in present:
        after = table_footprint(settings, table.name)
        was = before[table.name]
        typer.echo(
            f"{table.name:<14} files {was.files} -> {after.files}, "
            f"snapshots {was.snapshots} -> {after.snapshots}"
        )


def _pipeline_job_running(settings: Settings) -> bool:
    """The pipeline job that writes this lake is alive on flink.rest_url."""
    from upbitpipe.errors import UpbitpipeError
    from upbitpipe.flink.jobs import FlinkRest
    from upbitpipe.flink.pipeline import alive_pipeline

    try:
        return (
            alive_pipeline(FlinkRest(str(settings.flink.rest_url), timeout=2.0), settings)
            is not None
        )
    except UpbitpipeError:
        return False
