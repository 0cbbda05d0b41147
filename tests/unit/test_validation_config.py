"""Every config value is checked for meaning, with one line naming the key (issue #18)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.config import load_settings
from upbitpipe.errors import ConfigError

runner = CliRunner()


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"UPBITPIPE_LAKE__COMMIT_INTERVAL_SECONDS": "inf"}, "lake.commit_interval_seconds"),
        ({"UPBITPIPE_LAKE__COMMIT_INTERVAL_SECONDS": "nan"}, "lake.commit_interval_seconds"),
        ({"UPBITPIPE_LAKE__COMMIT_INTERVAL_SECONDS": "1e308"}, "lake.commit_interval_seconds"),
        ({"UPBITPIPE_UPBIT__SILENCE_TIMEOUT_SECONDS": "-Infinity"}, "upbit.silence_timeout"),
        ({"UPBITPIPE_UPBIT__REST_PER_SECOND": "-5"}, "upbit.rest_per_second"),
        ({"UPBITPIPE_UPBIT__CONNECT_PER_SECOND": "1e-300"}, "upbit.connect_per_second"),
        ({"UPBITPIPE_COLLECTOR__QUEUE_SIZE": "99999999999999999999999"}, "collector.queue_size"),
        ({"UPBITPIPE_LAKE__WAREHOUSE": ""}, "lake.warehouse"),
        ({"UPBITPIPE_LAKE__WAREHOUSE": "  "}, "lake.warehouse"),
        ({"UPBITPIPE_LAKE__WAREHOUSE": "gs://bucket/wh"}, "lake.warehouse"),
        ({"UPBITPIPE_LAKE__WAREHOUSE": "hdfs://nn/wh"}, "lake.warehouse"),
        ({"UPBITPIPE_LAKE__WAREHOUSE": "s3://"}, "lake.warehouse"),
        ({"UPBITPIPE_COLLECTOR__STATE_DIR": ""}, "collector.state_dir"),
        ({"UPBITPIPE_INFRA__CACHE_DIR": ""}, "infra.cache_dir"),
        ({"UPBITPIPE_METRICS__HOST": ""}, "metrics.host"),
        ({"UPBITPIPE_COLLECTOR": '{"markets": 5}'}, "UPBITPIPE_COLLECTOR"),
    ],
)
def test_meaningless_values_are_one_line_naming_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    message = str(info.value)
    assert message.startswith(key), message
    assert "\n" not in message


@pytest.mark.parametrize(
    "warehouse", ["./data/lake", "/tmp/wh", "file:///tmp/wh", "s3://bucket/wh", "s3a://b/w"]
)
def test_usable_warehouses_pass(warehouse: str) -> None:
    settings = load_settings(env={"UPBITPIPE_LAKE__WAREHOUSE": warehouse}).settings
    assert settings.lake.warehouse == warehouse


def test_duplicate_yaml_key_is_refused_with_its_line(tmp_path: Path) -> None:
    cfg = tmp_path / "upbitpipe.yaml"
    cfg.write_text("lake:\n  database: a\n  buckets: 2\n  database: b\n")
    with pytest.raises(ConfigError, match=r"line 4: .*'database' is given twice"):
        load_settings(cfg, env={})
    cfg.write_text("lake:\n  database: a\nlake:\n  buckets: 2\n")
    with pytest.raises(ConfigError, match="'lake' is given twice"):
        load_settings(cfg, env={})


def test_non_utf8_yaml_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "upbitpipe.yaml"
    cfg.write_bytes(b"lake:\n  database: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(cfg, env={})


@pytest.mark.parametrize("warehouse", ["", "gs://bucket/wh"])
def test_collect_refuses_a_bad_warehouse_before_touching_disk(
    warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["collect", "--warehouse", warehouse, "--duration", "1"])
    assert result.exit_code == 2, result.output
    assert "lake.warehouse" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [], "nothing may be created in the current directory"
