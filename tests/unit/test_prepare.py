"""`infra up`'s preparation: what is missing, said up front, done in parallel (no network:
the steps here are fakes or find everything cached)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from rich.console import Console

from upbitpipe.cli.prepare_view import PrepareView, plan_lines, span
from upbitpipe.config import InfraSettings, Settings
from upbitpipe.flink.jars import CONNECTOR_JARS, PLUGINS
from upbitpipe.flink.runtime import READY_MARKER, REQUIREMENTS, FlinkRuntime
from upbitpipe.infra.kafka_artifacts import KAFKA_JARS
from upbitpipe.infra.s3server import GoBuildProgress, minio_binary_path
from upbitpipe.prepare import Report, Step, estimate, plan, run_steps


def _settings(cache: Path) -> Settings:
    return Settings(infra=InfraSettings(cache_dir=cache, state_dir=cache / "state"))


def _fill_cache(cache: Path) -> None:
    for artifact in (*KAFKA_JARS, *CONNECTOR_JARS, *PLUGINS.values()):
        path = cache / "artifacts" / artifact.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"jar")
    binary = minio_binary_path(cache)
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(b"#!/bin/sh\n")
    binary.chmod(0o755)
    runtime = FlinkRuntime.in_cache(cache)
    runtime.python.parent.mkdir(parents=True)
    runtime.python.write_bytes(b"")
    (runtime.root / READY_MARKER).write_text("\n".join(REQUIREMENTS) + "\n", encoding="utf-8")


def test_fresh_cache_plans_every_step(tmp_path: Path) -> None:
    steps = plan(["kafka", "s3", "flink"], _settings(tmp_path))
    assert [s.name for s in steps] == ["kafka jars", "minio build", "flink jars", "flink runtime"]
    assert [s.component for s in steps] == ["kafka", "s3", "flink", "flink"]
    assert steps[0].what == f"{len(KAFKA_JARS)} Kafka 4.3.1 jars, 45 MB from Maven Central"
    assert all(0 < s.estimate[0] <= s.estimate[1] for s in steps)


def test_only_the_components_asked_for(tmp_path: Path) -> None:
    assert [s.name for s in plan(["kafka"], _settings(tmp_path))] == ["kafka jars"]


def test_warm_cache_plans_nothing(tmp_path: Path) -> None:
    _fill_cache(tmp_path)
    assert plan(["kafka", "s3", "flink"], _settings(tmp_path)) == []


def test_a_runtime_made_for_other_requirements_is_not_ready(tmp_path: Path) -> None:
    _fill_cache(tmp_path)
    runtime = FlinkRuntime.in_cache(tmp_path)
    (runtime.root / READY_MARKER).write_text("apache-flink==1.20.5\n", encoding="utf-8")
    assert [s.name for s in plan(["flink"], _settings(tmp_path))] == ["flink runtime"]


def test_one_missing_jar_is_fetched_without_claiming_the_full_size(tmp_path: Path) -> None:
    _fill_cache(tmp_path)
    (tmp_path / "artifacts" / KAFKA_JARS[3].filename).unlink()
    (step,) = plan(["kafka"], _settings(tmp_path))
    assert step.what == "1 Kafka 4.3.1 jars from Maven Central"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def started(self, step: Step) -> None:
        self._add(step, "started")

    def progress(self, step: Step, text: str) -> None:
        self._add(step, text)

    def finished(self, step: Step, seconds: float) -> None:
        self._add(step, "finished")

    def failed(self, step: Step, error: BaseException, seconds: float) -> None:
        self._add(step, f"failed: {error}")

    def _add(self, step: Step, what: str) -> None:
        with self.lock:
            self.events.append((step.name, what))


def test_steps_run_at_the_same_time_and_a_failure_does_not_stop_the_others() -> None:
    together = threading.Barrier(3, timeout=20)  # sequential steps would time out here

    def ok(report: Report) -> None:
        together.wait()
        report("half way")

    def broken(report: Report) -> None:
        together.wait()
        msg = "proxy said no"
        raise RuntimeError(msg)

    steps = [
        Step("a", name, "", (1, 2), run) for name, run in (("a", ok), ("b", ok), ("c", broken))
    ]
    events = Recorder()
    failures = run_steps(steps, events)
    assert [(s.name, str(e)) for s, e in failures] == [("c", "proxy said no")]
    for name in ("a", "b"):
        mine = [what for who, what in events.events if who == name]
        assert mine == ["started", "half way", "finished"]
    assert ("c", "failed: proxy said no") in events.events


def test_plan_is_said_before_anything_runs() -> None:
    steps = [
        Step("kafka", "kafka jars", "46 jars", (5, 30), lambda r: None),
        Step("s3", "minio build", "MinIO compiled", (120, 240), lambda r: None),
    ]
    assert estimate(steps) == (120, 240)
    lines = plan_lines(steps)
    assert lines[0] == (
        "preparing once (cached afterwards): 2 steps in parallel, about 2-4 min on 2 cores:"
    )
    assert lines[1:] == [
        "  kafka jars    46 jars  (~5-30 s)",
        "  minio build   MinIO compiled  (~2-4 min)",
    ]
    assert span(15, 60) == "15-60 s"


def test_plain_view_prints_each_end_once(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    step = Step("s3", "minio build", "", (1, 2), lambda r: None)
    other = Step("kafka", "kafka jars", "", (1, 2), lambda r: None)
    with PrepareView(console) as view:
        view.started(step)
        view.started(other)
        view.progress(step, "compiling (25 packages)")
        view.finished(step, 12.4)
        view.failed(other, RuntimeError("HTTP 404"), 3.0)
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["minio build: done in 12 s", "kafka jars: FAILED after 3 s: HTTP 404"]


def test_go_build_progress_counts_modules_and_packages() -> None:
    said: list[str] = []
    progress = GoBuildProgress(said.append)
    progress("go: downloading github.com/klauspost/compress v1.18.0\n")
    progress("go: downloading golang.org/x/sys v0.30.0\n")
    for i in range(50):
        progress(f"github.com/minio/minio/internal/pkg{i}\n")
    progress("# github.com/minio/minio/cmd\n")
    progress("cmd/x.go:1: undefined: y\n")
    assert said == [
        "downloading Go modules (1)",
        "downloading Go modules (2)",
        "compiling (25 packages)",
        "compiling (50 packages)",
    ]
    assert progress.compiled == 50
