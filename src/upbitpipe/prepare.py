"""What ``infra up`` fetches and builds before it starts anything, done in parallel.

A first ``infra up kafka minio flink`` needs the Kafka jars (Maven Central), a MinIO binary
(built with Go from the module proxy), the Flink connector jars (Maven Central) and the Flink
runtime (a venv from PyPI). None depends on another, so they run at the same time and the
slowest one (the MinIO build) sets the pace. :func:`plan` lists only what is missing, with a
rough duration measured on a 2-core machine, so ``infra up`` can say what it is about to do
before doing it; :func:`run_steps` runs them and reports progress to a :class:`StepEvents`.
Later runs find everything cached and the plan is empty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from upbitpipe.config import Settings
from upbitpipe.flink.jars import CONNECTOR_JARS, FLINK_VERSION, PLUGINS
from upbitpipe.flink.runtime import CREATE_ESTIMATE_SECONDS, FlinkRuntime
from upbitpipe.infra.artifacts import Artifact, fetch_all, missing
from upbitpipe.infra.kafka_artifacts import KAFKA_JARS, KAFKA_VERSION
from upbitpipe.infra.s3server import (
    MINIO_VERSION,
    build_estimate_seconds,
    build_minio,
    minio_built,
)

Report = Callable[[str], None]
#: Parallel downloads per jar set: ~50 small files are bound by latency, not bandwidth.
DOWNLOAD_WORKERS = 6


@dataclass(frozen=True)
class Step:
    """One independent piece of preparation."""

    component: str
    name: str
    what: str
    estimate: tuple[int, int]  # seconds, low-high, on 2 cores
    run: Callable[[Report], object]


class StepEvents(Protocol):
    """What a display is told while :func:`run_steps` runs (from worker threads: a display
    must be thread-safe)."""

    def started(self, step: Step) -> None: ...

    def progress(self, step: Step, text: str) -> None: ...

    def finished(self, step: Step, seconds: float) -> None: ...

    def failed(self, step: Step, error: BaseException, seconds: float) -> None: ...


def _jar_step(
    component: str,
    name: str,
    label: str,
    artifacts: Sequence[Artifact],
    cache_dir: Path,
    megabytes: int,
) -> Step | None:
    todo = missing(artifacts, cache_dir)
    if not todo:
        return None
    size = f", {megabytes} MB" if len(todo) == len(artifacts) else ""

    def run(report: Report) -> object:
        lock = threading.Lock()
        received = [0]

        def on_bytes(n: int) -> None:
            with lock:
                received[0] += n
                total = received[0]
            if total - n < (total // 5_000_000) * 5_000_000 <= total:  # every 5 MB
                report(f"{total / 1e6:.0f} MB received")

        return fetch_all(
            todo, cache_dir, progress=False, on_bytes=on_bytes, workers=DOWNLOAD_WORKERS
        )

    return Step(
        component,
        name,
        f"{len(todo)} {label} jars{size} from Maven Central",
        (5, 30),
        run,
    )


def plan(components: Sequence[str], settings: Settings) -> list[Step]:
    """The preparation the native ``components`` still need (empty when all is cached)."""
    cache_dir = settings.infra.cache_dir
    steps: list[Step | None] = []
    if "kafka" in components:
        steps.append(
            _jar_step("kafka", "kafka jars", f"Kafka {KAFKA_VERSION}", KAFKA_JARS, cache_dir, 45)
        )
    if "s3" in components and not minio_built(cache_dir):
        steps.append(
            Step(
                "s3",
                "minio build",
                f"MinIO {MINIO_VERSION} compiled with Go from the module proxy (once)",
                build_estimate_seconds(),
                lambda report: build_minio(cache_dir, on_progress=report),
            )
        )
    if "flink" in components:
        steps.append(
            _jar_step(
                "flink",
                "flink jars",
                "Flink connector and plugin",
                (*CONNECTOR_JARS, *PLUGINS.values()),
                cache_dir,
                170,
            )
        )
        runtime = FlinkRuntime.in_cache(cache_dir)
        if not runtime.is_ready():
            steps.append(
                Step(
                    "flink",
                    "flink runtime",
                    f"PyFlink {FLINK_VERSION} venv from PyPI (~240 MB, no Beam/pandas) in {runtime.root}",
                    CREATE_ESTIMATE_SECONDS,
                    lambda report: runtime.ensure(
                        cache_dir, progress=False, echo=lambda _l: None, on_line=report
                    ),
                )
            )
    return [s for s in steps if s is not None]


def estimate(steps: Sequence[Step]) -> tuple[int, int]:
    """Steps run in parallel: the slowest one sets the total."""
    if not steps:
        return (0, 0)
    return (max(s.estimate[0] for s in steps), max(s.estimate[1] for s in steps))


def run_steps(steps: Sequence[Step], events: StepEvents) -> list[tuple[Step, BaseException]]:
    """Run every step at once; returns the failures (each step runs to its end either way,
    so what did succeed is cached for the next run)."""
    failures: list[tuple[Step, BaseException]] = []
    lock = threading.Lock()

    def one(step: Step) -> None:
        began = time.monotonic()
        events.started(step)
        try:
            step.run(lambda text: events.progress(step, text))
        except Exception as exc:  # reported, then raised by the caller as one line
            events.failed(step, exc, time.monotonic() - began)
            with lock:
                failures.append((step, exc))
            return
        events.finished(step, time.monotonic() - began)

    if not steps:
        return failures
    with ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="prepare") as pool:
        list(pool.map(one, steps))
    return failures
