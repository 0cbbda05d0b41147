"""The local S3 server (MinIO built by upbitpipe.infra.s3server) and `upbitpipe buckets init`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.storage.buckets import EXPIRE_RULE_ID, make_client

if TYPE_CHECKING:
    from conftest import S3Fixture

pytestmark = pytest.mark.integration
runner = CliRunner()


def _env(s3: S3Fixture, **extra: str) -> dict[str, str]:
    return {
        "UPBITPIPE_S3__ENDPOINT": s3.endpoint,
        "UPBITPIPE_S3__ACCESS_KEY": s3.access_key,
        "UPBITPIPE_S3__SECRET_KEY": s3.secret_key,
        **extra,
    }


def test_server_is_up_and_healthy(s3_server: S3Fixture) -> None:
    assert httpx.get(f"{s3_server.endpoint}/minio/health/live", timeout=5).status_code == 200
    status = s3_server.server.status()
    assert status.healthy and status.pids
    assert "MinIO" in status.version
    assert s3_server.secret_key not in repr(status)


def test_buckets_init_twice(s3_server: S3Fixture) -> None:
    env = _env(
        s3_server,
        UPBITPIPE_S3__WAREHOUSE_BUCKET="wh-twice",
        UPBITPIPE_S3__ARCHIVE_BUCKET="ar-twice",
    )
    first = runner.invoke(app, ["buckets", "init"], env=env)
    assert first.exit_code == 0, first.output
    assert "wh-twice: created" in first.output
    again = runner.invoke(app, ["buckets", "init", "--versioning", "--expire-days", "7"], env=env)
    assert again.exit_code == 0, again.output
    assert "wh-twice: exists (versioning on)" in again.output
    client = make_client(
        s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "us-east-1"
    )
    assert client.bucket_exists("wh-twice") and client.bucket_exists("ar-twice")
    assert client.get_bucket_versioning("ar-twice").status == "Enabled"
    (rule,) = client.get_bucket_lifecycle("ar-twice").rules
    assert rule.rule_id == EXPIRE_RULE_ID and rule.expiration.days == 7
    assert s3_server.secret_key not in again.output


def test_bad_credentials_one_line(s3_server: S3Fixture) -> None:
    env = _env(s3_server, UPBITPIPE_S3__SECRET_KEY="definitely-wrong")
    result = runner.invoke(app, ["buckets", "init"], env=env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "refused the credentials" in lines[0]
    assert "definitely-wrong" not in result.output


def test_unreachable_endpoint_one_line(s3_server: S3Fixture) -> None:
    from upbitpipe.infra.base import free_port

    env = _env(s3_server, UPBITPIPE_S3__ENDPOINT=f"http://127.0.0.1:{free_port()}")
    result = runner.invoke(app, ["buckets", "init"], env=env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "not reachable" in lines[0], result.output
