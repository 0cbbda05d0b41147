"""`upbitpipe lake maintain`: what to run to keep a Paimon lake small - as Flink SQL.

pypaimon 2.1 can write and read but has no snapshot expiry, no orphan-file cleanup and no
compaction; Paimon's own implementations are its Flink procedures. So maintenance is one
batch of Flink SQL run in a local mini-cluster (the Flink runtime's JVM, no cluster needed)
against the same catalog the writers use - a local warehouse or ``s3://`` alike, written by
the pypaimon sink or by the Flink job. Per table, in this order:

1. ``ALTER TABLE ... SET`` the hygiene options of :mod:`upbitpipe.lake.tables` that the
   table lacks (a table created before they were declared gets them);
2. ``CALL sys.compact`` - merges the small level-0 files pypaimon writes (skipped with
   ``compact=False``: a running Flink pipeline job compacts its tables itself, and a second
   compactor would make its commits conflict);
3. ``CALL sys.expire_snapshots`` - drops snapshots beyond the retention and the data and
   manifest files only they referenced (the files compaction replaced);
4. ``CALL sys.remove_orphan_files`` - deletes files no snapshot references that are older
   than ``orphan_age`` (left by failed or killed writers; younger files may belong to a
   commit in flight, hence the margin, one day by default like Paimon's).

This module only decides the statements (pure, tested without a JVM); the CLI prepends the
catalog and runs them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from upbitpipe.config import Settings
from upbitpipe.errors import ConfigError
from upbitpipe.lake.tables import SNAPSHOT_RETENTION, LakeTable, lake_catalog_options

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class MaintainPlan:
    """What `lake maintain` does. ``None`` = the table's declared retention."""

    compact: bool = True
    keep_snapshots: int | None = None
    snapshot_age_seconds: float | None = None
    orphan_age_seconds: float = 86_400.0


@dataclass(frozen=True)
class MaintainStep:
    """One statement: which table, which action, the SQL (no secrets in it)."""

    table: str
    action: str  # options | compact | expire | orphans
    sql: str


def duration_seconds(text: str) -> float:
    """``30 min`` / ``1 h`` / ``90 s`` / ``2 d`` (Paimon's duration syntax, the units we use)."""
    number, _, unit = text.strip().partition(" ")
    scale = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86_400}.get(unit.strip() or "s")
    if scale is None:
        msg = f"unknown duration unit in {text!r}"
        raise ValueError(msg)
    return float(number) * scale


def local_time(epoch_seconds: float) -> str:
    """A timestamp the procedures read in the JVM's default zone (this machine's)."""
    return time.strftime(TIME_FORMAT, time.localtime(epoch_seconds))


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def _retention(table: LakeTable, plan: MaintainPlan) -> tuple[int, int, float]:
    declared = {**SNAPSHOT_RETENTION, **table.options}
    keep_max = plan.keep_snapshots or int(declared["snapshot.num-retained.max"])
    keep_min = min(int(declared["snapshot.num-retained.min"]), keep_max)
    age = plan.snapshot_age_seconds
    if age is None:
        age = duration_seconds(declared["snapshot.time-retained"])
    return keep_max, max(1, keep_min), age


def options_to_set(table: LakeTable, current: Mapping[str, str]) -> dict[str, str]:
    """The declared hygiene options the table does not have yet (an ALTER that changes
    nothing still writes a new schema file, so only the difference is set)."""
    return {k: v for k, v in table.hygiene_options().items() if current.get(k) != v}


