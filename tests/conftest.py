"""Shared fixtures: a clean environment and a fixed terminal for every test.

Test tiers, by what they need:

* ``tests/unit`` -- nothing but Python;
* unmarked tests in ``tests/integration`` -- the replay twin and upbitpipe processes only; they
  run everywhere, by default;
* ``@pytest.mark.integration`` -- real services (Kafka and Flink need Java, the S3 server is
  built with Go on first use). Without those tools they are skipped with the reason, except
  under CI (``CI=true``), where a missing tool is an error: CI must run every tier.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop at once when a compiled hot module is older than its ``.py``: in an editable
    install Python imports the ``.so``, so the tests would run the old code, not the edit
    (upbitpipe/native.py)."""
    from upbitpipe import native

    message = native.native_status().stale_message()
    if message is None and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        message = _native_missing_under_ci()
    if message is not None:
        pytest.exit(message, returncode=4)


def _native_missing_under_ci() -> str | None:
    """Under CI, on a machine that can build native code (a C compiler and Python.h, as
    setup.py checks), a hot module or C kernel that was not built is an error: every
    kernel is ``optional`` at install, so a kernel that stopped compiling would otherwise
    only turn its tests into skips and CI would still pass."""
    import ast
    import shutil
    import sysconfig

    from upbitpipe import native

    if native.pure_python_requested():
        return None
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    include = sysconfig.get_paths().get("include")
    if shutil.which(compiler) is None or not include or not (Path(include) / "Python.h").is_file():
        return None
    root = Path(__file__).resolve().parents[1]
    tree = ast.parse((root / "setup.py").read_text(encoding="utf-8"))
    expected: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id == "MYPYC_MODULES" and node.value is not None:
                expected |= {str(Path(p).with_suffix("")) for p in ast.literal_eval(node.value)}
    expected |= {
        str(path.with_suffix("").relative_to(root)) for path in (root / "src").rglob("*.c")
    }
    built = {
        str(module.source.with_suffix("").resolve().relative_to(root))
        for module in native.native_status().modules
    }
    missing = sorted(expected - built)
    if not missing:
        return None
    return (
        f"CI: this machine can build native code, but these were not built: {', '.join(missing)}; "
        f"see the `pip install -e .` output for the compile error"
    )


@pytest.fixture(autouse=True)
def _clean_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No UPBITPIPE_* from the developer's shell, no ./upbitpipe.yaml, fixed width output."""
    for key in list(os.environ):
        if key.startswith("UPBITPIPE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.chdir(home)
    yield


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """CLI tests install handlers on streams CliRunner closes afterwards; put the root
    logger back so later tests do not log into closed streams."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def artifact_cache() -> Path:
    """Where pinned downloads (jars, binaries) live; shared across runs and with users."""
    from upbitpipe.config import default_cache_dir

    return Path(os.environ.get("UPBITPIPE_TEST_CACHE", default_cache_dir()))
