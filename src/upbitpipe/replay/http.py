"""Small HTTP helpers shared by the replay server's REST and control routes."""

from __future__ import annotations

import email.utils
import http
from typing import Any

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Response

Query = dict[str, list[str]]


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    body = orjson.dumps(payload)
    all_headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "application/json; charset=utf-8"),
            *(headers or []),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, all_headers, body)


def error_response(
    status: int, name: str | int, message: str, headers: list[tuple[str, str]] | None = None
) -> Response:
    """Upbit's REST error body: ``{"error": {"name": ..., "message": ...}}``."""
    return json_response(status, {"error": {"name": name, "message": message}}, headers)


def one(query: Query, *names: str) -> str | None:
    for name in names:
        values = query.get(name)
        if values:
            return values[0]
    return None


def one_int(query: Query, *names: str) -> int | None:
    """An integer parameter; raises ``ValueError`` naming it when it is not one."""
    value = one(query, *names)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        msg = f"{names[0]} must be an integer, got {value!r}"
        raise ValueError(msg) from None
