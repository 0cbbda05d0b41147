"""The Paimon lake layout, declared once as data.

Both writers use this module: the Flink SQL jobs (``flink_ddl``) and the pypaimon lake sink
(``arrow_schema``, ``ensure_tables``, ``event_to_row``), so the two can never disagree about a
column, a key, a partition or a bucket count.

Tables (database ``lake.database``, all with fixed buckets ``lake.buckets``, parquet files):

``trade``
    PK ``(dt, market, sequential_id)``, merge-engine ``deduplicate``: a trade is stored once
    however often it arrives (reconnects, REST backfill, replays, two collectors).
``ticker``
    Full history. PK ``(dt, market, timestamp, acc_trade_volume)``. Upbit emits one ticker per
    trade, so two tickers of one market can share a millisecond; ``acc_trade_volume`` (the
    day's cumulative volume) grows with every trade and tells them apart. An exact re-delivery
    has the same key and is stored once.
``orderbook``
    Full history. PK ``(dt, market, timestamp, total_ask_size, total_bid_size)``: two books of
    one market in the same millisecond that differ in total size are distinct events; an exact
    re-delivery collapses. (Best prices are not in the key: a side can be empty, and key
    columns cannot be NULL. Two same-millisecond books with equal totals but another layout
    would collapse - Upbit does not publish those.) ``orderbook_units`` is ``ARRAY<ROW<ask_price, bid_price, ask_size, bid_size>>``
    (pypaimon 2.1 writes it and Flink reads it, see ``tests/unit/test_lake_tables.py``).
``ticker_latest``
    PK ``(market)``, not partitioned, ``sequence.field = timestamp``: the newest ticker by
    exchange time wins, whatever the arrival order.
``ohlcv_1m``
    PK ``(dt, market, window_start)``: one row per market per minute (event-time window,
    ``window_start``/``window_end`` are UTC wall-clock ``TIMESTAMP(3)``).

``dt`` is ``yyyy-MM-dd`` of the event time (``trade_timestamp`` for trades, ``timestamp`` for
tickers and orderbooks, ``window_start`` for candles) in ``lake.timezone``.  The wire fields
``type`` and ``code`` are not stored (``code`` is ``market``; the table says the type).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from upbitpipe.config import reveal
from upbitpipe.errors import UpbitpipeError

if TYPE_CHECKING:
    from upbitpipe.config import Settings


class LakeRowError(UpbitpipeError):
    """An event cannot become a lake row (a key field is missing or has the wrong type)."""


class LakeSchemaError(UpbitpipeError):
    """A lake table exists with a layout other than the one declared here."""


@dataclass(frozen=True)
class LakeColumn:
    """One column: its Flink SQL type and the matching Arrow type for pypaimon."""

    name: str
    flink_type: str
    arrow_type: pa.DataType
    nullable: bool = True


@dataclass(frozen=True)
class LakeTable:
    """One Paimon table. ``time_column`` is the epoch-ms (or timestamp) field ``dt`` derives from."""

    name: str
    columns: tuple[LakeColumn, ...]
    primary_key: tuple[str, ...]
    partition_keys: tuple[str, ...] = ("dt",)
    options: Mapping[str, str] = field(default_factory=dict)
    time_column: str | None = None
    comment: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        missing = [k for k in (*self.primary_key, *self.partition_keys) if k not in names]
        if missing:
            msg = f"table {self.name}: key columns {missing} are not columns"
            raise ValueError(msg)
        if self.primary_key and not set(self.partition_keys) <= set(self.primary_key):
            msg = f"table {self.name}: the primary key must contain the partition keys"
            raise ValueError(msg)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> LakeColumn:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def hygiene_options(self) -> dict[str, str]:
        """The options `lake maintain` may set on an existing table (retention, changelog)."""
        keys = (*SNAPSHOT_RETENTION, *LOOKUP_CHANGELOG)
        return {k: v for k, v in self.options.items() if k in keys}

    def table_options(self, buckets: int) -> dict[str, str]:
        """The WITH options, bucket count included (fixed buckets, never dynamic)."""
        return {"bucket": str(buckets), "file.format": "parquet", **self.options}

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema for pypaimon; key columns are NOT NULL (Paimon enforces it)."""
        keys = set(self.primary_key) | set(self.partition_keys)
        return pa.schema(
            [
                pa.field(c.name, c.arrow_type, nullable=c.nullable and c.name not in keys)
                for c in self.columns
            ]
        )

    def flink_ddl(self, catalog: str, database: str, buckets: int = 2) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for Flink SQL in the Paimon catalog."""
        keys = set(self.primary_key) | set(self.partition_keys)
        lines = [
            f"  `{c.name}` {c.flink_type}{' NOT NULL' if c.name in keys or not c.nullable else ''}"
            for c in self.columns
        ]
        if self.primary_key:
            pk = ", ".join(f"`{k}`" for k in self.primary_key)
            lines.append(f"  PRIMARY KEY ({pk}) NOT ENFORCED")
        body = ",\n".join(lines)
        ddl = f"CREATE TABLE IF NOT EXISTS `{catalog}`.`{database}`.`{self.name}` (\n{body}\n)"
        if self.comment:
            ddl += f" COMMENT '{_sql_str(self.comment)}'"
        if self.partition_keys:
            ddl += "\nPARTITIONED BY (" + ", ".join(f"`{k}`" for k in self.partition_keys) + ")"
        opts = ",\n".join(
            f"  '{_sql_str(k)}' = '{_sql_str(v)}'" for k, v in self.table_options(buckets).items()
        )
        return f"{ddl}\nWITH (\n{opts}\n)"


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def _c(name: str, kind: str, nullable: bool = True) -> LakeColumn:
    return LakeColumn(name, _FLINK[kind], _ARROW[kind], nullable)


_FLINK = {"s": "STRING", "d": "DOUBLE", "i": "BIGINT", "b": "BOOLEAN", "t": "TIMESTAMP(3)"}
_ARROW: dict[str, pa.DataType] = {
    "s": pa.string(),
    "d": pa.float64(),
    "i": pa.int64(),
    "b": pa.bool_(),
    "t": pa.timestamp("ms"),
}

ORDERBOOK_UNIT_FIELDS = ("ask_price", "bid_price", "ask_size", "bid_size")
UNIT_ARROW = pa.list_(pa.struct([pa.field(f, pa.float64()) for f in ORDERBOOK_UNIT_FIELDS]))
_UNIT_FLINK = "ARRAY<ROW<" + ", ".join(f"`{f}` DOUBLE" for f in ORDERBOOK_UNIT_FIELDS) + ">>"

METADATA_COLUMNS = (_c("_ingested_at", "i"), _c("_source", "s"), _c("_collector", "s"))

TICKER_COLUMNS = (
    _c("dt", "s"),
    _c("market", "s"),
    *(
        _c(n, k)
        for n, k in (
            ("opening_price", "d"),
            ("high_price", "d"),
            ("low_price", "d"),
            ("trade_price", "d"),
            ("prev_closing_price", "d"),
            ("change", "s"),
            ("change_price", "d"),
            ("signed_change_price", "d"),
            ("change_rate", "d"),
            ("signed_change_rate", "d"),
            ("trade_volume", "d"),
            ("acc_trade_volume", "d"),
            ("acc_trade_volume_24h", "d"),
            ("acc_trade_price", "d"),
            ("acc_trade_price_24h", "d"),
            ("trade_date", "s"),
            ("trade_time", "s"),
            ("trade_timestamp", "i"),
            ("ask_bid", "s"),
            ("acc_ask_volume", "d"),
            ("acc_bid_volume", "d"),
            ("highest_52_week_price", "d"),
            ("highest_52_week_date", "s"),
            ("lowest_52_week_price", "d"),
            ("lowest_52_week_date", "s"),
            ("trade_status", "s"),
            ("market_state", "s"),
            ("market_state_for_ios", "s"),
            ("is_trading_suspended", "b"),
            ("delisting_date", "s"),
            ("market_warning", "s"),
            ("timestamp", "i"),
            ("stream_type", "s"),
        )
    ),
    *METADATA_COLUMNS,
)

TRADE_COLUMNS = (
    _c("dt", "s"),
    _c("market", "s"),
    *(
        _c(n, k)
        for n, k in (
            ("trade_price", "d"),
            ("trade_volume", "d"),
            ("ask_bid", "s"),
            ("prev_closing_price", "d"),
            ("change", "s"),
            ("change_price", "d"),
            ("trade_date", "s"),
            ("trade_time", "s"),
            ("trade_timestamp", "i"),
            ("timestamp", "i"),
            ("sequential_id", "i"),
            ("best_ask_price", "d"),
            ("best_ask_size", "d"),
            ("best_bid_price", "d"),
            ("best_bid_size", "d"),
            ("stream_type", "s"),
        )
    ),
    *METADATA_COLUMNS,
)

ORDERBOOK_COLUMNS = (
    _c("dt", "s"),
    _c("market", "s"),
    _c("timestamp", "i"),
    _c("total_ask_size", "d"),
    _c("total_bid_size", "d"),
    LakeColumn("orderbook_units", _UNIT_FLINK, UNIT_ARROW),
    _c("best_ask_price", "d"),
    _c("best_bid_price", "d"),
    _c("spread", "d"),
    _c("level", "d"),
    _c("stream_type", "s"),
    *METADATA_COLUMNS,
)

OHLCV_COLUMNS = (
    _c("dt", "s"),
    _c("market", "s"),
    _c("window_start", "t"),
    _c("window_end", "t"),
    _c("open", "d"),
    _c("high", "d"),
    _c("low", "d"),
    _c("close", "d"),
    _c("volume", "d"),
    _c("quote_volume", "d"),
    _c("vwap", "d"),
    _c("trade_count", "i"),
)

#: Lake hygiene, declared here once: both writers create the tables with these options (the
#: pypaimon sink through :func:`ensure_tables`, Flink through :meth:`LakeTable.flink_ddl`) and
#: `upbitpipe lake maintain` sets them on tables created before they existed.
#:
#: * Snapshot retention: a snapshot older than ``snapshot.time-retained`` is expired, but
#:   never fewer than ``min`` and never more than ``max`` are kept. Flink's Paimon committer
#:   expires on every commit; pypaimon never expires, so for the embedded lake `lake
#:   maintain` does it (Paimon's own ``expire_snapshots``, same rules).
#: * ``changelog-producer = lookup`` on the two tables that are updated in place
#:   (``ticker_latest``, ``ohlcv_1m``): a streaming reader of them gets complete -U/+U pairs,
#:   and the lookup compaction at each commit keeps their file count small. The history
#:   tables are insert-only (a re-delivery overwrites an identical row), so no changelog.
#: * Compaction: Flink writers compact as they write (sorted runs per bucket stay under
#:   ``num-sorted-run.compaction-trigger``); pypaimon writes level-0 files only, so `lake
#:   maintain` runs Paimon's ``compact`` for the embedded lake. No ``full-compaction.
#:   delta-commits``: a full rewrite of a day's partition every N commits costs far more than
#:   it saves on a table that only grows, and Paimon refuses it next to ``lookup``.
SNAPSHOT_RETENTION: Mapping[str, str] = {
    "snapshot.num-retained.min": "10",
    "snapshot.num-retained.max": "50",
    "snapshot.time-retained": "15 min",
    # every commit adds a manifest (pypaimon's too); merge them from 10 on, not 30
    "manifest.merge-min-count": "10",
}
LOOKUP_CHANGELOG: Mapping[str, str] = {"changelog-producer": "lookup"}
_DEDUP = {"merge-engine": "deduplicate", **SNAPSHOT_RETENTION}

LAKE_TABLES: dict[str, LakeTable] = {
    t.name: t
    for t in (
        LakeTable(
            "trade",
            TRADE_COLUMNS,
            ("dt", "market", "sequential_id"),
            options=_DEDUP,
            time_column="trade_timestamp",
            comment="Upbit trades, each stored once",
        ),
        LakeTable(
            "ticker",
            TICKER_COLUMNS,
            ("dt", "market", "timestamp", "acc_trade_volume"),
            options=_DEDUP,
            time_column="timestamp",
            comment="Upbit ticker history",
        ),
        LakeTable(
            "orderbook",
            ORDERBOOK_COLUMNS,
            ("dt", "market", "timestamp", "total_ask_size", "total_bid_size"),
            options=_DEDUP,
            time_column="timestamp",
            comment="Upbit orderbook history",
        ),
        LakeTable(
            "ticker_latest",
            TICKER_COLUMNS,
            ("market",),
            partition_keys=(),
            options={**_DEDUP, "sequence.field": "timestamp", **LOOKUP_CHANGELOG},
            time_column="timestamp",
            comment="Newest ticker per market by exchange time",
        ),
        LakeTable(
            "ohlcv_1m",
            OHLCV_COLUMNS,
            ("dt", "market", "window_start"),
            options={**_DEDUP, **LOOKUP_CHANGELOG},
            time_column="window_start",
            comment="1-minute candles per market (event time)",
        ),
    )
}

#: Which lake tables an event type feeds (the Python sink writes these per event).
EVENT_TABLES: dict[str, tuple[str, ...]] = {
    "trade": ("trade",),
    "ticker": ("ticker", "ticker_latest"),
    "orderbook": ("orderbook",),
}


def event_dt(epoch_ms: int, tz: tzinfo) -> str:
    """``yyyy-MM-dd`` of an epoch-millisecond instant in ``tz`` (the ``dt`` partition value)."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz).strftime("%Y-%m-%d")


