"""`upbitpipe sql` engine: lake tables in chDB read exactly as pypaimon's merged read.

The lake (tests/integration/sql_support.py) has half the KRW-BTC trades and books committed
twice in separate snapshots; chDB's own Paimon reader counts them twice, the engine once.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sql_support import REPEATED, LakeContent, fill_lake

from upbitpipe.config import Settings, load_settings
from upbitpipe.lake.read import read_table
from upbitpipe.lake.tables import LAKE_TABLES, ensure_tables, lake_catalog_options
from upbitpipe.query.engine import SqlEngine, one_line, referenced_tables
from upbitpipe.query.errors import LakeEmptyError, LakeMissingError, QueryError, UnknownTableError
from upbitpipe.query.tables import Lake

pytest.importorskip("chdb")


def lake_settings(path: Path) -> Settings:
    return load_settings(overrides={"lake.warehouse": str(path)}, env={}).settings


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, LakeContent]:
    settings = lake_settings(tmp_path_factory.mktemp("sql-lake") / "lake")
    return settings, fill_lake(settings, int(time.time() * 1000))


@pytest.fixture
def engine(lake: tuple[Settings, LakeContent]) -> Iterator[SqlEngine]:
    with SqlEngine(Lake(lake[0])) as eng:
        yield eng


def rows(engine: SqlEngine, sql: str) -> list[dict[str, Any]]:
    result = engine.query(sql)
    assert result is not None
    out: list[dict[str, Any]] = result.to_pylist()
    return out


def naive(row: dict[str, Any]) -> dict[str, Any]:
    """pypaimon gives naive UTC datetimes, chDB aware UTC ones."""
    return {
        k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo else v
        for k, v in row.items()
    }


def test_duplicate_commits_count_once_like_pypaimon(
    lake: tuple[Settings, LakeContent], engine: SqlEngine
) -> None:
    settings, content = lake
    got = {
        r["market"]: r["n"]
        for r in rows(engine, "SELECT market, count() AS n FROM trade GROUP BY market")
    }
    merged = Counter(r["market"] for r in read_table(settings, "trade", ["market"]))
    assert got == dict(merged) == dict(content.trades_per_market())
    keys = rows(engine, "SELECT count() AS n, uniqExact(market, sequential_id) AS u FROM trade")[0]
    assert keys["n"] == keys["u"] == len(content.trades)


def test_chdb_paimon_reader_alone_would_count_the_repeats(
    lake: tuple[Settings, LakeContent], engine: SqlEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the engine reads through pypaimon: paimonLocal does not merge on the key."""
    settings, content = lake
    monkeypatch.chdir(lake_catalog_options(settings)["warehouse"])  # chDB reads under cwd only
    raw = rows(engine, "SELECT count() AS n FROM paimonLocal('upbit.db/trade')")[0]["n"]
    assert raw == len(content.trades) + REPEATED


@pytest.mark.parametrize("name", sorted(LAKE_TABLES))
def test_every_table_equals_the_merged_read(
    lake: tuple[Settings, LakeContent], engine: SqlEngine, name: str
) -> None:
    settings, _ = lake
    layout = LAKE_TABLES[name]
    ours = [naive(r) for r in rows(engine, f"SELECT * FROM {name}")]
    theirs = read_table(settings, name)
    assert ours, f"{name}: the sample lake should have rows"
    assert [list(r) for r in ours[:1]] == [layout.column_names]  # aliases stay out of *

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(str(row[k]) for k in layout.primary_key)

    assert sorted(ours, key=key) == sorted(theirs, key=key)


def test_the_newest_commit_wins(engine: SqlEngine) -> None:
    sources = rows(
        engine,
        "SELECT _source, count() AS n FROM trade WHERE market = 'KRW-BTC' GROUP BY _source ORDER BY _source",
    )
    assert sources == [
        {"_source": "upbit_rest_backfill", "n": REPEATED},
        {"_source": "upbit_websocket", "n": 120 - REPEATED},
    ]


