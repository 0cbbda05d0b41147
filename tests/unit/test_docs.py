"""Docs guarded by tests: the config reference is current, every command is in the README."""

from __future__ import annotations

from pathlib import Path

import typer.main

from upbitpipe.cli.main import app
from upbitpipe.config import Settings
from upbitpipe.config_template import render_config_reference

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_up_to_date() -> None:
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == render_config_reference(), (
        "docs/configuration.md is stale: run `python -m upbitpipe.config_template > docs/configuration.md`"
    )


def test_every_command_appears_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    group = typer.main.get_group(app)
    missing = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            missing += [
                f"{name} {sub}" for sub in subcommands if f"upbitpipe {name} {sub}" not in readme
            ]
        elif f"upbitpipe {name}" not in readme:
            missing.append(name)
    assert not missing, f"commands not documented in README.md: {missing}"


def test_keys_other_tools_rely_on_exist() -> None:
    settings = Settings()
    for dotted in (
        "upbit.websocket_url",
        "upbit.rest_url",
        "collector.markets",
        "collector.types",
        "collector.sinks",
        "collector.state_dir",
        "infra.state_dir",
        "infra.runtime",
        "kafka.bootstrap_servers",
        "kafka.topic_prefix",
        "lake.warehouse",
        "lake.database",
        "s3.endpoint",
        "s3.access_key",
        "s3.secret_key",
        "flink.rest_url",
        "flink.parallelism",
        "clickhouse.host",
        "clickhouse.port",
        "clickhouse.user",
        "clickhouse.password",
    ):
        section, key = dotted.split(".")
        assert key in type(getattr(settings, section)).model_fields, dotted
