"""A queue plus one writer task per sink (cryptofeed's BackendQueue, with flush and close).

The collector puts events in; the writer drains up to ``batch_size`` at a time and hands them
to the sink, calling ``flush()`` every ``flush_interval`` seconds. A full queue makes ``put``
wait: backpressure reaches the WebSocket reader instead of events being dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from upbitpipe.errors import ServiceUnavailableError, UpbitpipeError
from upbitpipe.sinks.base import Sink, SinkEvent

log = logging.getLogger(__name__)

_CLOSE = object()


class SinkRunner:
    def __init__(
        self, sink: Sink, *, queue_size: int, batch_size: int = 2000, flush_interval: float = 1.0
    ) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_size)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.written = 0
        self.write_errors = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the sink; any failure becomes one readable domain error naming the sink."""
        try:
            await self.sink.open()
        except UpbitpipeError:
            raise
        except Exception as exc:
            msg = f"sink {self.sink.name} cannot start: {type(exc).__name__}: {exc}"
            raise ServiceUnavailableError(msg) from exc
        self._task = asyncio.create_task(self._run(), name=f"sink-{self.sink.name}")

    async def put(self, event: SinkEvent) -> None:
        await self.queue.put(event)

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - a deadline for drain+close
        """Drain what is queued, flush and close, within ``timeout`` seconds."""
        if self._task is not None:
            await self.queue.put(_CLOSE)
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
            except TimeoutError:
                log.error(
                    "sink %s: did not drain within %.0fs (%d queued)",
                    self.sink.name,
                    timeout,
                    self.queue.qsize(),
                )
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sink.close(), timeout=max(1.0, timeout))

    async def _run(self) -> None:
        last_flush = time.monotonic()
        closing = False
        while not closing:
            batch: list[SinkEvent] = []
            try:
                item = await asyncio.wait_for(self.queue.get(), timeout=self.flush_interval)
            except TimeoutError:
                item = None
            while item is not None:
                if item is _CLOSE:
                    closing = True
                    break
                assert isinstance(item, SinkEvent)
                batch.append(item)
                if len(batch) >= self.batch_size:
                    break
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    item = None
            if batch:
                await self._write(batch)
            if closing or time.monotonic() - last_flush >= self.flush_interval:
                await self._flush()
                last_flush = time.monotonic()

    async def _write(self, batch: list[SinkEvent]) -> None:
        # A sink must not raise for a destination outage (it spools); if it raises anyway
        # the batch is retried so nothing is dropped silently.
        delay = 0.5
        while True:
            try:
                await self.sink.write(batch)
            except Exception:
                self.write_errors += 1
                log.exception(
                    "sink %s: write of %d events failed; retrying in %.1fs",
                    self.sink.name,
                    len(batch),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.written += len(batch)
            return

    async def _flush(self) -> None:
        try:
            await self.sink.flush()
        except Exception:
            self.write_errors += 1
            log.exception("sink %s: flush failed", self.sink.name)
