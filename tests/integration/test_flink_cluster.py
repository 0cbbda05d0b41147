"""The native Flink cluster: 1 JobManager + 2 TaskManagers, runs a SQL job, stops cleanly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.config import load_settings
from upbitpipe.flink.jobs import FlinkJobError, FlinkRest
from upbitpipe.flink.render import RenderedStatement
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.flink.split import Statement
from upbitpipe.flink.submit import FlinkSqlError, SubmitOptions, submit

if TYPE_CHECKING:
    from conftest_flink import FlinkFixture

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_flink"]

TRIVIAL_JOB = [
    "CREATE TEMPORARY TABLE src (n BIGINT) WITH ("
    "'connector' = 'datagen', 'number-of-rows' = '500', 'fields.n.kind' = 'sequence', "
    "'fields.n.start' = '1', 'fields.n.end' = '500')",
    "CREATE TEMPORARY TABLE snk (n BIGINT) WITH ('connector' = 'blackhole')",
    "INSERT INTO snk SELECT n * 2 FROM src",
]


def _statements(sqls: list[str]) -> list[RenderedStatement]:
    from upbitpipe.flink.split import classify

    return [
        RenderedStatement("trivial.sql", Statement(sql, classify(sql), i + 1), sql)
        for i, sql in enumerate(sqls)
    ]


def test_cluster_shape_and_config(flink_cluster: FlinkFixture) -> None:
    status = flink_cluster.cluster.status()
    assert status.running and status.healthy, status
    assert len(status.pids) >= 3  # JM + 2 TMs (plus their launcher shells, if any)
    rest = FlinkRest(flink_cluster.rest_url)
    overview = rest.overview()
    assert overview["taskmanagers"] == 2
    assert overview["slots-total"] == 4
    config = rest.jobmanager_config()
    assert config["restart-strategy.type"] == "exponential-delay"
    assert config["execution.checkpointing.interval"] == "30 s"
    assert config["parallelism.default"] == "2"


def test_start_again_is_a_no_op(flink_cluster: FlinkFixture) -> None:
    before = flink_cluster.cluster.status().pids
    flink_cluster.cluster.start(30.0)
    assert flink_cluster.cluster.status().pids == before


def test_trivial_sql_job_runs(
    tmp_path: Path, flink_cluster: FlinkFixture, flink_runtime: FlinkRuntime
) -> None:
    settings = load_settings(overrides=flink_cluster.overrides(), env={}).settings
    result = submit(
        _statements(TRIVIAL_JOB),
        settings,
        flink_runtime,
        SubmitOptions(wait=True, timeout=240),
    )
    (job_id,) = result.job_ids
    assert result.finished_jobs == [job_id]
    rest = FlinkRest(flink_cluster.rest_url)
    assert rest.state(job_id) == "FINISHED"
    assert any(job.job_id == job_id for job in rest.list_jobs())
    with pytest.raises(FlinkJobError, match="no Flink job"):
        rest.cancel("00000000000000000000000000000000")


def test_sql_error_names_the_statement(
    flink_cluster: FlinkFixture, flink_runtime: FlinkRuntime
) -> None:
    settings = load_settings(overrides=flink_cluster.overrides(), env={}).settings
    bad = [*TRIVIAL_JOB[:2], "INSERT INTO snk SELECT no_such_column FROM src"]
    with pytest.raises(FlinkSqlError) as info:
        submit(_statements(bad), settings, flink_runtime, SubmitOptions(timeout=240))
    message = str(info.value)
    assert message.startswith("trivial.sql:3 (INSERT INTO snk SELECT no_such_column")
    assert "no_such_column" in message.split(":", 2)[-1]
    assert "\n" not in message


def test_jobs_cli_lists_stops_with_savepoint_and_cancels(
    tmp_path: Path, flink_cluster: FlinkFixture, flink_runtime: FlinkRuntime
) -> None:
    settings = load_settings(overrides=flink_cluster.overrides(), env={}).settings
    unbounded = [
        "CREATE TEMPORARY TABLE src (n BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '20')",
        "CREATE TEMPORARY TABLE snk (n BIGINT) WITH ('connector' = 'blackhole')",
        "INSERT INTO snk SELECT n FROM src",
    ]
    # two INSERTs outside a statement set: two jobs from one session
    result = submit(
        _statements([*unbounded, unbounded[-1]]),
        settings,
        flink_runtime,
        SubmitOptions(timeout=240),
    )
    job_ids = result.job_ids
    assert len(job_ids) == 2
    rest = FlinkRest(flink_cluster.rest_url)
    for job_id in job_ids:
        rest.wait_for_state(job_id, {"RUNNING"}, 60.0)
    cli = CliRunner()
    base = ["flink", "jobs", "--rest-url", flink_cluster.rest_url]
    listed = cli.invoke(app, [*base, "--json"])
    assert listed.exit_code == 0, listed.output
    running = {j["job_id"] for j in json.loads(listed.output) if j["state"] == "RUNNING"}
    assert set(job_ids) <= running

    savepoints = (tmp_path / "savepoints").as_uri()
    stopped = cli.invoke(app, [*base, "--stop", job_ids[0], "--savepoint-dir", savepoints])
    assert stopped.exit_code == 0, stopped.output
    assert "savepoint at file:" in stopped.output
    assert any((tmp_path / "savepoints").iterdir())
    assert rest.wait_for_state(job_ids[0], {"FINISHED"}, 60.0) == "FINISHED"

    cancelled = cli.invoke(app, [*base, "--cancel", job_ids[1]])
    assert cancelled.exit_code == 0, cancelled.output
    assert rest.wait_for_state(job_ids[1], {"CANCELED"}, 60.0) == "CANCELED"

    unknown = cli.invoke(app, [*base, "--cancel", "0" * 32])
    assert unknown.exit_code == 1 and "no Flink job" in unknown.output


def test_stop_leaves_no_process_and_restarts(flink_cluster: FlinkFixture) -> None:
    cluster = flink_cluster.cluster
    pids = cluster.status().pids
    cluster.stop(30.0)
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"left behind: {alive}"
    assert not cluster.status().running
    cluster.start(flink_cluster.start_timeout)  # later tests of the session use it again
    assert cluster.status().healthy
