"""`upbitpipe infra up/status/down` end to end with native processes: nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.infra.base import free_port, port_open

pytestmark = pytest.mark.integration
runner = CliRunner()


def _kafka_port() -> int:
    """A free client port whose controller port (+100) is free as well."""
    for _ in range(50):
        port = free_port()
        if port + 100 < 65536 and not port_open("127.0.0.1", port + 100):
            return port
    msg = "no free port pair"
    raise AssertionError(msg)


def _pids(env: dict[str, str]) -> dict[str, list[int]]:
    result = runner.invoke(app, ["infra", "status", "kafka", "minio", "--json"], env=env)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["runtime"] == "native"
    return {c["name"]: c["pids"] for c in payload["components"]}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_up_status_down_leaves_nothing(tmp_path: Path, artifact_cache: Path) -> None:
    env = {
        "UPBITPIPE_INFRA__STATE_DIR": str(tmp_path / "state"),
        "UPBITPIPE_INFRA__CACHE_DIR": str(artifact_cache),
        "UPBITPIPE_INFRA__RUNTIME": "native",
        "UPBITPIPE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_kafka_port()}",
        "UPBITPIPE_S3__ENDPOINT": f"http://127.0.0.1:{free_port()}",
    }
    try:
        up = runner.invoke(app, ["infra", "up", "kafka", "minio", "--brokers", "1"], env=env)
        assert up.exit_code == 0, up.output
        pids = _pids(env)
        assert len(pids["kafka"]) == 1 and len(pids["s3"]) >= 1
        again = runner.invoke(app, ["infra", "up", "kafka", "minio", "--brokers", "1"], env=env)
        assert again.exit_code == 0, again.output
        assert _pids(env) == pids  # idempotent: nothing restarted
        creds = tmp_path / "state" / "s3" / "credentials.json"
        assert creds.stat().st_mode & 0o777 == 0o600
        assert json.loads(creds.read_text())["secret_key"] not in up.output + again.output
    finally:
        down = runner.invoke(app, ["infra", "down"], env=env)
    assert down.exit_code == 0, down.output
    assert not [p for group in pids.values() for p in group if _alive(p)]
    assert _pids(env) == {"kafka": [], "s3": []}


def test_clickhouse_native_is_one_clear_line(tmp_path: Path) -> None:
    env = {"UPBITPIPE_INFRA__STATE_DIR": str(tmp_path)}
    result = runner.invoke(app, ["infra", "up", "clickhouse", "--runtime", "native"], env=env)
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: ClickHouse/Grafana need --runtime docker (no native build here)"
    )
