"""One pipeline job per lake, restart counts, and finding the newest checkpoint - no JVM."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from upbitpipe.cli.flink import job_state_label
from upbitpipe.cli.main import app
from upbitpipe.config import Settings, load_settings
from upbitpipe.errors import UpbitpipeError
from upbitpipe.flink.jobs import FlinkRest, JobInfo
from upbitpipe.flink.pipeline import alive_pipeline, latest_restore_point, pipeline_name
from upbitpipe.flink.state import latest_snapshot, state_dirs

JOB = "a" * 32
OLD = "b" * 32


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    flat = {
        "lake.warehouse": str(tmp_path / "lake"),
        "flink.rest_url": "http://jm:8081",
        "infra.state_dir": str(tmp_path / "infra"),
        **extra,
    }
    return load_settings(overrides=flat, env={}).settings


def _job(jid: str, name: str, state: str, running: int = 4, start: int = 1) -> dict[str, Any]:
    return {
        "jid": jid,
        "name": name,
        "state": state,
        "start-time": start,
        "duration": 5,
        "tasks": {"total": 4, "running": running},
    }


class FakeJobManager:
    def __init__(self, jobs: list[dict[str, Any]], restarts: int = 0, history: int = 0) -> None:
        self.jobs = jobs
        self.restarts = restarts
        self.history = history

    def __call__(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        path = url.split("8081", 1)[1]
        request = httpx.Request(method, url)
        body: Any
        if path == "/overview":
            body = {"taskmanagers": 2}
        elif path == "/jobs/overview":
            body = {"jobs": self.jobs}
        elif path.endswith("/metrics"):
            body = [{"id": "numRestarts", "value": str(self.restarts)}]
        elif path.endswith("/exceptions"):
            body = {"exceptionHistory": {"entries": [{}] * self.history, "truncated": False}}
        else:
            return httpx.Response(404, json={"errors": ["not found"]}, request=request)
        return httpx.Response(200, content=json.dumps(body).encode(), request=request)


def test_alive_pipeline_is_found_by_name_and_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    name = pipeline_name(settings)
    jobs = [
        _job(OLD, name, "FINISHED", start=1),
        _job("c" * 32, "upbitpipe: kafka -> paimon s3://other/lake/upbit", "RUNNING", start=2),
        _job(JOB, name, "RESTARTING", running=0, start=3),
    ]
    monkeypatch.setattr(httpx, "request", FakeJobManager(jobs))
    found = alive_pipeline(FlinkRest("http://jm:8081"), settings)
    assert found is not None and (found.job_id, found.state) == (JOB, "RESTARTING")
    monkeypatch.setattr(httpx, "request", FakeJobManager(jobs[:2]))
    assert alive_pipeline(FlinkRest("http://jm:8081"), settings) is None


def test_second_submit_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    monkeypatch.setattr(
        httpx, "request", FakeJobManager([_job(JOB, pipeline_name(settings), "RUNNING")])
    )
    monkeypatch.setattr(
        "upbitpipe.cli.flink._runtime", lambda _s: pytest.fail("must refuse before any JVM")
    )
    for key, value in {
        "UPBITPIPE_LAKE__WAREHOUSE": settings.lake.warehouse,
        "UPBITPIPE_FLINK__REST_URL": "http://jm:8081",
        "UPBITPIPE_INFRA__STATE_DIR": str(tmp_path / "infra"),
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["flink", "submit", "all"])
    assert result.exit_code == 1
    assert f"already RUNNING as {JOB}" in result.output
    assert "flink submit all --replace" in result.output
    assert "Traceback" not in result.output


def test_restart_count_takes_the_exception_history(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpx, "request", FakeJobManager([], restarts=0, history=7))
    assert FlinkRest("http://jm:8081").restart_count(JOB) == 7
    monkeypatch.setattr(httpx, "request", FakeJobManager([], restarts=9, history=3))
    assert FlinkRest("http://jm:8081").restart_count(JOB) == 9


def test_state_label_tells_restarting_and_partial_from_running() -> None:
    def info(state: str, running: int) -> JobInfo:
        return JobInfo.from_overview(_job(JOB, "x", state, running=running))

    assert job_state_label(info("RUNNING", 4)) == "RUNNING"
    assert job_state_label(info("RUNNING", 1)) == "RUNNING (1/4 tasks up)"
    assert job_state_label(info("RESTARTING", 0)) == "RESTARTING"


def test_latest_snapshot_is_the_newest_metadata(tmp_path: Path) -> None:
    settings = _settings(tmp_path, **{"flink.checkpoint_dir": str(tmp_path / "ckpt")})
    dirs = state_dirs(settings)
    assert dirs.savepoints == f"{(tmp_path / 'ckpt').as_uri()}/savepoints"
    with pytest.raises(UpbitpipeError, match="no completed checkpoint or savepoint in file://"):
        latest_restore_point(settings)
    older = tmp_path / "ckpt" / OLD / "chk-7"
    newer = tmp_path / "ckpt" / "savepoints" / "savepoint-aaaaaa-1234"
    unfinished = tmp_path / "ckpt" / JOB / "chk-9"  # no _metadata: still being written
    for path in (older, newer, unfinished):
        path.mkdir(parents=True)
    (older / "_metadata").write_bytes(b"x")
    (newer / "_metadata").write_bytes(b"x")
    os.utime(older / "_metadata", (1_000_000, 1_000_000))
    found = latest_snapshot(settings)
    assert found is not None and found.uri == newer.as_uri()
    assert latest_restore_point(settings) == newer.as_uri()


def test_no_state_dir_to_search(tmp_path: Path) -> None:
    with pytest.raises(UpbitpipeError, match="--from-savepoint PATH"):
        latest_snapshot(_settings(tmp_path))


def test_plugins_dir_adds_the_pinned_s3_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from upbitpipe.flink import jars

    assert jars.S3_FS_PLUGIN.name == "org.apache.flink:flink-s3-fs-hadoop:1.20.1"
    assert len(jars.S3_FS_PLUGIN.sha256) == 64
    cached = tmp_path / "cache" / "flink-s3-fs-hadoop-1.20.1.jar"
    cached.parent.mkdir()
    cached.write_bytes(b"jar")
    monkeypatch.setattr(jars, "fetch_all", lambda artifacts, cache, progress: [cached])
    dist = tmp_path / "dist"
    (dist / "metrics-prometheus").mkdir(parents=True)
    dest = tmp_path / "plugins"
    for _ in range(2):  # idempotent
        jars.build_plugins_dir(tmp_path / "cache", dist, dest, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["metrics-prometheus", "s3-fs-hadoop"]
    (link,) = (dest / "s3-fs-hadoop").iterdir()
    assert link.resolve() == cached.resolve()
    assert (dest / "metrics-prometheus").resolve() == (dist / "metrics-prometheus").resolve()
