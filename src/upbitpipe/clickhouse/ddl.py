"""Render the ``upbitpipe ch init`` statements from the config (pure: no I/O).

Single node (default)::

    <t>_queue  (Kafka, JSONEachRow, errors streamed) --<t>_mv--------> <t> (MergeTree, TTL)
               '--<t>_errors_mv (length(_error) > 0)--> kafka_errors
    trade --ohlcv_1m_mv--> ohlcv_1m_agg (AggregatingMergeTree) <-- ohlcv_1m (view, fast)
    trade FINAL <-- ohlcv_1m_exact, trade_unique (views, each sequential_id once)

``cluster=True`` renders the 2-shard variant: every statement ``ON CLUSTER``, storage in
``<t>_local`` Replicated* tables (``{shard}``/``{replica}`` macros), and a Distributed table
under the plain name sharded by ``cityHash64(market)``, so views and dashboards read the same
names in both layouts and all rows of a market live on one shard (dedup and OHLCV stay local).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from upbitpipe.clickhouse.schema import ERRORS_COLUMNS, TOPICS, TRADE, Column, TopicSchema
from upbitpipe.config import Settings, reveal

StatementKind = Literal["database", "table", "distributed", "queue", "mv", "view"]
MASK = "**********"
ERRORS_TABLE = "kafka_errors"
OHLCV_AGG = "ohlcv_1m_agg"


@dataclass(frozen=True)
class Statement:
    """One DDL statement; ``name`` is the object it creates (``db.name``)."""

    kind: StatementKind
    name: str
    sql: str
    topic: str | None = None


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _columns(cols: tuple[Column, ...]) -> str:
    return ",\n".join(f"    `{c.name}` {c.type}" for c in cols)


def _selects(cols: tuple[Column, ...]) -> str:
    return ",\n".join(f"    {c.select}" for c in cols)


@dataclass(frozen=True)
class _Renderer:
    settings: Settings
    cluster: bool
    reveal_secrets: bool

    @property
    def db(self) -> str:
        return self.settings.clickhouse.database

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {quote(self.settings.clickhouse.cluster)}" if self.cluster else ""

    def storage_name(self, name: str) -> str:
        """Where rows are stored: ``name`` on one node, ``name_local`` on a cluster."""
        return f"{name}_local" if self.cluster else name

    def engine(self, family: str, table: str, args: str = "") -> str:
        if not self.cluster:
            return f"{family}({args})"
        path = quote(f"/clickhouse/tables/{{shard}}/{self.db}/{table}")
        extra = f", {args}" if args else ""
        return f"Replicated{family}({path}, '{{replica}}'{extra})"

    def ttl(self, expr: str) -> str:
        return f"TTL {expr} + INTERVAL {self.settings.clickhouse.ttl_days} DAY"

    # --- statements -------------------------------------------------------------------

    def database(self) -> Statement:
        sql = f"CREATE DATABASE IF NOT EXISTS `{self.db}`{self.on_cluster}"
        return Statement("database", self.db, sql)

    def merge_tree(
        self,
        name: str,
        cols: tuple[Column, ...],
        *,
        family: str,
        args: str,
        partition_by: str,
        order_by: str,
        ttl_expr: str,
        comment: str,
        topic: str | None = None,
    ) -> list[Statement]:
        table = self.storage_name(name)
        sql = (
            f"CREATE TABLE IF NOT EXISTS `{self.db}`.`{table}`{self.on_cluster}\n(\n"
            f"{_columns(cols)}\n)\n"
            f"ENGINE = {self.engine(family, table, args)}\n"
            f"PARTITION BY {partition_by}\n"
            f"ORDER BY {order_by}\n"
            f"{self.ttl(ttl_expr)}\n"
            f"SETTINGS ttl_only_drop_parts = 1\n"
            f"COMMENT {quote(comment)}"
        )
        out = [Statement("table", f"{self.db}.{table}", sql, topic)]
        if self.cluster:
            out.append(self.distributed(name, table, topic))
        return out

    def distributed(self, name: str, local: str, topic: str | None) -> Statement:
        c = self.settings.clickhouse
        sql = (
            f"CREATE TABLE IF NOT EXISTS `{self.db}`.`{name}`{self.on_cluster}\n"
            f"AS `{self.db}`.`{local}`\n"
            f"ENGINE = Distributed({quote(c.cluster)}, {quote(self.db)}, {quote(local)}, "
            f"cityHash64(market))"
        )
        return Statement("distributed", f"{self.db}.{name}", sql, topic)

    def target(self, t: TopicSchema) -> list[Statement]:
        cols = t.target
        return self.merge_tree(
            t.topic,
            cols,
            family=t.engine,
            args=t.engine_args,
            partition_by=t.partition_by,
            order_by=t.order_by,
            ttl_expr=t.ttl_column,
            comment=f"{t.topic} events from Kafka, kept {self.settings.clickhouse.ttl_days} days",
            topic=t.topic,
        )

    def errors_table(self) -> list[Statement]:
        table = self.storage_name(ERRORS_TABLE)
        sql = (
            f"CREATE TABLE IF NOT EXISTS `{self.db}`.`{table}`{self.on_cluster}\n(\n"
            f"{_columns(ERRORS_COLUMNS)}\n)\n"
            f"ENGINE = {self.engine('MergeTree', table)}\n"
            f"PARTITION BY toDate(received_at)\n"
            f"ORDER BY (topic, received_at)\n"
            f"{self.ttl('toDateTime(received_at)')}\n"
            "SETTINGS ttl_only_drop_parts = 1\n"
            f"COMMENT 'Kafka messages that did not parse: raw bytes, error, topic/partition/offset'"
        )
        out = [Statement("table", f"{self.db}.{table}", sql)]
        if self.cluster:
            dist = (
                f"CREATE TABLE IF NOT EXISTS `{self.db}`.`{ERRORS_TABLE}`{self.on_cluster}\n"
                f"AS `{self.db}`.`{table}`\n"
                f"ENGINE = Distributed({quote(self.settings.clickhouse.cluster)}, "
                f"{quote(self.db)}, {quote(table)}, rand())"
            )
            out.append(Statement("distributed", f"{self.db}.{ERRORS_TABLE}", dist))
        return out

    def kafka_settings(self, t: TopicSchema) -> list[tuple[str, str]]:
        """The Kafka engine's settings. Isolation needs none: the engine's client, librdkafka,
        consumes with ``isolation.level=read_committed`` by default (the collector writes in
        transactions; aborted copies are never read), and the engine has no table setting
        for it: only a server-wide ``<kafka>`` block could change it, and must not."""
        ch, kafka = self.settings.clickhouse, self.settings.kafka
        brokers = ch.kafka_bootstrap_servers or kafka.bootstrap_servers
        pairs = [
            ("kafka_broker_list", quote(",".join(brokers))),
            ("kafka_topic_list", quote(kafka.topic(t.topic))),
            ("kafka_group_name", quote(ch.consumer_group)),
            ("kafka_format", "'JSONEachRow'"),
            ("kafka_num_consumers", "1"),
            ("kafka_handle_error_mode", "'stream'"),
            ("kafka_flush_interval_ms", "1000"),
            ("input_format_skip_unknown_fields", "1"),
            ("input_format_defaults_for_omitted_fields", "1"),
            ("input_format_null_as_default", "1"),
        ]
        if kafka.security_protocol != "PLAINTEXT":
            pairs.append(("kafka_security_protocol", quote(kafka.security_protocol.lower())))
        if kafka.sasl_mechanism:
            password = reveal(kafka.sasl_password) or ""
            shown = password if self.reveal_secrets or not password else MASK
            pairs += [
                ("kafka_sasl_mechanism", quote(kafka.sasl_mechanism)),
                ("kafka_sasl_username", quote(kafka.sasl_username or "")),
                ("kafka_sasl_password", quote(shown)),
            ]
        return pairs

    def queue(self, t: TopicSchema) -> Statement:
        name = f"{t.topic}_queue"
        settings = ",\n    ".join(f"{k} = {v}" for k, v in self.kafka_settings(t))
        sql = (
            f"CREATE TABLE IF NOT EXISTS `{self.db}`.`{name}`{self.on_cluster}\n(\n"
            f"{_columns(t.queue)}\n)\n"
            f"ENGINE = Kafka\n"
            f"SETTINGS\n    {settings}"
        )
        return Statement("queue", f"{self.db}.{name}", sql, t.topic)

    def materialized_view(
        self, name: str, to: str, select: str, topic: str | None = None
    ) -> Statement:
        sql = (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{self.db}`.`{name}`{self.on_cluster}\n"
            f"TO `{self.db}`.`{to}`\nAS {select}"
        )
        return Statement("mv", f"{self.db}.{name}", sql, topic)

    def topic_views(self, t: TopicSchema) -> list[Statement]:
        queue = f"`{self.db}`.`{t.topic}_queue`"
        # On a cluster rows go through the Distributed table, so a market always lands on
        # the same shard whichever node's consumer read the partition.
        rows = self.materialized_view(
            f"{t.topic}_mv",
            t.topic,
            f"SELECT\n{_selects(t.target)}\nFROM {queue}\nWHERE length(_error) = 0",
            t.topic,
        )
        errors = self.materialized_view(
            f"{t.topic}_errors_mv",
            self.storage_name(ERRORS_TABLE),
            f"SELECT\n{_selects(ERRORS_COLUMNS)}\nFROM {queue}\nWHERE length(_error) > 0",
            t.topic,
        )
        return [rows, errors]

    def ohlcv(self) -> list[Statement]:
        order_key = "(trade_timestamp, sequential_id)"
        cols = (
            Column("market", "LowCardinality(String)"),
            Column("minute", "DateTime('UTC')"),
            Column("open_state", "AggregateFunction(argMin, Float64, Tuple(Int64, Int64))"),
            Column("high", "SimpleAggregateFunction(max, Float64)"),
            Column("low", "SimpleAggregateFunction(min, Float64)"),
            Column("close_state", "AggregateFunction(argMax, Float64, Tuple(Int64, Int64))"),
            Column("volume", "SimpleAggregateFunction(sum, Float64)"),
            Column("quote_volume", "SimpleAggregateFunction(sum, Float64)"),
            Column("trade_count", "SimpleAggregateFunction(sum, UInt64)"),
        )
        table = self.merge_tree(
            OHLCV_AGG,
            cols,
            family="AggregatingMergeTree",
            args="",
            partition_by="toDate(minute)",
            order_by="(market, minute)",
            ttl_expr="minute",
            comment="1-minute OHLCV states per market from trades (read it via ohlcv_1m)",
        )
        # open/close/high/low are idempotent; the sums are not, so duplicates inside one
        # insert are dropped here (LIMIT 1 BY). A trade redelivered in a *later* insert is
        # summed twice in this fast aggregate - ohlcv_1m_exact (from trade FINAL) is exact.
        trades = self.storage_name(TRADE.topic)
        select = (
            "SELECT\n"
            "    market,\n"
            "    toStartOfMinute(toDateTime(trade_ts, 'UTC')) AS minute,\n"
            f"    argMinState(trade_price, {order_key}) AS open_state,\n"
            "    max(trade_price) AS high,\n"
            "    min(trade_price) AS low,\n"
            f"    argMaxState(trade_price, {order_key}) AS close_state,\n"
            "    sum(trade_volume) AS volume,\n"
            "    sum(trade_price * trade_volume) AS quote_volume,\n"
            "    count() AS trade_count\n"
            "FROM\n(\n"
            "    SELECT market, trade_ts, trade_timestamp, sequential_id, trade_price, trade_volume\n"
            f"    FROM `{self.db}`.`{trades}`\n"
            "    LIMIT 1 BY market, sequential_id\n"
            ")\n"
            "GROUP BY market, minute"
        )
        mv = self.materialized_view("ohlcv_1m_mv", self.storage_name(OHLCV_AGG), select)
        return [*table, mv]

    def view(self, name: str, select: str) -> Statement:
        sql = f"CREATE OR REPLACE VIEW `{self.db}`.`{name}`{self.on_cluster}\nAS {select}"
        return Statement("view", f"{self.db}.{name}", sql)

    def read_views(self) -> list[Statement]:
        db = f"`{self.db}`"
        return [
            self.view("ohlcv_1m", _OHLCV_VIEW.format(db=db)),
            self.view("ohlcv_1m_exact", _OHLCV_EXACT_VIEW.format(db=db)),
            self.view("trade_unique", _TRADE_UNIQUE_VIEW.format(db=db)),
            self.view("ticker_latest", _TICKER_LATEST_VIEW.format(db=db)),
            self.view("ingest_freshness", _FRESHNESS_VIEW.format(db=db)),
        ]

    def all(self) -> list[Statement]:
        out = [self.database(), *self.errors_table()]
        for t in TOPICS:
            out += self.target(t)
        out += self.ohlcv()
        for t in TOPICS:
            out.append(self.queue(t))
            out += self.topic_views(t)
        out += self.read_views()
        return out


_OHLCV_VIEW = """SELECT
    market,
    minute AS time,
    argMinMerge(open_state) AS open,
    max(high) AS high,
    min(low) AS low,
    argMaxMerge(close_state) AS close,
    sum(volume) AS volume,
    sum(quote_volume) AS quote_volume,
    if(volume > 0, quote_volume / volume, NULL) AS vwap,
    sum(trade_count) AS trade_count
