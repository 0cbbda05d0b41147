"""The docker runtime's command lines and `ps` parsing, against a stand-in `docker` script."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from upbitpipe.errors import ServiceUnavailableError
from upbitpipe.infra.compose import ComposeService, docker_available

PS_ROWS = [
    {"Service": "kafka-1", "State": "running", "Health": "healthy", "Image": "apache/kafka:4.3.1"},
    {"Service": "kafka-2", "State": "running", "Health": "healthy", "Image": "apache/kafka:4.3.1"},
]


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` that logs its argv, fails `info`, and answers `compose ps` with PS_ROWS."""
    log = tmp_path / "argv.log"
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    rows = "\n".join(json.dumps(r) for r in PS_ROWS)
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'if [ "$1" = info ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi\n'
        'case "$*" in *" ps "*) cat <<"EOF"\n' + rows + "\nEOF\n;; esac\n"
        'case "$*" in *" up "*kafka-ui*) echo "kafka-ui: port is already allocated" >&2; exit 1;; esac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def test_docker_client_without_engine_is_not_available(fake_docker: Path) -> None:
    assert docker_available() is False


def test_status_parses_compose_ps(fake_docker: Path, tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services: {}\n")
    status = ComposeService("kafka", compose, address="localhost:29092").status()
    assert status.running and not status.healthy  # 2 of 4 containers
    assert status.detail.startswith("2/4 containers running")
    assert status.version == "apache/kafka:4.3.1"
    assert f"compose -f {compose} ps --all --format json kafka-1" in fake_docker.read_text()


def test_failed_up_is_one_line(fake_docker: Path, tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services: {}\n")
    with pytest.raises(ServiceUnavailableError) as info:
        ComposeService("kafka", compose).start(60)
    assert str(info.value) == "kafka: docker compose up failed: kafka-ui: port is already allocated"
    assert (
        "up -d --wait --wait-timeout 60 kafka-1 kafka-2 kafka-3 kafka-ui" in fake_docker.read_text()
    )


def test_missing_compose_file(tmp_path: Path) -> None:
    from upbitpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="not found"):
        ComposeService("grafana", tmp_path / "nope.yml").stop(5)
