"""Lake sink: the embedded default - Paimon tables via pypaimon, on local disk or S3.

Same layout as the Flink jobs (``upbitpipe.lake.tables``): trades deduplicated on
(dt, market, sequential_id), full ticker and orderbook history, ticker_latest. Rows are
buffered per table and committed as one Paimon snapshot per table when ``lake.commit_rows``
rows are waiting or at every ``flush()`` (the runner calls it every
``lake.commit_interval_seconds``). pypaimon is blocking, so commits run in a worker thread,
one at a time. A failed commit keeps the rows and is retried at the next flush; an event that
cannot become a row (missing key field) is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from upbitpipe.config import LakeSettings, Settings
from upbitpipe.lake.tables import (
    EVENT_TABLES,
    LAKE_TABLES,
    LakeRowError,
    ensure_tables,
    event_to_row,
    lake_catalog_options,
    rows_to_arrow,
)
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox

log = logging.getLogger(__name__)


def open_catalog(settings: Settings) -> Any:
    """A pypaimon filesystem catalog on the configured warehouse."""
    from pypaimon import CatalogFactory

    if not settings.lake.is_s3:
        from pathlib import Path

        Path(lake_catalog_options(settings)["warehouse"]).mkdir(parents=True, exist_ok=True)
    return CatalogFactory.create(lake_catalog_options(settings))


class LakeSink:
    name = "lake"

    def __init__(self, settings: Settings, dead_letters: DeadLetterBox) -> None:
        self.settings = settings
        self.lake: LakeSettings = settings.lake
        self.dead_letters = dead_letters
        self.tz = ZoneInfo(self.lake.timezone)
        self._catalog: Any = None
        self._tables: dict[str, Any] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {name: [] for name in LAKE_TABLES}
        self.rows_committed: dict[str, int] = dict.fromkeys(LAKE_TABLES, 0)
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

    async def write(self, events: Sequence[SinkEvent]) -> None:
        for event in events:
            for table_name in EVENT_TABLES.get(event.type, ()):
                try:
                    row = event_to_row(LAKE_TABLES[table_name], event.record, self.tz)
                except LakeRowError as exc:
                    await self.dead_letters.put("lake_row", str(exc), event.raw)
                    continue
                self._pending[table_name].append(row)
        if self.pending_rows >= self.lake.commit_rows:
            await self.flush()

    @property
    def pending_rows(self) -> int:
        return sum(len(rows) for rows in self._pending.values())

    async def flush(self) -> None:
        if not self.pending_rows:
            return
        batch = {name: rows for name, rows in self._pending.items() if rows}
        try:
            await asyncio.to_thread(self._commit_sync, batch)
        except Exception as exc:  # S3 down, disk full...: keep rows, retry at next flush
            self.commit_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error(
                "lake commit of %d rows failed (kept for retry): %s",
                self.pending_rows,
                self.last_error,
            )
            return

    def _commit_sync(self, batch: dict[str, list[dict[str, Any]]]) -> None:
        for name, rows in batch.items():
            table = self._tables[name]
            builder = table.new_batch_write_builder()
            writer = builder.new_write()
            committer = builder.new_commit()
            try:
                writer.write_arrow(rows_to_arrow(LAKE_TABLES[name], rows))
                committer.commit(writer.prepare_commit())
            finally:
                writer.close()
                committer.close()
            self.rows_committed[name] += len(rows)
            # a committed table's rows are dropped from the buffer at once, so a failure of a
            # later table does not commit them twice
            self._pending[name] = []
        self.commits += 1
        self.last_commit_at = time.time()

    async def close(self) -> None:
        if self.pending_rows:
            log.warning("lake: %d rows were not committed at close", self.pending_rows)

    def stats(self) -> dict[str, Any]:
        return {
            "warehouse": self.lake.warehouse,
            "commits": self.commits,
            "commit_failures": self.commit_failures,
            "pending_rows": self.pending_rows,
            "rows_committed": sum(self.rows_committed.values()),
            "last_commit_at": self.last_commit_at,
            "last_error": self.last_error,
        }
