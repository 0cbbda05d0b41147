"""`ch init` DDL: rendered from config, every statement parses and executes in chDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from upbitpipe.clickhouse.ddl import MASK, Statement, render_script, render_statements
from upbitpipe.config import Settings, load_settings

chdb_session = pytest.importorskip("chdb.session")

# chDB embeds the Kafka engine (settings are validated at CREATE) but cannot start its
# background consumers: the table is attached, then CREATE reports this.
CHDB_KAFKA_QUIRK = "Shutdown was called"


def settings_for(database: str, **clickhouse: Any) -> Settings:
    overrides = {"clickhouse.database": database}
    overrides.update({f"clickhouse.{k}": v for k, v in clickhouse.items()})
    return load_settings(env={}, overrides=overrides).settings


@pytest.fixture(scope="module")
def sess(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    session = chdb_session.Session(str(tmp_path_factory.mktemp("chdb-ddl")))
    yield session
    session.close()


def query(sess: Any, sql: str) -> list[list[str]]:
    out = str(sess.query(sql, "TabSeparated"))
    return [line.split("\t") for line in out.splitlines() if line]


def test_statement_order_and_names() -> None:
    stmts = render_statements(settings_for("upbit"))
    names = [s.name for s in stmts]
    assert names[0] == "upbit"
    for topic in ("ticker", "trade", "orderbook"):
        queue, mv, table = f"upbit.{topic}_queue", f"upbit.{topic}_mv", f"upbit.{topic}"
        assert names.index(table) < names.index(queue) < names.index(mv)
        assert names.index("upbit.kafka_errors") < names.index(f"upbit.{topic}_errors_mv")
    assert {
        "upbit.ohlcv_1m_agg",
        "upbit.ohlcv_1m_mv",
        "upbit.ohlcv_1m",
        "upbit.ohlcv_1m_exact",
    } <= set(names)
    assert len(names) == len(set(names))


def test_queue_settings_follow_config() -> None:
    s = settings_for("upbit", consumer_group="grp-1", ttl_days=3)
    s.kafka.topic_prefix = "md."
    queue = next(x for x in render_statements(s) if x.name == "upbit.trade_queue")
    assert "kafka_topic_list = 'md.trade'" in queue.sql
    assert "kafka_group_name = 'grp-1'" in queue.sql
    assert "kafka_handle_error_mode = 'stream'" in queue.sql
    assert "kafka_format = 'JSONEachRow'" in queue.sql
    assert "input_format_skip_unknown_fields = 1" in queue.sql
    assert "kafka_broker_list = 'localhost:29092,localhost:29093,localhost:29094'" in queue.sql
    trade = next(x for x in render_statements(s) if x.name == "upbit.trade")
    assert "INTERVAL 3 DAY" in trade.sql and "ReplacingMergeTree(source_rank)" in trade.sql
    assert "ORDER BY (market, sequential_id)" in trade.sql


def test_clickhouse_broker_list_overrides_kafka_section() -> None:
    s = settings_for("upbit", kafka_bootstrap_servers="kafka-1:9092,kafka-2:9092")
    sql = render_script(render_statements(s))
    assert "kafka_broker_list = 'kafka-1:9092,kafka-2:9092'" in sql
    assert "localhost:29092" not in sql


def test_sasl_password_masked_unless_revealed() -> None:
    s = settings_for("upbit")
    s.kafka.security_protocol = "SASL_SSL"
    s.kafka.sasl_mechanism = "SCRAM-SHA-512"
    s.kafka.sasl_username = "ch"
    s.kafka.sasl_password = SecretStr("s3cr3t-pw")
    printed = render_script(render_statements(s))
    assert "s3cr3t-pw" not in printed and f"kafka_sasl_password = '{MASK}'" in printed
    assert "kafka_security_protocol = 'sasl_ssl'" in printed
    applied = render_script(render_statements(s, reveal_secrets=True))
    assert "kafka_sasl_password = 's3cr3t-pw'" in applied


def test_cluster_variant_is_replicated_and_distributed() -> None:
    s = settings_for("upbit", cluster="two_shards")
    stmts = render_statements(s, cluster=True)
    assert all(" ON CLUSTER 'two_shards'" in x.sql for x in stmts)
    for x in stmts:
        if x.kind == "table":
            assert x.name.endswith("_local"), x.name
            assert "ENGINE = Replicated" in x.sql and "'{replica}'" in x.sql
            assert f"/clickhouse/tables/{{shard}}/upbit/{x.name.split('.')[1]}" in x.sql
    dist = {x.name for x in stmts if x.kind == "distributed"}
    locals_ = {x.name.removesuffix("_local") for x in stmts if x.kind == "table"}
    assert dist == locals_
    trade_mv = next(x for x in stmts if x.name == "upbit.trade_mv")
    assert "TO `upbit`.`trade`\n" in trade_mv.sql  # through Distributed: shard by market
    ohlcv_mv = next(x for x in stmts if x.name == "upbit.ohlcv_1m_mv")
    assert "FROM `upbit`.`trade_local`" in ohlcv_mv.sql


@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
def test_every_statement_parses(sess: Any, cluster: bool) -> None:
    for stmt in render_statements(settings_for("upbit"), cluster=cluster):
        ast = query(sess, f"EXPLAIN AST {stmt.sql}")
        assert ast and ast[0][0].startswith("Create"), (stmt.name, ast[:1])


def execute_all(sess: Any, stmts: list[Statement]) -> None:
    for stmt in stmts:
        try:
            sess.query(stmt.sql)
        except Exception as exc:
            if stmt.kind == "queue" and CHDB_KAFKA_QUIRK in str(exc):
                continue
            msg = f"{stmt.name}: {exc}"
            raise AssertionError(msg) from None


def test_all_ddl_executes_in_chdb_and_is_idempotent(sess: Any) -> None:
    stmts = render_statements(settings_for("ddl_exec"))
    execute_all(sess, stmts)
    execute_all(sess, stmts)  # second run: nothing to do, nothing fails
    tables = dict(
        (name, engine)
        for name, engine in query(
            sess, "SELECT name, engine FROM system.tables WHERE database = 'ddl_exec'"
        )
    )
    assert set(tables) == {s.name.split(".")[1] for s in stmts if s.kind != "database"}
    assert tables["trade_queue"] == "Kafka"
    assert tables["trade"] == "ReplacingMergeTree"
    assert tables["ticker"] == tables["orderbook"] == "MergeTree"
    assert tables["ohlcv_1m_agg"] == "AggregatingMergeTree"
    assert tables["trade_mv"] == "MaterializedView" and tables["ohlcv_1m"] == "View"


def test_kafka_engine_accepts_our_settings_and_exposes_error_columns(sess: Any) -> None:
    """chDB validates Kafka settings at CREATE; the error view binds _error/_raw_message."""
    s = settings_for("ddl_kafka")
    s.kafka.security_protocol = "SASL_PLAINTEXT"
    s.kafka.sasl_mechanism = "PLAIN"
    s.kafka.sasl_username = "u"
    s.kafka.sasl_password = SecretStr("p")
    execute_all(sess, render_statements(s, reveal_secrets=True))
    virtual = query(
        sess,
        "SELECT name FROM system.columns WHERE database = 'ddl_kafka' "
        "AND table = 'trade_queue' AND name LIKE '\\_%'",
    )
    assert ["_ingested_at"] in virtual  # a real column starting with _, not a virtual one
    deps = query(
        sess,
        "SELECT arraySort(dependencies_table) FROM system.tables "
        "WHERE database = 'ddl_kafka' AND name = 'trade_queue'",
    )
    assert deps == [["['trade_errors_mv','trade_mv']"]]
    with pytest.raises(Exception, match="Unexpected value of StreamingHandleErrorMode"):
        sess.query(
            "CREATE TABLE ddl_kafka.bad (a String) ENGINE = Kafka SETTINGS "
            "kafka_broker_list = 'x:1', kafka_topic_list = 't', kafka_group_name = 'g', "
            "kafka_format = 'JSONEachRow', kafka_handle_error_mode = 'bogus'"
        )


def test_print_script_has_every_statement(tmp_path: Path) -> None:
    stmts = render_statements(settings_for("upbit"))
    script = render_script(stmts)
    assert script.count(";\n") == len(stmts)
    for stmt in stmts:
        assert stmt.sql in script
