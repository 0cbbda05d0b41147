"""The collector service: connections in, deduplicated events out to every sink.

Frame path (hot): raw bytes -> ``parse_frame`` -> dedup -> data-contract record -> each
sink's queue. Bad frames and exchange error messages go to the dead-letter box with their
raw bytes; nothing stops the loop for one bad message. After a reconnect, trades missed
during the outage are fetched from REST and pass through the same dedup, so each trade is
emitted exactly once whichever path brought it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from upbitpipe.backoff import Backoff
from upbitpipe.collector.connection import ConnectionState, UpbitConnection
from upbitpipe.collector.dedup import Deduplicator, event_key
from upbitpipe.collector.ratelimit import RateLimiter
from upbitpipe.collector.sink_runner import SinkRunner
from upbitpipe.collector.status import CollectorCounters, CollectorStatus, ConnectionStatus
from upbitpipe.config import Settings
from upbitpipe.sinks.base import SOURCE_BACKFILL, SOURCE_WEBSOCKET, Sink, SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.upbit.codec import ErrorFrame, MalformedFrameError, MarketEvent, StatusFrame
from upbitpipe.upbit.gate import KIND_MALFORMED, FrameGate, RejectedEventError
from upbitpipe.upbit.rest import UpbitRestClient

log = logging.getLogger(__name__)

BACKFILL_MARGIN_MS = 5_000  # plus twice the observed stream delay, capped:
BACKFILL_MAX_MARGIN_MS = 300_000
BACKFILL_SECOND_PASS_SECONDS = 2.0


@dataclass
class CollectorPlan:
    markets: list[str]
    types: list[str]
    shards: list[list[str]]


class CollectorService:
    def __init__(
        self,
        settings: Settings,
        plan: CollectorPlan,
        sinks: Sequence[Sink],
        rest: UpbitRestClient,
        dead_letters: DeadLetterBox,
        *,
        rng: random.Random | None = None,
        resume: dict[str, int] | None = None,
    ) -> None:
        """``resume``: last trade time per market of an earlier run (``resume.json``); the
        first connection then backfills from there, so a restart leaves no gap."""
        self.settings = settings
        self.plan = plan
        self.rest = rest
        self.dead_letters = dead_letters
        self.counters = CollectorCounters()
        self.instance_id = settings.collector.effective_instance_id
        self.dedup = Deduplicator(settings.collector.dedup_window)
        self.gate = FrameGate(plan.markets)
        self.metrics_url: str | None = None  # shown in the status once metrics are served
        self._rng = rng or random.Random()
        lake_interval = settings.lake.commit_interval_seconds
        self.runners = [
            SinkRunner(
                sink,
                max_events=settings.collector.queue_size,
                max_bytes=settings.collector.queue_max_bytes,
                spool_dir=settings.collector.state_dir / "spool" / sink.name,
                flush_interval=lake_interval if sink.name == "lake" else 1.0,
            )
            for sink in sinks
        ]
        connect_limiter = RateLimiter(settings.upbit.connect_per_second)
        cfg = settings.collector
        self.connections = [
            UpbitConnection(
                index,
                markets,
                plan.types,
                settings.upbit,
                connect_limiter,
                self.on_frame,
                self.on_reconnect,
                backoff=Backoff(
                    cfg.reconnect_initial_delay_seconds,
                    cfg.reconnect_max_delay_seconds,
                    rng=self._rng,
                ),
                resume=bool(resume and set(markets) & set(resume)),
            )
            for index, markets in enumerate(plan.shards)
        ]
        self._last_trade_ms: dict[str, int] = {
            m: ts for m, ts in (resume or {}).items() if m in plan.markets
        }
        self._trade_lag_ms = 0.0
        self._backfills: set[asyncio.Task[None]] = set()
        self._emit_lock = asyncio.Lock()

    # -- frames ----------------------------------------------------------------------

    async def on_frame(self, raw: bytes, received_ms: int) -> bool:
        """Handle one frame; True if it was market data (the silence watchdog counts those)."""
        self.counters.frames += 1
        try:
            parsed = self.gate.parse(raw, received_ms)
        except MalformedFrameError as exc:
            kind = exc.kind if isinstance(exc, RejectedEventError) else KIND_MALFORMED
            await self.dead_letters.put(kind, exc.reason, raw)
            return False
        if isinstance(parsed, MarketEvent):
            await self._emit(
                parsed.type, parsed.market, parsed.data, parsed.raw, received_ms, SOURCE_WEBSOCKET
            )
            return True
        if isinstance(parsed, StatusFrame):
            self.counters.status_frames += 1
        elif isinstance(parsed, ErrorFrame):
            await self.dead_letters.put("exchange_error", f"{parsed.name}: {parsed.message}", raw)
        return False

    async def _emit(
        self,
        event_type: str,
        market: str,
        data: dict[str, Any],
        raw: bytes,
        received_ms: int,
        source: str,
    ) -> bool:
        """Hand one event to every sink; False if it was a duplicate (and dropped)."""
        if not self.dedup.first_time(event_key(event_type, market, data)):
            self.counters.duplicates += 1
            return False
        if event_type == "trade":
            ts = data.get("trade_timestamp")
            if isinstance(ts, int):
                if ts > self._last_trade_ms.get(market, 0):
                    self._last_trade_ms[market] = ts
                if source == SOURCE_WEBSOCKET:
                    # decaying max of exchange->us delay: frames this late may have been
                    # in flight when a socket died, so backfill must reach back past them
                    self._trade_lag_ms = max(received_ms - ts, self._trade_lag_ms * 0.999)
        record = dict(data)
        record["_ingested_at"] = received_ms
        record["_source"] = source
        record["_collector"] = self.instance_id
        event = SinkEvent(type=event_type, market=market, record=record, raw=raw)
        self.counters.events[event_type] += 1
        self.counters.last_event_ms = received_ms
        for runner in self.runners:
            await runner.put(event)
        return True

    # -- backfill --------------------------------------------------------------------

    async def on_reconnect(self, state: ConnectionState, outage_seconds: float) -> None:
        if "trade" not in self.plan.types or not self.settings.collector.backfill:
            return
        margin = int(min(BACKFILL_MAX_MARGIN_MS, BACKFILL_MARGIN_MS + 2 * self._trade_lag_ms))
        for market in state.markets:
            since = self._last_trade_ms.get(market)
            if since is None:
                continue
            task = asyncio.create_task(
                self._backfill(market, since - margin), name=f"backfill-{market}"
            )
            self._backfills.add(task)
            task.add_done_callback(self._backfills.discard)

    async def _backfill(self, market: str, since_ms: int) -> None:
        """Fetch trades since ``since_ms`` from REST, twice: now, and once more a little later
        for trades the REST side had not published yet (the exchange's REST can lag its
        WebSocket). Dedup makes the overlap harmless."""
        for attempt in range(2):
            if attempt:
                await asyncio.sleep(BACKFILL_SECOND_PASS_SECONDS)
            if not await self._backfill_pass(market, since_ms):
                return

    async def _backfill_pass(self, market: str, since_ms: int) -> bool:
        recovered = 0
        try:
            pages = self.rest.iter_recent_trades(
                market,
                stop_before_ms=since_ms,
                max_pages=self.settings.collector.backfill_max_pages,
            )
            async for page in pages:
                for trade in page:
                    problem = self.gate.trade_problem(market, trade)
                    if problem is not None:
                        await self.dead_letters.put(*problem, rebuild_frame(trade))
                        continue
                    if trade["trade_timestamp"] < since_ms:
                        continue
                    # count only what this backfill emitted: other backfills and the stream
                    # emit concurrently, so a difference of the global counter overstates it
                    recovered += await self._emit(
                        "trade",
                        market,
                        trade,
                        rebuild_frame(trade),
                        int(time.time() * 1000),
                        SOURCE_BACKFILL,
                    )
        except Exception as exc:  # a failed backfill must not kill the collector
            log.error("backfill %s failed: %s", market, exc)
            await self.dead_letters.put("backfill_failed", f"{market} since {since_ms}: {exc}", b"")
            return False
        self.counters.backfilled[market] += recovered
        log.info("backfill %s: %d missed trades recovered", market, recovered)
        return True

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start sinks and connections; on ``stop``, close sockets, drain and flush sinks."""
        started: list[SinkRunner] = []
        deadline = 0.0
        try:
            for runner in self.runners:
                await runner.start()
                started.append(runner)
            tasks = [
                asyncio.create_task(conn.run(stop), name=f"conn-{conn.state.shard}")
                for conn in self.connections
            ]
            await stop.wait()
            timeout = self.settings.collector.shutdown_timeout_seconds
            deadline = asyncio.get_running_loop().time() + timeout
            for runner in self.runners:
                runner.release()  # a reader paused by backpressure must see the stop
            for conn in self.connections:
                await conn.close()
            _, pending = await asyncio.wait(tasks, timeout=timeout / 3)
            for task in pending:
                task.cancel()
            if self._backfills:  # let running backfills finish: they hold missed trades
                _, late = await asyncio.wait(list(self._backfills), timeout=timeout / 3)
                for task in late:
                    log.warning("backfill %s cut short by shutdown", task.get_name())
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, *self._backfills, return_exceptions=True)
        finally:
            # all sinks drain in parallel towards one deadline; what misses it is spooled
            left = deadline - asyncio.get_running_loop().time() if deadline else 0.0
            left = max(left, self.settings.collector.shutdown_timeout_seconds / 3)
            await asyncio.gather(*(runner.stop(timeout=left) for runner in started))

    @property
    def last_trade_ms(self) -> dict[str, int]:
        """Newest trade time seen per market (saved as ``resume.json`` at shutdown)."""
        return dict(self._last_trade_ms)

    def snapshot(self, *, stopped: bool = False) -> CollectorStatus:
        """Everything `stats` and Prometheus show (the ``status.json`` contract)."""
        c = self.counters
        return CollectorStatus(
            instance_id=self.instance_id,
            pid=os.getpid(),
            updated_at=time.time(),
            started_at=c.started_at,
            markets=self.plan.markets,
            types=self.plan.types,
            frames=c.frames,
            events=dict(c.events),
            duplicates=c.duplicates,
            status_frames=c.status_frames,
            backfilled=dict(c.backfilled),
            last_event_ms=c.last_event_ms,
            dead_letters=dict(self.dead_letters.counts),
            dead_letter_write_failures=self.dead_letters.write_failures,
            connections=[
                ConnectionStatus(
                    shard=conn.state.shard,
                    markets=len(conn.state.markets),
                    connected=conn.state.connected,
                    connects=conn.state.connects,
                    disconnects=conn.state.disconnects,
                    frames=conn.state.frames,
                    last_frame_at=conn.state.last_frame_at,
                    last_error=conn.state.last_error,
                )
                for conn in self.connections
            ],
            sinks={r.sink.name: {**r.sink.stats(), **r.stats()} for r in self.runners},
            metrics_url=self.metrics_url,
            stopped=stopped,
        )


def rebuild_frame(trade: dict[str, Any]) -> bytes:
    """A DEFAULT-format trade frame for a REST-backfilled trade (archive and replay input)."""
    frame = {"type": "trade", "code": trade["market"]}
    frame.update((k, v) for k, v in trade.items() if k != "market" and not k.startswith("_"))
    frame["stream_type"] = "BACKFILL"
    return orjson.dumps(frame)
