"""Pieces of the Flink path that need no JVM: error reduction, the REST client, jar pins,
the runtime's lib dir and the cluster config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from upbitpipe.config import FlinkSettings, InfraSettings
from upbitpipe.errors import ServiceUnavailableError
from upbitpipe.flink import runner
from upbitpipe.flink.cluster import FlinkCluster
from upbitpipe.flink.jars import CONNECTOR_JARS
from upbitpipe.flink.jobs import FlinkJobError, FlinkRest
from upbitpipe.flink.runtime import FlinkRuntime

PY4J_ERROR = """An error occurred while calling o8.executeSql.
: org.apache.flink.table.api.ValidationException: SQL validation failed. From line 1, column 24 to line 1, column 37: Column 'no_such' not found in any table
\tat org.apache.flink.table.planner.calcite.FlinkPlannerImpl.validate(FlinkPlannerImpl.scala:200)
Caused by: org.apache.calcite.runtime.CalciteContextException: From line 1, column 24 to line 1, column 37: Column 'no_such' not found in any table
\tat java.base/jdk.internal.reflect.NativeConstructorAccessorImpl.newInstance0(Native Method)
Caused by: org.apache.calcite.sql.validate.SqlValidatorException: Column 'no_such' not found in any table
\tat java.base/jdk.internal.reflect.NativeConstructorAccessorImpl.newInstance0(Native Method)
"""


def test_reduce_error_takes_the_root_cause() -> None:
    message, detail = runner.reduce_error(RuntimeError(PY4J_ERROR))
    assert message == "SqlValidatorException: Column 'no_such' not found in any table"
    assert detail == PY4J_ERROR


def test_reduce_error_without_causes() -> None:
    text = "An error occurred while calling o8.executeSql.\n: java.lang.IllegalArgumentException: bad mode\n"
    message, _ = runner.reduce_error(RuntimeError(text))
    assert message == "IllegalArgumentException: bad mode"


def test_runner_set_pattern() -> None:
    match = runner._SET.match("SET 'pipeline.name' = 'it''s';")
    assert match is not None
    assert (match.group(1), match.group(2)) == ("pipeline.name", "it''s")


def test_connector_jars_pinned() -> None:
    names = [a.name for a in CONNECTOR_JARS]
    assert "org.apache.flink:flink-connector-kafka:3.4.0-1.20" in names
    assert "org.apache.paimon:paimon-flink-1.20:1.3.1" in names
    assert all(
        len(a.sha256) == 64 and a.url.startswith("https://repo1.maven.org/") for a in CONNECTOR_JARS
    )


def test_lib_dir_links_distribution_and_connectors(tmp_path: Path) -> None:
    runtime = FlinkRuntime(tmp_path / "rt")
    dist = runtime.venv / "lib" / "python3.11" / "site-packages" / "pyflink" / "lib"
    dist.mkdir(parents=True)
    (dist / "flink-dist-1.20.5.jar").write_bytes(b"x")
    connector = tmp_path / "paimon.jar"
    connector.write_bytes(b"y")
    (runtime.root / "lib").mkdir(parents=True)
    (runtime.root / "lib" / "stale.jar").symlink_to(connector)
    runtime._build_lib_dir([connector])
    runtime._build_lib_dir([connector])  # idempotent
    links = {p.name: p.resolve() for p in runtime.lib_dir.iterdir()}
    assert links == {
        "flink-dist-1.20.5.jar": (dist / "flink-dist-1.20.5.jar").resolve(),
        "paimon.jar": connector.resolve(),
    }


def test_runtime_without_venv_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailableError, match="infra up flink"):
        _ = FlinkRuntime(tmp_path).flink_home


def test_cluster_config(tmp_path: Path) -> None:
    flink = FlinkSettings(
        rest_url="http://127.0.0.1:18081",  # type: ignore[arg-type]
        parallelism=3,
        slots_per_taskmanager=2,
        taskmanagers=2,
    )
    cluster = FlinkCluster(flink, InfraSettings(state_dir=tmp_path, cache_dir=tmp_path / "c"))
    conf = cluster.cluster_config(rpc_port=16123)
    assert conf["rest.port"] == 18081 and conf["jobmanager.rpc.port"] == 16123
    assert conf["execution.checkpointing.interval"] == "30 s"
    assert conf["restart-strategy.type"] == "exponential-delay"
    assert conf["parallelism.default"] == 3 and conf["taskmanager.numberOfTaskSlots"] == 2
    assert conf["execution.checkpointing.dir"].startswith("file://")
    assert [p.name for p in cluster.processes] == ["jobmanager", "taskmanager-1", "taskmanager-2"]
    status = cluster.status()
    assert not status.running and not status.healthy and status.pids == []


class FakeFlink:
    """Answers like a JobManager for one running job."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.polls = 0

    def __call__(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        path = url.split("8081", 1)[1]
        self.calls.append((method, path))
        request = httpx.Request(method, url)
        job = "a" * 32
        if path == "/jobs/overview":
            body: Any = {
                "jobs": [
                    {
                        "jid": job,
                        "name": "j",
                        "state": "RUNNING",
                        "start-time": 1,
                        "duration": 5,
                        "tasks": {"total": 3, "running": 3},
                    }
                ]
            }
        elif path == f"/jobs/{job}" and method == "GET":
            body = {"state": "RUNNING"}
        elif path == f"/jobs/{job}/stop":
            assert kwargs["json"]["targetDirectory"] == "file:///sp"
            body = {"request-id": "r1"}
        elif path == f"/jobs/{job}/savepoints/r1":
            self.polls += 1
            body = (
                {"status": {"id": "IN_PROGRESS"}}
                if self.polls < 2
                else {
                    "status": {"id": "COMPLETED"},
                    "operation": {"location": "file:/sp/savepoint-1"},
                }
            )
        elif path.startswith("/jobs/"):
            return httpx.Response(404, json={"errors": ["Job not found"]}, request=request)
        else:
            return httpx.Response(500, json={"errors": ["boom\nstack"]}, request=request)
        return httpx.Response(200, content=json.dumps(body).encode(), request=request)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFlink:
    flink = FakeFlink()
    monkeypatch.setattr(httpx, "request", flink)
    monkeypatch.setattr("upbitpipe.flink.jobs.time.sleep", lambda _s: None)
    return flink


def test_list_and_stop_with_savepoint(fake: FakeFlink) -> None:
    rest = FlinkRest("http://jm:8081/")
    (job,) = rest.list_jobs()
    assert (job.state, job.tasks_running) == ("RUNNING", 3)
    assert rest.stop_with_savepoint(job.job_id, "file:///sp") == "file:/sp/savepoint-1"
    assert fake.polls == 2


def test_unknown_job(fake: FakeFlink) -> None:
    with pytest.raises(FlinkJobError, match="no Flink job b+ at http://jm:8081"):
        FlinkRest("http://jm:8081").cancel("b" * 32)


def test_server_error_is_one_line(fake: FakeFlink) -> None:
    with pytest.raises(FlinkJobError, match=r"HTTP 500: boom$"):
        FlinkRest("http://jm:8081").overview()


def test_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> httpx.Response:
        msg = "refused"
        raise httpx.ConnectError(msg)

    monkeypatch.setattr(httpx, "request", refuse)
    with pytest.raises(ServiceUnavailableError, match="not reachable"):
        FlinkRest("http://jm:8081").list_jobs()
