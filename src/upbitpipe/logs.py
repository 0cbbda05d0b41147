"""Logging set-up: rich on a terminal, JSON lines otherwise (systemd/journald, files, CI).

Only upbitpipe's own records are shown at the chosen level. Other libraries (pypaimon,
aiokafka, websockets, py4j, ...) report what a user needs through upbitpipe already; their
info messages are shown only with ``--log-level debug``, their warnings and errors always.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

import orjson

LogFormat = Literal["auto", "human", "json"]
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
OWN_LOGGERS = ("upbitpipe", "__main__")
#: Libraries known to log at info/debug on hot paths (per commit, per frame, per request):
#: their loggers get the library level directly, so records are not even created.
CHATTY_LIBRARIES = (
    "aiokafka",
    "asyncio",
    "botocore",
    "boto3",
    "fsspec",
    "httpcore",
    "httpx",
    "kafka",
    "picows",
    "py4j",
    "pyarrow",
    "pypaimon",
    "s3fs",
    "s3transfer",
    "urllib3",
    "websockets",
)


def library_level(level: int) -> int:
    """The level other libraries log at: warning, or info when upbitpipe runs at debug."""
    return logging.INFO if level <= logging.DEBUG else logging.WARNING


def is_own(name: str) -> bool:
    return any(name == own or name.startswith(own + ".") for own in OWN_LOGGERS)


class OwnOrLoud(logging.Filter):
    """Passes upbitpipe's records, and other libraries' from ``threshold`` up (on a handler:
    it catches libraries not in :data:`CHATTY_LIBRARIES` too, whatever logger they use)."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.threshold or is_own(record.name)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line; extra= fields are kept as keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


class PlainFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL   message`` - the human format where there is no terminal (a file,
    a pipe): one unwrapped line per record, local time like the rich handler."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")


def configure_logging(level: str = "INFO", fmt: LogFormat = "auto") -> None:
    """Install one handler on the root logger (idempotent: replaces earlier handlers).

    ``auto`` is rich on a terminal and JSON lines otherwise; ``human`` is rich on a terminal
    and plain text lines otherwise.
    """
    tty = sys.stderr.isatty()
    handler: logging.Handler
    if fmt == "json" or (fmt == "auto" and not tty):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
    elif tty:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False, log_time_format="%H:%M:%S")
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.setLevel(level.upper())
    libraries = max(library_level(root.level), root.level)
    handler.addFilter(OwnOrLoud(libraries))
    root.addHandler(handler)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(libraries)
