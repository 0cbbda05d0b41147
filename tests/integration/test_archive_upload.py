"""`archive upload` against a real S3 server: finished hours only, idempotent, verified delete."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import S3Fixture
from upbitpipe.archive.capture import CaptureWriter, read_capture
from upbitpipe.archive.upload import upload_archive
from upbitpipe.config import S3Settings
from upbitpipe.storage.buckets import init_buckets, make_client

pytestmark = pytest.mark.integration


def test_upload_is_idempotent_and_skips_the_open_hour(tmp_path: Path, s3_server: S3Fixture) -> None:
    s3 = S3Settings(endpoint=s3_server.endpoint, archive_bucket="archive-upload-test")  # type: ignore[arg-type]
    init_buckets(s3, s3_server.access_key, s3_server.secret_key)
    client = make_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, s3.region)
    root = tmp_path / "archive"
    now_ms = int(time.time() * 1000)
    old_ms = now_ms - 5 * 3600 * 1000
    with CaptureWriter(root) as writer:
        for i in range(100):
            writer.write(old_ms + i, b'{"ty":"trade","cd":"KRW-BTC","sid":%d}' % i)
        writer.write(now_ms, b'{"ty":"trade","cd":"KRW-BTC","sid":1000}')

    first = upload_archive(root, client, s3.archive_bucket, older_than_hours=1)
    assert len(first.uploaded) == 1 and len(first.too_recent) == 1
    again = upload_archive(root, client, s3.archive_bucket, older_than_hours=1)
    assert again.uploaded == [] and again.skipped_existing == first.uploaded

    name = f"archive/{first.uploaded[0]}"
    downloaded = tmp_path / "down.jsonl.gz"
    client.fget_object(s3.archive_bucket, name, str(downloaded))
    assert [ts for ts, _ in read_capture(downloaded)] == [old_ms + i for i in range(100)]

    cleaned = upload_archive(root, client, s3.archive_bucket, older_than_hours=1, delete_local=True)
    assert cleaned.deleted_local == first.uploaded
    assert not (root / first.uploaded[0]).exists()
    assert len([ts for ts, _ in read_capture(root)]) == 1  # the open hour stays
