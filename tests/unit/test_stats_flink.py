"""`stats`: Flink job rows from REST payloads, and lake freshness on a real local lake."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from upbitpipe.lake.tables import LAKE_TABLES, ensure_tables, event_to_row, rows_to_arrow
from upbitpipe.lake.write import commit_arrow
from upbitpipe.stats.flink import checkpoint_summary, job_rows
from upbitpipe.stats.freshness import newest_trade_ms

NOW = 1_800_000_000.0
CHECKPOINTS = {
    "counts": {"completed": 12, "failed": 3, "in_progress": 1},
    "latest": {
        "completed": {"id": 15, "latest_ack_timestamp": (NOW - 7) * 1000},
        "failed": {
            "id": 14,
            "failure_timestamp": (NOW - 20) * 1000,
            "failure_message": "Checkpoint expired before completing.",
        },
    },
    "history": [
        {"id": 16, "status": "IN_PROGRESS"},
        {"id": 15, "status": "COMPLETED"},
        {"id": 14, "status": "FAILED", "failure_message": "Checkpoint expired before completing."},
        {"id": 13, "status": "FAILED", "failure_message": "Checkpoint expired before completing."},
        {
            "id": 12,
            "status": "FAILED",
            "failure_message": "Task local checkpoint failure.\nCaused by: java.io.IOException",
        },
    ],
}
JOB = {
    "jid": "3902475b967440ae5d4519e6264d9684",
    "name": "upbitpipe: kafka -> paimon",
    "state": "RESTARTING",
    "tasks": {"running": 0, "total": 32},
}


def test_checkpoint_summary_counts_causes_and_age() -> None:
    cp = checkpoint_summary(CHECKPOINTS, NOW)
    assert cp["completed"] == 12 and cp["failed"] == 3 and cp["in_progress"] == 1
    assert cp["last_completed_age_s"] == 7.0 and cp["last_completed_id"] == 15
    assert cp["failure_causes"] == {
        "Checkpoint expired before completing.": 2,
        "Task local checkpoint failure.": 1,
    }
    assert cp["last_failure_age_s"] == 20.0


def test_job_rows_show_real_state_restarts_and_failed_checkpoints() -> None:
    head, done, failed = job_rows(JOB, 7, CHECKPOINTS, NOW)
    assert head["value"] == "RESTARTING" and head["restarts"] == 7
    assert "0/32 tasks running" in head["detail"]
    assert done["value"] == 12 and "last 7s ago (id 15)" in done["detail"]
    assert failed["value"] == 3
    assert "2x Checkpoint expired before completing." in failed["detail"]
    assert "(last 20s ago)" in failed["detail"]


def test_job_without_checkpoints_yet() -> None:
    empty = {"counts": {"completed": 0, "failed": 0}, "latest": {}, "history": []}
    rows = job_rows({**JOB, "state": "RUNNING"}, 0, empty, NOW)
    assert [r["value"] for r in rows] == ["RUNNING", 0]
    assert rows[1]["detail"] == "none completed yet"


def test_lake_freshness_is_the_newest_visible_trade(tmp_path: Path) -> None:
    from pypaimon import CatalogFactory

    catalog = CatalogFactory.create({"warehouse": str(tmp_path / "wh")})
    ensure_tables(catalog, "upbit", [LAKE_TABLES["trade"]], buckets=1)
    table = catalog.get_table("upbit.trade")
    spec = LAKE_TABLES["trade"]
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert newest_trade_ms(table, "UTC", now) is None
    stamps = [
        int(now.timestamp() * 1000) - 5_000,  # today
        int(now.timestamp() * 1000) - 86_400_000,  # yesterday
        int(now.timestamp() * 1000) - 3 * 86_400_000,  # days ago
    ]
    events = [
        {"market": "KRW-BTC", "sequential_id": i, "trade_timestamp": ts, "timestamp": ts}
        for i, ts in enumerate(stamps)
    ]
    rows = [event_to_row(spec, e, UTC) for e in events]
    commit_arrow(table, rows_to_arrow(spec, rows), spec.partition_keys)
    assert newest_trade_ms(catalog.get_table("upbit.trade"), "UTC", now) == stamps[0]
    # only old partitions: falls back to the whole table
    old_rows = [event_to_row(spec, events[2], UTC)]
    catalog.drop_table("upbit.trade", True)
    ensure_tables(catalog, "upbit", [LAKE_TABLES["trade"]], buckets=1)
    table = catalog.get_table("upbit.trade")
    commit_arrow(table, rows_to_arrow(spec, old_rows), spec.partition_keys)
    assert newest_trade_ms(catalog.get_table("upbit.trade"), "UTC", now) == stamps[2]


def test_supervisor_row_reads_the_restart_counters(tmp_path: Path) -> None:
    from upbitpipe.config import load_settings
    from upbitpipe.infra.supervisor import RestartRecord, write_restarts
    from upbitpipe.stats.flink import supervisor_row

    settings = load_settings(overrides={"infra.state_dir": str(tmp_path)}, env={}).settings
    assert supervisor_row(settings) is None  # no native cluster here
    folder = tmp_path / "flink" / "supervisor"
    folder.mkdir(parents=True)
    assert supervisor_row(settings) == {
        "what": "TaskManager restarts",
        "value": 0,
        "detail": "",
        "taskmanager_restarts": {},
    }
    write_restarts(
        folder / "restarts.json",
        {"taskmanager-1": RestartRecord(2, NOW, 42), "taskmanager-2": RestartRecord(1, NOW, 43)},
    )
    row = supervisor_row(settings)
    assert row is not None and row["value"] == 3
    assert row["detail"].startswith("taskmanager-1=2, taskmanager-2=1 (last ")
