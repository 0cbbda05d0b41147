"""Lake sink: the embedded default - Paimon tables via pypaimon, on local disk or S3.

Same layout as the Flink jobs (``upbitpipe.lake.tables``): trades deduplicated on
(dt, market, sequential_id), full ticker and orderbook history, ticker_latest. Written events
wait per type until ``STAGE_ROWS`` of them (or ``STAGE_BYTES`` of frames) are there, then
become Arrow in one conversion (columnar rows are a fraction of the events' dicts, so the
memory held for a commit is small and bounded; at a slow market the runner hands over a few
events per write, and one conversion per few events cost more than the events). The rows
are committed as one Paimon snapshot per table, handed to pypaimon as one record batch per
table (it does its per-batch work - schema checks, system columns, buffering - once), when
``lake.commit_rows`` rows (or ``COMMIT_BYTES``) are waiting or at every ``flush()`` (the
runner calls it every ``lake.commit_interval_seconds``). pypaimon is blocking, so commits
run in one long-lived worker thread (``DaemonWorker``), one at a time; a daemon thread, so
a commit still running at a bounded shutdown neither blocks the exit nor loses its events (``take_unflushed`` hands them to the runner's spool;
if the commit completes after all, the tables' primary keys make the redelivery harmless).
A failed commit keeps the rows, raises from ``flush()`` and is retried at the next flush; an
event that cannot become a row (missing or unusable key field) is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from upbitpipe.config import LakeSettings, Settings
from upbitpipe.errors import ServiceUnavailableError
from upbitpipe.lake.catalog import open_catalog
from upbitpipe.lake.fastrows import FastRows, FlatPlan, flat_plan
from upbitpipe.lake.tables import (
    EVENT_TABLES,
    LAKE_TABLES,
    LakeRowError,
    LakeTable,
    ensure_tables,
    event_dt,
    event_to_row,
    rows_to_arrow,
)
from upbitpipe.lake.write import TableCommitter, newest_per_key
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.worker import DaemonWorker

log = logging.getLogger(__name__)

Rejected = list[tuple[SinkEvent, str]]
Pending = dict[str, list[dict[str, pa.Table]]]  # event type -> per write batch: table -> rows
# commit early once the pending Arrow rows hold this much: a commit has a fixed cost of ~30
# CPU-ms (four snapshots: manifests, a parquet file, snapshot files per table), so at max
# rate 16 MiB (~25,000 events) cost 1-8 % less CPU than 8 MiB for ~+30 MB of peak RSS
COMMIT_BYTES = 16 * 1024 * 1024
# events of one type converted to Arrow together, or fewer once their frames hold
# STAGE_BYTES: a batch soon after the events were parsed finds their dicts still in the CPU
# cache (1,024 cost the sink alone ~7 % more CPU than 256; 128-512 the same within noise),
# and a conversion has a fixed cost of ~50 µs
STAGE_ROWS = 256
STAGE_BYTES = 1024 * 1024


#: tables whose rows are folded to one per primary key before pypaimon writes them
FOLD_FIRST = frozenset({"ticker_latest"})


def _sequence_fields(table: LakeTable) -> tuple[str, ...]:
    field = table.options.get("sequence.field", "")
    return tuple(name.strip() for name in field.split(",") if name.strip())


UNITS = "orderbook_units"


class LakeCommitError(ServiceUnavailableError):
    """A lake commit failed; its events stay buffered for the next flush."""


class FastBody(NamedTuple):
    """What the fast path converts a table's records into (:func:`_fast_body`)."""

    bare: pa.StructType  # the columns after ``dt`` (added later) but ``orderbook_units``
    flat: FlatPlan | None  # how the C kernel builds ``bare``, when its fields are flat
    units: pa.StructType | None  # ``orderbook_units`` alone, if the table has it
    units_index: int  # where ``orderbook_units`` goes among the columns after ``dt``
    time_column: str  # the epoch-ms column ``dt`` derives from
    ints: tuple[str, ...]  # the integer columns the exchange fills