def _to_epoch_ms(value: Any) -> int:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    return int(value)


_BIGINT_END = 2**63  # BIGINT (int64) holds [-2**63, 2**63)


def _coerce(col: LakeColumn, value: Any) -> Any:
    if value is None:
        return None
    kind = col.flink_type
    if kind == "STRING":
        return value if isinstance(value, str) else str(value)
    if kind == "DOUBLE":
        out = float(value)
        return out if math.isfinite(out) else None
    if kind == "BIGINT":
        if isinstance(value, float) and not value.is_integer():
            msg = f"{col.name}: {value!r} is not an integer"
            raise LakeRowError(msg)
        whole = int(value)
        if not -_BIGINT_END <= whole < _BIGINT_END:  # pyarrow would raise on the whole batch
            msg = f"{col.name}: {value!r} does not fit a BIGINT"
            raise LakeRowError(msg)
        return whole
    if kind == "BOOLEAN":
        return value.strip().lower() in ("true", "1") if isinstance(value, str) else bool(value)
    if kind == "TIMESTAMP(3)":
        return datetime.fromtimestamp(_to_epoch_ms(value) / 1000, UTC).replace(tzinfo=None)
    if kind == _UNIT_FLINK:
        return [
            {f: None if u.get(f) is None else float(u[f]) for f in ORDERBOOK_UNIT_FIELDS}
            for u in value
        ]
    msg = f"{col.name}: no coercion for {kind}"
    raise LakeRowError(msg)


