"""Flink jobs through the JobManager's REST API: list, cancel, stop with a savepoint.

Endpoints (Flink 1.20 REST API): ``GET /overview``, ``GET /jobs/overview``,
``GET /jobs/:id``, ``GET /jobs/:id/checkpoints``, ``PATCH /jobs/:id?mode=cancel``,
``POST /jobs/:id/stop`` + ``GET /jobs/:id/savepoints/:trigger`` (asynchronous operation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from upbitpipe.errors import ServiceUnavailableError, UpbitpipeError

TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED", "SUSPENDED"})


class FlinkJobError(UpbitpipeError):
    """A job operation was refused or failed (unknown job, savepoint failure, ...)."""


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    name: str
    state: str
    start_time_ms: int
    duration_ms: int
    tasks_total: int
    tasks_running: int

    @property
    def fully_running(self) -> bool:
        """RUNNING with every task running (a RUNNING job may still be deploying tasks)."""
        return self.state == "RUNNING" and self.tasks_running == self.tasks_total

    @classmethod
    def from_overview(cls, data: dict[str, Any]) -> JobInfo:
        tasks = data.get("tasks", {})
        return cls(
            job_id=str(data["jid"]),
            name=str(data.get("name", "")),
            state=str(data.get("state", "")),
            start_time_ms=int(data.get("start-time", 0)),
            duration_ms=int(data.get("duration", 0)),
            tasks_total=int(tasks.get("total", 0)),
            tasks_running=int(tasks.get("running", 0)),
        )


class FlinkRest:
    """A small synchronous client of one JobManager's REST endpoint."""

    def __init__(self, rest_url: str, timeout: float = 10.0) -> None:
        self.base = rest_url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base}{path}"
        try:
            resp = httpx.request(method, url, timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            msg = f"Flink REST at {self.base} is not reachable ({type(exc).__name__}); is the cluster up? (`upbitpipe infra up flink`)"
            raise ServiceUnavailableError(msg) from None
        if resp.status_code == 404:
            msg = f"Flink says not found: {path}"
            raise FlinkJobError(msg)
        if resp.status_code >= 400:
            errors = _errors(resp)
            msg = f"Flink REST {method} {path} failed with HTTP {resp.status_code}: {errors}"
            raise FlinkJobError(msg)
        return resp.json() if resp.content else {}

    def overview(self) -> dict[str, Any]:
        """Cluster overview: taskmanagers, slots-total, slots-available, jobs-running, ..."""
        data: dict[str, Any] = self._request("GET", "/overview")
        return data

    def jobmanager_config(self) -> dict[str, str]:
        """The cluster's effective configuration (``GET /jobmanager/config``)."""
        entries = self._request("GET", "/jobmanager/config")
        return {str(e["key"]): str(e["value"]) for e in entries}

    def taskmanagers(self) -> list[dict[str, Any]]:
        """Registered TaskManagers (``id``, ``slotsNumber``, ``freeSlots``, ...)."""
        data = self._request("GET", "/taskmanagers")
        return list(data.get("taskmanagers", []))

    def list_jobs(self) -> list[JobInfo]:
        data = self._request("GET", "/jobs/overview")
        jobs = [JobInfo.from_overview(j) for j in data.get("jobs", [])]
        return sorted(jobs, key=lambda j: j.start_time_ms, reverse=True)

    def job(self, job_id: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = self._request("GET", f"/jobs/{job_id}")
        except FlinkJobError as exc:
            if "not found" in str(exc):
                msg = f"no Flink job {job_id} at {self.base}"
                raise FlinkJobError(msg) from None
            raise
        return data

    def state(self, job_id: str) -> str:
        return str(self.job(job_id).get("state", ""))

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._request("GET", f"/jobs/{job_id}/checkpoints")
        return data

    def cancel(self, job_id: str) -> None:
        self.job(job_id)  # a clear "no such job" first
        self._request("PATCH", f"/jobs/{job_id}", params={"mode": "cancel"})

    def stop_with_savepoint(
        self, job_id: str, savepoint_dir: str | None, *, drain: bool = False, timeout: float = 300.0
    ) -> str:
        """Stop the job, taking a savepoint first; returns the savepoint's location."""
        self.job(job_id)
        body: dict[str, Any] = {"drain": drain, "formatType": "CANONICAL"}
        if savepoint_dir:
            body["targetDirectory"] = savepoint_dir
        trigger = self._request("POST", f"/jobs/{job_id}/stop", json=body)
        request_id = trigger.get("request-id")
        if not request_id:
            msg = f"Flink did not accept the stop request for {job_id}: {trigger}"
            raise FlinkJobError(msg)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self._request("GET", f"/jobs/{job_id}/savepoints/{request_id}")
            if status.get("status", {}).get("id") == "COMPLETED":
                operation = status.get("operation", {})
                if "failure-cause" in operation:
                    cause = operation["failure-cause"].get("stack-trace", "")
                    first = cause.splitlines()[0] if cause else "unknown cause"
                    msg = f"savepoint for {job_id} failed: {first}"
                    raise FlinkJobError(msg)
                return str(operation.get("location", ""))
            time.sleep(0.5)
        msg = f"savepoint for {job_id} not done after {timeout:.0f} s"
        raise FlinkJobError(msg)

    def wait_for_state(self, job_id: str, states: set[str], timeout: float) -> str:
        """Poll until the job is in one of ``states``; returns it (or raises on timeout)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.state(job_id)
            if state in states:
                return state
            if state in TERMINAL_STATES:
                msg = f"job {job_id} ended {state} while waiting for {'/'.join(sorted(states))}"
                raise FlinkJobError(msg)
            time.sleep(0.5)
        msg = f"job {job_id} still {state or 'unknown'} after {timeout:.0f} s"
        raise FlinkJobError(msg)

    def restart_count(self, job_id: str) -> int:
        """How often the job failed over: the larger of Flink's ``numRestarts`` metric and the
        length of its exception history (the metric can read 0 after failovers that never got
        their slots; every failover leaves an exception-history entry, up to
        ``web.exception-history-size``)."""
        metric = 0
        data = self._request("GET", f"/jobs/{job_id}/metrics", params={"get": "numRestarts"})
        for entry in data if isinstance(data, list) else []:
            if entry.get("id") == "numRestarts":
                metric = int(float(entry.get("value", 0)))
        history = self._request("GET", f"/jobs/{job_id}/exceptions", params={"maxExceptions": 1000})
        entries = (history.get("exceptionHistory") or {}).get("entries") or []
        return max(metric, len(entries))

    def exceptions(self, job_id: str) -> str:
        """The root exception of a failed job, one line ('' if none)."""
        data = self._request("GET", f"/jobs/{job_id}/exceptions")
        root = str(data.get("root-exception") or "")
        causes = [
            ln.strip()[len("Caused by: ") :]
            for ln in root.splitlines()
            if ln.strip().startswith("Caused by: ")
        ]
        return causes[-1] if causes else (root.splitlines()[0] if root else "")


def _errors(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300]
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors:
        first = str(errors[0])
        return first.splitlines()[0][:300]
    return str(data)[:300]
