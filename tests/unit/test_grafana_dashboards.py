"""Grafana provisioning: well-formed files, and every dashboard query runs in chDB.

Each panel query is taken from the dashboard JSON, its Grafana macros are expanded the way
the ClickHouse plugin (v4) expands them, and it runs against the schema `ch init` creates
(Kafka queues swapped for Null tables, sample rows inserted through the real views).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sql_support import trade_event

from upbitpipe.clickhouse.ddl import render_statements
from upbitpipe.clickhouse.schema import KAFKA_VIRTUAL_COLUMNS, TOPICS
from upbitpipe.config import load_settings

chdb_session = pytest.importorskip("chdb.session")

GRAFANA = Path(__file__).resolve().parents[2] / "compose" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROVISIONING = sorted((GRAFANA / "provisioning").rglob("*.yaml"))
DS_UID = "upbit-clickhouse"
INTERVAL_S = 20
NOW_S = int(time.time())
FROM_S, TO_S = NOW_S - 3600, NOW_S + 60


def expand_macros(sql: str) -> str:
    """What the plugin sends to ClickHouse for a 1 h range and a 20 s interval."""
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m[1]} >= toDateTime({FROM_S}) AND {m[1]} <= toDateTime({TO_S})",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\(([^)]+)\)",
        lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {INTERVAL_S} second)",
        sql,
    )
    sql = sql.replace("$__interval_s", str(INTERVAL_S))
    sql = sql.replace("${market:singlequote}", "'KRW-BTC','KRW-ETH'")
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.stem}/{panel['title']}", panel["type"], target["rawSql"]))
    return out


def trade(market: str, seq: int, ts_ms: int, price: float) -> dict[str, Any]:
    return trade_event(market, seq, ts_ms, price, "upbit_websocket")


def sample_events(now_ms: int) -> dict[str, list[dict[str, Any]]]:
    trades, tickers, books = [], [], []
    for i in range(120):  # ten minutes, a trade every 5 s per market
        ts = now_ms - 600_000 + i * 5_000
        trades.append(trade("KRW-BTC", 10_000 + i, ts, 100.0 + 0.01 * (i % 7)))
        tickers.append(
            {
                "market": "KRW-BTC",
                "trade_price": 100.0 + 0.01 * (i % 7),
                "timestamp": ts,
                "trade_timestamp": ts,
                "_ingested_at": ts + 30,
            }
        )
        books.append(
            {
                "market": "KRW-BTC",
                "timestamp": ts,
                "best_ask_price": 101.0,
                "best_bid_price": 99.0,
                "spread": 2.0,
                "_ingested_at": ts + 20,
                "orderbook_units": [
                    {"ask_price": 101.0, "bid_price": 99.0, "ask_size": 1.0, "bid_size": 1.0}
                ],
            }
        )
    # KRW-ETH jumps 3 % within the last minute: the example alert must fire for it.
    trades += [
        trade("KRW-ETH", 1, now_ms - 50_000, 100.0),
        trade("KRW-ETH", 2, now_ms - 10_000, 103.0),
    ]
    return {"trade": trades, "ticker": tickers, "orderbook": books}


@pytest.fixture(scope="module")
def sess(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # "now" is taken when the data is made, not at import: in a full run this module may
    # execute minutes after collection, and the queries compare against now().
    global NOW_S, FROM_S, TO_S
    NOW_S = int(time.time())
    FROM_S, TO_S = NOW_S - 3600, NOW_S + 60
    session = chdb_session.Session(str(tmp_path_factory.mktemp("chdb-grafana")))
    settings = load_settings(env={}).settings  # database "upbit", as the datasource expects
    for stmt in render_statements(settings):
        if stmt.kind == "queue":
            schema = next(t for t in TOPICS if t.topic == stmt.topic)
            cols = ", ".join(
                f"`{c.name}` {c.type}" for c in (*schema.queue, *KAFKA_VIRTUAL_COLUMNS)
            )
            session.query(f"CREATE TABLE upbit.{stmt.topic}_queue ({cols}) ENGINE = Null")
        else:
            session.query(stmt.sql)
    for topic, events in sample_events(NOW_S * 1000).items():
        body = "\n".join(json.dumps(e) for e in events)
        session.query(f"INSERT INTO upbit.{topic}_queue FORMAT JSONEachRow\n{body}")
    session.query(
        "INSERT INTO upbit.trade_queue (_topic, _partition, _offset, _raw_message, _error) "
        "VALUES ('upbit-trade', 0, 7, '{\"market\":', 'Cannot parse JSON')"
    )
    session.query("USE upbit")  # the datasource's defaultDatabase
    yield session
    session.close()


def run(sess: Any, sql: str) -> list[dict[str, Any]]:
    out = str(sess.query(sql, "JSONEachRow"))
    return [json.loads(line) for line in out.splitlines() if line]


def test_there_are_dashboards_with_the_required_panels() -> None:
    titles = {title.split("/", 1)[1] for title, _, _ in panel_queries()}
    for needed in (
        "Price",
        "Candles 1m ($market)",
        "Traded value per minute",
        "Trade rate",
        "Spread",
        "Seconds since last ingest",
    ):
        assert needed in titles


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_json_is_well_formed(path: Path) -> None:
    dash = json.loads(path.read_text())
    assert dash["uid"] and dash["title"] and dash["refresh"] == "5s"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == DS_UID, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DS_UID and target["editorType"] == "sql"
            if panel["type"] == "timeseries":
                assert target["format"] == 0 and target["queryType"] == "timeSeries"


@pytest.mark.parametrize(
    ("title", "ptype", "sql"), [pytest.param(*q, id=q[0]) for q in panel_queries()]
)
def test_panel_query_runs_and_returns_sorted_time(
    sess: Any, title: str, ptype: str, sql: str
) -> None:
    assert re.search(r"\bAS time\b", sql) or re.search(r"^\s+time,$", sql, re.M), title
    assert re.search(r"ORDER BY time\s*$", sql), f"{title}: must end with ORDER BY time"
    expanded = expand_macros(sql)
    rows = run(sess, expanded)
    assert rows, f"{title}: no rows from the sample data"
    times = [r["time"] for r in rows]
    assert times == sorted(times), title
    kind = run(sess, f"SELECT toTypeName(time) AS t FROM ({expanded}) LIMIT 1")[0]["t"]
    assert kind.startswith("DateTime"), f"{title}: time is {kind}, Grafana needs a time type"


@pytest.mark.parametrize("path", PROVISIONING, ids=lambda p: p.name)
def test_provisioning_yaml_is_well_formed(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == 1


def test_datasource_takes_credentials_from_env() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning/datasources/clickhouse.yaml").read_text())
    (ds,) = doc["datasources"]
    assert ds["uid"] == DS_UID and ds["type"] == "grafana-clickhouse-datasource"
    assert ds["secureJsonData"]["password"] == "${CLICKHOUSE_GRAFANA_PASSWORD}"
    for key in ("host", "port", "username", "defaultDatabase"):
        assert re.fullmatch(r"\$\{[A-Z_]+\}", str(ds["jsonData"][key])), key


def test_dashboard_provider_points_at_the_mounted_dir() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning/dashboards/upbitpipe.yaml").read_text())
    assert doc["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_alert_rule_query_runs_and_fires_for_the_jump(sess: Any) -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning/alerting/price-move.yaml").read_text())
    (rule,) = doc["groups"][0]["rules"]
    data = {d["refId"]: d for d in rule["data"]}
    assert rule["condition"] == "C" and data["A"]["datasourceUid"] == DS_UID
    assert data["C"]["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [2]}
    rows = {r["market"]: r["move_pct"] for r in run(sess, data["A"]["model"]["rawSql"])}
    assert rows["KRW-ETH"] == pytest.approx(3.0)
    assert abs(rows.get("KRW-BTC", 0.0)) < 2


def test_freshness_reports_recent_ingest(sess: Any) -> None:
    rows = {r["topic"]: r for r in run(sess, "SELECT * FROM ingest_freshness")}
    assert set(rows) == {"trade", "ticker", "orderbook"}
    assert all(0 <= float(r["seconds_since_ingest"]) < 120 for r in rows.values())


def test_template_variable_queries_run(sess: Any) -> None:
    variables = [
        v for path in DASHBOARDS for v in json.loads(path.read_text())["templating"]["list"]
    ]
    assert [v["name"] for v in variables] == ["market"]
    for var in variables:
        values = [next(iter(r.values())) for r in run(sess, var["query"])]
        assert values == ["KRW-BTC", "KRW-ETH"]
