"""Running ClickHouse SQL in chDB over the lake's tables.

A statement loads only the lake tables it names (a word match on the table names, and, for a
name the match missed, ClickHouse's own "unknown table" answer); a loaded table stays for
the session, so an interactive prompt reads each table once until :meth:`SqlEngine.reload`.
The session runs in UTC (the lake's timestamps are UTC) with ``lake.database`` as the
current database, so ``trade`` and ``upbit.trade`` both work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from upbitpipe.query.errors import QueryError, UnknownTableError
from upbitpipe.query.tables import Lake, register

_CODE = re.compile(r"Code:\s*(\d+)\.")
_UNKNOWN_TABLE = re.compile(
    r"Unknown table expression identifier '([^']+)'|Table (\S+) does not exist"
)
_EXPECTED = re.compile(r"(Expected one of: )(.*?)(\.?\s*\(SYNTAX_ERROR\)|$)", re.S)
#: ClickHouse error codes: UNKNOWN_TABLE, SYNTAX_ERROR.
UNKNOWN_TABLE, SYNTAX_ERROR = 60, 62


class SqlEngine:
    """One chDB session with the lake's tables loaded on demand. Close it when done.

    chDB runs one ClickHouse per process and its in-memory sessions share it: use one engine
    at a time. Opening one starts from an empty ``lake.database``; closing drops it.
    """

    def __init__(self, lake: Lake, min_dt: str | None = None) -> None:
        """``min_dt``: load only the ``dt`` partitions from that date on (a preset's range)."""
        from chdb import session as chdb_session

        self.lake = lake
        self.min_dt = min_dt
        self.database = lake.settings.lake.database
        session_class: Any = chdb_session.Session  # chdb is typed only in part
        self._session: Any = session_class()
        self._loaded: set[str] = set()
        self._session.query("SET session_timezone = 'UTC'")
        self._session.query("SET output_format_parquet_compression_method = 'none'")
        self._session.query(f"DROP DATABASE IF EXISTS `{self.database}`")  # an earlier engine's
        self._session.query(f"CREATE DATABASE `{self.database}`")
        self._session.query(f"USE `{self.database}`")

    def __enter__(self) -> SqlEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._session.query(f"DROP DATABASE IF EXISTS `{self.database}`")  # free the memory
        finally:
            self._loaded.clear()
            self._session.close()

    @property
    def loaded(self) -> frozenset[str]:
        return frozenset(self._loaded)

    def load(self, names: Iterable[str]) -> None:
        """Read these lake tables (merged) into the session, if not loaded yet."""
        for name in names:
            if name not in self._loaded:
                register(self._session, self.database, name, self.lake.read(name, self.min_dt))
                self._loaded.add(name)

    def reload(self) -> None:
        """Forget the loaded tables: the next statements read the lake's newest snapshots."""
        for name in sorted(self._loaded):
            self._session.query(f"DROP TABLE IF EXISTS `{self.database}`.`{name}`")
        self._loaded.clear()

    def query(self, sql: str) -> pa.Table | None:
        """Run one statement; its result as Arrow, or None for a statement without rows."""
        names = self.lake.table_names()
        self.load(referenced_tables(sql, names))
        for _ in range(len(names) + 1):
            try:
                raw = self._session.query(sql, "Parquet")
            except Exception as exc:
                missing = self._missing_lake_table(str(exc), names)
                if missing is None:
                    raise self._error(str(exc), names) from None
                self._loaded.discard(missing)  # e.g. a DROP TABLE earlier in the session
                self.load([missing])
                continue
            return _from_parquet(raw)
        msg = f"could not load the tables {sql!r} needs"
        raise QueryError(msg)

    def render(self, result: pa.Table, fmt: str, settings: str = "") -> bytes:
        """``result`` in a ClickHouse output format (``CSVWithNames``, ``Markdown``, ...)."""
        raw = self._session.query(f"SELECT * FROM Python(result){settings}", fmt)
        data: bytes = raw.bytes()
        return data

    def _missing_lake_table(self, message: str, names: list[str]) -> str | None:
        match = _UNKNOWN_TABLE.search(message)
        if match is None:
            return None
        missing = next(g for g in match.groups() if g).split(".")[-1].strip("`\"'")
        return missing if missing in names else None

    def _error(self, message: str, names: list[str]) -> QueryError:
        code = _CODE.search(message)
        number = int(code.group(1)) if code else None
        text = one_line(message)
        if number == UNKNOWN_TABLE or (_UNKNOWN_TABLE.search(message) and number is None):
            match = _UNKNOWN_TABLE.search(message)
            what = next((g for g in match.groups() if g), "?") if match else "?"
            return UnknownTableError(
                f"unknown table {what!r}; the lake at {self.lake.where} has: {', '.join(names)}"
            )
        if number == SYNTAX_ERROR:
            return QueryError(f"bad SQL: {text}")
        return QueryError(text)


def referenced_tables(sql: str, names: Iterable[str]) -> list[str]:
    """The lake tables whose name appears as a word in ``sql`` (a superset is harmless)."""
    return [n for n in names if re.search(rf"(?<![\w$]){re.escape(n)}(?![\w$])", sql)]


def one_line(message: str) -> str:
    """ClickHouse's message without the code prefix, on one line, the "expected" list cut."""
    text = re.sub(r"^.*?Code:\s*\d+\.\s*(DB::Exception:\s*)?", "", message.strip(), flags=re.S)
    text = _EXPECTED.sub(lambda m: m.group(1) + _first_items(m.group(2)) + m.group(3), text)
    return " ".join(text.split()).replace(", .... (", ", ... (")


def _first_items(listing: str, keep: int = 8) -> str:
    items = [i.strip() for i in listing.split(",")]
    return ", ".join(items[:keep]) + (", ..." if len(items) > keep else "")


def _from_parquet(raw: Any) -> pa.Table | None:
    """Rows come back as Parquet: unlike ClickHouse's Arrow output, it keeps ``DateTime``
    a timestamp (Arrow output makes it a bare UInt32)."""
    data: bytes = raw.bytes()
    if not data:
        return None
    import pyarrow.parquet as pq

    table: pa.Table = pq.read_table(pa.BufferReader(data))
    return table
