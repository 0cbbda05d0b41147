"""`upbitpipe demo`: the embedded path offline - replay server -> collect -> lake -> check.

The replay server stands in for Upbit (seeded synthetic market, with a forced disconnect and
a few garbage frames so reconnect, REST backfill and dead letters are exercised). The
collector writes the Paimon lake; afterwards the lake is read back and compared with the
trades the stand-in exchange generated: every one present, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from upbitpipe.collector.runtime import CollectorResult, run_collector
from upbitpipe.collector.status import STATUS_FILE, CollectorStatus, read_status
from upbitpipe.config import Settings
from upbitpipe.errors import StateFileError
from upbitpipe.lake.candles_job import rebuild_candles
from upbitpipe.lake.read import trade_id_counts
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer

log = logging.getLogger(__name__)

TradeIds = Counter[tuple[str, int]]


@dataclass
class DemoReport:
    result: CollectorResult
    lake_trades: int
    expected_trades: int
    missing: int
    stored_twice: int
    candles: int

    @property
    def ok(self) -> bool:
        return self.lake_trades > 0 and self.missing == 0 and self.stored_twice == 0


IN_FLIGHT_MS = 2_000


def expected_trade_ids(
    generated: Callable[[str], list[dict[str, Any]]],
    collected: TradeIds,
    markets: Sequence[str],
    in_flight_ms: int = IN_FLIGHT_MS,
) -> set[tuple[str, int]]:
    """Every trade the exchange generated between the first and the last trade collected,
    per market: outages in between must have been backfilled.

    The last ``in_flight_ms`` before the last collected trade are left out: frames still on
    the wire (or held back by a reorder fault) when the collector stopped never arrived in
    this run; the next run's resume backfill fetches them, not this one.
    """
    expected: set[tuple[str, int]] = set()
    for market in markets:
        made = [(int(t["sequential_id"]), int(t["trade_timestamp"])) for t in generated(market)]
        order = {sid: index for index, (sid, _) in enumerate(made)}
        ours = [order[sid] for (m, sid) in collected if m == market and sid in order]
        if ours:
            # the window opens at the first trade collected in the exchange's own order, not
            # at its millisecond: trades of that millisecond made before it predate the first
            # subscription (ids within a millisecond are not in time order)
            first = min(ours)
            hi = max(made[i][1] for i in ours) - in_flight_ms
            expected |= {(market, sid) for sid, ts in made[first:] if ts <= hi}
    return expected


async def run_demo(
    settings: Settings,
    markets: Sequence[str],
    *,
    duration: float,
    rate: float,
    seed: int,
    on_tick: Callable[[CollectorStatus], None] | None = None,
) -> DemoReport:
    options = ReplayOptions(
        markets=list(markets),
        seed=seed,
        rate=rate,
        drop_after_seconds=max(2.0, duration / 3),
        malformed_every=max(50, int(rate * 4)),
    )
    # Each demo talks to a new stand-in exchange: a resume point or gap record of an earlier
    # demo names trades this exchange never had, so the demo's own state starts empty.
    demo_state = settings.collector.state_dir / "demo"
    await asyncio.to_thread(shutil.rmtree, demo_state, True)
    async with ReplayServer(options) as server:
        demo_settings = settings.model_copy(
            update={
                "upbit": settings.upbit.model_copy(
                    update={"websocket_url": server.ws_url, "rest_url": server.rest_url}
                ),
                "collector": settings.collector.model_copy(
                    update={
                        "markets": list(markets),
                        "sinks": ["lake"],
                        "state_dir": demo_state,
                        "reconnect_initial_delay_seconds": 0.5,
                    }
                ),
                "lake": settings.lake.model_copy(update={"commit_interval_seconds": 2.0}),
            }
        )
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch(demo_settings, duration, stop, on_tick))
        try:
            result = await run_collector(demo_settings, stop=stop)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        lake = await asyncio.to_thread(trade_id_counts, demo_settings)
        expected = expected_trade_ids(server.generated_trades, lake, markets)
        candle_report = await asyncio.to_thread(rebuild_candles, demo_settings, since_minutes=None)
    return DemoReport(
        result=result,
        lake_trades=len(lake),
        expected_trades=len(expected),
        missing=len(expected - set(lake)),
        stored_twice=sum(1 for n in lake.values() if n > 1),
        candles=candle_report.candles_written,
    )


#: How long the collector may take to deliver its first event before the demo gives up
#: (start-up opens the lake's tables and plans the markets: seconds, more on a busy machine).
STARTUP_TIMEOUT_SECONDS = 120.0


async def _watch(
    settings: Settings,
    duration: float,
    stop: asyncio.Event,
    on_tick: Callable[[CollectorStatus], None] | None,
    *,
    startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> None:
    """Read the collector's status every second (for ``on_tick``) and set ``stop`` once it
    has collected for ``duration`` seconds, counted from its first event - so a slow
    start-up (a busy machine) shortens nothing - or after ``startup_timeout`` without any."""
    loop = asyncio.get_running_loop()
    path = settings.collector.state_dir / STATUS_FILE
    began = loop.time()
    first_event_at: float | None = None
    while True:
        await asyncio.sleep(1.0)
        try:
            snap = await asyncio.to_thread(read_status, path)
        except StateFileError:
            snap = None
        now = loop.time()
        if snap is not None:
            if first_event_at is None and any(snap.events.values()):
                first_event_at = now
            if on_tick is not None:
                on_tick(snap)
        if first_event_at is None and now - began >= startup_timeout:
            log.warning("no event from the collector within %.0f s; stopping", startup_timeout)
            stop.set()
            return
        if first_event_at is not None and now - first_event_at >= duration:
            stop.set()
            return
