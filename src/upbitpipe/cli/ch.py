"""`upbitpipe ch init`: the ClickHouse schema for real-time analytics and Grafana."""

from __future__ import annotations

from typing import Annotated

import typer

from upbitpipe.cli.context import cli_context
from upbitpipe.clickhouse.apply import apply_statements
from upbitpipe.clickhouse.ddl import render_script, render_statements

app = typer.Typer(
    help="ClickHouse: Kafka-engine ingestion, MergeTree tables and views for Grafana.",
    no_args_is_help=True,
)


@app.command("init")
def init(
    ctx: typer.Context,
    print_only: Annotated[
        bool,
        typer.Option("--print", help="Only print the SQL (secrets masked); touch no server."),
    ] = False,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="2-shard variant: ON CLUSTER clickhouse.cluster, Replicated* + Distributed.",
        ),
    ] = False,
    host: Annotated[str | None, typer.Option("--host", help="Overrides clickhouse.host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Overrides clickhouse.port.")] = None,
    connect_timeout: Annotated[
        float, typer.Option("--connect-timeout", help="Seconds to wait for the server.", min=0.1)
    ] = 5.0,
) -> None:
    """Create, idempotently, the database, Kafka-engine queues (errors kept in kafka_errors),
    materialized views into MergeTree tables with TTL (clickhouse.ttl_days), the 1-minute
    OHLCV aggregate and the read views the Grafana dashboards use.

    Examples:

      upbitpipe ch init --print > schema.sql

      upbitpipe ch init --host ch1.internal --port 9000

      UPBITPIPE_CLICKHOUSE__KAFKA_BOOTSTRAP_SERVERS=kafka-1:9092 upbitpipe ch init

      upbitpipe ch init --cluster --print
    """
    settings = cli_context(ctx).settings({"clickhouse.host": host, "clickhouse.port": port})
    if print_only:
        typer.echo(render_script(render_statements(settings, cluster=cluster)), nl=False)
        return
    ch = settings.clickhouse
    statements = render_statements(settings, cluster=cluster, reveal_secrets=True)
    count = apply_statements(
        statements,
        ch,
        connect_timeout=connect_timeout,
        on_applied=lambda s: typer.echo(f"ok  {s.kind:<11} {s.name}"),
    )
    layout = f"cluster {ch.cluster}" if cluster else "single node"
    typer.echo(f"ClickHouse {ch.host}:{ch.port}: {count} statements applied ({layout}).")
