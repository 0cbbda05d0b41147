"""Run the rendered DDL against a ClickHouse server (clickhouse-driver, native protocol).

Every statement is ``CREATE ... IF NOT EXISTS`` (plain views ``CREATE OR REPLACE``: they
hold no data), so applying twice is a no-op. Failures become one readable line:
:class:`ServiceUnavailableError` when the server cannot be reached, :class:`AuthError` when
it refuses the credentials, :class:`ClickHouseDDLError` when it rejects a statement.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from upbitpipe.clickhouse.ddl import Statement
from upbitpipe.config import ClickHouseSettings, reveal
from upbitpipe.errors import AuthError, ServiceUnavailableError, UpbitpipeError

log = logging.getLogger(__name__)

# UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
AUTH_ERROR_CODES = frozenset({192, 193, 194, 516})
ACCESS_DENIED = 497


class ClickHouseDDLError(UpbitpipeError):
    """The server rejected a statement (bad SQL, missing grant, cluster not configured...)."""


class DDLClient(Protocol):
    """What :func:`apply_statements` needs from a client: execute one statement, hang up."""

    def execute(self, query: str) -> Any: ...

    def disconnect(self) -> None: ...


def one_line(text: str, limit: int = 300) -> str:
    """A server or driver message squeezed into one line (no stack trace)."""
    text = text.split("Stack trace:", 1)[0]
    text = re.sub(r"^Code: \d+\.\s*", "", text.strip())
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def make_client(ch: ClickHouseSettings, *, connect_timeout: float = 5.0) -> DDLClient:
    """A clickhouse-driver client for ``ch`` (connects lazily, on the first statement)."""
    from clickhouse_driver import Client

    # The driver logs a warning per failed connect; we raise one clear error instead.
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    client: DDLClient = Client(
        host=ch.host,
        port=ch.port,
        user=ch.user,
        password=reveal(ch.password) or "",
        secure=ch.secure,
        connect_timeout=connect_timeout,
        send_receive_timeout=max(connect_timeout, 300.0),
        client_name="upbitpipe",
    )
    return client


def _translate(exc: Exception, ch: ClickHouseSettings, statement: Statement) -> UpbitpipeError:
    from clickhouse_driver import errors

    where = f"ClickHouse at {ch.host}:{ch.port}"
    if isinstance(exc, errors.ServerException):
        if exc.code in AUTH_ERROR_CODES:
            return AuthError(
                f"{where} refused user {ch.user!r}: {one_line(exc.message)} "
                "(check clickhouse.user / clickhouse.password)"
            )
        hint = (
            " (the user needs CREATE grants on the database)" if exc.code == ACCESS_DENIED else ""
        )
        return ClickHouseDDLError(
            f"{where} rejected {statement.kind} {statement.name}: {one_line(exc.message)}{hint}"
        )
    if isinstance(exc, errors.NetworkError | errors.SocketTimeoutError | OSError | EOFError):
        reason = one_line(getattr(exc, "message", None) or str(exc) or type(exc).__name__)
        return ServiceUnavailableError(
            f"{where} is unreachable: {reason} (check clickhouse.host / clickhouse.port)"
        )
    return ClickHouseDDLError(f"{where}: {statement.name}: {one_line(str(exc))}")


def apply_statements(
    statements: Sequence[Statement],
    ch: ClickHouseSettings,
    *,
    client: DDLClient | None = None,
    connect_timeout: float = 5.0,
    on_applied: Callable[[Statement], None] | None = None,
) -> int:
    """Execute ``statements`` in order; return how many ran. Stops at the first failure."""
    from clickhouse_driver import errors

    own = client is None
    conn = client if client is not None else make_client(ch, connect_timeout=connect_timeout)
    done = 0
    try:
        for statement in statements:
            try:
                conn.execute(statement.sql)
            except (errors.Error, OSError, EOFError) as exc:
                raise _translate(exc, ch, statement) from None
            done += 1
            log.debug("applied %s %s", statement.kind, statement.name)
            if on_applied is not None:
                on_applied(statement)
    finally:
        if own:
            conn.disconnect()
    return done
