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


def build_minio(cache_dir: Path, *, timeout: float = BUILD_TIMEOUT_SECONDS) -> Path:
    """The cached MinIO binary, building it with ``go install`` the first time (minutes)."""
    target = minio_binary_path(cache_dir)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        msg = f"the S3 server is built from source with Go, and `go` is not on PATH (or put a minio binary at {target})"
        raise ArtifactError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    spec = f"{MINIO_MODULE}@{MINIO_VERSION}"
    log.warning("building %s once (several minutes; cached at %s)", spec, target)
    logfile = target.with_name(target.name + ".build.log")
    try:
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
        with tempfile.TemporaryDirectory(dir=target.parent) as gobin, logfile.open("wb") as lf:
            built = subprocess.run(  # noqa: S603
                [go, "install", spec],
                stdout=lf,
                stderr=subprocess.STDOUT,
                env={**env, "GOBIN": gobin},
                timeout=timeout,
                check=False,
            )
            if built.returncode != 0:
                msg = f"{spec}: go install failed (see {logfile})"
                raise ArtifactError(msg)
            Path(gobin, "minio").replace(target)
    except subprocess.TimeoutExpired:
        msg = f"{spec}: building took longer than {timeout:.0f} s (see {logfile})"
        raise ArtifactError(msg) from None
    return target


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
        built = minio_binary_path(self.infra.cache_dir).is_file()
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
