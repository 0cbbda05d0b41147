"""One WebSocket connection to Upbit for a shard of markets, kept alive forever.

Loop: wait for a connect slot (rate limit) -> connect -> subscribe -> read frames until the
socket closes, goes silent past the watchdog, or we are told to stop -> back off (exponential,
full jitter, capped) -> again. Backoff resets once a subscription has produced data. Every
frame goes to ``on_frame`` untouched; after a reconnect ``on_reconnect`` is awaited so the
service can backfill what was missed while the socket was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import ClientConnection, connect

from upbitpipe.backoff import Backoff
from upbitpipe.collector.ratelimit import RateLimiter
from upbitpipe.config import UpbitSettings
from upbitpipe.upbit.codec import subscribe_request

log = logging.getLogger(__name__)

YIELD_EVERY_FRAMES = 64

# returns True when the frame was market data: only those feed the silence watchdog
FrameHandler = Callable[[bytes, int], Awaitable[bool]]
ReconnectHandler = Callable[["ConnectionState", float], Awaitable[None]]


@dataclass
class ConnectionState:
    """What ``stats`` shows per connection."""

    shard: int
    markets: list[str]
    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    frames: int = 0
    last_frame_at: float = 0.0
    last_error: str = ""
    down_since: float = field(default_factory=time.time)


class UpbitConnection:
    def __init__(
        self,
        shard: int,
        markets: Sequence[str],
        types: Sequence[str],
        settings: UpbitSettings,
        connect_limiter: RateLimiter,
        on_frame: FrameHandler,
        on_reconnect: ReconnectHandler,
        *,
        backoff: Backoff,
        resume: bool = False,
    ) -> None:
        self.state = ConnectionState(shard=shard, markets=list(markets))
        self.types = list(types)
        self.settings = settings
        self.connect_limiter = connect_limiter
        self.on_frame = on_frame
        self.on_reconnect = on_reconnect
        self.backoff = backoff
        self.resume = resume
        self._ws: ClientConnection | None = None
        self._last_frame_mono = 0.0
        self._watchdog_fired = False

    async def run(self, stop: asyncio.Event) -> None:
        """Connect and read until ``stop`` is set; never raises for network trouble."""
        first = not self.resume  # resuming an earlier run: the first session is a reconnect
        while not stop.is_set():
            await self.connect_limiter.acquire()
            try:
                await self._session(stop, reconnected=not first)
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "shard %d: connection lost: %s", self.state.shard, self.state.last_error
                )
            finally:
                if self.state.connected:
                    self.state.disconnects += 1
                    self.state.down_since = time.time()
                self.state.connected = False
                self._ws = None
            first = False
            if stop.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("shard %d: reconnecting in %.1fs", self.state.shard, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def _session(self, stop: asyncio.Event, *, reconnected: bool) -> None:
        url = str(self.settings.websocket_url)
        async with connect(
            url,
            open_timeout=self.settings.request_timeout_seconds,
            ping_interval=None,  # Upbit keepalive is the text PING below
            max_size=2**22,
            max_queue=1024,  # frames websockets buffers before TCP flow control (memory)
            compression=None,
            close_timeout=2,  # do not wait long behind a backlogged server at shutdown
        ) as ws:
            self._ws = ws
            request = subscribe_request(
                f"upbitpipe-{uuid.uuid4().hex[:12]}",
                self.types,
                self.state.markets,
                fmt=self.settings.format,
                orderbook_depth=self.settings.orderbook_depth,
            )
            await ws.send(request)
            self.state.connected = True
            self.state.connects += 1
            outage = time.time() - self.state.down_since
            log.info("shard %d: subscribed %d markets", self.state.shard, len(self.state.markets))
            await self._read(ws, stop, outage if reconnected else None)

    async def _read(self, ws: ClientConnection, stop: asyncio.Event, outage: float | None) -> None:
        """Read until the socket closes (``close()`` on stop, or the watchdog).

        After a reconnect (``outage`` given), ``on_reconnect`` runs once the first frame
        arrived: only then is the subscription surely live, so a REST backfill started now
        overlaps the stream instead of leaving a gap between the two.
        """
        self._last_frame_mono = time.monotonic()
        self._watchdog_fired = False
        keepalive = asyncio.create_task(self._keepalive(ws), name=f"ping-{self.state.shard}")
        got_data = False
        try:
            while not stop.is_set():
                try:
                    frame = await ws.recv()
                except websockets.ConnectionClosed:
                    if stop.is_set():
                        return
                    if self._watchdog_fired:
                        msg = (
                            f"no market data for {self.settings.silence_timeout_seconds:.0f}s "
                            "(watchdog)"
                        )
                        raise TimeoutError(msg) from None
                    raise
                raw = frame.encode() if isinstance(frame, str) else frame
                received_ms = int(time.time() * 1000)
                self.state.frames += 1
                self.state.last_frame_at = received_ms / 1000
                if await self.on_frame(raw, received_ms):
                    # market data only: the {"status":"UP"} answer to our own PING, error
                    # frames and garbage do not prove the subscription is alive
                    self._last_frame_mono = time.monotonic()
                if not self.state.frames % YIELD_EVERY_FRAMES:
                    # ``recv`` returns buffered frames without suspending: yield so the sink
                    # writers run and their backpressure can reach this reader
                    await asyncio.sleep(0)
                if not got_data:
                    got_data = True
                    self.backoff.reset()
                    if outage is not None:
                        await self.on_reconnect(self.state, outage)
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive

    async def _keepalive(self, ws: ClientConnection) -> None:
        """Text PING every ``ping_interval`` (Upbit closes sockets idle for 120 s; it answers
        {"status":"UP"}), and the silence watchdog: a socket with no market data for
        ``silence_timeout`` is aborted so the run loop reconnects - a zombie that answers
        PING but sends no data is recycled too (and the reconnect backfills the gap). One
        timer task per connection instead of a timeout around every ``recv``: the hot path
        stays cheap."""
        ping_every = self.settings.ping_interval_seconds
        silence = self.settings.silence_timeout_seconds
        tick = min(1.0, ping_every, silence / 4)
        last_ping = time.monotonic()
        with contextlib.suppress(websockets.WebSocketException):
            while True:
                await asyncio.sleep(tick)
                now = time.monotonic()
                if now - self._last_frame_mono > silence:
                    self._watchdog_fired = True
                    log.warning(
                        "shard %d: no market data for %.0fs, reconnecting",
                        self.state.shard,
                        silence,
                    )
                    ws.transport.abort()
                    return
                if now - last_ping >= ping_every:
                    await ws.send("PING")
                    last_ping = now
