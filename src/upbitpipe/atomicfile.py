"""Replace a small file so that a crash at any moment leaves the old content or the new one.

Shared by the collector's state files (resume point, gap records) and the Kafka sink's
transactional id and in-doubt marker: each is read back after a SIGKILL to decide what to
re-send, so half a file or a rename lost with the directory entry would be a wrong answer.
"""

from __future__ import annotations

import os
from pathlib import Path


def replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it over ``path``,
    then fsync the directory so the rename itself survives a crash."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
