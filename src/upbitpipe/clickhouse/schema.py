"""The ClickHouse side of the data contract, declared as data.

One :class:`TopicSchema` per Kafka topic: the columns of its Kafka-engine queue table (the
JSON fields of one event, typed) and the columns of its MergeTree target table, each with
the expression the materialized view uses to fill it from the queue.

A trade value on the topic looks like this (REST backfill rows lack ``best_*`` and
``stream_type``; missing fields read as the column default, NULL for the Nullable ones)::

    {"market": "KRW-BTC", "trade_price": 143000000.0, "trade_volume": 0.0012,
     "ask_bid": "BID", "prev_closing_price": 142000000.0, "change": "RISE",
     "change_price": 1000000.0, "trade_date": "2026-11-23", "trade_time": "19:04:33",
     "trade_timestamp": 1795460673123, "timestamp": 1795460673150,
     "sequential_id": 17954606731230000, "best_ask_price": 143000000.0,
     "best_ask_size": 0.5, "best_bid_price": 142990000.0, "best_bid_size": 0.7,
     "stream_type": "REALTIME", "_ingested_at": 1795460673170,
     "_source": "upbit_websocket", "_collector": "host-1234"}
"""

from __future__ import annotations

from dataclasses import dataclass

UTC_MS = "DateTime64(3, 'UTC')"


@dataclass(frozen=True)
class Column:
    """A column: name, ClickHouse type and (target tables only) the view expression."""

    name: str
    type: str
    expr: str | None = None

    @property
    def select(self) -> str:
        expr = self.expr or self.name
        return expr if expr == self.name else f"{expr} AS {self.name}"


def _q(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(name, type_) for name, type_ in pairs)


METADATA_QUEUE = _q(("_ingested_at", "Int64"), ("_source", "String"), ("_collector", "String"))

METADATA_TARGET = (
    Column("ingested_at", UTC_MS, "fromUnixTimestamp64Milli(_ingested_at, 'UTC')"),
    Column("source", "LowCardinality(String)", "_source"),
    Column("collector", "LowCardinality(String)", "_collector"),
)

# Virtual columns the Kafka engine adds (``_raw_message``/``_error`` only with
# kafka_handle_error_mode='stream'); the error view reads them.
KAFKA_VIRTUAL_COLUMNS = _q(
    ("_topic", "String"),
    ("_partition", "UInt64"),
    ("_offset", "UInt64"),
    ("_key", "String"),
    ("_raw_message", "String"),
    ("_error", "String"),
)


@dataclass(frozen=True)
class TopicSchema:
    """Queue columns (JSON fields) and target table layout of one topic."""

    topic: str
    queue: tuple[Column, ...]
    target: tuple[Column, ...]
    time_column: str
    order_by: str
    engine: str  # MergeTree family name without "Replicated"
    engine_args: str = ""

    @property
    def partition_by(self) -> str:
        return f"toDate({self.time_column})"

    @property
    def ttl_column(self) -> str:
        return f"toDateTime({self.time_column})"


def _keep(queue: tuple[Column, ...], low_cardinality: frozenset[str]) -> tuple[Column, ...]:
    """Target columns that copy a queue column (strings with few values as LowCardinality)."""
    out = []
    for col in queue:
        if col.name.startswith("_"):
            continue
        type_ = f"LowCardinality({col.type})" if col.name in low_cardinality else col.type
        out.append(Column(col.name, type_))
    return tuple(out)


_LOW = frozenset(
    {"market", "ask_bid", "change", "stream_type", "market_state", "market_warning", "trade_date"}
)

TRADE_QUEUE = (
    _q(
        ("market", "String"),
        ("trade_price", "Float64"),
        ("trade_volume", "Float64"),
        ("ask_bid", "String"),
        ("prev_closing_price", "Float64"),
        ("change", "String"),
        ("change_price", "Float64"),
        ("trade_date", "String"),
        ("trade_time", "String"),
        ("trade_timestamp", "Int64"),
        ("timestamp", "Int64"),
        ("sequential_id", "Int64"),
        ("best_ask_price", "Nullable(Float64)"),
        ("best_ask_size", "Nullable(Float64)"),
        ("best_bid_price", "Nullable(Float64)"),
        ("best_bid_size", "Nullable(Float64)"),
        ("stream_type", "String"),
    )
    + METADATA_QUEUE
)

