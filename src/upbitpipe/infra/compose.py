"""The docker runtime: ``docker compose -f compose/docker-compose.yml`` for each component."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from upbitpipe.errors import ConfigError, ServiceUnavailableError
from upbitpipe.infra.base import ServiceStatus

# component -> compose services (names in compose/docker-compose.yml)
COMPOSE_SERVICES: dict[str, tuple[str, ...]] = {
    "kafka": ("kafka-1", "kafka-2", "kafka-3", "kafka-ui"),
    "s3": ("minio-1", "minio-2", "minio-3", "minio-4", "minio-lb"),
    "flink": ("flink-jobmanager", "flink-taskmanager-1", "flink-taskmanager-2"),
    "clickhouse": ("clickhouse",),
    "grafana": ("grafana",),
}


def docker_available(timeout: float = 8.0) -> bool:
    """True when a docker engine answers ``docker info`` (the client alone is not enough)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run(  # noqa: S603
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def default_compose_file() -> Path:
    """``./compose/docker-compose.yml`` if present, else the one of this source checkout."""
    here = Path("compose/docker-compose.yml")
    if here.is_file():
        return here
    return Path(__file__).resolve().parents[3] / "compose" / "docker-compose.yml"


class ComposeService:
    """:class:`~upbitpipe.infra.base.ServiceStarter` over ``docker compose`` for one component."""

    def __init__(self, component: str, compose_file: Path, *, address: str = "") -> None:
        if component not in COMPOSE_SERVICES:
            msg = f"unknown component {component!r} (known: {', '.join(COMPOSE_SERVICES)})"
            raise ConfigError(msg)
        self.name = component
        self.compose_file = compose_file
        self.services = COMPOSE_SERVICES[component]
        self.address = address

    def _compose(self, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if not self.compose_file.is_file():
            msg = f"{self.compose_file} not found (run from the repository root or pass --compose-file)"
            raise ConfigError(msg)
        argv = ["docker", "compose", "-f", str(self.compose_file), *args]
        try:
            done = subprocess.run(  # noqa: S603
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            msg = f"{self.name}: `{' '.join(argv[:5])} ...` took longer than {timeout:.0f} s"
            raise ServiceUnavailableError(msg) from None
        except OSError as exc:
            msg = f"{self.name}: cannot run docker ({exc})"
            raise ServiceUnavailableError(msg) from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            msg = f"{self.name}: docker compose {args[0]} failed: {last}"
            raise ServiceUnavailableError(msg)
        return done

    def start(self, timeout: float) -> None:
        self._compose(
            ["up", "-d", "--wait", "--wait-timeout", str(int(timeout)), *self.services],
            timeout + 30,
        )

    def stop(self, timeout: float) -> None:
        self._compose(["stop", "-t", str(int(timeout)), *self.services], timeout + 30)

    def status(self) -> ServiceStatus:
        try:
            out = self._compose(["ps", "--all", "--format", "json", *self.services], 30).stdout
        except (ServiceUnavailableError, ConfigError) as exc:
            return ServiceStatus(self.name, self.address, running=False, detail=str(exc))
        rows = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
        running = [r for r in rows if r.get("State") == "running"]
        healthy = bool(rows) and all(r.get("Health") in ("", "healthy", None) for r in running)
        return ServiceStatus(
            name=self.name,
            address=self.address,
            running=bool(running),
            pids=[],
            healthy=healthy and len(running) == len(self.services),
            version=", ".join(sorted({str(r.get("Image", "")) for r in rows})) or "docker",
            detail=f"{len(running)}/{len(self.services)} containers running (docker compose)",
        )
