"""What the replay server plays: the synthetic market clock or a recorded capture.

Both run as one task from server start to stop, whether or not anyone is connected (trades
keep happening while a client is away; that is what backfill tests need), and hand batches
of :class:`WireEvent` to a ``dispatch`` callback.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from upbitpipe.archive.capture import read_capture
from upbitpipe.replay.clock import wall_ms
from upbitpipe.replay.frames import WireEvent
from upbitpipe.replay.market import SyntheticMarket
from upbitpipe.upbit.codec import MalformedFrameError, MarketEvent, parse_frame, to_default_wire

log = logging.getLogger(__name__)

Dispatch = Callable[[list[WireEvent]], None]
Backlog = Callable[[], int | None]  # largest client queue, None when no client listens

_UNLIMITED_BATCH = 1024
_UNLIMITED_BACKLOG = 65536  # deep enough to ride out a client that is scheduled in bursts


async def run_synthetic(
    market: SyntheticMarket,
    rate: float,
    dispatch: Dispatch,
    backlog: Backlog,
    clock: Callable[[], int] = wall_ms,
    paused: Callable[[], bool] = lambda: False,
) -> None:
    """Emit about ``rate`` messages/s stamped by ``clock`` (market ms); ``rate <= 0``: as
    fast as the slowest client reads."""
    now_ms = clock()
    prime: list[WireEvent] = []
    for state in market.states.values():  # so ticker/trade/orderbook snapshots exist
        prime.extend(state.trade(now_ms))
        prime.append(state.book(now_ms))
    dispatch(prime)
    if rate <= 0:
        await _run_unlimited(market, dispatch, backlog, clock, paused)
        return
    interval = min(0.05, max(0.002, 1.0 / rate))
    max_batch = max(1, int(rate * 0.02))  # never hold the loop for long: senders must run
    start = time.monotonic()
    produced = 0
    skipped = 0
    warn_at = 0.0
    while True:
        await asyncio.sleep(interval)
        if paused():  # the clock is jumping: nothing is made meanwhile, and no burst after
            start, produced = time.monotonic(), 0
            continue
        due = int((time.monotonic() - start) * rate) - produced
        if due > rate:  # more than a second behind (CPU starved): skip, don't burst
            skip = due - max_batch
            produced += skip
            skipped += skip
            due = max_batch
            if time.monotonic() >= warn_at:
                warn_at = time.monotonic() + 10.0
                log.warning("synthetic market is CPU-bound; %d messages skipped so far", skipped)
        while due > 0:
            events = market.generate(min(due, max_batch), clock())
            produced += len(events)
            due -= len(events)
            dispatch(events)
            if due > 0:
                await asyncio.sleep(0)


async def _run_unlimited(
    market: SyntheticMarket,
    dispatch: Dispatch,
    backlog: Backlog,
    clock: Callable[[], int],
    paused: Callable[[], bool],
) -> None:
    while True:
        pending = None if paused() else backlog()
        if pending is None or pending >= _UNLIMITED_BACKLOG:
            await asyncio.sleep(0.001 if pending is not None else 0.01)
            continue
        dispatch(market.generate(_UNLIMITED_BATCH, clock()))
        await asyncio.sleep(0)


_CODE = re.compile(rb'"(?:code|cd)"\s*:\s*"([A-Za-z0-9-]+)"')


def capture_markets(path: Path) -> list[str]:
    """Every market a capture holds, in order of first appearance (a cheap scan, no parse).

    ``/v1/market/all`` of a replayed capture lists them all from the start, before the
    playback reached them, as Upbit lists every market whether it traded lately or not.
    """
    seen: dict[str, None] = {}
    for _, frame in read_capture(path):
        match = _CODE.search(frame)
        if match:
            seen.setdefault(match.group(1).decode(), None)
    return list(seen)


def _take(iterator: Iterator[tuple[int, bytes]], n: int) -> list[tuple[int, bytes]]:
    return list(itertools.islice(iterator, n))


def to_wire_event(frame: bytes) -> WireEvent | None:
    """A captured frame as a server event (None for status/error/garbage frames)."""
    try:
        parsed = parse_frame(frame)
    except MalformedFrameError:
        return None
    if not isinstance(parsed, MarketEvent):
        return None
    snapshot = parsed.data.get("stream_type") == "SNAPSHOT"
    wire = to_default_wire(parsed.type, parsed.data)
    wire["stream_type"] = "REALTIME"
    event = WireEvent(parsed.type, parsed.market, wire)
    event.snapshot = snapshot
    if type(frame) is bytes:
        # A client asking for the format the frame was recorded in gets the original bytes.
        fmt = "SIMPLE" if frame.lstrip().startswith(b'{"ty"') else "DEFAULT"
        event.seed(frame, fmt, snapshot)
    return event


async def run_capture(
    path: Path,
    *,
    speed: float | None,
    rate: float,
    loop: bool,
    dispatch: Dispatch,
    on_skip: Callable[[], None],
) -> None:
    """Play ``path`` at its recorded spacing / ``speed`` (``speed=None``: at ``rate``)."""
    while True:
        iterator = read_capture(path)
        start = time.monotonic()
        first_ms: int | None = None
        sent = 0
        while True:
            chunk = await asyncio.to_thread(_take, iterator, 2000)
            if not chunk:
                break
            batch: list[WireEvent] = []
            for recv_ms, frame in chunk:
                if first_ms is None:
                    first_ms = recv_ms
                if speed is not None:
                    target = start + (recv_ms - first_ms) / 1000.0 / speed
                else:
                    target = start + sent / rate if rate > 0 else 0.0
                delay = target - time.monotonic()
                if delay > 0.002:
                    if batch:
                        dispatch(batch)
                        batch = []
                    await asyncio.sleep(delay)
                event = to_wire_event(frame)
                if event is None:
                    on_skip()
                    continue
                batch.append(event)
                sent += 1
                if len(batch) >= 256:
                    dispatch(batch)
                    batch = []
                    await asyncio.sleep(0)
            if batch:
                dispatch(batch)
        log.info("capture %s played: %d frames", path, sent)
        if not loop or sent == 0:
            return
