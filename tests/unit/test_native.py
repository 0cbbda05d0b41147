"""Compiled hot modules: which are there, which are stale, and who says so."""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import logging
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from upbitpipe import native
from upbitpipe.cli.main import app

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so


def _package(tmp_path: Path, *, source_newer_by: float = 0.0) -> Path:
    """A package tree like an editable install: ``upbit/codec.py`` with its extension, a
    mypyc support library without a ``.py``, a plain module, a C kernel with its ``.c``
    and an extension without any source."""
    root = tmp_path / "upbitpipe"
    (root / "upbit").mkdir(parents=True)
    (root / "upbit" / "codec.py").write_text("")
    (root / "upbit" / f"codec{SUFFIX}").write_bytes(b"")
    (root / "upbit" / f"codec__mypyc{SUFFIX}").write_bytes(b"")
    (root / "upbit" / "fields.py").write_text("")
    (root / f"_lone{SUFFIX}").write_bytes(b"")
    (root / "lake").mkdir()
    (root / "lake" / "_kernel.c").write_text("")
    (root / "lake" / f"_kernel{SUFFIX}").write_bytes(b"")
    built = 1_800_000_000.0
    os.utime(root / "lake" / "_kernel.c", (built - 60,) * 2)
    os.utime(root / "lake" / f"_kernel{SUFFIX}", (built,) * 2)
    os.utime(root / "upbit" / f"codec{SUFFIX}", (built, built))
    os.utime(root / "upbit" / "codec.py", (built + source_newer_by,) * 2)
    return root


def test_a_module_with_its_extension_beside_it_is_compiled_and_fresh(tmp_path: Path) -> None:
    status = native.native_status(_package(tmp_path, source_newer_by=-60))
    assert [(m.name, m.stale) for m in status.modules] == [
        ("upbitpipe.lake._kernel", False),
        ("upbitpipe.upbit.codec", False),
    ]
    assert status.summary() == "native: compiled (_kernel, codec)"
    assert status.stale_message() is None


def test_a_source_edited_after_the_build_is_stale(tmp_path: Path) -> None:
    root = _package(tmp_path, source_newer_by=native.MTIME_SLACK_SECONDS + 1)
    status = native.native_status(root)
    assert [m.name for m in status.stale] == ["upbitpipe.upbit.codec"]
    assert "STALE: codec" in status.summary()
    message = status.stale_message()
    assert message is not None
    assert str(root / "upbit" / "codec.py") in message
    assert "pip install -e ." in message


@pytest.mark.parametrize(
    "imports", ["from upbitpipe.upbit.fields import LIMIT", "from .fields import LIMIT"]
)
def test_a_module_edited_after_the_build_makes_its_compiled_importer_stale(
    tmp_path: Path, imports: str
) -> None:
    """mypyc builds the Final constants a module imports into its extension: an edit of
    ``fields.py`` runs the old value in the compiled ``codec`` until it is rebuilt."""
    root = _package(tmp_path, source_newer_by=-60)
    codec = root / "upbit" / "codec.py"
    stamp = codec.stat().st_mtime
    codec.write_text(imports + "\n")
    os.utime(codec, (stamp, stamp))
    assert native.native_status(root).stale == ()
    os.utime(root / "upbit" / "fields.py", (stamp + 120,) * 2)
    assert [m.name for m in native.native_status(root).stale] == ["upbitpipe.upbit.codec"]


def test_the_run_time_switch_is_named_in_the_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPBITPIPE_PURE_PYTHON", "1")
    summary = native.native_status(_package(tmp_path, source_newer_by=-60)).summary()
    assert summary.startswith("native: compiled (_kernel, codec); UPBITPIPE_PURE_PYTHON set")


def test_a_wheel_install_writing_the_source_just_after_the_extension_is_not_stale(
    tmp_path: Path,
) -> None:
    root = _package(tmp_path, source_newer_by=native.MTIME_SLACK_SECONDS / 2)
    assert native.native_status(root).stale == ()


def test_a_c_kernel_edited_after_the_build_is_stale(tmp_path: Path) -> None:
    root = _package(tmp_path)
    os.utime(root / "lake" / "_kernel.c", (1_800_000_060.0,) * 2)
    assert [m.name for m in native.native_status(root).stale] == ["upbitpipe.lake._kernel"]


def test_without_extensions_the_package_is_pure_python(tmp_path: Path) -> None:
    root = tmp_path / "upbitpipe"
    root.mkdir()
    (root / "codec.py").write_text("")
    status = native.native_status(root)
    assert status.modules == ()
    assert status.summary().startswith("native: pure Python (")


def test_every_listed_module_of_this_install_is_the_extension_python_imports() -> None:
    status = native.native_status()
    for module in status.modules:
        assert importlib.import_module(module.name).__file__ == str(module.extension)
        assert not module.stale  # the session would have stopped (tests/conftest.py)


def test_version_prints_the_native_status() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.splitlines()[1] == native.native_status().summary()


def test_the_test_session_stops_on_a_stale_module(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conftest = next(
        plugin
        for plugin in request.config.pluginmanager.get_plugins()
        if str(getattr(plugin, "__file__", "")).endswith(os.path.join("tests", "conftest.py"))
    )
    conftest.pytest_sessionstart(request.session)  # this install: fresh, no stop
    stale = native.native_status(_package(tmp_path, source_newer_by=60))
    monkeypatch.setattr(native, "native_status", lambda: stale)
    with pytest.raises(pytest.exit.Exception, match=r"pip install -e \."):
        conftest.pytest_sessionstart(request.session)


def test_the_collector_warns_at_start_when_a_module_is_stale(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from upbitpipe.collector import runtime

    assert runtime.warn_if_stale is native.warn_if_stale
    assert "warn_if_stale(log)" in inspect.getsource(runtime.run_collector)
    log = logging.getLogger("upbitpipe.collector.runtime")
    fresh = native.native_status(_package(tmp_path / "fresh", source_newer_by=-60))
    stale = native.native_status(_package(tmp_path / "stale", source_newer_by=60))
    monkeypatch.setattr(native, "native_status", lambda: fresh)
    with caplog.at_level(logging.WARNING):
        assert not native.warn_if_stale(log)
    assert caplog.records == []
    monkeypatch.setattr(native, "native_status", lambda: stale)
    with caplog.at_level(logging.WARNING):
        assert native.warn_if_stale(log)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "pip install -e ." in caplog.records[0].getMessage()
