"""Logging: upbitpipe's records at the chosen level, other libraries' only when they warn
(or at --log-level debug), in each output format."""

from __future__ import annotations

import io
import json
import logging

import pytest

from upbitpipe.logs import configure_logging


def _emit_all() -> None:
    logging.getLogger("upbitpipe.collector.service").info("own info")
    logging.getLogger("upbitpipe.collector.service").debug("own debug")
    logging.getLogger("pypaimon.write.file_store_commit").info("Successfully commit snapshot 3")
    logging.getLogger("some_unlisted_library").info("unlisted info")
    logging.getLogger("aiokafka.conn").warning("library warning")
    logging.getLogger("websockets.client").debug("< TEXT frame")


def _captured(monkeypatch: pytest.MonkeyPatch, level: str, fmt: str) -> list[str]:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(level, fmt)  # type: ignore[arg-type]
    _emit_all()
    return stream.getvalue().splitlines()


def test_json_lines_carry_only_own_records_and_library_warnings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [json.loads(line) for line in _captured(monkeypatch, "info", "json")]
    assert [(r["logger"], r["msg"]) for r in records] == [
        ("upbitpipe.collector.service", "own info"),
        ("aiokafka.conn", "library warning"),
    ]


def test_debug_shows_library_info_but_not_their_frame_dumps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [json.loads(line)["msg"] for line in _captured(monkeypatch, "debug", "json")]
    assert records == [
        "own info",
        "own debug",
        "Successfully commit snapshot 3",
        "unlisted info",
        "library warning",
    ]


def test_human_format_without_a_terminal_is_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _captured(monkeypatch, "warning", "human")
    assert len(lines) == 1
    assert lines[0].endswith(" WARNING library warning")
    assert not lines[0].startswith("{")


def test_reconfiguring_replaces_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    _captured(monkeypatch, "info", "json")
    _captured(monkeypatch, "info", "human")
    assert len(logging.getLogger().handlers) == 1
