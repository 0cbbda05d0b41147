"""Build hook: the packages (with ``flink-sql/``), and the hot modules compiled to C when a C
compiler is there.

Everything else about the build lives in pyproject.toml. The top-level ``flink-sql/`` folder
ships as the package ``upbitpipe.flink.sql`` (its directory lies outside ``src/``;
``package-dir`` in pyproject.toml maps it). Two kinds of native code:

* ``MYPYC_MODULES``: plain, strictly typed Python modules that mypyc compiles to C
  extensions (the same source; the ``.py`` stays the reference and the fallback);
* ``C_EXTENSIONS``: small hand-written C kernels, each with a pure-Python twin that the
  package uses when the kernel is not built.

Without a C compiler or Python's headers, or with ``UPBITPIPE_PURE_PYTHON=1``, the package
installs as pure Python: same behaviour, more CPU per message (benchmarks/README.md).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, find_packages, setup

#: typed modules on the collector's per-message path, compiled by mypyc (one extension
#: each, ``separate=True``, so the shared library sits inside the package: an editable
#: install finds it)
MYPYC_MODULES: list[str] = [
    "src/upbitpipe/upbit/codec.py",
    "src/upbitpipe/upbit/gate.py",
    "src/upbitpipe/collector/dedup.py",
]

#: hand-written C kernels (``Extension`` objects), each optional (a failed compile leaves
#: its pure-Python twin in use)
C_EXTENSIONS: list[Extension] = [
    # the lake sink's orderbook units and integer checks (twin: upbitpipe/lake/fastrows.py)
    Extension("upbitpipe.lake._fastrows", ["src/upbitpipe/lake/_fastrows.c"], optional=True),
    # a DEFAULT orderbook frame's head and best prices without its units, and the few fields
    # of a ticker or trade that are read, for a collector whose sinks read no records (twin:
    # the full parse, upbitpipe/upbit/codec.py)
    Extension("upbitpipe.upbit._bookscan", ["src/upbitpipe/upbit/_bookscan.c"], optional=True),
]


def _why_pure_python() -> str | None:
    """Why native code is not built here, or None when it is."""
    if os.environ.get("UPBITPIPE_PURE_PYTHON", "").strip() not in ("", "0"):
        return "UPBITPIPE_PURE_PYTHON is set"
    if sys.implementation.name != "cpython":
        return f"{sys.implementation.name} is not CPython"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler!r} is not on PATH)"
    include = sysconfig.get_paths().get("include")
    if not include or not (Path(include) / "Python.h").is_file():
        return "Python's headers (Python.h) are not installed"
    return None


def _remove_built_extensions() -> None:
    """A pure-Python build leaves no extension an earlier build put in the source tree
    (an editable install imports a ``.so`` before its ``.py``)."""
    for path in Path("src", "upbitpipe").rglob("*"):
        if path.suffix in (".so", ".pyd") and path.is_file():
            path.unlink()


def ext_modules() -> list[Extension]:
    why = _why_pure_python()
    if why is not None:
        print(f"upbitpipe: installing pure Python ({why})", file=sys.stderr)
        _remove_built_extensions()
        return []
    extensions: list[Extension] = []
    if MYPYC_MODULES:
        try:
            from mypyc.build import mypycify

            extensions += mypycify(MYPYC_MODULES, separate=True, opt_level="3")
        except (Exception, SystemExit) as exc:  # mypyc exits on a type error
            print(
                f"upbitpipe: hot modules stay pure Python (mypyc: {type(exc).__name__}: {exc})",
                file=sys.stderr,
            )
    extensions += C_EXTENSIONS
    return extensions


setup(packages=[*find_packages("src"), "upbitpipe.flink.sql"], ext_modules=ext_modules())
