"""`upbitpipe replay serve`: argument checks in-process (serving itself is tested elsewhere)."""

from __future__ import annotations

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
