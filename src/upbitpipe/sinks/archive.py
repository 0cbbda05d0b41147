"""Archive sink: raw frames as gzip JSON lines by date/hour - the input of `replay serve`.

It receives the deduplicated stream, so an archive holds each event once (REST-backfilled
trades as rebuilt DEFAULT frames). Compression and file I/O run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from upbitpipe.archive.capture import CaptureWriter
from upbitpipe.sinks.base import SinkEvent


class ArchiveSink:
    name = "archive"

    def __init__(self, root: Path, prefix: str = "frames") -> None:
        self.root = root
        self.prefix = prefix
        self._writer: CaptureWriter | None = None
        self.frames = 0
        self.flushes = 0

    async def open(self) -> None:
        self._writer = await asyncio.to_thread(CaptureWriter, self.root, self.prefix)

    async def write(self, events: Sequence[SinkEvent]) -> None:
        writer = self._writer
        assert writer is not None, "open() first"
        items = [(int(e.record.get("_ingested_at", 0)), e.raw) for e in events]

        def _write_all() -> None:
            for recv_ms, raw in items:
                writer.write(recv_ms, raw)

        await asyncio.to_thread(_write_all)
        self.frames += len(items)

    async def flush(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.flush)
            self.flushes += 1

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
            self._writer = None

    def stats(self) -> dict[str, Any]:
        return {"root": str(self.root), "frames": self.frames, "flushes": self.flushes}
