"""Which tables the lake has, and how each one becomes a table in a chDB session.

Every table of the lake (``trade``, ``ticker``, ``orderbook``, ``ticker_latest``,
``ohlcv_1m``) is a Paimon primary-key table. chDB's ``paimonLocal``/``paimonS3`` table
functions read every data file without merging on the key: a trade committed twice in two
snapshots is counted twice until a compaction rewrites the files. So a table is read with
pypaimon - the merged read, as Flink or Spark would see it - into Arrow and copied into a
chDB ``Memory`` table of the same name; ClickHouse SQL then runs on that.

Each table also gets the derived columns its ClickHouse twin has (``trade_ts``, ``event_ts``,
``ingested_at``, ... from :mod:`upbitpipe.clickhouse.schema`; ``time`` for ``ohlcv_1m``) as
``ALIAS`` columns: computed on read, left out of ``SELECT *``, and what lets the dashboard
queries run here unchanged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from upbitpipe.clickhouse.schema import ORDERBOOK, TICKER, TRADE, TopicSchema
from upbitpipe.config import Settings
from upbitpipe.errors import UpbitpipeError
from upbitpipe.lake.catalog import open_catalog
from upbitpipe.query.errors import LakeEmptyError, LakeMissingError

log = logging.getLogger(__name__)

_TOPIC_OF: dict[str, TopicSchema] = {
    "trade": TRADE,
    "ticker": TICKER,
    "ticker_latest": TICKER,
    "orderbook": ORDERBOOK,
}

# Names the ClickHouse *views* give to columns of the same data (see clickhouse/ddl.py).
_VIEW_COLUMNS: dict[str, dict[str, str]] = {
    "ticker_latest": {"last_event_ts": "fromUnixTimestamp64Milli(`timestamp`, 'UTC')"},
    "ohlcv_1m": {"time": "toDateTime(window_start, 'UTC')"},
}


def clickhouse_aliases(table: str) -> dict[str, str]:
    """Derived column name -> ClickHouse expression over the lake columns of ``table``."""
    out: dict[str, str] = {}
    topic = _TOPIC_OF.get(table)
    if topic is not None:
        out.update({c.name: c.expr for c in topic.target if c.expr and c.expr != c.name})
    out.update(_VIEW_COLUMNS.get(table, {}))
    return out


@dataclass
class Lake:
    """The Paimon warehouse named by the config, opened once (pypaimon catalog)."""

    settings: Settings
    _catalog: Any = field(default=None, init=False, repr=False)
    _names: list[str] | None = field(default=None, init=False, repr=False)

    @property
    def where(self) -> str:
        return f"{self.settings.lake.warehouse} (database {self.settings.lake.database})"

    def catalog(self) -> Any:
        """The pypaimon catalog; raises when the warehouse is missing or unreachable."""
        if self._catalog is None:
            self._check_reachable()
            try:
                self._catalog = open_catalog(self.settings, create=False)
            except UpbitpipeError:
                raise
            except Exception as exc:  # pypaimon/pyarrow errors: one line
                raise _lake_error(self.where, "open", exc) from None
        return self._catalog

    def table_names(self) -> list[str]:
        """The tables of ``lake.database``, sorted; raises :class:`LakeEmptyError` for none."""
        if self._names is None:
            from pypaimon.catalog.catalog_exception import DatabaseNotExistException

            catalog = self.catalog()
            try:
                names = sorted(catalog.list_tables(self.settings.lake.database))
            except DatabaseNotExistException:
                names = []
            except Exception as exc:
                raise _lake_error(self.where, "list the tables of", exc) from None
            if not names:
                msg = f"the lake at {self.where} has no tables yet: run `upbitpipe collect` or `upbitpipe demo` first"
                raise LakeEmptyError(msg)
            self._names = names
        return self._names

    def read(self, name: str, min_dt: str | None = None) -> pa.Table:
        """Every row of ``name``, merged on its primary key (the newest commit wins); with
        ``min_dt``, only the ``dt`` partitions from that date on are read."""
        catalog = self.catalog()
        try:
            table = catalog.get_table(f"{self.settings.lake.database}.{name}")
            builder = table.new_read_builder()
            if min_dt is not None and "dt" in (table.partition_keys or []):
                predicate = builder.new_predicate_builder().greater_or_equal("dt", min_dt)
                builder = table.new_read_builder().with_filter(predicate)
            arrow: pa.Table = builder.new_read().to_arrow(builder.new_scan().plan().splits())
        except Exception as exc:
            raise _lake_error(self.where, f"read table {name} of", exc) from None
        return arrow

    def _check_reachable(self) -> None:
        """A local warehouse must exist (an ``s3://`` one is checked by ``open_catalog``:
        endpoint, keys and bucket, within seconds)."""
        lake = self.settings.lake
        if lake.is_s3:
            return
        if not Path(lake.warehouse.removeprefix("file://")).expanduser().is_dir():
            msg = f"no lake at {lake.warehouse}: run `upbitpipe collect` or `upbitpipe demo` first, or set lake.warehouse"
            raise LakeMissingError(msg)


def _lake_error(where: str, what: str, exc: Exception) -> UpbitpipeError:
    detail = " ".join(str(exc).split())[:300]
    return UpbitpipeError(f"cannot {what} the lake at {where}: {type(exc).__name__}: {detail}")


def register(session: Any, database: str, name: str, arrow: pa.Table) -> None:
    """Copy ``arrow`` into ``database.name`` (Memory engine) and add the ClickHouse aliases.

    chDB's ``Python()`` table function reads ``arrow`` off this function's frame, in place.
    """
    target = f"`{database}`.`{name}`"
    session.query(f"DROP TABLE IF EXISTS {target}")
    session.query(f"CREATE TABLE {target} ENGINE = Memory AS SELECT * FROM Python(arrow)")
    aliases = {k: v for k, v in clickhouse_aliases(name).items() if k not in arrow.column_names}
    if not aliases:
        return
    exprs = ", ".join(f"{expr} AS `{alias}`" for alias, expr in aliases.items())
    try:  # an ALIAS column needs its type: ask ClickHouse what the expression returns
        described = str(session.query(f"DESCRIBE (SELECT {exprs} FROM {target})", "JSONEachRow"))
    except Exception as exc:  # a table of another layout: keep it, without the aliases
        log.debug("no ClickHouse aliases for %s: %s", name, exc)
        return
    types = {row["name"]: row["type"] for row in map(json.loads, described.splitlines()) if row}
    adds = ", ".join(
        f"ADD COLUMN `{alias}` {types[alias]} ALIAS {expr}" for alias, expr in aliases.items()
    )
    session.query(f"ALTER TABLE {target} {adds}")
