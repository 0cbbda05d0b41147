"""Statements from a person (an interactive prompt with history) or from a pipe.

On a terminal, prompt_toolkit reads one statement per Enter (a line ending in ``\\`` goes on
on the next line), keeps a history file and completes table names and keywords. When stdin
is not a terminal, the whole input is read and split on ``;`` (quotes and comments
respected) - nothing waits for a key press.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

#: Words that end the prompt.
EXIT_WORDS = frozenset({"exit", "quit", "\\q", ":q"})
#: Word that re-reads the lake's tables (newest snapshots).
RELOAD_WORD = "reload"

_KEYWORDS = (
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "HAVING",
    "DESC",
    "count()",
    "uniqExact",
    "argMax",
    "argMin",
    "toStartOfMinute",
    "SHOW TABLES",
    "DESCRIBE",
)


def split_statements(text: str) -> list[str]:
    """``text`` cut at ``;`` outside quotes and comments; blank statements dropped."""
    out: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < n:
                current.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        elif ch == ";":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return [s.strip() for s in out if s.strip()]


def run_statements(statements: Iterable[str], execute: Callable[[str], None]) -> int:
    """Run each statement in order; stops at the first that raises. Returns how many ran."""
    count = 0
    for statement in statements:
        execute(statement)
        count += 1
    return count


def read_stdin(stream: TextIO) -> list[str]:
    """Every statement of a non-interactive stdin."""
    return split_statements(stream.read())


def interactive(
    execute: Callable[[str], None],
    on_error: Callable[[Exception], None],
    reload: Callable[[], None],
    history: Path,
    table_names: list[str],
) -> None:
    """The prompt loop: a failing statement prints its error and the prompt goes on."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    history.parent.mkdir(parents=True, exist_ok=True)
    words = [*table_names, *_KEYWORDS, RELOAD_WORD, "exit"]
    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history)),
        completer=WordCompleter(words, ignore_case=True, sentence=True),
    )
    while True:
        try:
            text = _read_statement(session)
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
        for statement in split_statements(text):
            word = statement.strip().lower()
            if word in EXIT_WORDS:
                return
            try:
                if word == RELOAD_WORD:
                    reload()
                else:
                    execute(statement)
            except KeyboardInterrupt:
                break
            except Exception as exc:
                on_error(exc)


def _read_statement(session: object) -> str:
    lines: list[str] = []
    prompt = "sql> "
    while True:
        line: str = session.prompt(prompt)  # type: ignore[attr-defined]
        if line.rstrip().endswith("\\"):
            lines.append(line.rstrip()[:-1])
            prompt = "...> "
            continue
        lines.append(line)
        return "\n".join(lines)