def table_steps(
    database: str,
    table: LakeTable,
    plan: MaintainPlan,
    now: float,
    current_options: Mapping[str, str] | None = None,
) -> list[MaintainStep]:
    """The statements for one table (see the module docstring for the order and why)."""
    ident = f"{database}.{table.name}"
    quoted = f"`{database}`.`{table.name}`"
    steps: list[MaintainStep] = []
    options = options_to_set(table, current_options or {})
    if options:
        pairs = ", ".join(f"'{_sql_str(k)}' = '{_sql_str(v)}'" for k, v in options.items())
        steps.append(MaintainStep(table.name, "options", f"ALTER TABLE {quoted} SET ({pairs})"))
    if plan.compact:
        steps.append(MaintainStep(table.name, "compact", f"CALL sys.compact(`table` => '{ident}')"))
    keep_max, keep_min, age = _retention(table, plan)
    steps.append(
        MaintainStep(
            table.name,
            "expire",
            f"CALL sys.expire_snapshots(`table` => '{ident}', retain_max => {keep_max}, "
            f"retain_min => {keep_min}, older_than => '{local_time(now - age)}')",
        )
    )
    steps.append(
        MaintainStep(
            table.name,
            "orphans",
            f"CALL sys.remove_orphan_files(`table` => '{ident}', "
            f"older_than => '{local_time(now - plan.orphan_age_seconds)}', mode => 'local')",
        )
    )
    return steps


def maintenance_steps(
    database: str,
    tables: Iterable[LakeTable],
    plan: MaintainPlan,
    now: float | None = None,
    current_options: Mapping[str, Mapping[str, str]] | None = None,
) -> list[MaintainStep]:
    """Batch-mode settings, then every table's statements (the catalog comes first, added
    by the caller because it carries the S3 keys). ``current_options``: per table, the
    options it has now (from the catalog)."""
    when = time.time() if now is None else now
    current = current_options or {}
    head = [
        MaintainStep("", "set", "SET 'execution.runtime-mode' = 'batch'"),
        # a procedure that starts a job (compact) returns only once the job is done
        MaintainStep("", "set", "SET 'table.dml-sync' = 'true'"),
        MaintainStep("", "use", f"USE `{database}`"),
    ]
    return head + [
        s for t in tables for s in table_steps(database, t, plan, when, current.get(t.name))
    ]


@dataclass(frozen=True)
class TableFootprint:
    """What a table occupies: files (objects on S3) and snapshots."""

    files: int
    snapshots: int


def table_footprint(settings: Settings, table: str) -> TableFootprint:
    """Files under the table's directory and its snapshot files, counted in the warehouse
    itself (a directory walk, or an S3 listing) - the ground truth maintenance acts on."""
    warehouse = lake_catalog_options(settings)["warehouse"]
    prefix = f"{settings.lake.database}.db/{table}/"
    names = list(_list_files(settings, warehouse, prefix))
    snapshots = [n for n in names if n.startswith("snapshot/snapshot-")]
    return TableFootprint(len(names), len(snapshots))


def _list_files(settings: Settings, warehouse: str, prefix: str) -> Iterable[str]:
    """Paths below ``warehouse/prefix``, relative to it."""
    if not settings.lake.is_s3:
        root = Path(warehouse) / prefix
        for folder, _, files in os.walk(root):
            for name in files:
                yield str((Path(folder) / name).relative_to(root))
        return
    from upbitpipe.storage.buckets import make_client
    from upbitpipe.storage.credentials import local_credentials

    url = urlsplit(warehouse)
    base = f"{url.path.strip('/')}/{prefix}".lstrip("/")
    s3 = settings.s3
    creds = local_credentials(s3, settings.infra.state_dir, create=False)
    if creds is None:
        msg = "no S3 keys to list the lake with (s3.access_key / s3.secret_key)"
        raise ConfigError(msg)
    client = make_client(
        str(s3.endpoint).rstrip("/"), creds.access_key, creds.secret_key, s3.region
    )
    for obj in client.list_objects(url.netloc, prefix=base, recursive=True):
        yield str(obj.object_name).removeprefix(base)


def summarize(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """One short line from a procedure's result rows (what it deleted / the compact job)."""
    if not rows:
        return "done"
    values = [" ".join(str(v) for v in row) for row in rows[:3]]
    more = f" (+{len(rows) - 3} rows)" if len(rows) > 3 else ""
    return "; ".join(values)[:200] + more
