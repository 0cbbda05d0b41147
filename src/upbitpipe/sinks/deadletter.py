"""Dead letters: frames we could not use, kept with their raw bytes and a reason.

One JSON object per line in ``<state_dir>/deadletter/deadletter-YYYY-MM-DD.jsonl``:
``{"ts": ms, "kind": "malformed|exchange_error|...", "reason": str, "raw_b64": str,
"raw_text": str | null}``. Writes are rare, so each is appended synchronously in a worker
thread; a count per kind is kept for the status file and metrics.

A dead letter that cannot be written (disk full, the path is a directory, read-only) is
counted in ``write_failures`` and logged, never raised: a bad frame must not take the
WebSocket down with it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import Counter
from pathlib import Path

import orjson

log = logging.getLogger(__name__)


class DeadLetterBox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.counts: Counter[str] = Counter()
        self.write_failures = 0
        self.last_write_error = ""
        self._lock = asyncio.Lock()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def path_for(self, ts_ms: int) -> Path:
        day = time.strftime("%Y-%m-%d", time.gmtime(ts_ms / 1000))
        return self.directory / f"deadletter-{day}.jsonl"

    async def put(self, kind: str, reason: str, raw: bytes) -> None:
        ts = int(time.time() * 1000)
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        line = orjson.dumps(
            {
                "ts": ts,
                "kind": kind,
                "reason": reason,
                "raw_b64": base64.b64encode(raw).decode("ascii"),
                "raw_text": text,
            }
        )
        self.counts[kind] += 1
        path = self.path_for(ts)
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, path, line)
        except OSError as exc:
            self.write_failures += 1
            self.last_write_error = f"{path}: {exc.strerror or exc}"
            if self.write_failures == 1 or self.write_failures % 100 == 0:
                log.error(
                    "cannot write dead letters (%d lost so far): %s",
                    self.write_failures,
                    self.last_write_error,
                )
        log.warning("dead-lettered %s frame: %s", kind, reason, extra={"dead_letters": self.total})

    @staticmethod
    def _append(path: Path, line: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as fh:
            fh.write(line + b"\n")
