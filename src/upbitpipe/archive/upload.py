"""Upload finished hourly archive files to ``s3.archive_bucket`` (idempotent), optionally
freeing local disk. Files of the current hour (and ``older_than_hours`` before it) are left
alone: the archive sink may still append to them.

Object names mirror the local layout: ``<prefix>/dt=YYYY-MM-DD/hour=HH/<file>``. A file whose
object already exists with the same size is skipped, so the command can run from cron as often
as you like; a local file is only deleted after its object's size was checked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from upbitpipe.archive.capture import capture_files

_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/")


@dataclass
class UploadReport:
    uploaded: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    too_recent: list[str] = field(default_factory=list)
    deleted_local: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0


def partition_hour_end(relative: str) -> float | None:
    """Epoch seconds at which the file's hour partition is over (None: not partitioned)."""
    match = _PARTITION.search(relative)
    if not match:
        return None
    start = datetime.strptime(f"{match[1]} {match[2]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return start.timestamp() + 3600


def upload_archive(
    root: Path,
    client: Minio,
    bucket: str,
    *,
    prefix: str = "archive",
    older_than_hours: float = 1.0,
    delete_local: bool = False,
    now: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> UploadReport:
    report = UploadReport()
    cutoff = (now if now is not None else time.time()) - older_than_hours * 3600
    for path in capture_files(root):
        relative = path.relative_to(root).as_posix()
        hour_end = partition_hour_end(relative)
        if hour_end is None or hour_end > cutoff:
            report.too_recent.append(relative)
            continue
        name = f"{prefix.strip('/')}/{relative}" if prefix else relative
        size = path.stat().st_size
        remote = _remote_size(client, bucket, name)
        if remote == size:
            report.skipped_existing.append(relative)
        else:
            client.fput_object(bucket, name, str(path), content_type="application/gzip")
            if _remote_size(client, bucket, name) != size:
                msg = f"upload of {relative} to {bucket}/{name} did not verify"
                raise OSError(msg)
            report.uploaded.append(relative)
            report.bytes_uploaded += size
            if progress is not None:
                progress(relative)
        if delete_local:
            path.unlink()
            report.deleted_local.append(relative)
    return report


def _remote_size(client: Minio, bucket: str, name: str) -> int | None:
    try:
        stat = client.stat_object(bucket, name)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
            return None
        raise
    return stat.size