def event_to_row(table: LakeTable, data: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
    """One data-contract event (a Kafka JSON value) as a row of ``table``.

    Unknown fields are ignored, missing nullable fields become ``None``, ``market`` falls back
    to ``code``, ``dt`` is computed from ``table.time_column`` in ``tz``. Raises
    :class:`LakeRowError` when a key column is missing or unusable - that event belongs in the
    dead letters, not in the lake.
    """
    keys = set(table.primary_key) | set(table.partition_keys)
    row: dict[str, Any] = {}
    for col in table.columns:
        raw = data.get(col.name)
        if col.name == "market" and raw is None:
            raw = data.get("code")
        if col.name == "dt" and raw is None and table.time_column is not None:
            stamp = data.get(table.time_column)
            raw = None if stamp is None else event_dt(_to_epoch_ms(stamp), tz)
        try:
            value = _coerce(col, raw)
        except (TypeError, ValueError, AttributeError) as exc:
            msg = f"{table.name}.{col.name}: cannot use {raw!r} ({exc})"
            raise LakeRowError(msg) from None
        if value is None and (col.name in keys or not col.nullable):
            msg = f"{table.name}: event has no {col.name}"
            raise LakeRowError(msg)
        row[col.name] = value
    return row


def rows_to_arrow(table: LakeTable, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows from :func:`event_to_row` as an Arrow table with exactly ``table.arrow_schema()``."""
    return pa.Table.from_pylist(list(rows), schema=table.arrow_schema())


def lake_catalog_options(settings: Settings) -> dict[str, str]:
    """Paimon catalog options (pypaimon and Flink use the same keys).

    A local warehouse becomes an absolute path (Flink's JobManager has another working
    directory). For ``s3://`` the S3 settings are added; the keys are revealed here and only
    here - never log or print the result.
    """
    warehouse = settings.lake.warehouse
    if not settings.lake.is_s3:
        path = warehouse.removeprefix("file://")
        return {"warehouse": str(Path(path).expanduser().resolve())}
    s3 = settings.s3
    options = {
        "warehouse": warehouse,
        "s3.endpoint": str(s3.endpoint).rstrip("/"),
        "s3.path.style.access": "true" if s3.path_style else "false",
        "s3.region": s3.region,
    }
    access, secret = reveal(s3.access_key), reveal(s3.secret_key)
    if access is not None:
        options["s3.access-key"] = access
    if secret is not None:
        options["s3.secret-key"] = secret
    return options


#: Catalog option keys whose values are secrets (masked wherever options are shown).
SECRET_OPTION_KEYS = frozenset({"s3.access-key", "s3.secret-key"})


def ensure_tables(
    catalog: Any,
    database: str,
    tables: Iterable[LakeTable] = LAKE_TABLES.values(),
    buckets: int = 2,
) -> list[str]:
    """Create the database and tables with pypaimon if missing; returns the names created.

    Idempotent. An existing table whose columns or keys differ from the declaration raises
    :class:`LakeSchemaError` (a silent mismatch would corrupt the merge on read).
    """
    from pypaimon import Schema

    catalog.create_database(database, True)
    created: list[str] = []
    for table in tables:
        ident = f"{database}.{table.name}"
        try:
            existing = catalog.get_table(ident)
        except Exception:  # pypaimon raises its own TableNotExistException
            existing = None
        if existing is not None:
            _check_existing(table, existing)
            continue
        schema = Schema.from_pyarrow_schema(
            table.arrow_schema(),
            partition_keys=list(table.partition_keys),
            primary_keys=list(table.primary_key),
            options=table.table_options(buckets),
            comment=table.comment or None,
        )
        catalog.create_table(ident, schema, True)
        created.append(table.name)
    return created


def _check_existing(table: LakeTable, existing: Any) -> None:
    names = [f.name for f in existing.fields]
    pks = list(getattr(existing, "primary_keys", []) or [])
    parts = list(getattr(existing, "partition_keys", []) or [])
    if (
        names != table.column_names
        or pks != list(table.primary_key)
        or parts != list(table.partition_keys)
    ):
        msg = (
            f"lake table {table.name} exists with another layout "
            f"(columns {names}, primary key {pks}, partitions {parts}); "
            "drop it or point lake.warehouse elsewhere"
        )
        raise LakeSchemaError(msg)
