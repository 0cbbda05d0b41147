"""One WebSocket connection to Upbit for a shard of markets, kept alive forever.

Loop: wait for a connect slot (rate limit) -> connect -> subscribe -> read frames until the
socket closes, goes silent past the watchdog, or we are told to stop -> back off (exponential,
full jitter, capped) -> again. Backoff resets once a subscription has produced data. Frames
go to ``on_frames`` untouched, in batches of what arrived together (``transport``: picows or
websockets); after a reconnect ``on_reconnect`` is awaited so the service can backfill what
was missed while the socket was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from upbitpipe.backoff import Backoff
from upbitpipe.collector.ratelimit import RateLimiter
from upbitpipe.collector.transport import Frame, WireClosed, WireError, WireSession, open_session
from upbitpipe.config import UpbitSettings
from upbitpipe.upbit.codec import subscribe_request

log = logging.getLogger(__name__)

YIELD_EVERY_FRAMES = 64

# returns True when a frame was market data: only those feed the silence watchdog
FramesHandler = Callable[[Sequence[Frame]], Awaitable[bool]]
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
        on_frames: FramesHandler,
        on_reconnect: ReconnectHandler,
        *,
        backoff: Backoff,
        resume: bool = False,
    ) -> None:
        self.state = ConnectionState(shard=shard, markets=list(markets))
        self.types = list(types)
        self.settings = settings
        self.connect_limiter = connect_limiter
        self.on_frames = on_frames
        self.on_reconnect = on_reconnect
        self.backoff = backoff
        self.resume = resume
        self._session: WireSession | None = None
        self._last_frame_mono = 0.0
        self._watchdog_fired = False

    async def run(self, stop: asyncio.Event) -> None:
        """Connect and read until ``stop`` is set; never raises for network trouble."""
        first = not self.resume  # resuming an earlier run: the first session is a reconnect
        while not stop.is_set():
            await self.connect_limiter.acquire()
            try:
                await self._session_run(stop, reconnected=not first)
            except WireError as exc:
                self.state.last_error = str(exc)
                log.warning(
                    "shard %d: connection lost: %s", self.state.shard, self.state.last_error
                )
            except (TimeoutError, OSError) as exc:
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "shard %d: connection lost: %s", self.state.shard, self.state.last_error
                )
            finally:
                if self.state.connected:
                    self.state.disconnects += 1
                    self.state.down_since = time.time()
                self.state.connected = False
                self._session = None
            first = False
            if stop.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("shard %d: reconnecting in %.1fs", self.state.shard, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()

    async def _session_run(self, stop: asyncio.Event, *, reconnected: bool) -> None:
        async with open_session(
            self.settings.transport,
            str(self.settings.websocket_url),
            open_timeout=self.settings.request_timeout_seconds,
        ) as session:
            self._session = session
            request = subscribe_request(
                f"upbitpipe-{uuid.uuid4().hex[:12]}",
                self.types,
                self.state.markets,
                fmt=self.settings.format,
                orderbook_depth=self.settings.orderbook_depth,
            )
            await session.send_text(request)
            self.state.connected = True
            self.state.connects += 1
            outage = time.time() - self.state.down_since
            log.info("shard %d: subscribed %d markets", self.state.shard, len(self.state.markets))
            await self._read(session, stop, outage if reconnected else None)

    async def _read(self, session: WireSession, stop: asyncio.Event, outage: float | None) -> None:
        """Read until the socket closes (``close()`` on stop, or the watchdog).

        After a reconnect (``outage`` given), ``on_reconnect`` runs once the first frame
        arrived: only then is the subscription surely live, so a REST backfill started now
        overlaps the stream instead of leaving a gap between the two.
        """
        self._last_frame_mono = time.monotonic()
        self._watchdog_fired = False
        keepalive = asyncio.create_task(self._keepalive(session), name=f"ping-{self.state.shard}")
        got_data = False
        unyielded = 0
        try:
            while not stop.is_set():
                try:
                    frames = await session.receive()
                except WireClosed:
                    if stop.is_set():
                        return
                    if self._watchdog_fired:
                        msg = (
                            f"no market data for {self.settings.silence_timeout_seconds:.0f}s "
                            "(watchdog)"
                        )
                        raise TimeoutError(msg) from None
                    raise
                self.state.frames += len(frames)
                self.state.last_frame_at = frames[-1][1] / 1000
                if await self.on_frames(frames):
                    # market data only: the {"status":"UP"} answer to our own PING, error
                    # frames and garbage do not prove the subscription is alive
                    self._last_frame_mono = time.monotonic()
                unyielded += len(frames)
                if unyielded >= YIELD_EVERY_FRAMES:
                    # frames already buffered come back without suspending: yield so the sink
                    # writers run and their backpressure can reach this reader
                    unyielded = 0
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

    async def _keepalive(self, session: WireSession) -> None:
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
        with contextlib.suppress(WireError):
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
                    session.abort()
                    return
                if now - last_ping >= ping_every:
                    await session.send_text("PING")
                    last_ping = now
