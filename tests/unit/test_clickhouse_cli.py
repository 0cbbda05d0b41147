"""`upbitpipe ch init`: --print output, and one clear line when the server is not there."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from clickhouse_driver.errors import NetworkError, ServerException
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.clickhouse.apply import ClickHouseDDLError, apply_statements
from upbitpipe.clickhouse.ddl import render_statements
from upbitpipe.config import load_settings
from upbitpipe.errors import AuthError, ServiceUnavailableError

runner = CliRunner()
SECRETS = {
    "UPBITPIPE_CLICKHOUSE__PASSWORD": "ch-pass-123",
    "UPBITPIPE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "UPBITPIPE_KAFKA__SASL_MECHANISM": "PLAIN",
    "UPBITPIPE_KAFKA__SASL_USERNAME": "clickhouse",
    "UPBITPIPE_KAFKA__SASL_PASSWORD": "sasl-pass-456",
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
def test_print_shows_every_statement_and_no_secret(cluster: bool) -> None:
    args = ["ch", "init", "--print"] + (["--cluster"] if cluster else [])
    result = runner.invoke(app, args, env=SECRETS)
    assert result.exit_code == 0, result.output
    settings = load_settings(env=SECRETS).settings
    for stmt in render_statements(settings, cluster=cluster):
        assert stmt.sql in result.stdout, stmt.name
    assert "ch-pass-123" not in result.output and "sasl-pass-456" not in result.output
    assert "kafka_sasl_password = '**********'" in result.stdout


def test_unreachable_server_is_one_line_and_exit_1() -> None:
    port = closed_port()
    args = ["ch", "init", "--host", "127.0.0.1", "--port", str(port), "--connect-timeout", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"127.0.0.1:{port} is unreachable" in lines[0]


def test_help_has_examples() -> None:
    result = runner.invoke(app, ["ch", "init", "--help"])
    assert result.exit_code == 0
    assert "upbitpipe ch init --print" in result.output and "--cluster" in result.output


class FakeClient:
    """Records statements; raises ``fail_with`` on statement number ``fail_at``."""

    def __init__(self, fail_at: int = -1, fail_with: Exception | None = None) -> None:
        self.executed: list[str] = []
        self.fail_at, self.fail_with = fail_at, fail_with
        self.closed = False

    def execute(self, query: str) -> Any:
        if len(self.executed) == self.fail_at and self.fail_with is not None:
            raise self.fail_with
        self.executed.append(query)
        return []

    def disconnect(self) -> None:
        self.closed = True


def test_apply_runs_statements_in_order() -> None:
    settings = load_settings(env={}).settings
    stmts = render_statements(settings)
    client = FakeClient()
    seen: list[str] = []
    count = apply_statements(
        stmts, settings.clickhouse, client=client, on_applied=lambda s: seen.append(s.name)
    )
    assert count == len(stmts) and client.executed == [s.sql for s in stmts]
    assert seen == [s.name for s in stmts]


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (
            ServerException(
                "DB::Exception: default: Authentication failed: password is incorrect.\nStack trace:\n0. x",
                code=516,
            ),
            AuthError,
            "refused user 'default'",
        ),
        (
            ServerException("DB::Exception: Syntax error", code=62),
            ClickHouseDDLError,
            "rejected database upbit",
        ),
        (
            NetworkError("Code: 210. Connection reset by peer (h:9000)"),
            ServiceUnavailableError,
            "unreachable",
        ),
    ],
)
def test_errors_become_one_line_domain_errors(
    error: Exception, expected: type[Exception], text: str
) -> None:
    settings = load_settings(env={}).settings
    with pytest.raises(expected) as info:
        apply_statements(
            render_statements(settings), settings.clickhouse, client=FakeClient(0, error)
        )
    assert text in str(info.value) and "\n" not in str(info.value)
    assert "Stack trace" not in str(info.value)
