"""Which of upbitpipe's modules run as compiled C, and whether a compiled copy is stale.

``pip install`` compiles the collector's hot modules with mypyc when a C compiler is there
(``MYPYC_MODULES`` in setup.py): each ``name.py`` gets a ``name.<abi>.so`` beside it, and
Python imports the ``.so`` first. In an editable install (``pip install -e .``) that means
an edit of ``name.py`` has no effect until the next ``pip install -e .``: the ``.so`` still
holds the old code. :func:`native_status` finds every compiled module by that pairing (and
every C kernel by its ``.c``) and flags a ``.so`` older than its source; the test session refuses to run on a stale one
(tests/conftest.py), the collector warns at start, and ``upbitpipe --version`` says which
modules are compiled.
"""

from __future__ import annotations

import ast
import importlib.machinery
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import upbitpipe
from upbitpipe.config import ENV_PURE_PYTHON

#: a ``.py`` edited up to this long after its ``.so`` was written still counts as built
#: with it: installing a wheel writes both in one go, in no particular order
MTIME_SLACK_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class CompiledModule:
    """One module that has a compiled extension beside its source."""

    name: str  # dotted, e.g. ``upbitpipe.upbit.codec``
    source: Path  # its .py (mypyc) or .c (a C kernel)
    extension: Path
    stale: bool  # the source was changed after the extension was built


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """The compiled modules of one installed package tree."""

    modules: tuple[CompiledModule, ...]

    @property
    def stale(self) -> tuple[CompiledModule, ...]:
        return tuple(module for module in self.modules if module.stale)

    def summary(self) -> str:
        """One line: ``native: compiled (codec, gate, dedup)`` or ``native: pure Python (...)``."""
        if not self.modules:
            return "native: pure Python (not compiled at install: no C compiler, or UPBITPIPE_PURE_PYTHON)"
        names = ", ".join(module.name.rsplit(".", 1)[-1] for module in self.modules)
        line = f"native: compiled ({names})"
        if pure_python_requested():
            # at run time the switch only leaves the hand-written C kernels unused
            line += (
                "; UPBITPIPE_PURE_PYTHON set: the C kernels (lake rows, frame scan) are not used"
            )
        if self.stale:
            stale = ", ".join(module.name.rsplit(".", 1)[-1] for module in self.stale)
            line += f"; STALE: {stale} changed since the build, run `pip install -e .` again"
        return line

    def stale_message(self) -> str | None:
        """What to do about stale modules (one line), or None when none is stale."""
        if not self.stale:
            return None
        files = ", ".join(str(module.source) for module in self.stale)
        return (
            f"compiled upbitpipe modules are older than their source, so Python runs the old "
            f"code: {files}; rebuild them with `pip install -e .` "
            f"(or delete their .so files beside them to run pure Python)"
        )


def pure_python_requested() -> bool:
    """True when ``UPBITPIPE_PURE_PYTHON`` is set (not empty, not 0): setup.py then builds no
    native code, and at run time the hand-written C kernels (the lake's rows, the collector's
    frame scan) stay unused."""
    return os.environ.get(ENV_PURE_PYTHON, "").strip() not in ("", "0")


def native_status(package_dir: Path | None = None) -> NativeStatus:
    """Every module of the package (``upbitpipe``'s own directory unless given) with a
    compiled extension beside its ``.py``, and whether that extension is stale.

    C kernels (``setup.py``'s ``C_EXTENSIONS``) count too, with their ``.c`` as the source.
    mypyc's shared support libraries (``*__mypyc.*.so``), without a source of their own
    beside them, are not listed.
    """
    root = Path(upbitpipe.__file__).parent if package_dir is None else package_dir
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    found: list[CompiledModule] = []
    for extension in sorted(root.rglob("*")):
        suffix = next((s for s in suffixes if extension.name.endswith(s)), None)
        if suffix is None or not extension.is_file():
            continue
        stem = extension.name.removesuffix(suffix)
        source = extension.with_name(stem + ".py")  # mypyc: the module it was compiled from
        if not source.is_file():
            source = extension.with_name(stem + ".c")  # a hand-written C kernel
            if not source.is_file():
                continue
        relative = source.relative_to(root).with_suffix("")
        name = ".".join((root.name, *relative.parts))
        built = extension.stat().st_mtime + MTIME_SLACK_SECONDS
        sources = [source]
        if source.suffix == ".py":  # mypyc builds the Final constants it imports in
            sources += _own_imports(source, root)
        stale = any(path.stat().st_mtime > built for path in sources)
        found.append(CompiledModule(name, source, extension, stale))
    return NativeStatus(tuple(found))


def _own_imports(source: Path, root: Path) -> list[Path]:
    """The package's own modules that ``source`` imports directly (by absolute or relative
    import): an edit of, say, ``upbit/fields.py`` changes what the compiled ``codec`` holds."""
    package = source.relative_to(root).parent.parts
    found: list[Path] = []
    for node in ast.walk(ast.parse(source.read_bytes())):
        names: list[tuple[str, ...]] = []
        if isinstance(node, ast.Import):
            names = [tuple(alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = tuple(node.module.split(".")) if node.module else ()
            if node.level:  # relative: from the source's package upwards
                base = package[: len(package) - node.level + 1] + base
                base = (root.name, *base)
            names = [base + (alias.name,) for alias in node.names] + [base]
        for parts in names:
            if not parts or parts[0] != root.name:
                continue
            path = root.joinpath(*parts[1:])
            for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                if candidate.is_file() and candidate != source and candidate not in found:
                    found.append(candidate)
    return found


def warn_if_stale(log: logging.Logger) -> bool:
    """Log a warning when a compiled module is stale (the collector calls this at start);
    True if it did."""
    message = native_status().stale_message()
    if message is None:
        return False
    log.warning("%s", message)
    return True
