"""The lake layout: schemas, DDL, event -> row, and dedupe proven with pypaimon on local disk."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from pydantic import SecretStr

from upbitpipe.config import Settings
from upbitpipe.lake.tables import (
    LAKE_TABLES,
    LakeRowError,
    LakeSchemaError,
    LakeTable,
    ensure_tables,
    event_dt,
    event_to_row,
    lake_catalog_options,
    rows_to_arrow,
)

UTC = ZoneInfo("UTC")
SEOUL = ZoneInfo("Asia/Seoul")
TS = 1_700_000_000_000  # 2023-11-14T22:13:20Z = 2023-11-15 07:13:20 KST


def _trade(seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "trade",
        "code": "KRW-BTC",
        "market": "KRW-BTC",
        "trade_price": 50_000_000.0,
        "trade_volume": 0.01,
        "ask_bid": "BID",
        "trade_timestamp": TS + seq,
        "timestamp": TS + seq + 5,
        "sequential_id": seq,
        "_ingested_at": TS + seq + 9,
        "_source": "upbit_websocket",
        "_collector": "c1",
        **extra,
    }


def _catalog(tmp_path: Path) -> Any:
    from pypaimon import CatalogFactory

    return CatalogFactory.create({"warehouse": str(tmp_path / "wh")})


def _write(catalog: Any, name: str, rows: list[dict[str, Any]]) -> None:
    table = catalog.get_table(f"upbit.{name}")
    builder = table.new_batch_write_builder()
    write, commit = builder.new_write(), builder.new_commit()
    try:
        write.write_arrow(rows_to_arrow(LAKE_TABLES[name], rows))
        commit.commit(write.prepare_commit())
    finally:
        write.close()
        commit.close()


def _read(catalog: Any, name: str) -> list[dict[str, Any]]:
    table = catalog.get_table(f"upbit.{name}")
    rb = table.new_read_builder()
    result: list[dict[str, Any]] = rb.new_read().to_arrow(rb.new_scan().plan().splits()).to_pylist()
    return result


def test_every_table_has_dt_partition_except_latest() -> None:
    for name, table in LAKE_TABLES.items():
        if name == "ticker_latest":
            assert table.partition_keys == ()
            assert table.primary_key == ("market",)
        else:
            assert table.partition_keys == ("dt",)
            assert table.primary_key[0] == "dt"


def test_metadata_columns_on_event_tables() -> None:
    for name in ("trade", "ticker", "orderbook", "ticker_latest"):
        assert {"_ingested_at", "_source", "_collector"} <= set(LAKE_TABLES[name].column_names)


def test_arrow_schema_keys_not_null() -> None:
    schema = LAKE_TABLES["trade"].arrow_schema()
    assert not schema.field("sequential_id").nullable
    assert not schema.field("dt").nullable
    assert schema.field("trade_price").nullable
    assert schema.field("trade_price").type == pa.float64()


def test_flink_ddl_shape() -> None:
    ddl = LAKE_TABLES["trade"].flink_ddl("lake", "upbit", buckets=4)
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS `lake`.`upbit`.`trade` (")
    assert "PRIMARY KEY (`dt`, `market`, `sequential_id`) NOT ENFORCED" in ddl
    assert "PARTITIONED BY (`dt`)" in ddl
    assert "'bucket' = '4'" in ddl
    assert "'merge-engine' = 'deduplicate'" in ddl
    assert "`sequential_id` BIGINT NOT NULL" in ddl
    latest = LAKE_TABLES["ticker_latest"].flink_ddl("lake", "upbit")
    assert "PARTITIONED BY" not in latest
    assert "'sequence.field' = 'timestamp'" in latest


def test_layout_validation() -> None:
    cols = LAKE_TABLES["ohlcv_1m"].columns
    with pytest.raises(ValueError, match="not columns"):
        LakeTable("x", cols, ("nope",))
    with pytest.raises(ValueError, match="must contain the partition"):
        LakeTable("x", cols, ("market",), partition_keys=("dt",))


def test_event_dt_uses_time_zone() -> None:
    assert event_dt(TS, UTC) == "2023-11-14"
    assert event_dt(TS, SEOUL) == "2023-11-15"


def test_event_to_row_trade() -> None:
    row = event_to_row(LAKE_TABLES["trade"], _trade(7, trade_volume=3), SEOUL)
    assert row["dt"] == "2023-11-15"
    assert row["trade_volume"] == 3.0 and isinstance(row["trade_volume"], float)
    assert row["sequential_id"] == 7
    assert "type" not in row and "code" not in row
    assert row["best_ask_price"] is None


def test_event_to_row_market_from_code() -> None:
    event = _trade(1)
    del event["market"]
    assert event_to_row(LAKE_TABLES["trade"], event, UTC)["market"] == "KRW-BTC"


@pytest.mark.parametrize(
    ("field", "value"),
    [("sequential_id", None), ("trade_timestamp", None), ("sequential_id", "abc")],
)
def test_event_to_row_rejects_bad_keys(field: str, value: Any) -> None:
    with pytest.raises(LakeRowError, match=r"trade"):
        event_to_row(LAKE_TABLES["trade"], _trade(1, **{field: value}), UTC)


def test_event_to_row_candle_window_start() -> None:
    start = datetime(2023, 11, 14, 15, 30, tzinfo=UTC)
    row = event_to_row(
        LAKE_TABLES["ohlcv_1m"],
        {"market": "KRW-BTC", "window_start": start, "window_end": start.timestamp() * 1000},
        SEOUL,
    )
    assert row["dt"] == "2023-11-15"
    assert row["window_start"] == start.replace(tzinfo=None)  # naive UTC wall clock


def test_local_catalog_options_absolute(tmp_path: Path) -> None:
    settings = Settings.model_validate({"lake": {"warehouse": "rel/lake"}})
    opts = lake_catalog_options(settings)
    assert Path(opts["warehouse"]).is_absolute()
    assert set(opts) == {"warehouse"}


def test_s3_catalog_options() -> None:
    settings = Settings.model_validate(
        {
            "lake": {"warehouse": "s3://upbit-lake/warehouse"},
            "s3": {
                "endpoint": "http://127.0.0.1:9123",
                "access_key": SecretStr("AK"),
                "secret_key": SecretStr("SK"),
            },
        }
    )
    assert lake_catalog_options(settings) == {
        "warehouse": "s3://upbit-lake/warehouse",
        "s3.endpoint": "http://127.0.0.1:9123",
        "s3.path.style.access": "true",
        "s3.region": "us-east-1",
        "s3.access-key": "AK",
        "s3.secret-key": "SK",
    }


def test_ensure_tables_idempotent(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    assert ensure_tables(catalog, "upbit") == list(LAKE_TABLES)
    assert ensure_tables(catalog, "upbit") == []


def test_ensure_tables_detects_other_layout(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    trade = LAKE_TABLES["trade"]
    other = LakeTable("trade", trade.columns[:-1], trade.primary_key)
    ensure_tables(catalog, "upbit", [other])
    with pytest.raises(LakeSchemaError, match="another layout"):
        ensure_tables(catalog, "upbit", [trade])


def test_trade_redelivery_stored_once(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    ensure_tables(catalog, "upbit")
    table = LAKE_TABLES["trade"]
    first = [event_to_row(table, _trade(i), UTC) for i in range(5)]
    again = [event_to_row(table, _trade(i, _source="upbit_rest_backfill"), UTC) for i in (1, 3)]
    _write(catalog, "trade", first)
    _write(catalog, "trade", again + [first[0]])
    rows = _read(catalog, "trade")
    assert sorted(r["sequential_id"] for r in rows) == [0, 1, 2, 3, 4]


def test_ticker_history_keeps_same_millisecond_events(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    ensure_tables(catalog, "upbit")
    base = {"market": "KRW-BTC", "timestamp": TS, "trade_timestamp": TS, "trade_price": 1.0}
    events = [
        {**base, "acc_trade_volume": 10.0},
        {**base, "acc_trade_volume": 10.5},  # a second trade in the same millisecond
        {**base, "acc_trade_volume": 10.0},  # exact re-delivery of the first
        {**base, "timestamp": TS - 1000, "acc_trade_volume": 9.0, "trade_price": 0.5},
    ]
    for name in ("ticker", "ticker_latest"):
        _write(catalog, name, [event_to_row(LAKE_TABLES[name], e, UTC) for e in events])
    assert sorted(r["acc_trade_volume"] for r in _read(catalog, "ticker")) == [9.0, 10.0, 10.5]
    latest = _read(catalog, "ticker_latest")
    assert len(latest) == 1
    assert latest[0]["timestamp"] == TS  # newest by exchange time although it arrived first


def test_orderbook_units_round_trip(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    ensure_tables(catalog, "upbit")
    units = [{"ask_price": 10, "bid_price": 9, "ask_size": 1.5, "bid_size": 2.5}]
    book = {
        "market": "KRW-BTC",
        "timestamp": TS,
        "total_ask_size": 1.5,
        "total_bid_size": 2.5,
        "orderbook_units": units,
        "best_ask_price": 10,
        "best_bid_price": 9,
        "spread": 1,
    }
    table = LAKE_TABLES["orderbook"]
    rows = [event_to_row(table, book, UTC), event_to_row(table, book, UTC)]
    rows.append(event_to_row(table, {**book, "total_bid_size": 3.0}, UTC))
    _write(catalog, "orderbook", rows)
    out = sorted(_read(catalog, "orderbook"), key=lambda r: r["total_bid_size"])
    assert len(out) == 2
    assert out[0]["orderbook_units"] == [
        {"ask_price": 10.0, "bid_price": 9.0, "ask_size": 1.5, "bid_size": 2.5}
    ]