FROM {db}.`ohlcv_1m_agg`
GROUP BY market, minute"""

# The same candles straight from the trades, each sequential_id once (FINAL), whatever the
# delivery history: exact, and cheap for the ranges a dashboard shows.
_OHLCV_EXACT_VIEW = """SELECT
    market,
    toStartOfMinute(toDateTime(trade_ts, 'UTC')) AS time,
    argMin(trade_price, (trade_timestamp, sequential_id)) AS open,
    max(trade_price) AS high,
    min(trade_price) AS low,
    argMax(trade_price, (trade_timestamp, sequential_id)) AS close,
    sum(trade_volume) AS volume,
    sum(trade_price * trade_volume) AS quote_volume,
    if(volume > 0, quote_volume / volume, NULL) AS vwap,
    count() AS trade_count
FROM {db}.`trade` FINAL
GROUP BY market, time"""

# ReplacingMergeTree only collapses duplicates at merge time; FINAL collapses at read time.
_TRADE_UNIQUE_VIEW = """SELECT *
FROM {db}.`trade` FINAL"""

_TICKER_LATEST_VIEW = """SELECT
    market,
    max(event_ts) AS last_event_ts,
    argMax(trade_price, (event_ts, ingested_at)) AS trade_price,
    argMax(signed_change_rate, (event_ts, ingested_at)) AS signed_change_rate,
    argMax(acc_trade_price_24h, (event_ts, ingested_at)) AS acc_trade_price_24h,
    argMax(acc_trade_volume_24h, (event_ts, ingested_at)) AS acc_trade_volume_24h,
    argMax(market_state, (event_ts, ingested_at)) AS market_state,
    argMax(market_warning, (event_ts, ingested_at)) AS market_warning