def test_clickhouse_time_columns_are_there_as_aliases(engine: SqlEngine) -> None:
    checked = rows(
        engine,
        "SELECT countIf(toUnixTimestamp64Milli(trade_ts) = trade_timestamp) AS same, count() AS n, "
        "toTypeName(any(trade_ts)) AS kind, countIf(source = _source) AS src FROM trade",
    )[0]
    assert checked["same"] == checked["n"] == checked["src"] > 0
    assert checked["kind"] == "Nullable(DateTime64(3, 'UTC'))"
    assert rows(engine, "SELECT count() AS n FROM ohlcv_1m WHERE time = window_start")[0]["n"] > 0
    assert (
        rows(engine, "SELECT count() AS n FROM upbit.orderbook WHERE event_ts IS NOT NULL")[0]["n"]
        == 120
    )


def test_only_named_tables_are_loaded(engine: SqlEngine) -> None:
    rows(engine, "SELECT count() FROM `ticker_latest`")
    assert engine.loaded == {"ticker_latest"}
    engine.reload()
    assert engine.loaded == frozenset()


def test_a_dropped_table_comes_back_and_writes_stay_in_the_session(
    lake: tuple[Settings, LakeContent], engine: SqlEngine
) -> None:
    settings, content = lake
    engine.query("INSERT INTO trade (dt, market, sequential_id) VALUES ('2026-01-01', 'KRW-X', 1)")
    assert rows(engine, "SELECT count() AS n FROM trade")[0]["n"] == len(content.trades) + 1
    engine.query("DROP TABLE trade")
    assert rows(engine, "SELECT count() AS n FROM trade")[0]["n"] == len(content.trades)
    assert len(read_table(settings, "trade", ["market"])) == len(content.trades)  # lake untouched


def test_referenced_tables_match_words_only() -> None:
    names = ["trade", "ticker", "ticker_latest", "ohlcv_1m"]
    sql = "SELECT trade_price FROM upbit.trade JOIN `ticker_latest` USING market"
    assert referenced_tables(sql, names) == ["trade", "ticker_latest"]


def test_unknown_table_names_the_lake_tables(engine: SqlEngine) -> None:
    with pytest.raises(UnknownTableError) as err:
        engine.query("SELECT * FROM trades")
    message = str(err.value)
    assert "'trades'" in message and "\n" not in message
    assert all(name in message for name in LAKE_TABLES)


def test_bad_sql_gives_clickhouse_message_with_position(engine: SqlEngine) -> None:
    with pytest.raises(QueryError) as err:
        engine.query("SELECT market FROM trade WHERE")
    message = str(err.value)
    assert (
        message.startswith("bad SQL: Syntax error: failed at position 31") and "\n" not in message
    )
    with pytest.raises(QueryError, match="Unknown expression identifier `price`"):
        engine.query("SELECT price FROM trade")


def test_one_line_cuts_the_expected_list() -> None:
    raw = (
        "Code: 62. DB::Exception: Syntax error: failed at position 3 (x): x. Expected one of: "
        + ", ".join(f"t{i}" for i in range(30))
        + ". (SYNTAX_ERROR)"
    )
    text = one_line(raw)
    assert (
        text.startswith("Syntax error: failed at position 3")
        and "t7, ..." in text
        and "t8" not in text
    )


def test_missing_lake(tmp_path: Path) -> None:
    with (
        SqlEngine(Lake(lake_settings(tmp_path / "nowhere"))) as eng,
        pytest.raises(LakeMissingError),
    ):
        eng.query("SELECT 1")


def test_lake_without_tables(tmp_path: Path) -> None:
    os.makedirs(tmp_path / "lake")
    with (
        SqlEngine(Lake(lake_settings(tmp_path / "lake"))) as eng,
        pytest.raises(LakeEmptyError, match="no tables"),
    ):
        eng.query("SELECT count() FROM trade")


def test_tables_without_data_read_as_empty(tmp_path: Path) -> None:
    from pypaimon import CatalogFactory

    settings = lake_settings(tmp_path / "lake")
    (tmp_path / "lake").mkdir()
    ensure_tables(CatalogFactory.create(lake_catalog_options(settings)), "upbit")
    with SqlEngine(Lake(settings)) as eng:
        assert rows(eng, "SELECT count() AS n FROM trade") == [{"n": 0}]
