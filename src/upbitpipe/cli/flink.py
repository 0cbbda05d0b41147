"""`upbitpipe flink submit|jobs`: the Flink SQL pipeline Kafka -> Paimon lake."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from upbitpipe.cli.context import cli_context, fail
from upbitpipe.config import Settings
from upbitpipe.errors import UpbitpipeError
from upbitpipe.flink.jobs import TERMINAL_STATES, FlinkRest, JobInfo
from upbitpipe.flink.pipeline import (
    alive_pipeline,
    ensure_no_pipeline,
    latest_restore_point,
    stop_for_replace,
    writes_lake,
)
from upbitpipe.flink.render import RenderedStatement, render_files, resolve_files
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.flink.state import state_dirs
from upbitpipe.flink.submit import SubmitOptions, SubmitResult, submit

app = typer.Typer(help="Run the Flink SQL jobs (Kafka -> Paimon lake) and manage them.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

FilesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="'all' (01-04: catalog, Kafka sources, lake tables, the streaming job) or SQL file names/paths.",
        show_default=False,
    ),
]


@app.command("submit")
def submit_cmd(
    ctx: typer.Context,
    files: FilesArg = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local", help="Run on an embedded mini-cluster in this process (no cluster needed)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the rendered SQL (secrets masked) and stop.")
    ] = False,
    bounded: Annotated[
        bool,
        typer.Option(
            "--bounded",
            help="Read Kafka up to the offsets at start, then finish (tests, backfills).",
        ),
    ] = False,
    wait: Annotated[
        bool | None,
        typer.Option(
            "--wait/--no-wait", help="Wait until the job ends (default: only with --local)."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = None,
    parallelism: Annotated[
        int | None, typer.Option("--parallelism", "-p", help="Overrides flink.parallelism.")
    ] = None,
    rest_url: Annotated[
        str | None, typer.Option("--rest-url", help="Overrides flink.rest_url.")
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Stop the running pipeline job with a savepoint and start this one from it.",
        ),
    ] = False,
    from_savepoint: Annotated[
        str | None,
        typer.Option("--from-savepoint", help="Start from this savepoint or retained checkpoint."),
    ] = None,
    from_latest: Annotated[
        bool,
        typer.Option(
            "--from-latest",
            help="Start from the newest retained checkpoint or savepoint of the pipeline.",
        ),
    ] = False,
    allow_non_restored_state: Annotated[
        bool,
        typer.Option(
            "--allow-non-restored-state",
            help="When restoring: drop state of operators the new SQL no longer has.",
        ),
    ] = False,
) -> None:
    """Render the SQL templates from the config and run them: DDL first, then one job.

    One pipeline job per lake: while it runs, a second `submit all` is refused; --replace
    stops it with a savepoint and starts the new job from that savepoint (state and Kafka
    offsets carry over). --from-savepoint / --from-latest resume a stopped pipeline.

    01-create-catalogs always runs first (each submission is a new session). S3 keys and
    SASL passwords are injected in memory and never written to disk.

    Examples:

      upbitpipe flink submit all

      upbitpipe flink submit all --dry-run

      upbitpipe flink submit all --local --bounded

      upbitpipe flink submit all --replace

      upbitpipe flink submit all --from-latest

      upbitpipe flink submit 05-queries.sql --local

      upbitpipe flink submit ./my-job.sql --rest-url http://flink-jm:8081
    """
    settings = cli_context(ctx).settings(
        {"flink.parallelism": parallelism, "flink.rest_url": rest_url}
    )
    try:
        statements = render_files(
            resolve_files(files or ["all"], settings), settings, bounded=bounded
        )
    except UpbitpipeError as exc:
        fail(str(exc), code=2)
    if dry_run:
        for stmt in statements:
            out.print(f"-- {stmt.label} ({stmt.statement.kind})")
            out.print(f"{stmt.display};\n", markup=False)
        return
    if sum(bool(x) for x in (replace, from_savepoint, from_latest)) > 1:
        fail("--replace, --from-savepoint and --from-latest: choose one", code=2)
    if (replace or from_savepoint or from_latest) and local:
        fail("--replace/--from-savepoint/--from-latest work on a cluster, not with --local", code=2)
    restore = (
        None
        if local
        else _restore_point(settings, statements, replace, from_savepoint, from_latest)
    )
    options = SubmitOptions(
        local=local,
        bounded=bounded,
        wait=wait,
        timeout=timeout,
        restore_from=restore,
        allow_non_restored_state=allow_non_restored_state,
    )
    try:
        runtime = _runtime(settings)
        if local:
            err.print("[dim]starting an embedded Flink mini-cluster ...[/]")
        result = submit(statements, settings, runtime, options, on_event=_progress)
    except KeyboardInterrupt:
        if local:
            err.print("interrupted: the local job was stopped")
        else:
            err.print("interrupted: jobs already submitted keep running (`upbitpipe flink jobs`)")
        raise typer.Exit(130) from None
    _print_result(result, settings, local=local)


def _restore_point(
    settings: Settings,
    statements: list[RenderedStatement],
    replace: bool,
    from_savepoint: str | None,
    from_latest: bool,
) -> str | None:
    """Where the new job starts from; with --replace this stops the running pipeline job.

    Without --replace a pipeline job that is alive is refused here, before any JVM starts."""
    if not replace and writes_lake([s.statement.kind for s in statements]):
        ensure_no_pipeline(FlinkRest(str(settings.flink.rest_url)), settings)
    if from_savepoint:
        return from_savepoint
    if from_latest:
        location = latest_restore_point(settings)
        err.print(f"resuming from {location}")
        return location
    if not replace:
        return None
    if not writes_lake([s.statement.kind for s in statements]):
        fail("--replace only goes with files that start the pipeline job (all, 04-...)", code=2)
    rest = FlinkRest(str(settings.flink.rest_url))
    job = alive_pipeline(rest, settings)
    if job is None:
        err.print("no pipeline job is running: starting a new one")
        return None
    err.print(f"stopping {job.job_id} with a savepoint ...")
    replaced = stop_for_replace(rest, settings, job)
    err.print(f"[green]stopped[/] {replaced.job_id}; savepoint at {replaced.savepoint}")
    return replaced.savepoint


def _runtime(settings: Settings) -> FlinkRuntime:
    runtime = FlinkRuntime.in_cache(settings.infra.cache_dir)
    return runtime.ensure(settings.infra.cache_dir, echo=lambda line: err.print(line, markup=False))


def _progress(event: dict[str, Any]) -> None:
    kind = event.get("event")
    label = event.get("label", "")
    if kind == "ok":
        err.print(f"[green]ok[/] {label}")
    elif kind == "job":
        err.print(f"[green]job[/] {label}: submitted as {event.get('job_id')}")
    elif kind == "finished":
        err.print(f"[green]finished[/] {event.get('job_id')}")


def _print_result(result: SubmitResult, settings: Settings, *, local: bool) -> None:
    for query in result.queries:
        table = Table(title=query.label + (" (truncated)" if query.truncated else ""))
        for column in query.columns:
            table.add_column(column, overflow="fold")
        for row in query.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
    for job_id in result.job_ids:
        if job_id in result.finished_jobs:
            out.print(f"job {job_id} finished ({result.seconds:.0f} s)")
        elif not local:
            out.print(f"job {job_id} running on {settings.flink.rest_url}")


@app.command("jobs")
def jobs_cmd(
    ctx: typer.Context,
    cancel: Annotated[str | None, typer.Option("--cancel", help="Cancel this job id.")] = None,
    stop: Annotated[
        str | None, typer.Option("--stop", help="Stop this job id, taking a savepoint first.")
    ] = None,
    savepoint_dir: Annotated[
        str | None,
        typer.Option(
            "--savepoint-dir",
            help="Where --stop writes the savepoint (default: the pipeline's savepoint dir, where --from-latest looks).",
        ),
    ] = None,
    drain: Annotated[
        bool,
        typer.Option(
            "--drain", help="With --stop: emit the final watermark (closes open windows)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
    rest_url: Annotated[
        str | None, typer.Option("--rest-url", help="Overrides flink.rest_url.")
    ] = None,
) -> None:
    """List the cluster's jobs, or cancel / stop-with-savepoint one.

    Examples:

      upbitpipe flink jobs

      upbitpipe flink jobs --json

      upbitpipe flink jobs --cancel 6f1b0c3d2e4a5b6c7d8e9f0a1b2c3d4e

      upbitpipe flink jobs --stop 6f1b0c3d2e4a5b6c7d8e9f0a1b2c3d4e --savepoint-dir file:///var/flink/savepoints
    """
    if cancel and stop:
        fail("--cancel and --stop: choose one", code=2)
    if savepoint_dir and not stop:
        fail("--savepoint-dir only goes with --stop", code=2)
    settings = cli_context(ctx).settings({"flink.rest_url": rest_url})
    rest = FlinkRest(str(settings.flink.rest_url))
    if cancel:
        rest.cancel(cancel)
        out.print(f"job {cancel} cancelled")
        return
    if stop:
        target = savepoint_dir or state_dirs(settings).savepoints
        location = rest.stop_with_savepoint(stop, target, drain=drain)
        out.print(f"job {stop} stopped; savepoint at {location}")
        return
    jobs = rest.list_jobs()
    restarts = {j.job_id: _restarts(rest, j) for j in jobs}
    if as_json:
        typer.echo(
            json.dumps(
                [{**job.__dict__, "restarts": restarts[job.job_id]} for job in jobs], indent=2
            )
        )
        return
    table = Table(title=f"Flink jobs at {settings.flink.rest_url}")
    for column in ("job id", "name", "state", "started (UTC)", "running for", "tasks", "restarts"):
        table.add_column(column)
    for job in jobs:
        started = datetime.fromtimestamp(job.start_time_ms / 1000, UTC).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        table.add_row(
            job.job_id,
            job.name,
            job_state_label(job),
            started,
            f"{job.duration_ms / 1000:.0f} s",
            f"{job.tasks_running}/{job.tasks_total}",
            "" if restarts[job.job_id] is None else str(restarts[job.job_id]),
        )
    out.print(table if jobs else "no jobs")


def job_state_label(job: JobInfo) -> str:
    """Flink's state, and for a RUNNING job whose tasks are not all running, how many are."""
    if job.state == "RUNNING" and not job.fully_running:
        return f"RUNNING ({job.tasks_running}/{job.tasks_total} tasks up)"
    return job.state


def _restarts(rest: FlinkRest, job: JobInfo) -> int | None:
    """Restart count of a live job (None for finished ones: their history is not kept long)."""
    if job.state in TERMINAL_STATES:
        return None
    return rest.restart_count(job.job_id)