FROM {db}.`ticker`
GROUP BY market"""

_FRESHNESS_PART = """SELECT
    '{topic}' AS topic,
    maxOrNull(ingested_at) AS last_ingested_at,
    maxOrNull({time}) AS last_event_at,
    dateDiff('millisecond', maxOrNull(ingested_at), now64(3, 'UTC')) / 1000 AS seconds_since_ingest,
    countIf(ingested_at >= now64(3, 'UTC') - INTERVAL 1 MINUTE) AS rows_last_minute
FROM {{db}}.`{topic}`
WHERE {time} >= now64(3, 'UTC') - INTERVAL 1 DAY"""

_FRESHNESS_VIEW = "\nUNION ALL\n".join(
    _FRESHNESS_PART.format(topic=t.topic, time=t.time_column) for t in TOPICS
)


def render_statements(
    settings: Settings, *, cluster: bool = False, reveal_secrets: bool = False
) -> list[Statement]:
    """Every statement ``ch init`` runs, in dependency order.

    Secrets (the Kafka SASL password the Kafka engine needs) are masked unless
    ``reveal_secrets`` - only :mod:`.apply` asks for them, never ``--print``.
    """
    return _Renderer(settings, cluster, reveal_secrets).all()


def render_script(statements: list[Statement]) -> str:
    """The statements as one SQL script (``ch init --print``)."""
    return "".join(f"-- {s.kind}: {s.name}\n{s.sql};\n\n" for s in statements)
