"""The capture (archive) format: every received frame, with its receive time, as gzip JSON lines.

One line per frame::

    {"recv_ms": 1730336862090, "frame": "{\\"ty\\":\\"trade\\",\\"cd\\":\\"KRW-BTC\\",...}"}

``frame`` is the frame exactly as received, as UTF-8 text. A frame that is not valid UTF-8
(garbage the exchange or a fault injector sent) is stored as ``"frame_b64"`` instead, so
the archive keeps every byte. Files are partitioned by the UTC hour of ``recv_ms``::

    <root>/dt=YYYY-MM-DD/hour=HH/<prefix>-<n>.jsonl.gz

Each :meth:`CaptureWriter.flush` appends one complete gzip member and fsyncs, so a reader
(``replay serve``) can read a file that is still being written and a crash loses at most
the lines written since the last flush. ``gzip`` reads multi-member files natively.
"""

from __future__ import annotations

import base64
import gzip
import heapq
import logging
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import orjson

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
_AUTO_FLUSH_BYTES = 4 * 1024 * 1024  # bound memory between explicit flushes
_FILE_RE = re.compile(r"^(?P<prefix>.+)-(?P<n>\d+)\.jsonl\.gz$")


def encode_line(recv_ms: int, frame: bytes) -> bytes:
    """One capture line (with the trailing newline)."""
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        return (
            orjson.dumps({"recv_ms": recv_ms, "frame_b64": base64.b64encode(frame).decode()})
            + b"\n"
        )
    return orjson.dumps({"recv_ms": recv_ms, "frame": text}) + b"\n"


def decode_line(line: bytes) -> tuple[int, bytes]:
    """Inverse of :func:`encode_line`; raises ``ValueError`` on a bad line."""
    obj = orjson.loads(line)
    if not isinstance(obj, dict) or not isinstance(obj.get("recv_ms"), int):
        msg = "capture line without integer 'recv_ms'"
        raise ValueError(msg)
    frame = obj.get("frame")
    if isinstance(frame, str):
        return obj["recv_ms"], frame.encode("utf-8")
    b64 = obj.get("frame_b64")
    if isinstance(b64, str):
        return obj["recv_ms"], base64.b64decode(b64)
    msg = "capture line without 'frame' or 'frame_b64'"
    raise ValueError(msg)


def partition_dir(root: Path, recv_ms: int) -> Path:
    """``root/dt=YYYY-MM-DD/hour=HH`` for the UTC hour of ``recv_ms``."""
    moment = datetime.fromtimestamp(recv_ms / 1000, tz=UTC)
    return root / f"dt={moment:%Y-%m-%d}" / f"hour={moment:%H}"


class CaptureWriter:
    """Append frames to partitioned gzip JSONL files; not thread-safe, one per writer task."""

    def __init__(
        self, root: Path, prefix: str = "frames", max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    ) -> None:
        if "/" in prefix or not prefix:
            msg = f"capture prefix must be a plain non-empty name, got {prefix!r}"
            raise ValueError(msg)
        self.root = Path(root)
        self.prefix = prefix
        self.max_file_bytes = max_file_bytes
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_dir: Path | None = None
        self._hour_start = self._hour_end = 0  # the UTC hour of _hour_dir, epoch ms [start, end)
        self._hour_dir = self.root
        self._file: BinaryIO | None = None
        self._file_dir: Path | None = None
        self._file_bytes = 0
        self.lines_written = 0
        self.files_opened = 0
        self.current_path: Path | None = None

    def write(self, recv_ms: int, frame: bytes) -> None:
        """Buffer one frame; it reaches the disk at the next :meth:`flush` (or auto-flush)."""
        if not self._hour_start <= recv_ms < self._hour_end:  # another hour than the last
            self._hour_start = recv_ms - recv_ms % 3_600_000
            self._hour_end = self._hour_start + 3_600_000
            self._hour_dir = partition_dir(self.root, recv_ms)
        directory = self._hour_dir
        if directory != self._pending_dir and self._pending:
            self._write_member(sync=False)
        self._pending_dir = directory
        line = encode_line(recv_ms, frame)
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= _AUTO_FLUSH_BYTES:
            self._write_member(sync=False)

    def flush(self) -> None:
        """Write buffered lines as one complete gzip member and fsync: durable and readable."""
        if self._pending:
            self._write_member(sync=True)
        elif self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close the current file. The writer can be used again afterwards."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
            self._file_dir = None

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _write_member(self, *, sync: bool) -> None:
        assert self._pending_dir is not None
        data = b"".join(self._pending)
        count = len(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        member = gzip.compress(data, compresslevel=6, mtime=0)
        handle = self._handle_for(self._pending_dir, len(member))
        handle.write(member)
        handle.flush()
        if sync:
            os.fsync(handle.fileno())
        self._file_bytes += len(member)
        self.lines_written += count

    def _handle_for(self, directory: Path, incoming: int) -> BinaryIO:
        rotate = self._file is not None and (
            directory != self._file_dir
            or (self._file_bytes > 0 and self._file_bytes + incoming > self.max_file_bytes)
        )
        if rotate and self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        if self._file is None:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{self.prefix}-{self._next_number(directory)}.jsonl.gz"
            self._file = path.open("xb")
            self._file_dir = directory
            self._file_bytes = 0
            self.files_opened += 1
            self.current_path = path
        return self._file

    def _next_number(self, directory: Path) -> int:
        numbers = [
            int(match["n"])
            for entry in directory.iterdir()
            if (match := _FILE_RE.match(entry.name)) and match["prefix"] == self.prefix
        ]
        return max(numbers, default=-1) + 1


def _file_sort_key(path: Path) -> tuple[str, str, int]:
    match = _FILE_RE.match(path.name)
    return (
        str(path.parent),
        match["prefix"] if match else path.name,
        int(match["n"]) if match else 0,
    )


def capture_files(path: Path) -> list[Path]:
    """The capture files under ``path`` (or ``[path]``), partition by partition."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        msg = f"capture {path} does not exist"
        raise FileNotFoundError(msg)
    files = [p for p in path.rglob("*.jsonl*") if p.is_file()]
    return sorted(files, key=_file_sort_key)


def _read_file(path: Path) -> Iterator[tuple[int, bytes]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    bad = 0
    with opener(path, "rb") as handle:
        try:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    yield decode_line(line)
                except ValueError:
                    bad += 1
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            # A member cut short by a crash or a writer still at work: stop at the last
            # complete line, like a reader of a growing log would.
            log.warning("capture %s ends in an incomplete gzip member: %s", path, exc)
    if bad:
        log.warning("capture %s: skipped %d unreadable lines", path, bad)


def _merge(files: Iterable[Path]) -> Iterator[tuple[int, bytes]]:
    return heapq.merge(*(_read_file(p) for p in files), key=lambda item: item[0])


def read_capture(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(recv_ms, frame)`` from one capture file or every file under a directory.

    Files of the same hour partition (several collectors, or rotated files) are merged by
    ``recv_ms``; partitions follow each other in time order.
    """
    by_dir: dict[Path, list[Path]] = {}
    for file in capture_files(Path(path)):
        by_dir.setdefault(file.parent, []).append(file)
    for directory in sorted(by_dir):
        files = by_dir[directory]
        if len(files) == 1:
            yield from _read_file(files[0])
        else:
            yield from _merge(files)
