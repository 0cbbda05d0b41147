"""The Flink part of `stats`: each job's real state, restarts and checkpoint health.

Per job (newest first; ended jobs only when nothing else is there): the state Flink reports
(RESTARTING is not RUNNING), the restart count (:func:`upbitpipe.flink.cluster.job_restarts`),
the age of the last completed checkpoint, and failed checkpoints with the cause Flink gives
(``GET /jobs/:id/checkpoints``: ``latest.failed.failure_message`` and the failed entries of
the bounded ``history``). :func:`job_rows` decides from the REST payloads alone, so it is
tested without a cluster.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from upbitpipe.config import Settings

TIMEOUT = 2.0
ENDED = frozenset({"FINISHED", "CANCELED", "FAILED", "SUSPENDED"})


def first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


def checkpoint_summary(checkpoints: dict[str, Any], now: float) -> dict[str, Any]:
    """Counts, last completed checkpoint age and failure causes from ``/checkpoints``."""
    counts = checkpoints.get("counts") or {}
    latest = checkpoints.get("latest") or {}
    completed = latest.get("completed") or {}
    failed_latest = latest.get("failed") or {}
    age = None
    if completed.get("latest_ack_timestamp"):
        age = round(max(0.0, now - completed["latest_ack_timestamp"] / 1000), 1)
    causes: Counter[str] = Counter()
    for entry in checkpoints.get("history") or []:
        if entry.get("status") == "FAILED":
            causes[first_line(str(entry.get("failure_message") or "no cause given"))] += 1
    last_cause = first_line(str(failed_latest.get("failure_message") or ""))
    if last_cause and not causes:
        causes[last_cause] += 1
    last_failed_age = None
    if failed_latest.get("failure_timestamp"):
        last_failed_age = round(max(0.0, now - failed_latest["failure_timestamp"] / 1000), 1)
    return {
        "completed": int(counts.get("completed", 0)),
        "failed": int(counts.get("failed", 0)),
        "in_progress": int(counts.get("in_progress", 0)),
        "last_completed_id": completed.get("id"),
        "last_completed_age_s": age,
        "last_failure": last_cause,
        "last_failure_age_s": last_failed_age,
        "failure_causes": dict(causes.most_common()),
    }


def job_rows(
    job: dict[str, Any], restarts: int, checkpoints: dict[str, Any] | None, now: float
) -> list[dict[str, Any]]:
    """The rows of one job: state + restarts, checkpoints, failed checkpoints and why."""
    label = f"{str(job.get('name', ''))[:40]} ({str(job.get('jid', ''))[:8]})"
    tasks = job.get("tasks") or {}
    rows: list[dict[str, Any]] = [
        {
            "what": label,
            "value": job.get("state", ""),
            "detail": f"{restarts} restarts, {tasks.get('running', 0)}/{tasks.get('total', 0)} tasks running",
            "job_id": job.get("jid"),
            "state": job.get("state"),
            "restarts": restarts,
        }
    ]
    if checkpoints is None:
        return rows
    cp = checkpoint_summary(checkpoints, now)
    age = cp["last_completed_age_s"]
    rows.append(
        {
            "what": "  checkpoints completed",
            "value": cp["completed"],
            "detail": (
                f"last {age:.0f}s ago (id {cp['last_completed_id']})"
                if age is not None
                else "none completed yet"
            )
            + (f", {cp['in_progress']} in progress" if cp["in_progress"] else ""),
            **cp,
        }
    )
    if cp["failed"]:
        causes = "; ".join(f"{n}x {cause}" for cause, n in cp["failure_causes"].items())
        when = (
            f" (last {cp['last_failure_age_s']:.0f}s ago)"
            if cp["last_failure_age_s"] is not None
            else ""
        )
        rows.append(
            {
                "what": "  checkpoints failed",
                "value": cp["failed"],
                "detail": f"{causes or cp['last_failure']}{when}",
            }
        )
    return rows


def flink_rows(base: str) -> tuple[str, list[dict[str, Any]]]:
    """All rows for the cluster at ``base``; the section state (ok / degraded / idle)."""
    import httpx

    from upbitpipe.flink.cluster import job_restarts

    now = time.time()
    with httpx.Client(timeout=TIMEOUT) as client:
        jobs = client.get(f"{base}/jobs/overview").json().get("jobs", [])
        jobs.sort(key=lambda j: int(j.get("start-time", 0)), reverse=True)
        active = [j for j in jobs if j.get("state") not in ENDED]
        shown = active or jobs[:1]
        rows: list[dict[str, Any]] = []
        for job in shown:
            resp = client.get(f"{base}/jobs/{job['jid']}/checkpoints")
            checkpoints = resp.json() if resp.status_code == 200 else None
            restarts = job_restarts(base, str(job["jid"]), TIMEOUT)
            rows.extend(job_rows(job, restarts, checkpoints, now))
    if not active:
        return "idle", rows
    return ("ok" if all(j.get("state") == "RUNNING" for j in active) else "degraded"), rows


def supervisor_row(settings: Settings) -> dict[str, Any] | None:
    """TaskManager restarts by the native cluster's supervisor (None: no native cluster)."""
    from upbitpipe.infra.supervisor import RESTARTS_FILE, read_restarts

    path = settings.infra.state_dir / "flink" / "supervisor" / RESTARTS_FILE
    if not path.parent.is_dir():
        return None
    records = read_restarts(path)
    last = max((r.last_restart or 0.0 for r in records.values()), default=0.0)
    return {
        "what": "TaskManager restarts",
        "value": sum(r.restarts for r in records.values()),
        "detail": ", ".join(f"{k}={v.restarts}" for k, v in sorted(records.items()))
        + (f" (last {time.time() - last:.0f}s ago)" if last else ""),
        "taskmanager_restarts": {k: v.restarts for k, v in records.items()},
    }


def flink_state(settings: Settings) -> tuple[str, str, list[dict[str, Any]]]:
    """(state, detail, rows) for the stats section; raises when Flink does not answer."""
    base = str(settings.flink.rest_url).rstrip("/")
    state, rows = flink_rows(base)
    supervised = supervisor_row(settings)
    if supervised is not None:
        rows.append(supervised)
    detail = base if state != "idle" else f"{base}: no job running"
    return state, detail, rows
