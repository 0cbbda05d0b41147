"""Exit codes are decided in one place: the root group maps domain errors for every command."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from upbitpipe.cli.main import RootGroup, exit_code_for
from upbitpipe.errors import ConfigError, ServiceUnavailableError, UpbitpipeError


def _app() -> typer.Typer:
    root = typer.Typer(cls=RootGroup)
    group = typer.Typer()

    @group.command("bad-value")
    def bad_value() -> None:
        msg = "lake.warehouse: must not be empty"
        raise ConfigError(msg)

    @group.command("down")
    def down() -> None:
        msg = "kafka: connection refused at 127.0.0.1:1"
        raise ServiceUnavailableError(msg)

    @group.command("ok")
    def ok() -> None:
        typer.echo("fine")

    root.add_typer(group, name="thing")
    return root


def test_exit_codes() -> None:
    assert exit_code_for(ConfigError("x")) == 2
    assert exit_code_for(ServiceUnavailableError("x")) == 1
    assert exit_code_for(UpbitpipeError("x")) == 1


def test_a_nested_command_error_is_one_line_with_its_code() -> None:
    runner = CliRunner()
    bad = runner.invoke(_app(), ["thing", "bad-value"])
    assert bad.exit_code == 2
    assert "error: lake.warehouse: must not be empty" in bad.output
    assert "Traceback" not in bad.output
    down = runner.invoke(_app(), ["thing", "down"])
    assert down.exit_code == 1
    assert "connection refused" in down.output
    assert runner.invoke(_app(), ["thing", "ok"]).exit_code == 0
