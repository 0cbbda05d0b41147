"""Presets: one definition with the Grafana dashboards / alert, and each runs on a lake.

The dashboard JSON and alert YAML hold the template rendered with Grafana's macros; the
lake renders the same template with values. Each preset runs against a lake the test fills
(tests/integration/sql_support.py), and its numbers are checked against that ground truth.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sql_support import BTC_TRADES, ETH_MOVE_PCT, SPREAD, LakeContent, fill_lake, trade_event

from upbitpipe.config import Settings, load_settings
from upbitpipe.errors import UpbitpipeError
from upbitpipe.lake.tables import (
    LAKE_TABLES,
    ensure_tables,
    event_to_row,
    lake_catalog_options,
    rows_to_arrow,
)
from upbitpipe.lake.write import commit_arrow
from upbitpipe.query.engine import SqlEngine
from upbitpipe.query.presets import (
    PRESETS,
    Preset,
    PresetParams,
    parse_duration,
    parse_markets,
    partition_floor,
)
from upbitpipe.query.tables import Lake

pytest.importorskip("chdb")

GRAFANA = Path(__file__).resolve().parents[2] / "compose" / "grafana"


def grafana_text(preset: Preset) -> str:
    """The SQL Grafana holds for this preset, read from the provisioned files."""
    if preset.target == "alert":
        doc = yaml.safe_load(
            (GRAFANA / "provisioning/alerting" / preset.grafana_source).read_text()
        )
        (rule,) = [
            r for g in doc["groups"] for r in g["rules"] if r["title"] == preset.grafana_title
        ]
        (query,) = [d for d in rule["data"] if d["datasourceUid"] != "__expr__"]
        text: str = query["model"]["rawSql"]
        return text
    dash = json.loads((GRAFANA / "dashboards" / preset.grafana_source).read_text())
    (panel,) = [p for p in dash["panels"] if p["title"] == preset.grafana_title]
    (target,) = panel["targets"]
    text = target["rawSql"]
    return text


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_dashboard_text_comes_from_the_preset_template(name: str) -> None:
    preset = PRESETS[name]
    assert grafana_text(preset) == preset.render_grafana()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_lake_and_grafana_renderings_differ_only_in_placeholders(name: str) -> None:
    preset = PRESETS[name]
    lake = preset.render_lake(PresetParams(3600, 60, ("KRW-BTC",)))
    assert "$" not in lake and "{" not in lake
    assert f"FROM {preset.lake_table}\n" in lake
    # every line of the template without a placeholder is in both texts, unchanged
    for line in preset.template.splitlines():
        if "{" not in line:
            assert line in lake and line in preset.render_grafana(), line


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, LakeContent]:
    path = tmp_path_factory.mktemp("sql-presets") / "lake"
    settings = load_settings(overrides={"lake.warehouse": str(path)}, env={}).settings
    return settings, fill_lake(settings, int(time.time() * 1000))


@pytest.fixture
def engine(lake: tuple[Settings, LakeContent]) -> Iterator[SqlEngine]:
    with SqlEngine(Lake(lake[0])) as eng:
        yield eng


def run(
    engine: SqlEngine, name: str, since: int = 3600, markets: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    result = engine.query(PRESETS[name].render_lake(PresetParams(since, 60, markets)))
    assert result is not None
    rows: list[dict[str, Any]] = result.to_pylist()
    return rows


def minute_buckets(content: LakeContent, market: str) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in content.trades:
        if t["market"] == market:
            out[t["trade_timestamp"] // 60_000 * 60_000].append(t)
    return out


def test_candles_preset_matches_the_trades(
    lake: tuple[Settings, LakeContent], engine: SqlEngine
) -> None:
    _, content = lake
    rows = run(engine, "candles", markets=("KRW-BTC",))
    expected = minute_buckets(content, "KRW-BTC")
    assert [int(r["time"].timestamp() * 1000) for r in rows] == sorted(expected)
    for row in rows:
        trades = sorted(
            expected[int(row["time"].timestamp() * 1000)],
            key=lambda t: (t["trade_timestamp"], t["sequential_id"]),
        )
        assert row["open"] == trades[0]["trade_price"] and row["close"] == trades[-1]["trade_price"]
        assert row["high"] == max(t["trade_price"] for t in trades)
        assert row["volume"] == pytest.approx(sum(t["trade_volume"] for t in trades))


def test_candles_preset_wants_one_market() -> None:
    with pytest.raises(UpbitpipeError, match="needs one --market"):
        PRESETS["candles"].render_lake(PresetParams(3600))


def test_spread_preset(engine: SqlEngine) -> None:
    rows = run(engine, "spread", markets=("KRW-BTC", "KRW-ETH"))
    assert len(rows) >= 10 and {r["market"] for r in rows} == {"KRW-BTC"}  # books only for BTC
    assert all(r["spread_bps"] == pytest.approx(SPREAD / 100 * 10_000) for r in rows)
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)


def test_volume_by_market_preset(lake: tuple[Settings, LakeContent], engine: SqlEngine) -> None:
    _, content = lake
    rows = run(engine, "volume-by-market")
    got: dict[str, float] = defaultdict(float)
    for r in rows:
        got[r["market"]] += r["traded_krw"]
    for market in ("KRW-BTC", "KRW-ETH"):
        trades = [t for t in content.trades if t["market"] == market]
        assert got[market] == pytest.approx(
            sum(t["trade_price"] * t["trade_volume"] for t in trades)
        )
    assert len([r for r in rows if r["market"] == "KRW-BTC"]) == len(
        minute_buckets(content, "KRW-BTC")
    )


def test_price_move_preset_finds_the_jump(engine: SqlEngine) -> None:
    rows = run(engine, "price-move", since=300)
    moves = {r["market"]: r["move_pct"] for r in rows}
    assert moves["KRW-ETH"] == pytest.approx(ETH_MOVE_PCT)
    assert abs(moves["KRW-BTC"]) < 2
    assert rows[0]["market"] == "KRW-ETH"  # largest move first
    only = run(engine, "price-move", since=300, markets=("KRW-BTC",))
    assert [r["market"] for r in only] == ["KRW-BTC"]


def test_since_bounds_the_rows(engine: SqlEngine) -> None:
    last_two = run(engine, "volume-by-market", since=120, markets=("KRW-BTC",))
    everything = run(engine, "volume-by-market", since=86_400, markets=("KRW-BTC",))
    assert 1 <= len(last_two) <= 3 < len(everything) <= BTC_TRADES * 5 // 60 + 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172_800), ("1w", 604_800), ("45", 45)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text, "--since") == seconds


@pytest.mark.parametrize("text", ["", "0m", "1y", "-5m", "m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UpbitpipeError, match="--since"):
        parse_duration(text, "--since")


def test_parse_markets() -> None:
    assert parse_markets(["krw-btc,KRW-ETH", "KRW-BTC"]) == ("KRW-BTC", "KRW-ETH")
    with pytest.raises(UpbitpipeError, match="not a market code"):
        parse_markets(["BTC'; DROP TABLE trade; --"])


def test_partition_floor() -> None:
    now = datetime(2026, 11, 28, 0, 30, tzinfo=UTC)
    assert partition_floor(3600, "UTC", now) == "2026-11-26"  # 23:30 the day before, minus a day
    assert partition_floor(60, "Asia/Seoul", now) == "2026-11-27"  # 09:29 KST, minus a day


def test_a_preset_reads_only_the_partitions_of_its_range(tmp_path: Path) -> None:
    from pypaimon import CatalogFactory

    settings = load_settings(overrides={"lake.warehouse": str(tmp_path / "lake")}, env={}).settings
    (tmp_path / "lake").mkdir()
    catalog = CatalogFactory.create(lake_catalog_options(settings))
    ensure_tables(catalog, "upbit")
    now_ms = int(time.time() * 1000)
    layout = LAKE_TABLES["trade"]
    events = [
        trade_event("KRW-BTC", i, now_ms - 5 * 86_400_000 + i, 100.0, "upbit_websocket")
        for i in range(50)
    ]
    events += [
        trade_event("KRW-BTC", 100 + i, now_ms - 30_000 + i, 100.0 + i, "upbit_websocket")
        for i in range(3)
    ]
    rows = [event_to_row(layout, e, UTC) for e in events]
    commit_arrow(
        catalog.get_table("upbit.trade"), rows_to_arrow(layout, rows), layout.partition_keys
    )
    sql = PRESETS["price-move"].render_lake(PresetParams(300))
    answers, counts = [], []
    for floor in (partition_floor(300, "UTC"), None):  # chDB holds one engine at a time
        with SqlEngine(Lake(settings), floor) as eng:
            answers.append(eng.query(sql))
            counts.append(eng.query("SELECT count() AS n FROM trade").to_pylist())  # type: ignore[union-attr]
    assert answers[0] == answers[1] and answers[0] is not None and answers[0].num_rows == 1
    assert counts == [[{"n": 3}], [{"n": 53}]]  # the old partition was not read
