"""`upbitpipe lake maintain` on an embedded lake: files stay bounded, no row is lost.

pypaimon writes one level-0 file per bucket per commit and never expires a snapshot, so a
lake written in small commits only grows. Two rounds of (8 commits, maintain): after each
round the table holds about the same number of files whatever it held before, the snapshots
are cut to ``--keep``, a planted orphan file is gone, and every row written is still read.
"""

from __future__ import annotations

import os
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.config import Settings, load_settings
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.lake.catalog import open_catalog
from upbitpipe.lake.maintain import TableFootprint, table_footprint
from upbitpipe.lake.read import read_table
from upbitpipe.lake.tables import LAKE_TABLES, ensure_tables, event_to_row, rows_to_arrow
from upbitpipe.lake.write import commit_arrow

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_flink"]

TABLES = ("trade", "ticker_latest")
MARKETS = 5
COMMITS = 8
ROWS_PER_COMMIT = 20


def _write_round(settings: Settings, round_no: int) -> None:
    catalog = open_catalog(settings)
    ensure_tables(catalog, settings.lake.database, [LAKE_TABLES[t] for t in TABLES], buckets=1)
    base = int(time.time() * 1000)
    for commit in range(COMMITS):
        first = (round_no * COMMITS + commit) * ROWS_PER_COMMIT
        events = [
            {
                "market": f"KRW-M{i % MARKETS}",
                "sequential_id": first + i,
                "trade_timestamp": base + first + i,
                "timestamp": base + first + i,
                "acc_trade_volume": float(first + i),
            }
            for i in range(ROWS_PER_COMMIT)
        ]
        for name in TABLES:
            spec = LAKE_TABLES[name]
            table = catalog.get_table(f"{settings.lake.database}.{name}")
            rows = [event_to_row(spec, e, UTC) for e in events]
            commit_arrow(table, rows_to_arrow(spec, rows), spec.partition_keys)


def _plant_orphan(settings: Settings) -> Path:
    """A data file no snapshot knows, as a killed writer leaves behind, two days old."""
    bucket = Path(settings.lake.warehouse) / f"{settings.lake.database}.db" / "ticker_latest"
    orphan = bucket / "bucket-0" / "data-00000000-dead-beef-0000-000000000000-0.parquet"
    orphan.write_bytes(b"PAR1 not referenced by any snapshot")
    old = time.time() - 2 * 86_400
    os.utime(orphan, (old, old))
    return orphan


def _footprints(settings: Settings) -> dict[str, TableFootprint]:
    return {t: table_footprint(settings, t) for t in TABLES}


def _maintain(env: dict[str, str]) -> Any:
    result = CliRunner().invoke(
        app,
        ["lake", "maintain", "--keep", "1", "--tables", ",".join(TABLES)],
        env=env,
    )
    assert result.exit_code == 0, result.output
    return result


def test_maintain_keeps_the_lake_bounded_and_complete(
    tmp_path: Path, artifact_cache: Path, flink_runtime: FlinkRuntime
) -> None:
    env = {
        "UPBITPIPE_LAKE__WAREHOUSE": str(tmp_path / "warehouse"),
        "UPBITPIPE_INFRA__CACHE_DIR": str(artifact_cache),
        "UPBITPIPE_INFRA__STATE_DIR": str(tmp_path / "state"),
        "UPBITPIPE_FLINK__REST_URL": "http://127.0.0.1:9",  # no cluster: nothing to defer to
        "UPBITPIPE_FLINK__PARALLELISM": "1",
    }
    settings = load_settings(env=env).settings
    after: list[dict[str, TableFootprint]] = []
    for round_no in range(2):
        _write_round(settings, round_no)
        orphan = _plant_orphan(settings)
        before = _footprints(settings)
        assert before["ticker_latest"].snapshots >= COMMITS
        out = _maintain(env)
        now = _footprints(settings)
        after.append(now)
        for name in TABLES:
            assert now[name].snapshots == 1, (name, now[name], out.output)
            assert now[name].files < before[name].files / 2, (name, before, now)
            assert f"{name:<14} files {before[name].files} -> {now[name].files}" in out.output
        assert not orphan.exists()

        written = (round_no + 1) * COMMITS * ROWS_PER_COMMIT
        trades = read_table(settings, "trade", ["sequential_id"])
        assert sorted(r["sequential_id"] for r in trades) == list(range(written))
        latest = read_table(settings, "ticker_latest", ["market", "timestamp"])
        assert len(latest) == MARKETS
        newest = max(r["timestamp"] for r in latest)
        assert all(newest - r["timestamp"] < MARKETS for r in latest)

    # bounded: the second round ends where the first did, with twice the rows
    for name in TABLES:
        assert after[1][name].files <= after[0][name].files + 2, (name, after)
