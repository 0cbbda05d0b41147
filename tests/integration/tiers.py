"""Service tests need tools: skip cleanly without them, but never under CI."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(tool: str, needed_for: str) -> None:
    """Skip (or, under CI, fail) a service test whose tool is not installed."""
    if shutil.which(tool):
        return
    message = f"{tool!r} is not on PATH (needed by {needed_for})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI must run the service tests)", pytrace=False)
    pytest.skip(message)
