"""One pipeline job per lake: its name, the guard against a second one, and where to resume.

The streaming job is named after the tables it writes (``upbitpipe: kafka -> paimon
<warehouse>/<database>``), so two submissions for the same lake are recognised by name -
two writers on the same Paimon tables would fight over every commit. ``flink submit all``
refuses while that job is alive; ``--replace`` stops it with a savepoint and starts the new
job from the savepoint; ``--from-savepoint`` / ``--from-latest`` resume explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

from upbitpipe.config import Settings
from upbitpipe.errors import UpbitpipeError
from upbitpipe.flink.jobs import FlinkRest, JobInfo
from upbitpipe.flink.state import latest_snapshot, state_dirs

PIPELINE_PREFIX = "upbitpipe: kafka -> paimon"
QUERY_NAME = "upbitpipe: sql"
#: Job states in which the job holds (or will hold again) its sinks.
ALIVE_STATES = frozenset(
    {"INITIALIZING", "CREATED", "RUNNING", "RESTARTING", "FAILING", "CANCELLING", "RECONCILING"}
)


class PipelineRunningError(UpbitpipeError):
    """The pipeline job already runs; a second one would write the same tables."""


def pipeline_name(settings: Settings) -> str:
    return f"{PIPELINE_PREFIX} {settings.lake.warehouse.rstrip('/')}/{settings.lake.database}"


def alive_pipeline(rest: FlinkRest, settings: Settings) -> JobInfo | None:
    """The pipeline job of this lake that is not finished, if any (the newest)."""
    name = pipeline_name(settings)
    for job in rest.list_jobs():  # newest first
        if job.name == name and job.state in ALIVE_STATES:
            return job
    return None


def writes_lake(kinds: list[str]) -> bool:
    """Statement kinds that start the pipeline job (INSERTs into the lake)."""
    return any(kind in ("statement_set", "insert") for kind in kinds)


def ensure_no_pipeline(rest: FlinkRest, settings: Settings) -> None:
    """Raise :class:`PipelineRunningError` while this lake's pipeline job is alive."""
    running = alive_pipeline(rest, settings)
    if running is not None:
        raise refuse_second(running)


def refuse_second(job: JobInfo) -> PipelineRunningError:
    msg = (
        f"the pipeline job {job.name!r} is already {job.state} as {job.job_id}; "
        f"`upbitpipe flink submit all --replace` replaces it (savepoint, then the new job from it)"
    )
    return PipelineRunningError(msg)


@dataclass(frozen=True)
class Replaced:
    job_id: str
    savepoint: str


def stop_for_replace(rest: FlinkRest, settings: Settings, job: JobInfo) -> Replaced:
    """Stop ``job`` with a savepoint in the pipeline's savepoint dir; returns its location."""
    if job.state != "RUNNING":
        msg = f"the pipeline job {job.job_id} is {job.state}, not RUNNING: a savepoint needs a running job; wait, or cancel it (`flink jobs --cancel {job.job_id}`) and use --from-latest"
        raise UpbitpipeError(msg)
    location = rest.stop_with_savepoint(job.job_id, state_dirs(settings).savepoints)
    return Replaced(job.job_id, location)


def latest_restore_point(settings: Settings) -> str:
    """The newest retained checkpoint or savepoint, or a one-line error saying where we looked."""
    found = latest_snapshot(settings)
    if found is None:
        dirs = state_dirs(settings)
        where = " or ".join(d for d in (dirs.checkpoints, dirs.savepoints) if d)
        msg = f"no completed checkpoint or savepoint in {where}"
        raise UpbitpipeError(msg)
    return found.uri
