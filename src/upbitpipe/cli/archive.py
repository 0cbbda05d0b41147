"""`upbitpipe archive upload`: ship finished archive files to the archive bucket."""

from __future__ import annotations

from typing import Annotated

import typer

from upbitpipe.cli.context import cli_context, fail

app = typer.Typer(help="Manage the raw-frame archive.", no_args_is_help=True)


@app.command("upload")
def upload(
    ctx: typer.Context,
    older_than_hours: Annotated[
        float, typer.Option("--older-than-hours", min=0, help="Leave the newest hours alone.")
    ] = 1.0,
    delete_local: Annotated[
        bool,
        typer.Option("--delete-local", help="Delete each local file once its upload verified."),
    ] = False,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Object name prefix in the bucket.")
    ] = "archive",
) -> None:
    """Upload finished hourly files of collector.archive_dir to s3.archive_bucket.

    Safe to repeat (files already uploaded with the same size are skipped); meant for cron.

    Examples:

      upbitpipe archive upload

      upbitpipe archive upload --older-than-hours 2 --delete-local
    """
    from upbitpipe.archive.upload import upload_archive
    from upbitpipe.storage.buckets import make_client, s3_call
    from upbitpipe.storage.credentials import local_credentials

    settings = cli_context(ctx).settings()
    root = settings.collector.effective_archive_dir
    if not root.is_dir():
        fail(f"no archive at {root} (collector.archive_dir); nothing to upload")
    endpoint = str(settings.s3.endpoint).rstrip("/")
    creds = local_credentials(settings.s3, settings.infra.state_dir, create=False)
    if creds is None:
        fail("s3.access_key / s3.secret_key are not set (and no local server keys exist)")
    client = make_client(endpoint, creds.access_key, creds.secret_key, settings.s3.region)
    report = s3_call(
        endpoint,
        f"upload to {settings.s3.archive_bucket}",
        lambda: upload_archive(
            root,
            client,
            settings.s3.archive_bucket,
            prefix=prefix,
            older_than_hours=older_than_hours,
            delete_local=delete_local,
            progress=lambda name: typer.echo(f"uploaded {name}"),
        ),
    )
    typer.echo(
        f"uploaded {len(report.uploaded)} files ({report.bytes_uploaded / 1e6:.1f} MB), "
        f"{len(report.skipped_existing)} already there, {len(report.too_recent)} too recent, "
        f"{len(report.deleted_local)} deleted locally"
    )
