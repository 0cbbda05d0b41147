"""The local S3 server: MinIO, built once from the Go module proxy and cached by version.

Why built and not downloaded: MinIO's prebuilt binaries are not on any registry this project
may use, but its source module is on the Go module proxy. The newest *release* pseudo-version
(``v0.0.0-20251015172955-9e49d5e7a648``) is refused by the proxy (HTTP 403), so we pin the
repository's last commit (2026-02-12; the project is in maintenance mode). The module zip is
checked against the pinned ``h1:`` hash (the same hash go.sum and sum.golang.org use); its
dependencies are verified by Go against MinIO's own go.sum.

Layout: binary ``<cache_dir>/bin/minio-<version>``; data, log and pid under
``<infra.state_dir>/s3/``; credentials (generated once, mode 0600) in
``<infra.state_dir>/s3/credentials.json`` unless ``s3.access_key``/``s3.secret_key`` are set.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from upbitpipe.config import InfraSettings, S3Settings
from upbitpipe.errors import ArtifactError, ConfigError
from upbitpipe.infra.base import ManagedProcess, ServiceStatus
from upbitpipe.storage.credentials import S3Credentials, keys_origin, local_credentials

log = logging.getLogger(__name__)

MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_MODULE_SUM = "h1:/qdoYujxF5MBLDMVLeiYJ/7fBa1HikX39Dvzb9Ji8pA="
SERVER_NAME = f"MinIO (built from {MINIO_MODULE}@{MINIO_VERSION})"
BUILD_TIMEOUT_SECONDS = 1800.0


def minio_binary_path(cache_dir: Path) -> Path:
    return cache_dir / "bin" / f"minio-{MINIO_VERSION}"


def minio_built(cache_dir: Path) -> bool:
    target = minio_binary_path(cache_dir)
    return target.is_file() and os.access(target, os.X_OK)


def go_module_cache_has_minio() -> bool:
    """Whether Go already holds MinIO's module (a build then downloads little or nothing)."""
    go = shutil.which("go")
    if go is None:
        return False
    try:
        out = subprocess.run(  # noqa: S603
            [go, "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    zip_path = Path(
        out.stdout.strip(), "cache", "download", MINIO_MODULE, "@v", f"{MINIO_VERSION}.zip"
    )
    return out.returncode == 0 and zip_path.is_file()


def build_estimate_seconds() -> tuple[int, int]:
    """Rough duration of :func:`build_minio` on 2 cores: compiling ~1,700 packages dominates;
    an empty Go module cache adds the download of ~240 modules."""
    return (120, 240) if go_module_cache_has_minio() else (180, 420)


class GoBuildProgress:
    """Turns ``go install -v`` output into one short line: modules fetched, packages built."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report
        self.downloaded = 0
        self.compiled = 0

    def __call__(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        if text.startswith("go: downloading "):
            self.downloaded += 1
            self.report(f"downloading Go modules ({self.downloaded})")
        elif not text.startswith(("go:", "#")) and " " not in text:  # -v: one package path
            self.compiled += 1
            if self.compiled % 25 == 0:
                self.report(f"compiling ({self.compiled} packages)")


def build_minio(
    cache_dir: Path,
    *,
    timeout: float = BUILD_TIMEOUT_SECONDS,
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """The cached MinIO binary, building it with ``go install`` the first time (minutes).

    ``on_progress`` gets a short line now and then (modules downloaded, packages compiled);
    Go's full output goes to ``<binary>.build.log``.
    """
    target = minio_binary_path(cache_dir)
    if minio_built(cache_dir):
        return target
    go = shutil.which("go")
    if go is None:
        msg = f"the S3 server is built from source with Go, and `go` is not on PATH (or put a minio binary at {target})"
        raise ArtifactError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    # CGO off, as MinIO's own release builds: a static binary and no C compiler in the build
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    spec = f"{MINIO_MODULE}@{MINIO_VERSION}"
    if on_progress is None:
        log.warning("building %s once (several minutes; cached at %s)", spec, target)
    report = on_progress or (lambda _line: None)
    logfile = target.with_name(target.name + ".build.log")
    deadline = time.monotonic() + timeout
    try:
        report("checking the module against the pinned hash")
        out = subprocess.run(  # noqa: S603
            [go, "mod", "download", "-json", spec],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        info = json.loads(out.stdout or "{}")
        if out.returncode != 0 or info.get("Error"):
            msg = f"{spec}: the Go module proxy refused it ({info.get('Error') or out.stderr.strip()[:200]})"
            raise ArtifactError(msg)
        if info.get("Sum") != MINIO_MODULE_SUM:
            msg = (
                f"{spec}: module hash {info.get('Sum')} differs from the pinned {MINIO_MODULE_SUM}"
            )
            raise ArtifactError(msg)
        with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
            # no DWARF, no symbol table (as MinIO's own release builds): less to compile and link
            argv = [go, "install", "-v", "-gcflags=all=-dwarf=false", "-ldflags=-s -w", spec]
            code = _run_logged(
                argv, {**env, "GOBIN": gobin}, logfile, GoBuildProgress(report), deadline
            )
            if code != 0:
                msg = f"{spec}: go install failed (see {logfile})"
                raise ArtifactError(msg)
            Path(gobin, "minio").replace(target)
    except subprocess.TimeoutExpired:
        msg = f"{spec}: building took longer than {timeout:.0f} s (see {logfile})"
        raise ArtifactError(msg) from None
    return target


def _run_logged(
    argv: list[str],
    env: dict[str, str],
    logfile: Path,
    on_line: Callable[[str], None],
    deadline: float,
) -> int:
    """Run ``argv`` with its output into ``logfile`` and, line by line, to ``on_line``."""
    with logfile.open("w", encoding="utf-8") as log_fh:
        proc = subprocess.Popen(  # noqa: S603 - our own argv
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log_fh.write(line)
                on_line(line)
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(argv, 0)
            return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            proc.kill()
            proc.wait()
            raise


class MinioServer:
    """:class:`~upbitpipe.infra.base.ServiceStarter` for a local MinIO server.

    ``infra.s3_nodes == 4`` runs one server over four drive directories (erasure coding, as the
    seed's 4 nodes have); the compose file has the real 4-container layout with a balancer.
    """

    name = "s3"

    def __init__(
        self,
        s3: S3Settings,
        infra: InfraSettings,
        *,
        console: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        url = urlsplit(str(s3.endpoint))
        if url.hostname is None:
            msg = f"s3.endpoint {s3.endpoint}: needs a host for a local server"
            raise ConfigError(msg)
        self.s3 = s3
        self.infra = infra
        self.host = infra.bind_host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.console_port = self.port + 1 if console else None
        self.dir = infra.state_dir / "s3"
        self.endpoint = f"http://{self.host}:{self.port}"
        self.die_with_parent = die_with_parent

    def credentials(self, *, create: bool = False) -> S3Credentials | None:
        return local_credentials(self.s3, self.infra.state_dir, create=create)

    def _drives(self) -> list[str]:
        if self.infra.s3_nodes == 4:
            return [str(self.dir / "data{1...4}")]
        return [str(self.dir / "data")]

    def _process(
        self, binary: Path | None = None, creds: S3Credentials | None = None
    ) -> ManagedProcess:
        argv = [
            str(binary or "minio"),
            "server",
            "--quiet",
            "--address",
            f"{self.host}:{self.port}",
        ]
        if self.console_port:
            argv += ["--console-address", f"{self.host}:{self.console_port}"]
        argv += self._drives()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.dir),
            "MINIO_BROWSER": "on" if self.console_port else "off",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",  # allows drives on the root disk in erasure mode
        }
        if creds is not None:  # env, not argv: never visible in `ps`
            env["MINIO_ROOT_USER"] = creds.access_key
            env["MINIO_ROOT_PASSWORD"] = creds.secret_key
        return ManagedProcess(
            "minio", self.dir, argv, env=env, die_with_parent=self.die_with_parent
        )

    def _healthy(self) -> bool:
        try:
            resp = httpx.get(f"{self.endpoint}/minio/health/ready", timeout=2.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def start(self, timeout: float) -> None:
        proc = self._process()
        if proc.is_running() and self._healthy():
            return
        binary = build_minio(self.infra.cache_dir)
        creds = self.credentials(create=True)
        assert creds is not None
        if len(creds.secret_key) < 8 or len(creds.access_key) < 3:
            msg = "s3.access_key needs 3+ and s3.secret_key 8+ characters for MinIO"
            raise ConfigError(msg)
        for drive in range(1, 5) if self.infra.s3_nodes == 4 else [0]:
            (self.dir / (f"data{drive}" if drive else "data")).mkdir(parents=True, exist_ok=True)
        proc = self._process(binary, creds)
        proc.spawn()
        try:
            proc.wait_until(self._healthy, timeout, f"ready at {self.endpoint}")
        except BaseException:
            proc.terminate(timeout=10)
            raise

    def stop(self, timeout: float) -> None:
        self._process().terminate(timeout)

    def version(self) -> str:
        built = minio_built(self.infra.cache_dir)
        return f"MinIO {MINIO_VERSION} (Go module build{'' if built else ', not built yet'})"

    def status(self) -> ServiceStatus:
        console = f"http://{self.host}:{self.console_port}" if self.console_port else "off"
        creds = keys_origin(self.s3, self.infra.state_dir)
        proc = self._process()
        running = proc.is_running()
        healthy = running and self._healthy()
        return ServiceStatus(
            name=self.name,
            address=self.endpoint,
            running=running,
            pids=proc.pids(),
            healthy=healthy,
            version=self.version(),
            detail=f"S3 server: MinIO, {self.infra.s3_nodes} drive(s); console {console}; credentials {creds}",
        )
