"""A bounded buffer plus one writer task per sink (cryptofeed's BackendQueue, with
backpressure, flush, and a shutdown that loses nothing).

The collector adds events a frame batch at a time (``add_all``: one append to the buffer
per batch, whatever its size, with the batch's frame bytes counted once); the writer drains
up to ``batch_size`` at a time, hands them to the sink and calls ``flush()`` every
``flush_interval`` seconds. The writer sleeps on one future, woken by the next batch or by
one timer per flush interval (no timeout armed per wait).

Backpressure: the buffer is bounded in events and in frame bytes. When either bound is
reached, ``put`` waits until the writer has drained it to half, so the WebSocket reader
stops reading and TCP flow control slows the exchange down; a slow sink costs bounded
memory, never a silent drop. Each pause is counted (``backpressure_pauses``/``_seconds``)
and logged at most every 30 s.

Shutdown (``stop``): the writer drains and flushes until a reserve of the deadline is left;
then whatever is still buffered, plus what the sink holds but has not made durable
(``take_unflushed``), goes to an on-disk spool (``<state_dir>/spool/<sink>``). The next
start writes the spool into the sink before any new event. So within the deadline,
whatever the backlog, every event received is either in the sink or in the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from upbitpipe.errors import ServiceUnavailableError, UpbitpipeError
from upbitpipe.sinks.base import Sink, SinkEvent
from upbitpipe.sinks.spool import DiskSpool, SpoolFullError, event_from_spool, event_to_spool

log = logging.getLogger(__name__)

WARN_EVERY_SECONDS = 30.0
REPLAY_CHUNK = 20_000  # spooled events written per flush (and acknowledged) at start
SPOOL_CHUNK = 5000  # events per spool append at shutdown (one fsync each)
DEFAULT_SPOOL_MAX_BYTES = 4 * 1024**3


_RAW = operator.attrgetter("raw")


def raw_bytes_of(events: Sequence[SinkEvent]) -> int:
    """Frame bytes of a batch (the buffer's byte bound), summed in C."""
    return sum(map(len, map(_RAW, events)))


class SinkRunner:
    def __init__(
        self,
        sink: Sink,
        *,
        max_events: int,
        max_bytes: int,
        spool_dir: Path | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        batch_size: int = 2000,
        flush_interval: float = 1.0,
    ) -> None:
        """``spool_dir``: where events go that cannot reach the sink by the shutdown
        deadline (None: nowhere - only for tests and benchmarks)."""
        self.sink = sink
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.spool_dir = spool_dir
        self.spool_max_bytes = spool_max_bytes
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        # batches as added (never empty lists, never mutated), with their frame bytes
        self._buffer: deque[tuple[list[SinkEvent], int]] = deque()
        self._count = 0  # events in the buffer
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None  # the idle writer sleeps on it
        self._flush_due = False  # set by the flush timer (one per flush interval)
        self._room = asyncio.Event()  # set while producers may add events
        self._room.set()
        self._closing = False  # the writer ends once the buffer is empty
        self._released = False  # producers are no longer paused
        self._cutover = False  # stop feeding the sink: the rest goes to the spool
        self._clean = False  # the writer drained everything and the final flush succeeded
        self._spool: DiskSpool | None = None
        self._task: asyncio.Task[None] | None = None
        self.put_count = 0  # events put, in order
        self.written = 0  # of those, how many (a prefix) the sink accepted
        self.durable_events = 0  # of those, how many (a prefix) are durable: flushed or spooled
        self.write_errors = 0
        self.backpressure_pauses = 0
        self.backpressure_seconds = 0.0
        self.max_buffered_bytes = 0
        self.replayed_from_spool = 0
        self.spooled_at_stop = 0
        self.lost_at_stop = 0
        self._last_warning = 0.0

    # -- producer side ---------------------------------------------------------------

    async def put(self, event: SinkEvent) -> None:
        """Buffer one event; waits (backpressure) while the buffer is over its bound."""
        if self.add_all([event], len(event.raw)):
            await self._wait_for_room()

    async def put_all(self, events: Sequence[SinkEvent]) -> None:
        """Buffer a batch (one bound check for all of it); waits like ``put``."""
        if self.add_all(events):
            await self.wait_for_room()

    def add_all(self, events: Sequence[SinkEvent], raw_bytes: int | None = None) -> bool:
        """Buffer a batch without waiting; True when the caller must ``wait_for_room()``.
        ``raw_bytes``: the batch's frame bytes, if the caller counted them already.

        The batch is kept as it is (one append, not one per event): the caller hands the
        list over and must not change it afterwards (the collector gives every sink the
        same list). The collector adds a batch to every sink in one synchronous step (so
        each buffer's order matches the counts in its durable ledger) and only then waits
        for room."""
        count = len(events)
        if not count:
            return not self._room.is_set()
        size = raw_bytes_of(events) if raw_bytes is None else raw_bytes
        self._buffer.append((events if type(events) is list else list(events), size))
        self._count += count
        self._bytes += size
        self.put_count += count
        self._wake()
        if (self._count >= self.max_events or self._bytes >= self.max_bytes) and not self._released:
            self._room.clear()
        return not self._room.is_set()

    async def wait_for_room(self) -> None:
        """Wait while the buffer is over its bound (backpressure); at once otherwise."""
        if not self._room.is_set():
            await self._wait_for_room()

    def _wake(self) -> None:
        """Wake the writer if it sleeps (new events, the flush timer, or stop)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take_all(self) -> list[SinkEvent]:
        """Empty the buffer; its events in order."""
        events = [event for batch, _ in self._buffer for event in batch]
        self._buffer.clear()
        self._count = 0
        self._bytes = 0
        return events

    def take_buffered(self) -> list[SinkEvent]:
        """Remove and return what waits for the writer (tests and diagnostics)."""
        events = self._take_all()
        self._room.set()
        return events

    def release(self) -> None:
        """Stop pausing producers: the collector is stopping, so the readers can see it
        (what they still put is drained or spooled by ``stop``)."""
        self._released = True
        self._room.set()

    async def _wait_for_room(self) -> None:
        self.backpressure_pauses += 1
        self.max_buffered_bytes = max(self.max_buffered_bytes, self._bytes)
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning(
                "sink %s is slower than the exchange: reading paused at %d events / %.1f MB "
                "buffered (%d pauses so far)",
                self.sink.name,
                self._count,
                self._bytes / 1e6,
                self.backpressure_pauses,
            )
        try:
            await self._room.wait()
        finally:
            self.backpressure_seconds += time.monotonic() - now

    @property
    def paused(self) -> bool:
        return not self._room.is_set()

    def stats(self) -> dict[str, Any]:
        """The runner's own counters (the service merges them with the sink's)."""
        return {
            "queued": self._count,
            "queued_bytes": self._bytes,
            "written": self.written,
            "write_errors": self.write_errors,
            "backpressure_paused": self.paused,
            "backpressure_pauses": self.backpressure_pauses,
            "backpressure_seconds": round(self.backpressure_seconds, 1),
            "max_buffered_bytes": self.max_buffered_bytes,
            "stop_spool_records": len(self._spool) if self._spool is not None else 0,
            "replayed_from_spool": self.replayed_from_spool,
            "spooled_at_stop": self.spooled_at_stop,
            "lost_at_stop": self.lost_at_stop,
        }

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the sink and the stop spool; any failure becomes one readable domain error."""
        try:
            await self.sink.open()
            if self.spool_dir is not None:
                self._spool = await asyncio.to_thread(
                    DiskSpool, self.spool_dir, self.spool_max_bytes
                )
        except UpbitpipeError:
            raise
        except Exception as exc:
            msg = f"sink {self.sink.name} cannot start: {type(exc).__name__}: {exc}"
            raise ServiceUnavailableError(msg) from exc
        self._task = asyncio.create_task(self._run(), name=f"sink-{self.sink.name}")

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - a deadline for drain+spool
        """Drain, flush and close within ``timeout`` seconds; what cannot reach the sink in
        time is spooled to disk for the next start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        reserve = min(timeout / 2, max(1.0, timeout / 4))  # kept for spooling and close
        self.release()
        self._closing = True
        self._wake()
        task = self._task
        if task is not None:
            await asyncio.wait([task], timeout=max(0.0, deadline - reserve - loop.time()))
            if not task.done():
                log.warning(
                    "sink %s: %d events not written by the shutdown deadline; spooling them",
                    self.sink.name,
                    self._count,
                )
                self._cutover = True
                self._wake()
                await asyncio.wait([task], timeout=reserve / 4)  # let a short write finish
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._clean or self._buffer:
            await self._spool_leftovers()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sink.close(), timeout=max(0.5, deadline - loop.time()))

    # -- writer ----------------------------------------------------------------------

    async def _run(self) -> None:
        await self._replay_spool()
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.flush_interval, self._flush_time)
        try:
            while not self._cutover:
                if not self._buffer and not self._flush_due:
                    if self._closing:
                        break
                    self._waiter = waiter = loop.create_future()
                    try:
                        await waiter
                    finally:
                        self._waiter = None
                if self._cutover:
                    return
                if self._buffer:
                    await self._write(self._take_batch())
                if self._flush_due:
                    await self._flush()
                    self._flush_due = False
                    timer = loop.call_later(self.flush_interval, self._flush_time)
        finally:
            timer.cancel()
        if not self._cutover:
            self._clean = await self._flush()

    def _flush_time(self) -> None:
        self._flush_due = True
        self._wake()

    def _take_batch(self) -> list[SinkEvent]:
        """Up to ``batch_size`` events from the head of the buffer (whole added batches;
        only a batch cut in two has its frame bytes counted again)."""
        buffer = self._buffer
        if self._count <= self.batch_size:  # the usual case: the writer keeps up
            batch = buffer[0][0][:] if len(buffer) == 1 else self._take_all()
            buffer.clear()
            self._count = 0
            self._bytes = 0
        else:
            batch = []
            room = self.batch_size
            taken_bytes = 0
            while room:
                events, size = buffer[0]
                if len(events) <= room:
                    buffer.popleft()
                    batch += events
                    taken_bytes += size
                    room -= len(events)
                else:
                    head, rest = events[:room], events[room:]
                    rest_bytes = raw_bytes_of(rest) if len(rest) < room else None
                    head_bytes = size - rest_bytes if rest_bytes is not None else raw_bytes_of(head)
                    buffer[0] = (rest, size - head_bytes)
                    batch += head
                    taken_bytes += head_bytes
                    room = 0
            self._count -= len(batch)
            self._bytes -= taken_bytes
        if (
            not self._room.is_set()
            and self._count <= self.max_events // 2
            and self._bytes <= self.max_bytes // 2
        ):
            self._room.set()
        return batch

    async def _write(self, batch: list[SinkEvent], *, live: bool = True) -> None:
        # A sink must not raise for a destination outage (it spools); if it raises anyway
        # the batch is retried so nothing is dropped silently (until the shutdown cutover).
        # A write cancelled inside the sink leaves the batch to the sink (``take_unflushed``);
        # one cancelled between retries puts it back in the buffer, which gets spooled.
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
                if self._cutover and live:
                    self._put_back(batch)
                    return
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    if live:
                        self._put_back(batch)
                    raise
                delay = min(delay * 2, 30.0)
                continue
            if live:
                self.written += len(batch)
            return

    def _put_back(self, batch: list[SinkEvent]) -> None:
        """A batch the sink did not take goes back to the head of the buffer."""
        if batch:
            size = raw_bytes_of(batch)
            self._buffer.appendleft((batch, size))
            self._count += len(batch)
            self._bytes += size

    async def _flush(self) -> bool:
        """Flush the sink; on success everything written so far is durable."""
        written = self.written
        try:
            await self.sink.flush()
        except Exception as exc:
            self.write_errors += 1
            log.error("sink %s: flush failed: %s: %s", self.sink.name, type(exc).__name__, exc)
            return False
        self.durable_events = written
        return True

    # -- stop spool ------------------------------------------------------------------

    async def _replay_spool(self) -> None:
        """Deliver what an earlier run spooled at its stop, before any new event."""
        spool = self._spool
        if spool is None or not len(spool):
            return
        log.info(
            "sink %s: delivering %d events spooled at the last stop", self.sink.name, len(spool)
        )
        while not self._cutover:
            records = await asyncio.to_thread(spool.peek, REPLAY_CHUNK)
            if not records:
                return
            events = [event_from_spool(r) for r in records]
            for start in range(0, len(events), self.batch_size):
                await self._write(events[start : start + self.batch_size], live=False)
            while not await self._flush():
                if self._cutover:
                    return
                await asyncio.sleep(1.0)
            await asyncio.to_thread(spool.ack, len(records))
            self.replayed_from_spool += len(records)

    async def _spool_leftovers(self) -> None:
        leftovers = self.sink.take_unflushed() + self._take_all()
        if not leftovers:
            self.durable_events = self.put_count
            return
        if self._spool is None:
            self.lost_at_stop += len(leftovers)
            log.error("sink %s: %d events lost at stop (no spool)", self.sink.name, len(leftovers))
            return
        spool = self._spool

        def _append_all() -> None:
            for start in range(0, len(leftovers), SPOOL_CHUNK):
                chunk = leftovers[start : start + SPOOL_CHUNK]
                spool.append([event_to_spool(e) for e in chunk])
                self.spooled_at_stop += len(chunk)

        try:
            await asyncio.to_thread(_append_all)
        except (OSError, SpoolFullError) as exc:
            self.lost_at_stop += len(leftovers) - self.spooled_at_stop
            log.error(
                "sink %s: %d events lost at stop: the spool %s failed: %s",
                self.sink.name,
                self.lost_at_stop,
                self.spool_dir,
                exc,
            )
            return
        self.durable_events = self.put_count
        log.warning(
            "sink %s: %d events spooled to %s; the next start delivers them first",
            self.sink.name,
            len(leftovers),
            self.spool_dir,
        )
