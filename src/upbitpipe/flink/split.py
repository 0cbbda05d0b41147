"""Split a Flink SQL script into statements.

Flink's own ``executeSql`` takes one statement at a time, so a script has to be cut at the
semicolons that end statements - and only those. A semicolon does not end a statement when it
is inside a ``'string'`` (``''`` escapes a quote), a ```quoted identifier```, a ``"double
quoted"`` name, a ``-- line comment`` or a ``/* block comment */``, or inside an
``EXECUTE STATEMENT SET BEGIN ... END`` (or ``BEGIN STATEMENT SET; ... END;``) block, whose
inner INSERTs belong together and become one job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

StatementKind = Literal["set", "ddl", "insert", "statement_set", "query", "other"]

_BEGIN_SET = re.compile(r"^\s*(EXECUTE\s+)?STATEMENT\s+SET\s+BEGIN\b", re.IGNORECASE)
_BEGIN_SET_CLIENT = re.compile(r"^\s*BEGIN\s+STATEMENT\s+SET\s*$", re.IGNORECASE)
_END = re.compile(r"^\s*END\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """One executable unit. ``inserts`` holds the INSERTs of a statement set."""

    sql: str
    kind: StatementKind
    line: int = 1
    inserts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def first_line(self) -> str:
        """The first non-comment line, for messages."""
        for raw in strip_comments(self.sql).splitlines():
            if raw.strip():
                return raw.strip()
        return ""


def _scan(text: str) -> list[tuple[str, int]]:
    """Cut at top-level semicolons; returns (raw piece, 1-based start line) pairs."""
    pieces: list[tuple[str, int]] = []
    buf: list[str] = []
    i, n, line, start_line = 0, len(text), 1, 1
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = text.find("\n", i)
            end = n if end == -1 else end
            buf.append(text[i:end])
            i = end
            continue
        if ch == "/" and nxt == "*":
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            chunk = text[i:end]
            buf.append(chunk)
            line += chunk.count("\n")
            i = end
            continue
        if ch in ("'", "`", '"'):
            j = i + 1
            while j < n:
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:  # doubled quote = escaped quote
                        j += 2
                        continue
                    break
                j += 1
            chunk = text[i : j + 1]
            buf.append(chunk)
            line += chunk.count("\n")
            i = j + 1
            continue
        if ch == ";":
            pieces.append(("".join(buf), start_line))
            buf = []
            start_line = line
            i += 1
            continue
        if ch == "\n":
            line += 1
        buf.append(ch)
        i += 1
    pieces.append(("".join(buf), start_line))
    return pieces


def strip_comments(sql: str) -> str:
    """``sql`` without ``--`` and ``/* */`` comments (strings and quoted names kept)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = sql.find("\n", i)
            i = n if end == -1 else end
            continue
        if ch == "/" and nxt == "*":
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            out.append(" ")
            continue
        if ch in ("'", "`", '"'):
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _find_code_start(raw: str) -> int:
    i, n = 0, len(raw)
    while i < n:
        if raw.startswith("--", i):
            end = raw.find("\n", i)
            i = n if end == -1 else end
        elif raw.startswith("/*", i):
            end = raw.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif raw[i].isspace():
            i += 1
        else:
            return i
    return n


def classify(sql: str) -> StatementKind:
    """What a statement does, judged by its first keyword(s)."""
    words = strip_comments(sql).split()
    if not words:
        return "other"
    head = words[0].upper()
    second = words[1].upper() if len(words) > 1 else ""
    if head == "SET" or head == "RESET":
        return "set"
    if head in ("INSERT", "REPLACE") or (head == "EXECUTE" and second in ("INSERT",)):
        return "insert"
    if head in ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES"):
        return "query"
    if head in ("CREATE", "DROP", "ALTER", "USE", "LOAD", "UNLOAD", "ANALYZE", "TRUNCATE"):
        return "ddl"
    return "other"


def split_statements(text: str) -> list[Statement]:
    """Statements of a script, comments kept with the statement they precede.

    Empty statements (stray ``;``, comment-only tails) are dropped. A statement set becomes
    one :class:`Statement` of kind ``statement_set`` with its INSERTs in ``inserts``.
    Raises ``ValueError`` for a statement set that is never closed with ``END``.
    """
    out: list[Statement] = []
    pending: list[tuple[str, int]] | None = None
    pending_line = 1
    for raw, start in _scan(text):
        code = strip_comments(raw).strip()
        line = start + raw[: _find_code_start(raw)].count("\n")
        if pending is not None:
            if _END.match(code):
                inserts = tuple(
                    piece[_find_code_start(piece) :].strip()
                    for piece, _ in pending
                    if strip_comments(piece).strip()
                )
                body = ";\n".join(inserts)
                sql = f"EXECUTE STATEMENT SET BEGIN\n{body};\nEND"
                out.append(Statement(sql, "statement_set", pending_line, inserts))
                pending = None
                continue
            pending.append((raw, line))
            continue
        if not code:
            continue
        match = _BEGIN_SET.match(code)
        if match:
            pending_line = line
            first = code[match.end() :].strip()
            pending = [(first, line)] if first else []
            continue
        if _BEGIN_SET_CLIENT.match(code):
            pending_line = line
            pending = []
            continue
        out.append(Statement(raw[_find_code_start(raw) :].strip(), classify(raw), line))
    if pending is not None:
        msg = f"statement set starting at line {pending_line} has no END"
        raise ValueError(msg)
    return out
