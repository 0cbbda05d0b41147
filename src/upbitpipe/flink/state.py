"""Where the pipeline job keeps its state, and how to find the newest copy of it.

Checkpoints and savepoints live next to the lake: with an S3 warehouse in
``s3://<warehouse bucket>/flink/checkpoints`` and ``.../flink/savepoints`` (Flink's S3
filesystem plugin, :data:`upbitpipe.flink.jars.S3_FS_PLUGIN`, reads and writes them), so
losing a TaskManager host loses nothing. ``flink.checkpoint_dir`` overrides (a path or a
``file://`` URI for a laptop; savepoints then go to ``<checkpoint_dir>/savepoints``). With a
local warehouse and no override the cluster's own directories are used.

The state backend is RocksDB with incremental checkpoints (only changed SST files are
uploaded), retained when the job is cancelled so it can be restored from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from upbitpipe.config import S3Settings, Settings, reveal
from upbitpipe.errors import UpbitpipeError

METADATA = "_metadata"


@dataclass(frozen=True)
class StateDirs:
    """Checkpoint and savepoint URIs for the job (``None``: the cluster's default)."""

    checkpoints: str | None
    savepoints: str | None


def dir_uri(path: str) -> str:
    """``file://`` URI for a local path; URIs (s3://, hdfs://, file://) pass through."""
    if "://" in path:
        return path
    return Path(path).expanduser().resolve().as_uri()


def state_dirs(settings: Settings) -> StateDirs:
    if settings.flink.checkpoint_dir:
        checkpoints = dir_uri(settings.flink.checkpoint_dir).rstrip("/")
        return StateDirs(checkpoints, f"{checkpoints}/savepoints")
    if settings.lake.is_s3:
        bucket = urlsplit(settings.lake.warehouse).netloc
        return StateDirs(f"s3://{bucket}/flink/checkpoints", f"s3://{bucket}/flink/savepoints")
    return StateDirs(None, None)


def state_backend_config(settings: Settings) -> dict[str, str]:
    """Job configuration: RocksDB, incremental, retained checkpoints in :func:`state_dirs`."""
    conf = {
        "state.backend.type": "rocksdb",
        "execution.checkpointing.incremental": "true",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
    }
    dirs = state_dirs(settings)
    if dirs.checkpoints:
        conf["execution.checkpointing.dir"] = dirs.checkpoints
    if dirs.savepoints:
        conf["execution.checkpointing.savepoint-dir"] = dirs.savepoints
    return conf


def s3_filesystem_config(s3: S3Settings) -> dict[str, str]:
    """Cluster configuration for the S3 filesystem plugin (no secrets: see :func:`s3_filesystem_env`).

    A filesystem is set up once per Flink process from the cluster configuration, so these
    cannot be per job.
    """
    return {
        "s3.endpoint": str(s3.endpoint).rstrip("/"),
        "s3.path.style.access": "true" if s3.path_style else "false",
        "s3.endpoint.region": s3.region,
    }


def s3_filesystem_env(s3: S3Settings) -> dict[str, str]:
    """The S3 keys for the Flink daemons, as environment (the plugin's AWS credential chain
    reads them): they stay in process memory, never in the generated config file."""
    access, secret = reveal(s3.access_key), reveal(s3.secret_key)
    if not (access and secret):
        return {}
    return {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}


@dataclass(frozen=True)
class Snapshot:
    """A completed checkpoint or savepoint: its directory URI and when it was written."""

    uri: str
    written: datetime


def latest_snapshot(settings: Settings) -> Snapshot | None:
    """The newest retained checkpoint or savepoint (by its ``_metadata`` file) of the pipeline.

    Read from storage, not from the JobManager, so it works after the cluster was restarted.
    """
    dirs = state_dirs(settings)
    roots = [d for d in (dirs.checkpoints, dirs.savepoints) if d]
    if not roots:
        msg = "no checkpoint directory to look in: set flink.checkpoint_dir (or use an S3 warehouse), or pass --from-savepoint PATH"
        raise UpbitpipeError(msg)
    found: list[Snapshot] = []
    for root in roots:
        found.extend(
            _s3_snapshots(root, settings) if root.startswith("s3") else _file_snapshots(root)
        )
    return max(found, key=lambda s: s.written) if found else None


def _file_snapshots(root: str) -> list[Snapshot]:
    from datetime import UTC

    base = Path(urlsplit(root).path)
    out = []
    for meta in base.glob(f"**/{METADATA}"):
        written = datetime.fromtimestamp(meta.stat().st_mtime, UTC)
        out.append(Snapshot(meta.parent.as_uri(), written))
    return out


def _s3_snapshots(root: str, settings: Settings) -> list[Snapshot]:
    from upbitpipe.storage.buckets import make_client, s3_call

    s3 = settings.s3
    url = urlsplit(root)
    bucket, prefix = url.netloc, url.path.lstrip("/").rstrip("/") + "/"
    endpoint = str(s3.endpoint)
    client = make_client(
        endpoint, reveal(s3.access_key) or "", reveal(s3.secret_key) or "", s3.region
    )
    objects = s3_call(
        endpoint,
        f"list {root}",
        lambda: list(client.list_objects(bucket, prefix=prefix, recursive=True)),
    )
    return [
        Snapshot(f"{url.scheme}://{bucket}/{o.object_name.rsplit('/', 1)[0]}", o.last_modified)
        for o in objects
        if o.object_name.endswith(f"/{METADATA}") and o.last_modified is not None
    ]
