"""The collector's state dir and its files, checked before anything is written there.

Layout of ``collector.state_dir``: ``collector.lock`` (one collector per dir, holds its PID),
``status.json`` (:mod:`upbitpipe.collector.status`), ``resume.json`` and ``gaps.json``
(:mod:`upbitpipe.collector.resume`, :mod:`upbitpipe.collector.gaps`), ``deadletter/``,
``kafka-spool/``, ``archive/``.

Every problem is one line naming the path and what is wrong (:class:`StateFileError`):
a state dir that is a file or cannot be written, a state file that is a directory. A file
whose *content* has the wrong shape is moved aside as ``<name>.bad-<epoch>`` (nothing is
lost, the next run starts clean) and reported with a warning - a ``resume.json`` of ``null``
must not become a crash loop under ``Restart=always``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from upbitpipe.atomicfile import replace_atomically
from upbitpipe.errors import StateFileError

log = logging.getLogger(__name__)

LOCK_FILE = "collector.lock"


def prepare_state_dir(state_dir: Path, files: tuple[str, ...] = ()) -> None:
    """Create ``state_dir`` if missing; raise one line if it is unusable.

    ``files`` are state files the collector will write at stop: one that is a directory is
    refused now, not with a traceback at shutdown.
    """
    key = "collector.state_dir"
    if state_dir.exists() and not state_dir.is_dir():
        msg = f"{key}: {state_dir} is a file, not a directory"
        raise StateFileError(msg)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"{key}: cannot create {state_dir} ({exc.strerror or exc})"
        raise StateFileError(msg) from None
    probe = state_dir / f".write-test.{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        msg = f"{key}: cannot write in {state_dir} ({exc.strerror or exc})"
        raise StateFileError(msg) from None
    for name in (LOCK_FILE, *files):
        path = state_dir / name
        if path.is_dir():
            msg = f"state file {path} is a directory; remove it or set {key}"
            raise StateFileError(msg)


@contextlib.contextmanager
def state_dir_lock(state_dir: Path) -> Iterator[None]:
    """One collector per state dir: the spool and dead letters are not shared.

    The lock file is opened without truncating it: a collector that is refused must not
    erase the PID of the one that holds the lock. The PID is written only once locked.
    """
    lock_path = state_dir / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        msg = f"lock file {lock_path}: cannot open it ({exc.strerror or exc})"
        raise StateFileError(msg) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            msg = (
                f"another collector{pid} is running with state dir {state_dir} "
                "(set collector.state_dir)"
            )
            raise StateFileError(msg) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def move_aside(path: Path, problem: str) -> Path | None:
    """Rename a state file of the wrong shape to ``<name>.bad-<epoch>`` and warn."""
    target = path.with_name(f"{path.name}.bad-{int(time.time())}")
    try:
        path.replace(target)
    except OSError as exc:
        log.warning("%s %s, and it cannot be moved aside (%s); ignored", path, problem, exc)
        return None
    log.warning("%s %s; moved aside to %s, starting without it", path, problem, target.name)
    return target


def read_state_object(path: Path, what: str) -> dict[str, Any] | None:
    """A state file holding one JSON object; None when absent. Content of another shape is
    moved aside (:func:`move_aside`); an unreadable path is one line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        msg = f"{what} file {path}: cannot read it ({exc.strerror or exc})"
        raise StateFileError(msg) from None
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        move_aside(path, "is not JSON")
        return None
    if not isinstance(data, dict):
        move_aside(path, f"holds a JSON {type(data).__name__}, not an object")
        return None
    return data


def write_state_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON: a crash at any moment leaves the old file or
    the new one, never half of one."""
    replace_atomically(path, orjson.dumps(data))
