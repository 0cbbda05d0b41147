"""`lake maintain` statements: the order, the retention, only the options a table lacks."""

from __future__ import annotations

import time

import pytest

from upbitpipe.lake.maintain import (
    MaintainPlan,
    duration_seconds,
    local_time,
    maintenance_steps,
    options_to_set,
)
from upbitpipe.lake.tables import LAKE_TABLES, SNAPSHOT_RETENTION

NOW = 1_800_000_000.0


def test_one_table_in_order_with_declared_retention() -> None:
    table = LAKE_TABLES["ticker_latest"]
    steps = maintenance_steps("upbit", [table], MaintainPlan(), now=NOW)
    assert [s.action for s in steps] == [
        "set",
        "set",
        "use",
        "options",
        "compact",
        "expire",
        "orphans",
    ]
    options, compact, expire, orphans = (s.sql for s in steps[3:])
    assert options.startswith("ALTER TABLE `upbit`.`ticker_latest` SET (")
    assert "'changelog-producer' = 'lookup'" in options
    assert compact == "CALL sys.compact(`table` => 'upbit.ticker_latest')"
    assert "retain_max => 50, retain_min => 10" in expire
    assert f"older_than => '{local_time(NOW - 15 * 60)}'" in expire
    assert f"older_than => '{local_time(NOW - 86_400)}', mode => 'local'" in orphans


def test_options_only_when_missing_and_plan_overrides() -> None:
    table = LAKE_TABLES["trade"]
    assert options_to_set(table, dict(table.options)) == {}
    assert options_to_set(table, {}) == dict(SNAPSHOT_RETENTION)
    assert "changelog-producer" not in options_to_set(table, {})  # insert-only history
    plan = MaintainPlan(compact=False, keep_snapshots=3, snapshot_age_seconds=0)
    steps = maintenance_steps("upbit", [table], plan, NOW, {"trade": dict(table.options)})
    assert [s.action for s in steps[3:]] == ["expire", "orphans"]
    assert "retain_max => 3, retain_min => 3" in steps[3].sql
    assert f"older_than => '{local_time(NOW)}'" in steps[3].sql


def test_every_table_declares_retention_in_both_ddls() -> None:
    for table in LAKE_TABLES.values():
        ddl = table.flink_ddl("lake", "upbit")
        for key, value in SNAPSHOT_RETENTION.items():
            assert table.table_options(2)[key] == value
            assert f"'{key}' = '{value}'" in ddl


@pytest.mark.parametrize(
    ("text", "seconds"), [("30 min", 1800), ("1 h", 3600), ("90 s", 90), ("2 d", 172_800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


def test_local_time_format() -> None:
    assert local_time(NOW) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW))
