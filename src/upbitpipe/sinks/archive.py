"""Archive sink: raw frames as gzip JSON lines by date/hour - the input of `replay serve`.

It receives the deduplicated stream, so an archive holds each event once (REST-backfilled
trades as rebuilt DEFAULT frames). Compression and file I/O run in the sink's own single
worker thread, so its operations happen in call order even when a write is cancelled at a
bounded shutdown (the cancelled write still completes, and ``close()`` makes it durable:
``take_unflushed`` has nothing to hand back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from upbitpipe.archive.capture import CaptureWriter
from upbitpipe.sinks.base import SinkEvent


class ArchiveSink:
    name = "archive"
    flush_interval = 1.0

    def __init__(self, root: Path, prefix: str = "frames") -> None:
        self.root = root
        self.prefix = prefix
        self._writer: CaptureWriter | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.frames = 0
        self.flushes = 0

    async def _in_thread(self, fn: Callable[[], None]) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive")
        await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def open(self) -> None:
        def _open() -> None:
            self._writer = CaptureWriter(self.root, self.prefix)

        await self._in_thread(_open)

    async def write(self, events: Sequence[SinkEvent]) -> None:
        writer = self._writer
        assert writer is not None, "open() first"
        items = [(int(e.record.get("_ingested_at", 0)), e.raw) for e in events]

        def _write_all() -> None:
            for recv_ms, raw in items:
                writer.write(recv_ms, raw)

        await self._in_thread(_write_all)
        self.frames += len(items)

    async def flush(self) -> None:
        if self._writer is not None:
            await self._in_thread(self._writer.flush)
            self.flushes += 1

    def take_unflushed(self) -> list[SinkEvent]:
        return []  # buffered lines are written by close(), queued behind any running write

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                await self._in_thread(writer.close)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    def stats(self) -> dict[str, Any]:
        return {"root": str(self.root), "frames": self.frames, "flushes": self.flushes}
