"""`collect`'s event loop choice (``collector.event_loop``)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from upbitpipe.collector.eventloop import run_on_loop
from upbitpipe.errors import ConfigError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_each_choice_runs_on_its_own_loop() -> None:
    assert run_on_loop(_loop_module(), "uvloop").startswith("uvloop")
    assert run_on_loop(_loop_module(), "asyncio").startswith("asyncio")


def test_uvloop_missing_is_a_config_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    main = _loop_module()
    with pytest.raises(ConfigError, match="pip install uvloop"):
        run_on_loop(main, "uvloop")
    assert main.cr_frame is None, "the coroutine was left open (a 'never awaited' warning)"
