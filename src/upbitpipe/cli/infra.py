"""`upbitpipe infra up|down|status`: the local cluster, as native processes or docker compose."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from upbitpipe.cli.context import cli_context, fail
from upbitpipe.config import Settings
from upbitpipe.errors import ServiceUnavailableError, UpbitpipeError
from upbitpipe.infra.base import ServiceStarter, ServiceStatus
from upbitpipe.stack import (
    DOCKER_ONLY_MESSAGE,
    Runtime,
    check_native,
    normalize_components,
    resolve_runtime,
    start_together,
    starters,
    unavailable_status,
)
from upbitpipe.storage.credentials import local_credentials

app = typer.Typer(help="Start, stop and inspect the local cluster.", no_args_is_help=True)
console = Console(stderr=True, highlight=False, soft_wrap=True)

ComponentsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="kafka, minio (or s3), flink, clickhouse, grafana. Default: all the runtime can run.",
        show_default=False,
    ),
]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        help="native (processes), docker (compose/) or auto (docker if an engine answers). Default: infra.runtime.",
    ),
]
ComposeOpt = Annotated[
    Path | None, typer.Option("--compose-file", help="Compose file for --runtime docker.")
]


def _setup(
    ctx: typer.Context, runtime: str | None, components: list[str] | None, brokers: int | None
) -> tuple[Settings, Runtime, list[str]]:
    if runtime is not None and runtime not in ("native", "docker", "auto"):
        fail(f"--runtime: use native, docker or auto, not {runtime!r}", code=2)
    settings = cli_context(ctx).settings({"infra.runtime": runtime, "infra.kafka_brokers": brokers})
    chosen = resolve_runtime(settings.infra.runtime)
    try:
        names = normalize_components(components or [], chosen)
    except UpbitpipeError as exc:
        fail(str(exc), code=2)
    return settings, chosen, names


@app.command("up")
def up(
    ctx: typer.Context,
    components: ComponentsArg = None,
    runtime: RuntimeOpt = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            "--brokers", min=1, max=9, help="Kafka nodes (default infra.kafka_brokers=3)."
        ),
    ] = None,
    compose_file: ComposeOpt = None,
) -> None:
    """Start components; returns once each one answers its health check.

    Native components start at the same time (none needs another to start); docker ones in
    dependency order.

    Native processes keep pid files, logs and data under infra.state_dir. What they need
    (Kafka jars, the MinIO build, the Flink runtime and jars) is fetched and built once, in
    parallel, into infra.cache_dir - the first run says what and about how long, then shows
    progress - and reused offline after that.

    Examples:

      upbitpipe infra up                       # kafka, minio, flink as native processes

      upbitpipe infra up kafka --brokers 1     # one small broker

      upbitpipe infra up kafka minio flink clickhouse grafana --runtime docker
    """
    settings, chosen, names = _setup(ctx, runtime, components, brokers)
    began = time.monotonic()
    if chosen == "native":
        try:
            check_native(names)
        except UpbitpipeError:
            fail(DOCKER_ONLY_MESSAGE)
        _prepare_native(names, settings)
        if "s3" in names:  # the server's keys exist before Flink starts (its S3 plugin uses them)
            local_credentials(settings.s3, settings.infra.state_dir, create=True)
            settings = cli_context(ctx).settings(
                {"infra.runtime": runtime, "infra.kafka_brokers": brokers}
            )
    skipped: list[str] = []
    todo: list[tuple[str, ServiceStarter]] = []
    for name in names:
        try:
            todo.append(
                (
                    name,
                    starters([name], settings, chosen, brokers=brokers, compose_file=compose_file)[
                        0
                    ],
                )
            )
        except ServiceUnavailableError as exc:
            if name != "flink":
                fail(str(exc))
            console.print(f"[yellow]skipped[/] flink: {exc}")
            skipped.append(name)
    timeout = settings.infra.start_timeout_seconds
    if chosen == "native":
        # native components do not need each other to start: start them all at once
        console.print(f"starting {', '.join(n for n, _ in todo)} (native) ...")
        failures = start_together(todo, timeout, _print_up)
        if failures:
            fail(str(failures[0][1]))
        if any(n == "s3" for n, _ in todo):
            _init_buckets_after_start(settings)
    else:
        for name, starter in todo:
            console.print(f"starting {name} ({chosen}) ...")
            step_began = time.monotonic()
            starter.start(timeout)
            _print_up(name, starter, time.monotonic() - step_began)
    if todo:
        console.print(
            f"infra up: {', '.join(n for n, _ in todo)} up in {time.monotonic() - began:.0f} s"
        )
    if skipped and components:
        raise typer.Exit(1)


def _print_up(name: str, starter: ServiceStarter, seconds: float) -> None:
    st = starter.status()
    console.print(f"[green]up[/] {name:<6} {st.address}  ({seconds:.1f} s)  {st.version}")


def _prepare_native(names: list[str], settings: Settings) -> None:
    """Fetch and build what the components need, all at once, saying so first."""
    from upbitpipe.cli.prepare_view import PrepareView, plan_lines
    from upbitpipe.prepare import plan, run_steps

    steps = plan(names, settings)
    if not steps:
        return
    for line in plan_lines(steps):
        console.print(line, markup=False)
    with PrepareView(console) as view:
        failures = run_steps(steps, view)
    if failures:
        step, error = failures[0]
        fail(f"{step.name}: {error}")


def _init_buckets_after_start(settings: Settings) -> None:
    from upbitpipe.storage.buckets import init_buckets
    from upbitpipe.storage.credentials import keys_origin, local_credentials

    creds = local_credentials(settings.s3, settings.infra.state_dir, create=False)
    if creds is None:
        return
    results = init_buckets(settings.s3, creds.access_key, creds.secret_key)
    names = ", ".join(r.name for r in results)
    where = keys_origin(settings.s3, settings.infra.state_dir)
    console.print(f"      buckets {names} ready; S3 credentials from {where}")


@app.command("down")
def down(
    ctx: typer.Context,
    components: ComponentsArg = None,
    runtime: RuntimeOpt = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the data of the stopped native services.")
    ] = False,
    compose_file: ComposeOpt = None,
) -> None:
    """Stop components (reverse order): SIGTERM, then SIGKILL after a grace period.

    Examples:

      upbitpipe infra down

      upbitpipe infra down kafka --purge      # stop and delete Kafka's data (new cluster id)
    """
    settings, chosen, names = _setup(ctx, runtime, components, None)
    if chosen == "native":
        names = [n for n in names if n not in ("clickhouse", "grafana")]
    for name in reversed(names):
        try:
            starter = starters([name], settings, chosen, compose_file=compose_file)[0]
        except ServiceUnavailableError:
            continue  # e.g. no flink module: nothing of it can be running
        except UpbitpipeError as exc:
            fail(str(exc))
        starter.stop(30.0)
        if purge and chosen == "native":
            _purge(settings, name)
        console.print(f"[green]down[/] {name}{' (data deleted)' if purge else ''}")


def _purge(settings: Settings, name: str) -> None:
    import shutil

    shutil.rmtree(settings.infra.state_dir / name, ignore_errors=True)


@app.command("status")
def status(
    ctx: typer.Context,
    components: ComponentsArg = None,
    runtime: RuntimeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    compose_file: ComposeOpt = None,
) -> None:
    """Each component: address, healthy/unhealthy/down, pids, version, detail.

    Flink's detail names every job that has not ended with its real state (RESTARTING is not
    running: the row turns unhealthy) and its restart count, and how often the supervisor
    restarted a TaskManager.

    Exits 0 whatever is down; use --json in scripts.

    Examples:

      upbitpipe infra status

      upbitpipe infra status kafka --json
    """
    settings, chosen, names = _setup(ctx, runtime, components, None)
    rows: list[ServiceStatus] = []
    for name in names:
        try:
            rows.append(starters([name], settings, chosen, compose_file=compose_file)[0].status())
        except UpbitpipeError as exc:
            rows.append(unavailable_status(name, settings, str(exc)))
    if as_json:
        import dataclasses

        import orjson

        payload = {"runtime": chosen, "components": [dataclasses.asdict(r) for r in rows]}
        typer.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"upbitpipe infra ({chosen} runtime, state {settings.infra.state_dir})")
    for column in ("component", "address", "state", "pids", "version", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        # running but not healthy: up yet failing its check (e.g. a Flink job RESTARTING)
        state = (
            "[green]healthy[/]"
            if row.healthy
            else "[yellow]unhealthy[/]"
            if row.running
            else "[dim]down[/]"
        )
        pids = " ".join(str(p) for p in row.pids) or "-"
        table.add_row(row.name, row.address, state, pids, row.version, row.detail)
    Console(soft_wrap=True).print(table)
