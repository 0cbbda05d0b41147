"""One WebSocket client of the replay server: its subscription, send queue and faults.

Frames are queued as pre-serialised bytes and written by one sender task in batches of up
to 1024, then ``drain()`` for back-pressure. Without a negotiated extension (no
permessage-deflate) each event is framed once (:meth:`WireEvent.ws_frame`, shared by every
such client) and a batch is one ``transport.write``; with compression every frame goes
through websockets' ``protocol.send_binary``. Status/error/close frames always go through
the protocol object. A client that falls more than ``max_pending_frames`` behind is closed
(1008), as an exchange would drop a slow consumer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidState
from websockets.protocol import State

from upbitpipe.replay.frames import GARBAGE_FRAME, WireEvent, binary_frame
from upbitpipe.replay.limits import WindowLimit
from upbitpipe.replay.options import ReplayOptions

log = logging.getLogger(__name__)

_BATCH = 1024


def _is_trade(frame: bytes) -> bool:
    """Fault injection only: is this (possibly pre-framed) frame a trade?"""
    head = frame[:24]
    return b'"ty":"trade"' in head or b'"type":"trade"' in head


class ReplayConnection(ServerConnection):
    """A server connection that notes when anything (data, ping, pong) was last received."""

    last_rx: float = 0.0
    remaining_connects: int = 0  # this second's connect budget left, for the upgrade headers

    def process_event(self, event: object) -> None:
        self.last_rx = time.monotonic()
        super().process_event(event)  # type: ignore[arg-type]


class ClientSession:
    """Routes, queue and fault state of one connection."""

    def __init__(
        self, ws: ServerConnection, options: ReplayOptions, stats: Counter[str], seed: int
    ) -> None:
        self.ws = ws
        self.options = options
        self.stats = stats
        self.routes: dict[tuple[str, str], int] = {}
        self.snapshot_keys: set[tuple[str, str]] = set()  # (type, market) wanting snapshots
        self.format = "DEFAULT"
        # bytes only (not tuples): a deep queue must not add GC-tracked objects
        self.queue: deque[bytes] = deque()
        self.sent = 0
        self.dropped = False
        self.last_tx = time.monotonic()
        self._wake = asyncio.Event()
        self.closing: asyncio.Task[None] | None = None  # kept, awaited by the handler
        self._rng = random.Random(seed)
        self._held: bytes | None = None
        self._faulty = options.has_faults
        # Fast path: without extensions (no permessage-deflate) a frame is just header +
        # payload, so frames are pre-framed once per event and a batch is one write().
        self._preframed = not ws.protocol.extensions
        self._garbage = binary_frame(GARBAGE_FRAME) if self._preframed else GARBAGE_FRAME
        self._next_stall = (
            time.monotonic() + options.stall_every_seconds if options.stall_every_seconds else None
        )
        self._per_second = (
            WindowLimit(options.subscribe_per_second) if options.subscribe_per_second else None
        )
        self._per_minute = (
            WindowLimit(options.subscribe_per_minute, 60.0)
            if options.subscribe_per_minute
            else None
        )

    # --- fan-in -----------------------------------------------------------------------
    def offer(self, events: Iterable[WireEvent]) -> None:
        """Queue the frames of ``events`` this client subscribed to."""
        routes = self.routes
        fmt = self.format
        append = self.queue.append
        render = WireEvent.ws_frame if self._preframed else WireEvent.frame
        for event in events:
            depth = routes.get(event.key)
            if depth is not None:
                if event.snapshot:  # a recorded SNAPSHOT: only for who asked for snapshots
                    if event.key in self.snapshot_keys:
                        append(render(event, fmt, depth, True))
                else:
                    append(render(event, fmt, depth, False))
        if self.queue:
            if len(self.queue) > self.options.max_pending_frames:
                self._too_slow()
                return
            self._wake.set()

    def enqueue(self, payloads: Iterable[bytes]) -> None:
        wrap = binary_frame if self._preframed else bytes
        self.queue.extend(wrap(payload) for payload in payloads)
        self._wake.set()

    def replace(
        self,
        fmt: str,
        routes: dict[tuple[str, str], int],
        snapshot_keys: set[tuple[str, str]] | None = None,
    ) -> None:
        """A new request replaces the old subscription and what was queued for it."""
        self.queue.clear()
        self._held = None
        self.format = fmt
        self.routes = routes
        self.snapshot_keys = snapshot_keys or set()

    def allow_request(self) -> bool:
        ok = True
        for limit in (self._per_second, self._per_minute):
            if limit is not None and not limit.take():
                ok = False
        return ok

    def send_control(self, frame: bytes) -> None:
        """Status and error frames: straight out, outside the data queue and its faults."""
        try:
            self.ws.protocol.send_binary(frame)
            self.ws.send_data()
        except InvalidState:
            return
        self.last_tx = time.monotonic()

    # --- faults -----------------------------------------------------------------------
    def drop(self) -> None:
        """Cut the TCP connection without a close frame (a network failure)."""
        if not self.dropped:
            self.dropped = True
            self.stats["connections_dropped"] += 1
            transport = self.ws.transport
            if transport is not None:
                transport.abort()

    def _too_slow(self) -> None:
        self.stats["slow_consumer_closes"] += 1
        self.queue.clear()
        self.routes = {}
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(
                self.ws.close(1008, "client too slow")
            )

    # --- sender -----------------------------------------------------------------------
    async def run_sender(self) -> None:
        ws = self.ws
        queue = self.queue
        try:
            while not self.dropped:
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self._next_stall is not None and time.monotonic() >= self._next_stall:
                    await self._stall()
                    continue
                if ws.protocol.state is not State.OPEN or ws.transport.is_closing():
                    return
                out: list[bytes] = []
                if self._faulty:
                    self._batch_with_faults(out)
                else:
                    n = min(len(queue), _BATCH)
                    popleft = queue.popleft
                    out = [popleft() for _ in range(n)]
                    self.sent += n
                    self.stats["frames_sent"] += n
                self._write(out)
                if self.dropped:
                    return
                self.last_tx = time.monotonic()
                await ws.drain()
        except (ConnectionClosed, InvalidState, ConnectionError):
            return

    async def _stall(self) -> None:
        self.stats["stalls"] += 1
        await asyncio.sleep(self.options.stall_seconds)
        every = self.options.stall_every_seconds or 0.0
        self._next_stall = time.monotonic() + every

    def _write(self, frames: list[bytes]) -> None:
        if not frames:
            return
        ws = self.ws
        if self._preframed:
            ws.transport.write(b"".join(frames))
        else:
            send = ws.protocol.send_binary
            for frame in frames:
                send(frame)
            ws.send_data()

    def _batch_with_faults(self, out: list[bytes]) -> None:
        options = self.options
        queue = self.queue
        rng = self._rng
        stats = self.stats
        for _ in range(min(len(queue), _BATCH)):
            frame = queue.popleft()
            is_trade = _is_trade(frame)
            self.sent += 1
            if options.malformed_every and self.sent % options.malformed_every == 0:
                out.append(self._garbage)
                stats["malformed_sent"] += 1
            if is_trade and self._held is None and rng.random() < options.reorder_rate:
                self._held = frame  # goes out after the next trade
                stats["trades_reordered"] += 1
            else:
                out.append(frame)
                stats["frames_sent"] += 1
                if is_trade and self._held is not None:
                    out.append(self._held)
                    stats["frames_sent"] += 1
                    self._held = None
                if is_trade and rng.random() < options.duplicate_rate:
                    out.append(frame)
                    stats["trades_duplicated"] += 1
            if options.drop_after_messages and self.sent >= options.drop_after_messages:
                self._write(out)
                out.clear()
                self.drop()
                return

    async def watch_idle(self) -> None:
        """Cut the connection after ``idle_timeout_seconds`` with nothing sent or received.

        Upbit documents 120 s, but a probe of the live service saw idle sockets cut at about
        60 s, as a TCP close without a close frame (1006); the twin does the same.
        """
        idle = self.options.idle_timeout_seconds
        step = min(max(idle / 4, 0.05), 5.0)
        ws = self.ws
        while True:
            await asyncio.sleep(step)
            last_rx = getattr(ws, "last_rx", 0.0)
            if time.monotonic() - max(self.last_tx, last_rx) >= idle:
                self.stats["idle_closes"] += 1
                transport = ws.transport
                if transport is not None:
                    transport.abort()
                return

    def close_after_error(self, delay: float = 0.15) -> None:
        """Upbit closes (1000) a connection about 150 ms after it sent an error frame."""
        if self.closing is None:
            self.routes = {}
            self.queue.clear()
            self.closing = asyncio.get_running_loop().create_task(self._close_later(delay))

    async def _close_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.ws.close(1000)
