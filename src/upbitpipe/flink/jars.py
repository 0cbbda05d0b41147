"""The Flink version and the connector jars it runs with, pinned with sha256.

Why these versions (checked against what Maven Central serves here, 2026-11):

* Flink **1.20.5** (the LTS line) from PyPI ``apache-flink`` - it ships ``lib/`` (flink-dist,
  table planner, json/csv formats, log4j) and ``bin/`` (jobmanager.sh, taskmanager.sh).
* Kafka: ``flink-connector-kafka 3.4.0-1.20`` - the connector release made for Flink 1.20.
  Its SQL fat jar (``flink-sql-connector-kafka``) is not served for 1.20 here, so the thin jar
  comes with ``kafka-clients 3.4.0`` (the client it was built against) and ``zstd-jni``
  (lz4 and snappy are inside flink-dist already) - the same classes the fat jar would carry.
* Paimon: ``paimon-flink-1.20 1.3.1`` + ``paimon-s3 1.3.1`` - the newest Paimon bundle for
  Flink 1.20 served here (2.x bundles are not). Tables written by Paimon 1.3 Java are read by
  pypaimon 2.1 and the other way round (the file format is shared; the integration tests
  prove both directions).
* Hadoop classes for Paimon's parquet writer: ``flink-shaded-hadoop-2-uber 2.8.3-10.0``.
* Checkpoints and savepoints on S3: Flink's ``flink-s3-fs-hadoop`` filesystem *plugin* (its
  own class loader under ``plugins/s3-fs-hadoop/``, never in ``lib/``). **1.20.1** is the
  newest 1.20.x served here (1.20.2-1.20.5 are not); a plugin only uses Flink's stable
  ``FileSystem`` API, so 1.20.1 serves the 1.20.5 runtime.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from upbitpipe.infra.artifacts import Artifact, fetch_all, maven_artifact

FLINK_VERSION = "1.20.5"
PAIMON_VERSION = "1.3.1"
KAFKA_CONNECTOR_VERSION = "3.4.0-1.20"

CONNECTOR_JARS: tuple[Artifact, ...] = (
    maven_artifact(
        "org.apache.flink",
        "flink-connector-kafka",
        KAFKA_CONNECTOR_VERSION,
        "0deab094f7f54df9e8cb7c77c15b4392e1f9923f98f8972b4346f6ff384bf5e6",
    ),
    maven_artifact(
        "org.apache.kafka",
        "kafka-clients",
        "3.4.0",
        "48f38dede69bf2ed3709e270afb6b72fac869651fc258997727dba350333ac64",
    ),
    maven_artifact(
        "com.github.luben",
        "zstd-jni",
        "1.5.2-1",
        "93f7e4cbc907c2650f89f9f0bec94873735a58f1e4b66a54973294e4ec1878e8",
    ),
    maven_artifact(
        "org.apache.paimon",
        "paimon-flink-1.20",
        PAIMON_VERSION,
        "a333b7a3df6143b782d129895f64575f0007912c4a2c85502d421b8198f42ce1",
    ),
    maven_artifact(
        "org.apache.paimon",
        "paimon-s3",
        PAIMON_VERSION,
        "f103c3cd22590e92efad3a89414a718d4921041c32f181b74a3595c9d3a754f6",
    ),
    maven_artifact(
        "org.apache.flink",
        "flink-shaded-hadoop-2-uber",
        "2.8.3-10.0",
        "492b2a559f2a1dad3808b51d9a26a575dbb1202004c9f85f5059c520e0632127",
    ),
)


S3_FS_PLUGIN = maven_artifact(
    "org.apache.flink",
    "flink-s3-fs-hadoop",
    "1.20.1",
    "4dabe5d51519984f88d677c477b99c5e18cec924af2e41816da67df527a5c679",
)
#: plugin directory name -> the pinned plugin jar in it
PLUGINS: dict[str, Artifact] = {"s3-fs-hadoop": S3_FS_PLUGIN}


def build_plugins_dir(cache_dir: Path, dist_plugins: Path, dest: Path, *, progress: bool) -> Path:
    """``dest`` = the distribution's plugins (metrics reporters, ...) + :data:`PLUGINS`, as
    symlinks, one sub-directory per plugin (Flink loads each with its own class loader).
    Idempotent; returns ``dest`` (every Flink process's ``FLINK_PLUGINS_DIR``)."""
    wanted: dict[str, Path] = {}
    if dist_plugins.is_dir():
        wanted.update({p.name: p for p in dist_plugins.iterdir() if p.is_dir()})
    dest.mkdir(parents=True, exist_ok=True)
    for name, artifact in PLUGINS.items():
        jar = fetch_all((artifact,), cache_dir, progress=progress)[0]
        own = dest / name
        own.mkdir(exist_ok=True)
        link = own / jar.name
        if not link.exists() or link.resolve() != jar.resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(jar.resolve())
        for stale in own.iterdir():
            if stale.name != jar.name:
                stale.unlink()
    for name, target in wanted.items():
        link = dest / name
        if link.is_symlink() and link.resolve() == target.resolve():
            continue
        if link.is_symlink():
            link.unlink()
        if not link.exists():
            link.symlink_to(target.resolve())
    return dest


def fetch_connector_jars(cache_dir: Path, *, progress: bool = True) -> list[Path]:
    """The verified local copies of :data:`CONNECTOR_JARS` (downloaded once, then offline)."""
    return fetch_all(CONNECTOR_JARS, cache_dir, progress=progress)


def copy_connector_jars(cache_dir: Path, dest: Path) -> list[Path]:
    """Fetch the jars and copy them into ``dest`` (e.g. ``compose/flink/jars`` for docker)."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in fetch_connector_jars(cache_dir):
        shutil.copy2(path, dest / path.name)
        copied.append(dest / path.name)
    return copied


def main(argv: list[str] | None = None) -> int:
    """``python -m upbitpipe.flink.jars DEST``: the pinned jars into DEST (cache from config)."""
    from upbitpipe.config import load_settings

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m upbitpipe.flink.jars DEST_DIR", file=sys.stderr)
        return 2
    cache_dir = load_settings().settings.infra.cache_dir
    for path in copy_connector_jars(cache_dir, Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
