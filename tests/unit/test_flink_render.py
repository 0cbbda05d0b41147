"""Rendering the Flink SQL templates: values from config, secrets never shown, job config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.config import Settings, load_settings
from upbitpipe.errors import ConfigError
from upbitpipe.flink.render import (
    MASK,
    PIPELINE_FILES,
    Value,
    render_files,
    render_text,
    resolve_files,
    scrub,
    secret_strings,
)
from upbitpipe.flink.submit import SubmitOptions, build_request, job_config

ACCESS = "AKIAEXAMPLEACCESS"
SECRET = "s3cr3t-'quoted'-value"
SASL = "kafka-pa55word"


def _settings(**extra: Any) -> Settings:
    flat: dict[str, Any] = {
        "lake.warehouse": "s3://upbit-lake/warehouse",
        "s3.endpoint": "http://127.0.0.1:9000",
        "s3.access_key": ACCESS,
        "s3.secret_key": SECRET,
        "kafka.bootstrap_servers": "k1:9092,k2:9092",
        "kafka.topic_prefix": "x-",
        "flink.consumer_group": "grp",
        **extra,
    }
    return load_settings(overrides=flat, env={}).settings


def _render(settings: Settings, **kw: Any) -> list[Any]:
    return render_files(resolve_files(["all"], settings), settings, **kw)


def test_all_is_the_pipeline_in_order() -> None:
    settings = _settings()
    assert [p.name for p in resolve_files(["all"], settings)] == list(PIPELINE_FILES)


def test_catalog_file_always_first() -> None:
    settings = _settings()
    assert [p.name for p in resolve_files(["05-queries.sql"], settings)] == [
        "01-create-catalogs.sql",
        "05-queries.sql",
    ]


def test_unknown_file() -> None:
    with pytest.raises(ConfigError, match="no SQL file 'nope.sql'"):
        resolve_files(["nope.sql"], _settings())


def test_secrets_only_in_the_real_sql() -> None:
    statements = _render(_settings())
    real = "\n".join(s.statement.sql for s in statements)
    shown = "\n".join(s.display for s in statements)
    assert ACCESS in real and "s3cr3t-''quoted''-value" in real
    assert ACCESS not in shown and "s3cr3t" not in shown
    assert f"'s3.secret-key' = '{MASK}'" in shown
    assert "'s3.path.style.access' = 'true'" in shown
    assert "'s3.endpoint' = 'http://127.0.0.1:9000'" in shown


def test_sasl_password_masked() -> None:
    settings = _settings(
        **{
            "kafka.security_protocol": "SASL_PLAINTEXT",
            "kafka.sasl_mechanism": "SCRAM-SHA-512",
            "kafka.sasl_username": "bob",
            "kafka.sasl_password": SASL,
        }
    )
    statements = _render(settings)
    shown = "\n".join(s.display for s in statements)
    real = "\n".join(s.statement.sql for s in statements)
    assert SASL in real and SASL not in shown
    assert 'ScramLoginModule required username="bob"' in shown
    assert SASL in secret_strings(settings)


def test_kafka_sources_rendered() -> None:
    statements = _render(_settings(**{"flink.watermark_delay_seconds": 7}), bounded=True)
    trade = next(s.display for s in statements if "`kafka_trade`" in s.display.splitlines()[0])
    assert "'topic' = 'x-trade'" in trade
    assert "'properties.bootstrap.servers' = 'k1:9092,k2:9092'" in trade
    assert "'properties.group.id' = 'grp'" in trade
    assert "'scan.bounded.mode' = 'latest-offset'" in trade
    assert "'json.ignore-parse-errors' = 'true'" in trade
    assert "INTERVAL '7' SECOND" in trade
    assert "TO_TIMESTAMP_LTZ(`trade_timestamp`, 3)" in trade


def test_unbounded_by_default() -> None:
    assert not any("scan.bounded.mode" in s.display for s in _render(_settings()))


def test_statement_set_has_every_sink() -> None:
    statements = _render(_settings())
    (stmt_set,) = [s for s in statements if s.statement.kind == "statement_set"]
    targets = [ins.split("`")[5] for ins in stmt_set.statement.inserts]
    assert targets == ["trade", "ticker", "orderbook", "ticker_latest", "ohlcv_1m"]
    candles = stmt_set.statement.inserts[-1]
    # an updating aggregate over deduplicated trades, no window closed by the watermark
    assert "TUMBLE" not in candles and "PARTITION BY `market`, `sequential_id`" in candles
    assert "GROUP BY `dt`, `market`, `window_start`" in candles


def test_paimon_ddl_from_lake_tables() -> None:
    statements = _render(_settings(**{"lake.buckets": 3, "lake.database": "mkt"}))
    ddl = [s.display for s in statements if s.file == "03-create-paimon-tables.sql"]
    assert len(ddl) == 5
    assert all("'bucket' = '3'" in d for d in ddl)
    assert ddl[0].startswith("CREATE TABLE IF NOT EXISTS `lake`.`mkt`.`trade`")


def test_dt_in_configured_time_zone() -> None:
    utc = "\n".join(s.display for s in _render(_settings()))
    assert "DATE_FORMAT(`event_time`, 'yyyy-MM-dd') AS `dt`" in utc
    seoul = "\n".join(s.display for s in _render(_settings(**{"lake.timezone": "Asia/Seoul"})))
    assert (
        "CONVERT_TZ(DATE_FORMAT(`event_time`, 'yyyy-MM-dd HH:mm:ss'), 'UTC', 'Asia/Seoul')" in seoul
    )


def test_local_warehouse_is_absolute(tmp_path: Path) -> None:
    settings = _settings(**{"lake.warehouse": "rel/lake"})
    catalog = _render(settings)[0].display
    assert "'warehouse' = '/" in catalog
    assert "s3.endpoint" not in catalog


def test_unknown_placeholder_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"mine.sql:2: unknown placeholder \{\{ nope \}\}"):
        render_text("SELECT 1;\nSELECT {{ nope }};", {}, source="mine.sql")


def test_render_text_pairs() -> None:
    out = render_text("a {{ k }} b {{k}}", {"k": Value("real", "shown")})
    assert out == Value("a real b real", "a shown b shown")


def test_own_sql_dir(tmp_path: Path) -> None:
    (tmp_path / "01-create-catalogs.sql").write_text("CREATE CATALOG c WITH ('type'='paimon');")
    (tmp_path / "09-mine.sql").write_text("SELECT '{{ database }}';")
    settings = _settings(**{"flink.sql_dir": str(tmp_path)})
    statements = render_files(resolve_files(["09-mine.sql"], settings), settings)
    assert [s.display for s in statements] == [
        "CREATE CATALOG c WITH ('type'='paimon')",
        "SELECT 'upbit'",
    ]


def test_scrub() -> None:
    assert scrub(f"bad key {SECRET}!", [SECRET]) == f"bad key {MASK}!"


def test_job_config_from_settings() -> None:
    settings = _settings(
        **{
            "flink.parallelism": 2,
            "flink.checkpoint_interval": "30 s",
            "flink.rest_url": "http://jm:18081",
            "flink.checkpoint_dir": "/var/ckpt",
        }
    )
    remote = job_config(settings, SubmitOptions())
    assert remote["parallelism.default"] == "2"
    assert remote["execution.checkpointing.interval"] == "30 s"
    assert remote["restart-strategy.type"] == "exponential-delay"
    assert remote["execution.target"] == "remote"
    assert (remote["rest.address"], remote["rest.port"]) == ("jm", "18081")
    assert remote["execution.checkpointing.dir"] == "file:///var/ckpt"
    assert remote["execution.checkpointing.savepoint-dir"] == "file:///var/ckpt/savepoints"
    assert remote["state.backend.type"] == "rocksdb"
    assert remote["execution.checkpointing.incremental"] == "true"
    assert remote["table.exec.state.ttl"] == "7 d"
    assert remote["table.exec.uid.generation"] == "ALWAYS"
    assert "execution.savepoint.path" not in remote
    local = job_config(settings, SubmitOptions(local=True, parallelism=1))
    assert "execution.target" not in local and local["parallelism.default"] == "1"


def test_job_state_on_s3_next_to_the_lake() -> None:
    settings = _settings(**{"lake.warehouse": "s3://my-lake/wh"})
    remote = job_config(settings, SubmitOptions(restore_from="s3://my-lake/flink/savepoints/sp-1"))
    assert remote["execution.checkpointing.dir"] == "s3://my-lake/flink/checkpoints"
    assert remote["execution.checkpointing.savepoint-dir"] == "s3://my-lake/flink/savepoints"
    assert remote["execution.savepoint.path"] == "s3://my-lake/flink/savepoints/sp-1"
    no_s3 = job_config(settings, SubmitOptions(), cluster_has_s3=False)
    assert "execution.checkpointing.dir" not in no_s3
    assert no_s3["state.backend.type"] == "rocksdb"
    # a local mini-cluster keeps its in-memory defaults
    local = job_config(settings, SubmitOptions(local=True))
    assert "state.backend.type" not in local and "execution.checkpointing.dir" not in local


def test_pipeline_job_is_named_after_its_lake() -> None:
    settings = _settings(**{"lake.warehouse": "s3://my-lake/wh/"})
    request = build_request(_render(settings), settings, SubmitOptions())
    assert request["config"]["pipeline.name"] == "upbitpipe: kafka -> paimon s3://my-lake/wh/upbit"


def test_request_carries_statement_set() -> None:
    settings = _settings()
    request = build_request(_render(settings), settings, SubmitOptions(local=True))
    kinds = [step["kind"] for step in request["steps"]]
    assert kinds[-1] == "statement_set" and set(kinds[:-1]) == {"ddl"}
    assert len(request["steps"][-1]["inserts"]) == 5
    assert request["wait"] is True


def test_cli_dry_run_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPBITPIPE_LAKE__WAREHOUSE", "s3://upbit-lake/wh")
    monkeypatch.setenv("UPBITPIPE_S3__ACCESS_KEY", ACCESS)
    monkeypatch.setenv("UPBITPIPE_S3__SECRET_KEY", "topsecretvalue")
    result = CliRunner().invoke(app, ["flink", "submit", "all", "--dry-run", "--bounded"])
    assert result.exit_code == 0, result.output
    assert "topsecretvalue" not in result.output and ACCESS not in result.output
    assert "EXECUTE STATEMENT SET BEGIN" in result.output
    assert "-- 04-streaming-jobs.sql:5 (statement_set)" in result.output


def test_cli_help_has_examples() -> None:
    for args in (["flink", "submit", "--help"], ["flink", "jobs", "--help"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0
        assert "Examples" in result.output and "upbitpipe flink" in result.output


def test_shipped_templates_are_the_top_level_flink_sql_folder() -> None:
    # the source tree's flink-sql/ is what `pip install -e` and the wheel serve (setup.py maps
    # it to the package upbitpipe.flink.sql); every template must be there
    from upbitpipe.flink.render import TEMPLATE_FILES, default_sql_dir

    top = Path(__file__).resolve().parents[2] / "flink-sql"
    assert default_sql_dir().resolve() == top.resolve()
    assert {p.name for p in top.glob("*.sql")} == set(TEMPLATE_FILES)