def _fast_body(table: LakeTable, schema: pa.Schema) -> FastBody | None:
    """The fast path's view of a table: its columns after ``dt`` but the orderbook units
    (built apart, by :class:`FastRows` when it can), its time column and the integer
    columns the exchange fills (pyarrow truncates a float to int64 silently, so a record
    whose value there is not an int goes to the checked path; ``_ingested_at`` is the
    collector's own int). None for a table without ``dt`` and an int64 time column."""
    body = list(schema)
    time_column = table.time_column or "timestamp"
    if body[0].name != "dt" or time_column not in table.column_names:
        return None
    if schema.field(time_column).type != pa.int64():
        return None
    fields = body[1:]
    ints = tuple(
        field.name for field in fields if field.type == pa.int64() and field.name != "_ingested_at"
    )
    names = [field.name for field in fields]
    units_index = names.index(UNITS) if UNITS in names else -1
    units = pa.struct([fields[units_index]]) if units_index >= 0 else None
    bare = pa.struct([field for field in fields if field.name != UNITS])
    return FastBody(bare, flat_plan(bare), units, units_index, time_column, ints)


class LakeSink:
    """Buffers events per type; each flush commits one snapshot per lake table."""

    name = "lake"

    def __init__(
        self, settings: Settings, dead_letters: DeadLetterBox, fast: FastRows | None = None
    ) -> None:
        self.settings = settings
        self._fast = fast or FastRows()  # C kernels when built
        self.lake: LakeSettings = settings.lake
        self.flush_interval = settings.lake.commit_interval_seconds  # one snapshot per flush
        self.dead_letters = dead_letters
        self.tz = ZoneInfo(self.lake.timezone)
        self._catalog: Any = None
        self._tables: dict[str, Any] = {}
        self._committers: dict[str, TableCommitter] = {}
        # records waiting for the next commit, by event type (rows are built at commit time)
        # per event type: Arrow tables (one per write batch, keyed by lake table) waiting
        # for the next commit - columnar, a fraction of the memory of the events' dicts
        self._pending: Pending = {kind: [] for kind in EVENT_TABLES}
        self._pending_bytes = 0  # Arrow bytes pending (bounds the memory)
        self._pending_count = 0
        # events not converted yet, by type (newer than everything in ``_pending``)
        self._staged: dict[str, list[SinkEvent]] = {kind: [] for kind in EVENT_TABLES}
        self._staged_bytes: dict[str, int] = dict.fromkeys(EVENT_TABLES, 0)
        self._staged_count = 0
        self._schemas = {name: table.arrow_schema() for name, table in LAKE_TABLES.items()}
        self._keys = {
            name: sorted({*table.primary_key, *table.partition_keys})
            for name, table in LAKE_TABLES.items()
        }
        # per table the fast path can convert (:meth:`_records_to_arrow`)
        self._bodies = {
            name: body
            for name, table in LAKE_TABLES.items()
            if (body := _fast_body(table, self._schemas[name])) is not None
        }
        # the batch a commit thread is working on, and the kinds it has committed so far
        self._committing: Pending = {}
        self._committed_kinds: list[str] = []
        self._commit: asyncio.Future[None] | None = None
        self._worker = DaemonWorker("lake-commit")  # one thread for all commits
        self._dt_cache: dict[int, str] = {}
        # tables where most rows of a commit share a key (ticker_latest: one per market) are
        # folded to the kept rows before pypaimon sees them: its per-row work (system columns,
        # sort, the copy into one chunk) was paid for every ticker, to keep a few hundred
        self._fold_first = {
            name: (table.primary_key, _sequence_fields(table))
            for name, table in LAKE_TABLES.items()
            if name in FOLD_FIRST
        }
        # rows each table stored (ticker_latest: after folding to the newest per market)
        self.rows_committed: dict[str, int] = dict.fromkeys(LAKE_TABLES, 0)
        self.events_committed = 0  # events stored in their history table (trade, ticker...)
        self.commits = 0
        self.commit_failures = 0
        self.last_commit_at = 0.0
        self.last_error = ""

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        self._catalog = open_catalog(self.settings)
        ensure_tables(self._catalog, self.lake.database, buckets=self.lake.buckets)
        for name in LAKE_TABLES:
            self._tables[name] = self._catalog.get_table(f"{self.lake.database}.{name}")
            self._committers[name] = TableCommitter(
                self._tables[name], LAKE_TABLES[name].partition_keys
            )

    async def write(self, events: Sequence[SinkEvent]) -> None:
        """Stage the batch by type; convert a type's staged events to Arrow (the events'
        dicts are then free) once ``STAGE_ROWS`` / ``STAGE_BYTES`` are reached; commit when
        ``commit_rows`` or ``COMMIT_BYTES`` is reached."""
        staged, staged_bytes = self._staged, self._staged_bytes
        before = [(kind, len(kind_events)) for kind, kind_events in staged.items()]
        for event in events:
            kind_events = staged.get(event.type)
            if kind_events is not None:
                kind_events.append(event)
                staged_bytes[event.type] += len(event.raw)
                self._staged_count += 1
        try:
            for kind, kind_events in staged.items():
                if len(kind_events) >= STAGE_ROWS or staged_bytes[kind] >= STAGE_BYTES:
                    await self._convert(kind)
        except Exception:
            # the write failed: its events leave the staging again (the runner retries the
            # batch), the ones staged before stay (_convert keeps them on an error)
            self._unstage(before)
            raise
        pending_bytes = self._pending_bytes + sum(staged_bytes.values())
        if self.pending_rows >= self.lake.commit_rows or pending_bytes >= COMMIT_BYTES:
            await self.flush()

    def _unstage(self, before: list[tuple[str, int]]) -> None:
        """Drop what was staged after ``before`` (each type's staged count then)."""
        for kind, count in before:
            kind_events = self._staged[kind]
            if len(kind_events) > count:
                dropped = kind_events[count:]
                del kind_events[count:]
                self._staged_bytes[kind] -= sum(len(event.raw) for event in dropped)
                self._staged_count -= len(dropped)

    async def _convert(self, kind: str) -> None:
        """The staged events of ``kind`` as Arrow, one table per distinct column set (a
        ticker's ``ticker`` and ``ticker_latest`` rows share it); what cannot become a row
        is dead-lettered."""
        kind_events = self._staged[kind]
        if not kind_events:
            return
        arrows: dict[str, pa.Table] = {}
        by_columns: dict[tuple[str, ...], pa.Table] = {}
        rejected: Rejected = []
        # an unforeseen error leaves the events staged (the write fails, nothing is lost:
        # take_unflushed still hands them back at shutdown); they leave once converted
        for table_name in EVENT_TABLES[kind]:
            table = LAKE_TABLES[table_name]
            key = tuple(table.column_names)
            if key not in by_columns:
                arrow, bad = self._to_arrow(table, kind_events)
                by_columns[key] = arrow
                rejected += bad
            arrows[table_name] = by_columns[key]
        self._staged[kind] = []
        self._staged_bytes[kind] = 0
        self._staged_count -= len(kind_events)
        # the rows are pending before the first await: a writer cancelled at shutdown while
        # dead-lettering must not leave them neither staged nor pending (take_unflushed
        # would miss them)
        first = arrows[EVENT_TABLES[kind][0]]
        if first.num_rows:
            self._pending[kind].append(arrows)
            self._pending_count += first.num_rows
            # the buffers' sizes (``nbytes`` walks every array's offsets: 40-110 µs a table)
            self._pending_bytes += sum(a.get_total_buffer_size() for a in by_columns.values())
        for event, reason in rejected:
            await self.dead_letters.put("lake_row", reason, event.raw)

    @property
    def pending_rows(self) -> int:
        """Events written and not committed yet (converted or still staged)."""
        return self._pending_count + self._staged_count

    async def flush(self) -> None:
        if self._commit is not None:  # a commit cut short by a cancelled flush: let it end
            await self._settle_commit()
        for kind in EVENT_TABLES:
            await self._convert(kind)
        if not self._pending_count:
            return
        batch = {kind: parts for kind, parts in self._pending.items() if parts}
        self._pending = {kind: [] for kind in EVENT_TABLES}
        self._pending_count = 0
        self._pending_bytes = 0
        self._committing = batch
        self._committed_kinds = []
        self._commit = self._worker.submit(lambda: self._commit_sync(batch))
        await self._settle_commit()

    async def _settle_commit(self) -> None:
        """Await the running commit; on failure put its uncommitted kinds back, ahead of
        newer rows, and raise. A cancellation leaves it running (``take_unflushed``)."""
        assert self._commit is not None
        try:
            await asyncio.shield(self._commit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # S3 down, disk full...: keep rows, retry at next flush
            self._commit = None
            for kind, parts in self._committing.items():
                if kind not in self._committed_kinds:
                    self._pending[kind] = parts + self._pending[kind]
                    for arrows in parts:
                        self._pending_count += arrows[EVENT_TABLES[kind][0]].num_rows
                        self._pending_bytes += arrows[EVENT_TABLES[kind][0]].get_total_buffer_size()
            self._committing = {}
            self.commit_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            msg = f"lake commit of {self.pending_rows} rows failed (kept for retry): {self.last_error}"
            raise LakeCommitError(msg) from exc
        self._commit = None
        self._committing = {}

    def take_unflushed(self) -> list[SinkEvent]:
        """Rows not committed yet (including those of a commit still running), as events
        whose record is the lake row: what the runner spools and the next start writes."""
        running = [
            (kind, parts)
            for kind, parts in self._committing.items()
            if kind not in self._committed_kinds
        ]
        out: list[SinkEvent] = []
        for kind, parts in [*running, *self._pending.items()]:
            for arrows in parts:
                for row in arrows[EVENT_TABLES[kind][0]].to_pylist():
                    out.append(SinkEvent(kind, str(row.get("market")), row, b""))
        for kind_events in self._staged.values():  # newer than any converted row
            out.extend(kind_events)
        self._staged = {kind: [] for kind in EVENT_TABLES}
        self._staged_bytes = dict.fromkeys(EVENT_TABLES, 0)
        self._staged_count = 0
        self._committing = {}
        self._committed_kinds = []
        self._pending = {kind: [] for kind in EVENT_TABLES}
        self._pending_count = 0
        self._pending_bytes = 0
        self._commit = None
        return out

    def _commit_sync(self, batch: Pending) -> None:
        """Commit each event type's tables (worker thread); a kind is recorded as committed
        once all its tables are, so a failure later on does not commit it twice; its rows
        are then let go (a retry does not need them), which lowers the peak of the kinds
        committed after it (orderbooks, the largest, come last)."""
        for kind in list(batch):
            history = EVENT_TABLES[kind][0]  # one row per event
            events = sum(arrows[history].num_rows for arrows in batch[kind])
            for table_name in EVENT_TABLES[kind]:
                arrow = pa.concat_tables([arrows[table_name] for arrows in batch[kind]])
                if table_name in self._fold_first:
                    keys, sequence = self._fold_first[table_name]
                    arrow = newest_per_key(arrow, keys, sequence)
                else:
                    # one chunk: pypaimon works per record batch (schema check, system
                    # columns, its write buffer): a commit of many parts paid that per part
                    arrow = arrow.combine_chunks()
                self._commit_table(table_name, arrow)
                self.rows_committed[table_name] += arrow.num_rows
                del arrow
            self.events_committed += events
            self._committed_kinds.append(kind)
            batch[kind] = []
        self.commits += 1
        self.last_commit_at = time.time()

    def _commit_table(self, name: str, arrow: pa.Table) -> None:
        self._committers[name].commit(arrow)

    def _to_arrow(self, table: LakeTable, events: list[SinkEvent]) -> tuple[pa.Table, Rejected]:
        """Rows as Arrow, converted in C by pyarrow straight from the records (no copy of
        them); only ``dt`` is computed in Python, once per batch when all its events share
        a day. Events with a missing key, or values pyarrow cannot convert, take the slow
        checked path (``event_to_row``) and are rejected with a reason."""
        records = [event.record for event in events]
        try:
            arrow = self._records_to_arrow(table, records)
            if arrow is not None:
                return arrow, []
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            pass  # one bad event: sort them out one by one below
        good: list[dict[str, Any]] = []
        bad: Rejected = []
        for event in events:
            try:
                good.append(event_to_row(table, event.record, self.tz))
            except (LakeRowError, TypeError, ValueError, OverflowError) as exc:
                bad.append((event, str(exc)))
        return rows_to_arrow(table, good), bad

    def _records_to_arrow(self, table: LakeTable, records: list[dict[str, Any]]) -> pa.Table | None:
        """The fast path: the records as one struct array (pyarrow reads each dict's fields
        in C: about half the CPU of ``Table.from_pylist``, which builds a Python list per
        column), its fields as the columns after ``dt``, and ``dt`` from the converted time
        column (no Python per record); an orderbook's units come from :class:`FastRows` (C)
        when it can build them. None when the checked path must decide (a time that is
        missing, an integer column holding anything but ints, a key column with a null)."""
        body = self._bodies.get(table.name)
        if body is None or not records:
            return None
        # the flat columns and the orderbook units each built by a C kernel when they
        # can (its int64 columns take ints only), else converted by pyarrow once the
        # integer columns are known to hold no float; columns taken whole from the struct
        # (~10 µs a call, not the ~30 µs of building a table from arrays against the schema)
        bare = self._fast.flat_rows(records, body.flat) if body.flat is not None else None
        if bare is None:
            if not self._fast.only_ints(records, body.ints):
                return None
            bare = pa.array(records, type=body.bare)
        batch = pa.RecordBatch.from_struct_array(bare)
        arrow = pa.Table.from_batches([batch])
        if body.units is not None:
            units = self._fast.book_units(records)
            if units is None:
                units = pa.array(records, type=body.units).field(0)
            arrow = arrow.add_column(body.units_index, body.units.field(0), units)
        stamps = batch.column(body.time_column)
        if stamps.null_count:
            return None
        dt_field = self._schemas[table.name].field(0)
        arrow = arrow.add_column(0, dt_field, self._dt_column(stamps))
        if any(arrow.column(k).null_count for k in self._keys[table.name]):
            return None
        return arrow

    def _dt_column(self, stamps: pa.Array) -> pa.Array:
        """``dt`` of each epoch-ms time (no nulls). A day is a run of time, so when the
        earliest and the latest time fall on one day every row does: one value, repeated."""
        extremes = pc.min_max(stamps)
        first = self._dt(extremes["min"].as_py())
        if first == self._dt(extremes["max"].as_py()):
            return pa.repeat(pa.scalar(first, pa.string()), len(stamps))
        return pa.array([self._dt(stamp) for stamp in stamps.to_pylist()], pa.string())

    def _dt(self, stamp: int) -> str:
        """``event_dt`` of an epoch-ms time, cached per minute."""
        minute = stamp // 60_000
        dt = self._dt_cache.get(minute)
        if dt is None:
            if len(self._dt_cache) > 10_000:
                self._dt_cache.clear()
            dt = self._dt_cache[minute] = event_dt(stamp, self.tz)
        return dt

    async def close(self) -> None:
        if self.pending_rows:  # the runner spools them first; this is a bug guard
            log.warning("lake: %d rows were not committed at close", self.pending_rows)
        self._worker.close()  # a commit still running ends on its own (daemon thread)
        for committer in self._committers.values():
            committer.close()

    def stats(self) -> dict[str, Any]:
        return {
            "warehouse": self.lake.warehouse,
            "commits": self.commits,
            "commit_failures": self.commit_failures,
            "pending_rows": self.pending_rows,
            "rows_committed": sum(self.rows_committed.values()),
            "events_committed": self.events_committed,
            "last_commit_at": self.last_commit_at,
            "last_error": self.last_error,
        }
