"""Config precedence, redaction and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.config import load_settings
from upbitpipe.errors import ConfigError

runner = CliRunner()


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "upbitpipe.yaml"
    path.write_text(text)
    return path


def test_defaults_are_laptop_friendly() -> None:
    s = load_settings(env={}).settings
    assert s.collector.markets == ["KRW-BTC"]
    assert s.collector.sinks == ["lake"]
    assert s.collector.types == ["ticker", "trade", "orderbook"]
    assert str(s.upbit.websocket_url) == "wss://api.upbit.com/websocket/v1"
    assert s.kafka.bootstrap_servers == ["localhost:29092", "localhost:29093", "localhost:29094"]
    assert s.lake.warehouse == "./data/lake"


def test_precedence_flag_over_env_over_yaml_over_default(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "kafka:\n  topic_prefix: yaml-\n  linger_ms: 7\n  partitions: 5\n")
    env = {"UPBITPIPE_KAFKA__TOPIC_PREFIX": "env-", "UPBITPIPE_KAFKA__LINGER_MS": "9"}
    loaded = load_settings(cfg, overrides={"kafka.topic_prefix": "flag-"}, env=env)
    k = loaded.settings.kafka
    assert k.topic_prefix == "flag-"  # flag beats env and yaml
    assert k.linger_ms == 9  # env beats yaml
    assert k.partitions == 5  # yaml beats default
    assert k.replication_factor == 3  # default
    assert loaded.source_of("kafka.topic_prefix") == "flag"
    assert loaded.source_of("kafka.linger_ms") == "env UPBITPIPE_KAFKA__LINGER_MS"
    assert loaded.source_of("kafka.partitions") == f"file {cfg}"
    assert loaded.source_of("kafka.replication_factor") == "default"


def test_config_file_from_env_var_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("lake:\n  database: from_env_file\n")
    assert (
        load_settings(env={"UPBITPIPE_CONFIG": str(other)}).settings.lake.database
        == "from_env_file"
    )
    monkeypatch.chdir(tmp_path)
    write_yaml(tmp_path, "lake:\n  database: from_cwd\n")
    assert load_settings(env={}).settings.lake.database == "from_cwd"


def test_csv_lists_from_env_and_flags() -> None:
    env = {
        "UPBITPIPE_COLLECTOR__MARKETS": "krw-btc, KRW-ETH",
        "UPBITPIPE_COLLECTOR__SINKS": "kafka,lake",
    }
    s = load_settings(env=env, overrides={"collector.types": "trade"}).settings
    assert s.collector.markets == ["KRW-BTC", "KRW-ETH"]
    assert s.collector.sinks == ["kafka", "lake"]
    assert s.collector.types == ["trade"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"UPBITPIPE_UPBIT__WEBSOCKET_URL": "http://x"},
            "upbit.websocket_url: must start with ws://",
        ),
        ({"UPBITPIPE_UPBIT__REST_URL": "not a url"}, "upbit.rest_url:"),
        (
            {"UPBITPIPE_KAFKA__SPOOL_MAX_BYTES": "-5"},
            "kafka.spool_max_bytes: Input should be greater",
        ),
        ({"UPBITPIPE_COLLECTOR__MARKETS": "BTC"}, "collector.markets: 'BTC' is not a market code"),
        ({"UPBITPIPE_COLLECTOR__SINKS": "lake,s3"}, "collector.sinks:"),
        (
            {"UPBITPIPE_KAFKA__BOOTSTRAP_SERVERS": "localhost"},
            "kafka.bootstrap_servers: 'localhost' is not host:port",
        ),
        ({"UPBITPIPE_LAKE__TIMEZONE": "Mars/Base"}, "lake.timezone: unknown time zone"),
        ({"UPBITPIPE_METRICS__PORT": "seventy"}, "metrics.port:"),
        ({"UPBITPIPE_NOPE__X": "1"}, "UPBITPIPE_NOPE__X: unknown environment setting"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_key(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_yaml_key_and_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"collector\.marketz: unknown key"):
        load_settings(write_yaml(tmp_path, "collector:\n  marketz: [KRW-BTC]\n"), env={})
    with pytest.raises(ConfigError, match=r"colector: unknown section"):
        load_settings(write_yaml(tmp_path, "colector:\n  markets: [KRW-BTC]\n"), env={})
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        load_settings(write_yaml(tmp_path, "collector: [\n"), env={})
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_settings(tmp_path / "missing.yaml", env={})


def test_bad_value_from_yaml_names_the_file(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "kafka:\n  partitions: 0\n")
    with pytest.raises(ConfigError, match=rf"kafka\.partitions: .* \[from file {cfg}\]"):
        load_settings(cfg, env={})


def test_cli_bad_value_is_one_line_exit_2_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPBITPIPE_COLLECTOR__MARKETS", "btc")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "collector.markets" in result.output
    assert "UPBITPIPE_COLLECTOR__MARKETS" in result.output


def test_config_show_redacts_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPBITPIPE_S3__SECRET_KEY", "hunter2-very-secret")
    monkeypatch.setenv("UPBITPIPE_CLICKHOUSE__PASSWORD", "ch-pass-123")
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "hunter2-very-secret" not in result.output
        assert "ch-pass-123" not in result.output
        assert "s3.secret_key" in result.output
        assert "**********" in result.output
    settings = load_settings().settings
    assert settings.s3.secret_key is not None
    assert settings.s3.secret_key.get_secret_value() == "hunter2-very-secret"
    assert "hunter2" not in repr(settings)


def test_config_init_writes_a_loadable_commented_file(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "upbitpipe.yaml"
    result = runner.invoke(app, ["config", "init", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "UPBITPIPE_S3__SECRET_KEY" in text  # secrets are pointed to the environment
    assert load_settings(target, env={}).settings == load_settings(env={}).settings
    again = runner.invoke(app, ["config", "init", str(target)])
    assert again.exit_code == 1
    assert "--force" in again.output


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("upbitpipe ")
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Examples" in result.output


def test_local_server_keys_fill_unset_s3_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from upbitpipe.storage.credentials import credentials_file, with_local_s3_keys

    state = tmp_path / "infra"
    creds = credentials_file(state)
    creds.parent.mkdir(parents=True)
    creds.write_text('{"access_key": "local-ak", "secret_key": "local-sk-secret"}')
    env = {"UPBITPIPE_INFRA__STATE_DIR": str(state)}
    filled = with_local_s3_keys(load_settings(env=env))
    assert filled.settings.s3.access_key is not None
    assert filled.settings.s3.access_key.get_secret_value() == "local-ak"
    assert filled.source_of("s3.secret_key").startswith("local server keys")
    explicit = {**env, "UPBITPIPE_S3__ACCESS_KEY": "mine", "UPBITPIPE_S3__SECRET_KEY": "mine-too"}
    kept = with_local_s3_keys(load_settings(env=explicit))
    assert kept.settings.s3.access_key is not None
    assert kept.settings.s3.access_key.get_secret_value() == "mine"
    monkeypatch.setenv("UPBITPIPE_INFRA__STATE_DIR", str(state))
    shown = runner.invoke(app, ["config", "show"])
    assert shown.exit_code == 0 and "local-sk-secret" not in shown.output
    assert "local server keys" in shown.output
