"""`upbitpipe replay serve`: argument checks in-process (serving itself is tested elsewhere)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app

runner = CliRunner()


def test_help_has_examples() -> None:
    result = runner.invoke(app, ["replay", "serve", "--help"])
    assert result.exit_code == 0, result.output
    assert "upbitpipe replay serve --synthetic" in result.output
    assert "--drop-after-messages" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "capture FILE or --synthetic"),
        (["--synthetic", "missing.jsonl.gz"], "capture FILE or --synthetic"),
        (["missing.jsonl.gz"], "does not exist"),
        (["--synthetic", "--speed", "2"], "--speed applies to a capture"),
        (["--synthetic", "--duplicate-rate", "2"], "duplicate_rate"),
        (["--synthetic", "--port", "70000"], "port"),
    ],
)
def test_bad_arguments_fail_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", "serve", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_busy_port_is_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = runner.invoke(app, ["replay", "serve", "--synthetic", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert "cannot listen" in result.output
    assert "Traceback" not in result.output
