"""`upbitpipe buckets init`: the lake and archive buckets, idempotently."""

from __future__ import annotations

from typing import Annotated

import typer

from upbitpipe.cli.context import cli_context, fail

app = typer.Typer(help="Create and inspect the S3 buckets.", no_args_is_help=True)


@app.command("init")
def init(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="S3 endpoint URL (default s3.endpoint).")
    ] = None,
    versioning: Annotated[
        bool | None,
        typer.Option(
            "--versioning/--no-versioning", help="Enable versioning (default s3.versioning)."
        ),
    ] = None,
    expire_days: Annotated[
        int | None,
        typer.Option(
            "--expire-days",
            min=1,
            help="Expire archive objects after N days (s3.archive_expire_days).",
        ),
    ] = None,
) -> None:
    """Create s3.warehouse_bucket and s3.archive_bucket if missing (safe to run again).

    Credentials: s3.access_key / s3.secret_key, else the keys the local server generated
    (`upbitpipe infra up minio`) in infra.state_dir/s3/credentials.json.

    Examples:

      upbitpipe buckets init

      upbitpipe buckets init --versioning --expire-days 30

      UPBITPIPE_S3__ENDPOINT=http://minio.internal:9000 UPBITPIPE_S3__ACCESS_KEY=... \\
        UPBITPIPE_S3__SECRET_KEY=... upbitpipe buckets init
    """
    from upbitpipe.storage.buckets import init_buckets
    from upbitpipe.storage.credentials import credentials_file, local_credentials

    settings = cli_context(ctx).settings(
        {
            "s3.endpoint": endpoint,
            "s3.versioning": versioning,
            "s3.archive_expire_days": expire_days,
        }
    )
    creds = local_credentials(settings.s3, settings.infra.state_dir, create=False)
    if creds is None:
        fail(
            "s3.access_key / s3.secret_key are not set and no local server keys exist in "
            f"{credentials_file(settings.infra.state_dir)} (start one with `upbitpipe infra up minio`)"
        )
    results = init_buckets(settings.s3, creds.access_key, creds.secret_key)
    for result in results:
        what = "created" if result.created else "exists"
        extra = []
        if result.versioning:
            extra.append("versioning on")
        if result.expire_days:
            extra.append(f"objects expire after {result.expire_days} d")
        suffix = f" ({', '.join(extra)})" if extra else ""
        typer.echo(f"{result.name}: {what}{suffix}")
