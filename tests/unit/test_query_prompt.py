"""Statements from a pipe or the prompt: splitting, and the prompt loop driven by real keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from upbitpipe.query.prompt import interactive, run_statements, split_statements


@pytest.mark.parametrize(
    ("text", "statements"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT ';' AS a; SELECT \"x;y\"", ["SELECT ';' AS a", 'SELECT "x;y"']),
        ("SELECT 'it''s;'; SELECT 'a\\';b'", ["SELECT 'it''s;'", "SELECT 'a\\';b'"]),
        ("-- a comment; with semicolon\nSELECT 1", ["SELECT 1"]),
        ("SELECT /* ; */ 1 ;;  ; \n", ["SELECT  1"]),
        ("SELECT `a;b` FROM t", ["SELECT `a;b` FROM t"]),
        ("   \n  ", []),
    ],
)
def test_split_statements(text: str, statements: list[str]) -> None:
    assert split_statements(text) == statements


def test_run_statements_stops_at_the_first_failure() -> None:
    seen: list[str] = []

    def execute(statement: str) -> None:
        seen.append(statement)
        if statement == "bad":
            raise ValueError(statement)

    with pytest.raises(ValueError, match="bad"):
        run_statements(["a", "bad", "c"], execute)
    assert seen == ["a", "bad"]


def test_prompt_loop_runs_reports_reloads_and_keeps_history(tmp_path: Path) -> None:
    ran: list[str] = []
    errors: list[str] = []
    reloads: list[int] = []

    def execute(statement: str) -> None:
        if "boom" in statement:
            msg = "boom"
            raise RuntimeError(msg)
        ran.append(statement)

    history = tmp_path / "sub" / "history"
    with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
        keys.send_text(
            "SELECT 1\rSELECT boom\rSELECT 2 \\\r+ 3\rreload\rSELECT 4; SELECT 5\rexit\r"
        )
        interactive(
            execute, lambda e: errors.append(str(e)), lambda: reloads.append(1), history, ["trade"]
        )
    assert ran == ["SELECT 1", "SELECT 2 \n+ 3", "SELECT 4", "SELECT 5"]
    assert errors == ["boom"] and reloads == [1]
    assert "SELECT boom" in history.read_text()


def test_prompt_ends_on_end_of_input(tmp_path: Path) -> None:
    ran: list[str] = []
    with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
        keys.send_text("SELECT 1\r")
        keys.close()
        interactive(ran.append, lambda e: None, lambda: None, tmp_path / "h", [])
    assert ran == ["SELECT 1"]