TICKER_QUEUE = (
    _q(
        ("market", "String"),
        ("opening_price", "Float64"),
        ("high_price", "Float64"),
        ("low_price", "Float64"),
        ("trade_price", "Float64"),
        ("prev_closing_price", "Float64"),
        ("change", "String"),
        ("change_price", "Float64"),
        ("signed_change_price", "Float64"),
        ("change_rate", "Float64"),
        ("signed_change_rate", "Float64"),
        ("trade_volume", "Float64"),
        ("acc_trade_volume", "Float64"),
        ("acc_trade_volume_24h", "Float64"),
        ("acc_trade_price", "Float64"),
        ("acc_trade_price_24h", "Float64"),
        ("trade_date", "String"),
        ("trade_time", "String"),
        ("trade_timestamp", "Int64"),
        ("ask_bid", "String"),
        ("acc_ask_volume", "Float64"),
        ("acc_bid_volume", "Float64"),
        ("highest_52_week_price", "Float64"),
        ("highest_52_week_date", "String"),
        ("lowest_52_week_price", "Float64"),
        ("lowest_52_week_date", "String"),
        ("market_state", "String"),
        ("is_trading_suspended", "Bool"),
        ("delisting_date", "Nullable(String)"),
        ("market_warning", "String"),
        ("timestamp", "Int64"),
        ("stream_type", "String"),
    )
    + METADATA_QUEUE
)

ORDERBOOK_UNIT = "Tuple(ask_price Float64, bid_price Float64, ask_size Float64, bid_size Float64)"

ORDERBOOK_QUEUE = (
    _q(
        ("market", "String"),
        ("timestamp", "Int64"),
        ("total_ask_size", "Float64"),
        ("total_bid_size", "Float64"),
        ("orderbook_units", f"Array({ORDERBOOK_UNIT})"),
        ("level", "Float64"),
        ("stream_type", "String"),
        ("best_ask_price", "Nullable(Float64)"),
        ("best_bid_price", "Nullable(Float64)"),
        ("spread", "Nullable(Float64)"),
    )
    + METADATA_QUEUE
)

_EVENT_TS = Column("event_ts", UTC_MS, "fromUnixTimestamp64Milli(`timestamp`, 'UTC')")
_TRADE_TS = Column("trade_ts", UTC_MS, "fromUnixTimestamp64Milli(trade_timestamp, 'UTC')")

# Which copy of a trade ReplacingMergeTree keeps: the WebSocket one (it has best_* and
# stream_type, the REST backfill copy does not); between equal ranks the last inserted.
_SOURCE_RANK = Column("source_rank", "UInt8", "toUInt8(_source = 'upbit_websocket')")

TRADE = TopicSchema(
    topic="trade",
    queue=TRADE_QUEUE,
    target=(_TRADE_TS, _EVENT_TS, *_keep(TRADE_QUEUE, _LOW), *METADATA_TARGET, _SOURCE_RANK),
    time_column="trade_ts",
    # sequential_id is unique per trade but not ordered: it is the dedup key, not a time key.
    order_by="(market, sequential_id)",
    engine="ReplacingMergeTree",
    engine_args="source_rank",
)

TICKER = TopicSchema(
    topic="ticker",
    queue=TICKER_QUEUE,
    target=(_EVENT_TS, _TRADE_TS, *_keep(TICKER_QUEUE, _LOW), *METADATA_TARGET),
    time_column="event_ts",
    order_by="(market, event_ts)",
    engine="MergeTree",
)

ORDERBOOK = TopicSchema(
    topic="orderbook",
    queue=ORDERBOOK_QUEUE,
    target=(_EVENT_TS, *_keep(ORDERBOOK_QUEUE, _LOW), *METADATA_TARGET),
    time_column="event_ts",
    order_by="(market, event_ts)",
    engine="MergeTree",
)

TOPICS: tuple[TopicSchema, ...] = (TICKER, TRADE, ORDERBOOK)

ERRORS_COLUMNS = (
    Column("received_at", UTC_MS, "now64(3, 'UTC')"),
    Column("topic", "LowCardinality(String)", "_topic"),
    Column("partition", "UInt64", "_partition"),
    Column("offset", "UInt64", "_offset"),
    Column("key", "String", "_key"),
    Column("raw_message", "String", "_raw_message"),
    Column("error", "String", "_error"),
)
