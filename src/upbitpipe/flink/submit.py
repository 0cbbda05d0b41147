"""Submit rendered statements to Flink: a remote cluster (REST) or an embedded mini-cluster.

The statements run through :mod:`upbitpipe.flink.runner` inside the Flink runtime venv. The
request, secrets included, is written to the runner's stdin; nothing touches the disk. DDL
and SET statements run first in file order, then the statement set becomes one streaming
job. With ``local`` the job runs in the runner's own JVM (a mini-cluster), so the call waits
until the job ends (bounded mode) or is interrupted; against a cluster it returns once the
job is submitted (``wait`` to block until a bounded job finishes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from upbitpipe.config import Settings
from upbitpipe.errors import ServiceUnavailableError, UpbitpipeError
from upbitpipe.flink.pipeline import QUERY_NAME, ensure_no_pipeline, pipeline_name, writes_lake
from upbitpipe.flink.render import RenderedStatement, scrub, secret_strings
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.flink.state import dir_uri, state_backend_config

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("runner.py")


class FlinkSqlError(UpbitpipeError):
    """Flink refused or failed a statement; the message names the file:line and the cause."""

    def __init__(self, message: str, *, label: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.label = label
        self.detail = detail


@dataclass(frozen=True)
class SubmitOptions:
    local: bool = False
    bounded: bool = False
    wait: bool | None = None  # None: wait when local (the job lives in our process)
    timeout: float | None = None
    max_rows: int = 100
    parallelism: int | None = None
    #: a savepoint or retained checkpoint (directory or its _metadata) to start from
    restore_from: str | None = None
    #: with restore_from: state of operators the new SQL no longer has is dropped, not fatal
    allow_non_restored_state: bool = False

    @property
    def waits(self) -> bool:
        return self.local if self.wait is None else self.wait


@dataclass
class QueryResult:
    label: str
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False


@dataclass
class SubmitResult:
    job_ids: list[str] = field(default_factory=list)
    queries: list[QueryResult] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    finished_jobs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def restart_strategy_config(strategy: str) -> dict[str, str]:
    """Flink restart-strategy keys for ``flink.restart_strategy``."""
    if strategy == "exponential-delay":
        return {
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": "1 s",
            "restart-strategy.exponential-delay.max-backoff": "1 min",
            "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
            "restart-strategy.exponential-delay.reset-backoff-threshold": "10 min",
            "restart-strategy.exponential-delay.jitter-factor": "0.1",
        }
    if strategy == "fixed-delay":
        return {
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "10",
            "restart-strategy.fixed-delay.delay": "10 s",
        }
    return {"restart-strategy.type": "none"}


#: kept for callers that build the cluster config
checkpoint_dir_uri = dir_uri


def job_config(
    settings: Settings,
    options: SubmitOptions,
    *,
    name: str | None = None,
    cluster_has_s3: bool = True,
) -> dict[str, str]:
    """Flink configuration for the submitted job(s), from ``settings.flink``.

    ``cluster_has_s3`` False (the cluster has no S3 filesystem configured): state stays in
    the cluster's own checkpoint directory instead of failing the job.
    """
    flink = settings.flink
    conf = {
        "parallelism.default": str(options.parallelism or flink.parallelism),
        "execution.checkpointing.interval": flink.checkpoint_interval,
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        # the session zone is UTC: window_start/window_end are UTC, dt converts explicitly
        "table.local-time-zone": "UTC",
        # a key field that is NULL after all would fail the job; drop the row instead
        "table.exec.sink.not-null-enforcer": "DROP",
        # partitions without traffic must not hold back the watermark
        "table.exec.source.idle-timeout": "10 s",
        # the candle job's dedup and aggregate state: a trade later than this after the last
        # one of its minute no longer fixes that candle (see docs/flink.md)
        "table.exec.state.ttl": flink.state_ttl,
        # one candle update per key and second, not one per trade
        "table.exec.mini-batch.enabled": "true",
        "table.exec.mini-batch.allow-latency": "1 s",
        "table.exec.mini-batch.size": "5000",
        # explicit operator UIDs ("<exec node id>_<transformation>"): the same SQL on another
        # Flink version maps its savepoint state to the same operators
        "table.exec.uid.generation": "ALWAYS",
        "pipeline.name": name or pipeline_name(settings),
        **restart_strategy_config(flink.restart_strategy),
    }
    if not options.local or flink.checkpoint_dir:
        state = state_backend_config(settings)
        if not cluster_has_s3 and state.get("execution.checkpointing.dir", "").startswith("s3"):
            log.warning(
                "the Flink cluster has no S3 filesystem (s3.endpoint): checkpoints stay in its own directory"
            )
            state.pop("execution.checkpointing.dir")
            state.pop("execution.checkpointing.savepoint-dir", None)
        conf.update(state)
    if options.restore_from:
        conf["execution.savepoint.path"] = options.restore_from
        if options.allow_non_restored_state:
            conf["execution.savepoint.ignore-unclaimed-state"] = "true"
    if not options.local:
        parts = urlsplit(str(flink.rest_url))
        conf["execution.target"] = "remote"
        conf["rest.address"] = parts.hostname or "localhost"
        conf["rest.port"] = str(parts.port or 8081)
    return conf


def build_request(
    statements: Sequence[RenderedStatement],
    settings: Settings,
    options: SubmitOptions,
    *,
    cluster_has_s3: bool = True,
) -> dict[str, Any]:
    steps = [
        {
            "label": s.label,
            "kind": s.statement.kind,
            "sql": s.statement.sql,
            "inserts": list(s.statement.inserts),
        }
        for s in statements
    ]
    writes = writes_lake([s.statement.kind for s in statements])
    name = pipeline_name(settings) if writes else QUERY_NAME
    return {
        "config": job_config(settings, options, name=name, cluster_has_s3=cluster_has_s3),
        "wait": options.waits,
        "max_rows": options.max_rows,
        "steps": steps,
    }


def submit(
    statements: Sequence[RenderedStatement],
    settings: Settings,
    runtime: FlinkRuntime,
    options: SubmitOptions,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> SubmitResult:
    """Run ``statements`` in order; raises :class:`FlinkSqlError` on the first failure."""
    if not statements:
        msg = "nothing to submit"
        raise UpbitpipeError(msg)
    cluster_has_s3 = True
    if not options.local:
        from upbitpipe.flink.jobs import FlinkRest

        rest = FlinkRest(str(settings.flink.rest_url))
        rest.overview()  # fail fast, one clear line
        if writes_lake([s.statement.kind for s in statements]):
            ensure_no_pipeline(rest, settings)
        cluster_has_s3 = "s3.endpoint" in rest.jobmanager_config()
    secrets = secret_strings(settings)
    by_label = {s.label: s for s in statements}
    payload = json.dumps(
        build_request(statements, settings, options, cluster_has_s3=cluster_has_s3)
    )
    started = time.monotonic()
    result = SubmitResult()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [str(runtime.python), str(RUNNER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=runtime.env(),
        text=True,
        start_new_session=True,
    )
    stderr_tail: list[str] = []
    drain = threading.Thread(target=_drain, args=(proc, stderr_tail), daemon=True)
    drain.start()
    timer = _deadline(proc, options.timeout)
    error: dict[str, Any] | None = None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(payload)
        proc.stdin.close()
        for line in proc.stdout:
            event = _parse(line)
            if event is None:
                continue
            kind = event.get("event")
            if on_event is not None:
                on_event(
                    {k: scrub(v, secrets) if isinstance(v, str) else v for k, v in event.items()}
                )
            if kind == "ok":
                result.done.append(str(event.get("label")))
            elif kind == "job":
                result.job_ids.append(str(event["job_id"]))
            elif kind == "finished":
                result.finished_jobs.append(str(event["job_id"]))
            elif kind == "rows":
                result.queries.append(
                    QueryResult(
                        str(event["label"]),
                        list(event["columns"]),
                        list(event["rows"]),
                        bool(event.get("truncated")),
                    )
                )
            elif kind == "error":
                error = event
        code = proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            _stop(proc)
        drain.join(timeout=5.0)
    result.seconds = time.monotonic() - started
    if error is not None:
        label = str(error.get("label", ""))
        rendered = by_label.get(label)
        first = rendered.display.splitlines()[0] if rendered else ""
        message = scrub(str(error.get("message", "")), secrets)
        where = f"{label} ({first[:120]})" if first else label
        msg = f"{where}: {message}"
        raise FlinkSqlError(msg, label=label, detail=scrub(str(error.get("detail", "")), secrets))
    if code != 0:
        tail = scrub("\n".join(stderr_tail[-8:]), secrets)
        timed_out = timer is not None and getattr(timer, "fired", False)
        why = f"timed out after {options.timeout:.0f} s" if timed_out else f"exited with {code}"
        msg = f"the Flink runner {why}" + (f": {tail}" if tail else "")
        raise ServiceUnavailableError(msg)
    return result


def _parse(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        if line:
            log.debug("runner: %s", line)
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _drain(proc: subprocess.Popen[str], tail: list[str]) -> None:
    if proc.stderr is None:
        return
    for line in proc.stderr:
        tail.append(line.rstrip())
        del tail[:-50]


class _Timer(threading.Timer):
    fired = False


def _deadline(proc: subprocess.Popen[str], timeout: float | None) -> _Timer | None:
    if timeout is None:
        return None

    def fire() -> None:
        timer.fired = True
        _stop(proc)

    timer = _Timer(timeout, fire)
    timer.daemon = True
    timer.start()
    return timer


def _stop(proc: subprocess.Popen[str], grace: float = 10.0) -> None:
    """SIGTERM the runner's process group (the runner and its JVM), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
