"""Pinned, checksummed downloads (jars, archives) cached under the user cache dir.

Every external artifact a native service needs is declared as an :class:`Artifact` constant
(url + sha256) in the module of the service that uses it. :func:`fetch` downloads it once into
``<cache_dir>/artifacts/``, verifies the checksum, renames it into place atomically and from
then on returns the cached file without touching the network (so later runs work offline).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from upbitpipe.errors import ArtifactError

CHUNK = 1 << 16
VERIFIED_SUFFIX = ".sha256"


@dataclass(frozen=True)
class Artifact:
    """One pinned download. ``filename`` is the name in the cache (unique per version)."""

    name: str
    url: str
    sha256: str
    filename: str


def maven_artifact(group: str, artifact: str, version: str, sha256: str) -> Artifact:
    """An :class:`Artifact` for ``group:artifact:version`` (plain jar) on Maven Central."""
    filename = f"{artifact}-{version}.jar"
    url = (
        f"https://repo1.maven.org/maven2/{group.replace('.', '/')}/{artifact}/{version}/{filename}"
    )
    return Artifact(name=f"{group}:{artifact}:{version}", url=url, sha256=sha256, filename=filename)


def artifacts_dir(cache_dir: Path) -> Path:
    return cache_dir / "artifacts"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _verified(path: Path, artifact: Artifact) -> bool:
    """Cached and checked before: the sidecar records sha + size/mtime, so no re-hash."""
    marker = path.with_name(path.name + VERIFIED_SUFFIX)
    try:
        sha, stamp = marker.read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        sha, stamp = "", ""
    if not path.is_file():
        return False
    if sha == artifact.sha256 and stamp == _stamp(path):
        return True
    if sha256_of(path) == artifact.sha256:
        marker.write_text(f"{artifact.sha256} {_stamp(path)}\n", encoding="utf-8")
        return True
    return False


def fetch(
    artifact: Artifact,
    cache_dir: Path,
    *,
    progress: bool = True,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """The verified local copy of ``artifact``, downloading it if it is not cached yet.

    ``progress`` shows a download bar; ``on_bytes`` instead gets the size of every chunk
    received (for a caller that shows several downloads at once).
    Raises :class:`ArtifactError` (one line) when the download fails or the checksum differs.
    A partial or bad download never replaces a good file: it goes to a temp name first.
    """
    target_dir = artifacts_dir(cache_dir)
    target = target_dir / artifact.filename
    if _verified(target, artifact):
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with (
            httpx.stream("GET", artifact.url, follow_redirects=True, timeout=60.0) as resp,
            tmp.open("wb") as out,
        ):
            if resp.status_code != 200:
                msg = (
                    f"{artifact.name}: download failed, HTTP {resp.status_code} from {artifact.url}"
                )
                raise ArtifactError(msg)
            total = int(resp.headers.get("content-length", 0)) or None
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=True,
                disable=not progress or on_bytes is not None,
            ) as bar:
                task = bar.add_task(artifact.filename, total=total)
                for chunk in resp.iter_bytes(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.advance(task, len(chunk))
                    if on_bytes is not None:
                        on_bytes(len(chunk))
    except httpx.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        msg = f"{artifact.name}: download from {artifact.url} failed ({type(exc).__name__}: {exc}); offline? pre-fill {target_dir}"
        raise ArtifactError(msg) from None
    except ArtifactError:
        tmp.unlink(missing_ok=True)
        raise
    got = digest.hexdigest()
    if got != artifact.sha256:
        tmp.unlink(missing_ok=True)
        msg = f"{artifact.name}: checksum mismatch for {artifact.url} (expected sha256 {artifact.sha256}, got {got})"
        raise ArtifactError(msg)
    tmp.replace(target)
    target.with_name(target.name + VERIFIED_SUFFIX).write_text(
        f"{artifact.sha256} {_stamp(target)}\n", encoding="utf-8"
    )
    return target


def fetch_all(
    artifacts: Iterable[Artifact],
    cache_dir: Path,
    *,
    progress: bool = True,
    on_bytes: Callable[[int], None] | None = None,
    workers: int = 1,
) -> list[Path]:
    """:func:`fetch` each artifact; the paths come back in the order given.

    ``workers`` > 1 downloads that many at once (many small jars: latency, not bandwidth,
    bounds a sequential fetch). The per-file bars are shown only for sequential fetches.
    """
    items = list(artifacts)
    if workers <= 1 or len(items) <= 1:
        return [fetch(a, cache_dir, progress=progress, on_bytes=on_bytes) for a in items]
    count = on_bytes or (lambda _n: None)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fetch, a, cache_dir, progress=False, on_bytes=count) for a in items]
        return [f.result() for f in futures]


def missing(artifacts: Iterable[Artifact], cache_dir: Path) -> list[Artifact]:
    """The artifacts not in the cache yet (what a :func:`fetch_all` would download)."""
    return [a for a in artifacts if not (artifacts_dir(cache_dir) / a.filename).is_file()]


def all_cached(artifacts: Iterable[Artifact], cache_dir: Path) -> bool:
    """True when every artifact is already in the cache (no download would be needed)."""
    return not missing(artifacts, cache_dir)
