"""Healing without harm: a killed TaskManager comes back, the job keeps running, and
`infra up flink` starts only what is missing - never the JobManager that holds the job.

One cluster of its own (the session cluster must not lose TaskManagers under other tests):
1 JobManager + 2 TaskManagers x 2 slots, a streaming job at parallelism 3 - so losing one
TaskManager leaves fewer slots than the job asked for (the situation of issue #11).

The tests run in file order: the first kills the fixture's supervisor (whose restarted
TaskManagers would die with it) before `infra up` starts a new one.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.config import FlinkSettings, InfraSettings, load_settings
from upbitpipe.flink.cluster import FlinkCluster, active_jobs
from upbitpipe.flink.jobs import FlinkRest
from upbitpipe.flink.render import RenderedStatement
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.flink.split import Statement, classify
from upbitpipe.flink.submit import SubmitOptions, submit
from upbitpipe.infra.base import free_port
from upbitpipe.infra.supervisor import read_restarts

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_flink"]

PARALLELISM = 3
RECOVERY_TIMEOUT = 180.0
STREAMING_JOB = [
    "CREATE TEMPORARY TABLE src (n BIGINT) WITH ('connector' = 'datagen', "
    "'rows-per-second' = '20')",
    "CREATE TEMPORARY TABLE snk (n BIGINT) WITH ('connector' = 'blackhole')",
    "INSERT INTO snk SELECT n FROM src",
]


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1.0)
    pytest.fail(f"not {what} after {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Healing:
    def __init__(self, cluster: FlinkCluster, job_id: str) -> None:
        self.cluster = cluster
        self.job_id = job_id
        self.rest = FlinkRest(cluster.rest_url)

    def vertices(self) -> list[tuple[int, str]]:
        job = self.rest.job(self.job_id)
        return [(int(v["parallelism"]), str(v["status"])) for v in job["vertices"]]

    def all_running(self) -> bool:
        return self.rest.state(self.job_id) == "RUNNING" and all(
            status == "RUNNING" for _, status in self.vertices()
        )

    def restarts(self) -> int:
        (job,) = [j for j in active_jobs(self.cluster.rest_url) if j.job_id == self.job_id]
        return job.restarts

    def env(self) -> dict[str, str]:
        flink, infra = self.cluster.flink, self.cluster.infra
        return {
            "UPBITPIPE_INFRA__STATE_DIR": str(infra.state_dir),
            "UPBITPIPE_INFRA__CACHE_DIR": str(infra.cache_dir),
            "UPBITPIPE_INFRA__RUNTIME": "native",
            "UPBITPIPE_FLINK__REST_URL": str(flink.rest_url),
            "UPBITPIPE_FLINK__TASKMANAGERS": str(flink.taskmanagers),
            "UPBITPIPE_FLINK__SLOTS_PER_TASKMANAGER": str(flink.slots_per_taskmanager),
            "UPBITPIPE_FLINK__PARALLELISM": str(flink.parallelism),
            "UPBITPIPE_FLINK__CHECKPOINT_INTERVAL": flink.checkpoint_interval,
        }


@pytest.fixture(scope="module")
def healing(
    tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path, flink_runtime: FlinkRuntime
) -> Iterator[Healing]:
    flink = FlinkSettings(
        rest_url=f"http://127.0.0.1:{free_port()}",  # type: ignore[arg-type]
        parallelism=PARALLELISM,
        taskmanagers=2,
        slots_per_taskmanager=2,
        checkpoint_interval="5 s",
    )
    infra = InfraSettings(state_dir=tmp_path_factory.mktemp("flink-heal"), cache_dir=artifact_cache)
    cluster = FlinkCluster(flink, infra, progress=False, die_with_parent=True)
    try:
        cluster.start(180.0)
        settings = load_settings(
            overrides={
                "flink.rest_url": cluster.rest_url,
                "flink.parallelism": PARALLELISM,
                "flink.checkpoint_interval": "5 s",
            },
            env={},
        ).settings
        statements = [
            RenderedStatement("healing.sql", Statement(sql, classify(sql), i + 1), sql)
            for i, sql in enumerate(STREAMING_JOB)
        ]
        result = submit(statements, settings, flink_runtime, SubmitOptions(timeout=240))
        (job_id,) = result.job_ids
        state = Healing(cluster, job_id)
        _wait(state.all_running, RECOVERY_TIMEOUT, "running the job")
        yield state
    finally:
        cluster.stop(30.0)


def test_infra_up_after_kill_keeps_the_running_job(healing: Healing) -> None:
    cluster = healing.cluster
    jm_pid = cluster.jobmanager.pid
    assert jm_pid is not None
    # no supervisor this time: the job must survive on the remaining TaskManager alone
    supervisor_pid = cluster.supervisor.pid
    assert supervisor_pid is not None
    os.kill(supervisor_pid, signal.SIGKILL)
    _wait(lambda: not cluster.supervisor.is_running(), 30.0, "supervisor gone")
    tm = cluster.taskmanagers[1]
    killed = tm.pid
    assert killed is not None
    restarts_before = healing.restarts()
    os.kill(killed, signal.SIGKILL)

    # adaptive scheduler: the job runs on the 2 slots left, at parallelism 2
    _wait(lambda: healing.restarts() > restarts_before, RECOVERY_TIMEOUT, "failing over")
    _wait(healing.all_running, RECOVERY_TIMEOUT, "RUNNING on one TaskManager")
    assert {p for p, _ in healing.vertices()} == {2}
    assert not tm.is_running()

    status = CliRunner().invoke(app, ["infra", "status", "flink", "--json"], env=healing.env())
    assert status.exit_code == 0, status.output
    (row,) = json.loads(status.stdout)["components"]
    assert not row["healthy"]  # a TaskManager is missing
    (job,) = row["extra"]["jobs"]
    assert job["job_id"] == healing.job_id and job["restarts"] >= restarts_before + 1

    up = CliRunner().invoke(app, ["infra", "up", "flink"], env=healing.env())
    assert up.exit_code == 0, up.output
    assert cluster.jobmanager.pid == jm_pid and _alive(jm_pid)  # never restarted
    assert tm.is_running() and tm.pid != killed
    assert cluster.supervisor.is_running()
    assert FlinkRest(cluster.rest_url).overview()["taskmanagers"] == 2
    # the same job, RUNNING again (the adaptive scheduler scales back up to 3)
    _wait(
        lambda: healing.all_running() and {p for p, _ in healing.vertices()} == {PARALLELISM},
        RECOVERY_TIMEOUT,
        f"RUNNING at parallelism {PARALLELISM} again",
    )
    assert [j.job_id for j in active_jobs(cluster.rest_url)] == [healing.job_id]
    again = CliRunner().invoke(app, ["infra", "status", "flink", "--json"], env=healing.env())
    (row,) = json.loads(again.stdout)["components"]
    assert row["healthy"], row
    assert row["extra"]["jobs"][0]["state"] == "RUNNING"

    # `stats` tells the same story: state, restarts, checkpoints completed since
    stats = CliRunner().invoke(app, ["stats", "--only", "flink", "--json"], env=healing.env())
    assert stats.exit_code == 0, stats.output
    flink = json.loads(stats.stdout)["flink"]
    assert flink["state"] == "ok", flink
    head, checkpoints = flink["rows"][:2]
    assert head["job_id"] == healing.job_id and head["state"] == "RUNNING"
    assert head["restarts"] >= restarts_before + 1
    assert checkpoints["completed"] >= 1 and checkpoints["last_completed_age_s"] is not None


def test_supervisor_restarts_a_killed_taskmanager(healing: Healing) -> None:
    cluster = healing.cluster
    tm = cluster.taskmanagers[0]
    old_pid = tm.pid
    assert old_pid is not None and cluster.supervisor.is_running()
    before = read_restarts(cluster.restarts_path).get(tm.name)
    os.kill(old_pid, signal.SIGKILL)

    new_pid = _wait(
        lambda: tm.pid if tm.pid not in (None, old_pid) else None,
        60.0,
        "restarted by the supervisor",
    )
    record = read_restarts(cluster.restarts_path)[tm.name]
    assert record.restarts == (before.restarts if before else 0) + 1
    assert record.last_pid == new_pid
    assert f"{tm.name} was not running: restarted it (pid {new_pid}" in (
        cluster.supervisor.log_path.read_text()
    )
    # the JobManager notices the lost TaskManager, fails over once, runs again
    _wait(lambda: healing.restarts() >= 1, RECOVERY_TIMEOUT, "counting the failover")
    _wait(healing.all_running, RECOVERY_TIMEOUT, "RUNNING again after the failover")
    assert cluster.status().extra["taskmanager_restarts"][tm.name] == record.restarts
