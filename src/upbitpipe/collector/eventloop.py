"""The event loop `collect` runs on (``collector.event_loop``): asyncio's own or uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from upbitpipe.errors import ConfigError

T = TypeVar("T")


def run_on_loop(main: Coroutine[Any, Any, T], kind: Literal["asyncio", "uvloop"]) -> T:
    """``asyncio.run(main)`` on a loop of ``kind``; signal handlers, ``to_thread`` and
    subprocesses behave the same on both."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            main.close()
            msg = "collector.event_loop = uvloop needs the uvloop package: pip install uvloop"
            raise ConfigError(msg) from None
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
