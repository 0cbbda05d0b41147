"""The collector service: connections in, deduplicated events out to every sink.

Frame path (hot): raw bytes -> ``parse_frame`` -> dedup -> data-contract record -> each
sink's queue. Bad frames and exchange error messages go to the dead-letter box with their
raw bytes; nothing stops the loop for one bad message.

What the stream missed is tracked as gap records (:mod:`~upbitpipe.collector.gaps`): when a
connection's session starts (a reconnect, or the first one after a restart), each of its
markets gets a gap from the last trade known before - captured before the new session's
first frame can move it - to the first trade of the new session. The backfill
(:mod:`~upbitpipe.collector.backfill`) fills it from REST through the same dedup, so each
trade is emitted once whichever path brought it first. The resume point
(:mod:`~upbitpipe.collector.resume`) and the gaps are saved together, and only say what the
sinks have made durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from upbitpipe.backoff import Backoff
from upbitpipe.collector.backfill import GapFiller
from upbitpipe.collector.connection import ConnectionState, UpbitConnection
from upbitpipe.collector.dedup import Deduplicator, event_key
from upbitpipe.collector.gaps import GAPS_FILE, Gap, GapBook
from upbitpipe.collector.ratelimit import RateLimiter
from upbitpipe.collector.resume import (
    FIRST_START_MARGIN_MS,
    RESUME_FILE,
    DurableLedger,
    ResumePoints,
    Tip,
)
from upbitpipe.collector.sink_runner import SinkRunner, raw_bytes_of
from upbitpipe.collector.status import (
    BackfillStatus,
    CollectorCounters,
    CollectorStatus,
    ConnectionStatus,
    GapStatus,
)
from upbitpipe.config import Settings
from upbitpipe.errors import CollectorStoppedError
from upbitpipe.native import pure_python_requested
from upbitpipe.sinks.base import (
    SOURCE_BACKFILL,
    SOURCE_WEBSOCKET,
    Sink,
    SinkEvent,
    ValueEvent,
    needs_record,
)
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.upbit.codec import (
    BOOK_SCANNER,
    EVENT_TYPES,
    ErrorFrame,
    MalformedFrameError,
    StatusFrame,
    is_partial,
    metadata_suffix,
    parse_data,
    splice_record,
    to_default_wire,
)
from upbitpipe.upbit.gate import KIND_MALFORMED, FrameGate, RejectedEventError
from upbitpipe.upbit.rest import UpbitRestClient

log = logging.getLogger(__name__)

#: a live trade as the hot path keeps it: (trade_timestamp, sequential_id, received_ms),
#: the fields of a :class:`Tip`, which is made only when a resume point moves
LiveTrade = tuple[int, int | None, int]

SAVE_EVERY_SECONDS = 0.25  # how often durable progress is checked and saved
BACKFILL_RETRY_SECONDS = 30.0  # missing gaps are tried again this often while running


@dataclass
class CollectorPlan:
    markets: list[str]
    types: list[str]
    shards: list[list[str]]


@dataclass
class CollectorState:
    """The durable state of a state dir: resume points and gap records."""

    resume: ResumePoints
    gaps: GapBook

    @classmethod
    def load(cls, state_dir: Path) -> CollectorState:
        return cls(ResumePoints.load(state_dir / RESUME_FILE), GapBook.load(state_dir / GAPS_FILE))

    @classmethod
    def empty(cls, state_dir: Path) -> CollectorState:
        return cls(ResumePoints(state_dir / RESUME_FILE), GapBook(state_dir / GAPS_FILE))

    def save(self) -> None:
        """Gaps first: a resume point on disk never passes a gap that is not."""
        self.gaps.save()
        self.resume.save()


def _full_record(raw: bytes) -> dict[str, Any] | None:
    """The full parse's dict of a frame a lite read took for market data, or None."""
    try:
        data = parse_data(raw)
    except MalformedFrameError:
        return None
    return data if type(data) is dict else None


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
        state: CollectorState | None = None,
        kafka_has: set[tuple[str, int]] | None = None,
    ) -> None:
        """``state``: resume points and gaps of an earlier run (markets with a resume point
        are backfilled from it once their first connection is live); ``kafka_has``: trade
        keys Kafka already holds, which a backfill must not send there again."""
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
        self.state = state or CollectorState.empty(settings.collector.state_dir)
        self._resumed = {m for m in plan.markets if m in self.state.resume.tips}
        self._fresh = set(plan.markets) - self._resumed  # resume point still from our clock
        self._kafka_has = kafka_has or set()
        self.runners = [
            SinkRunner(
                sink,
                max_events=settings.collector.queue_size,
                max_bytes=settings.collector.queue_max_bytes,
                spool_dir=settings.collector.state_dir / "spool" / sink.name,
                flush_interval=sink.flush_interval,
            )
            for sink in sinks
        ]
        # encode each event once where it is made when a sink reads the JSON bytes; keep
        # the dicts only when a sink reads records
        self._keep_records = any(needs_record(sink) for sink in sinks)
        self._encode = not all(needs_record(sink) for sink in sinks)
        # nothing reads a book's units, nor most of a ticker's or trade's fields, when no
        # sink reads records (Kafka alone: its value is spliced from the frame): parse
        # DEFAULT frames without them (FrameGate.parse_data_lite)
        self._lite_books = (
            not self._keep_records
            and self._encode  # a lite dict is spliced into a value, never kept as a record
            and BOOK_SCANNER is not None
            and not pure_python_requested()
        )
        self._suffix_ms = -1
        self._suffix = b""
        self._kafka_index = next(
            (i for i, r in enumerate(self.runners) if r.sink.name == "kafka"), None
        )
        self.ledger = DurableLedger(self.runners)
        self.filler = GapFiller(rest, self.state.gaps, self.ledger, self._emit_backfilled)
        connect_limiter = RateLimiter(settings.upbit.connect_per_second)
        cfg = settings.collector
        self.connections = [
            UpbitConnection(
                index,
                markets,
                plan.types,
                settings.upbit,
                connect_limiter,
                functools.partial(self._on_shard_frames, index),
                self.on_reconnect,
                backoff=Backoff(
                    cfg.reconnect_initial_delay_seconds,
                    cfg.reconnect_max_delay_seconds,
                    rng=self._rng,
                ),
                resume=True,  # every session start is offered to on_reconnect
            )
            for index, markets in enumerate(plan.shards)
        ]
        self._sessions = [0] * len(self.connections)  # the session each shard's frames are of
        self._session_gaps: dict[int, list[Gap]] = {}  # waiting for the session to be live
        # newest live trade per market (not yet durable)
        self._last_seen: dict[str, LiveTrade] = {}
        self._awaiting_first: dict[str, Gap] = {}  # gap whose end is the next live trade
        self._backfills: dict[str, asyncio.Task[None]] = {}  # by gap id
        self._dirty = True
        self._save_error = ""
        self._staged: list[SinkEvent] = []  # first-seen events not yet in the sink buffers
        self._staged_not_kafka: set[int] = set()  # positions in _staged Kafka already has
        self._staged_tips: dict[str, LiveTrade] = {}  # newest staged live trade per market

    # -- frames ----------------------------------------------------------------------

    async def on_frame(self, raw: bytes, received_ms: int) -> bool:
        """Handle one frame; True if it was market data (the silence watchdog counts those)."""
        return await self.on_frames(((raw, received_ms),))

    async def on_frames(self, frames: Sequence[tuple[bytes, int]]) -> bool:
        """Handle a batch of ``(raw, received_ms)`` frames read together from one socket:
        one parse loop, then one buffer operation per sink for all their events. True if
        any frame was market data (the silence watchdog counts those).

        This is the collector's hot path, so the loop is written out here and keeps what it
        needs in locals: per event one parse (into the dict that becomes the record), one
        dedup set lookup, the newest trade per market as a plain tuple (a :class:`Tip` is
        made per batch, when the resume point moves), the record's JSON and one small
        :class:`SinkEvent`. :meth:`_stage_backfilled` is the same for one REST-backfilled trade."""
        market_data = False
        rejected: list[tuple[str, str, bytes]] | None = None
        lite = self._lite_books
        parse = self.gate.parse_data_lite if lite else self.gate.parse_data
        dedup = self.dedup
        dedup.expire()
        is_new = dedup.add
        fresh = self._fresh
        last_seen = self._last_seen
        staged_tips = self._staged_tips
        kafka_has = self._kafka_has
        staged = self._staged
        stage = staged.append
        encode = self._encode
        keep = self._keep_records
        instance = self.instance_id
        dumps = orjson.dumps
        value_event = ValueEvent
        counts = dict.fromkeys(EVENT_TYPES, 0)
        duplicates = 0
        last_event_ms = 0
        for raw, received_ms in frames:
            try:
                data = parse(raw, received_ms)
            except MalformedFrameError as exc:
                kind = exc.kind if isinstance(exc, RejectedEventError) else KIND_MALFORMED
                if rejected is None:
                    rejected = []
                rejected.append((kind, exc.reason, raw))
                continue
            if type(data) is not dict:
                if isinstance(data, StatusFrame):
                    self.counters.status_frames += 1
                elif isinstance(data, ErrorFrame):
                    if rejected is None:
                        rejected = []
                    rejected.append(("exchange_error", f"{data.name}: {data.message}", raw))
                continue
            market_data = True
            kind = data["type"]
            market = data["market"]
            if not is_new(event_key(kind, market, data)):
                duplicates += 1
                continue
            if fresh and market in fresh:
                self._exchange_clock_seen(market, data)
            if kind == "trade":
                # the gate admitted it: typed, subscribed, not ahead of the exchange clock
                tip = (data["trade_timestamp"], data["sequential_id"], received_ms)
                seen = last_seen.get(market)
                if seen is None or tip[0] >= seen[0]:
                    last_seen[market] = tip
                if self._awaiting_first:
                    self._first_after_gap(market, tip)
                staged_tips[market] = tip  # stream order: the last one is the resume point
                if kafka_has and (market, tip[1]) in kafka_has:
                    # the snapshot trade a new subscription starts with, in Kafka already
                    self._staged_not_kafka.add(len(staged))
            value: bytes | None = None
            # books are spliced, and the lite tickers and trades (never dumped: splice_record)
            if encode and (lite or kind == "orderbook"):
                if received_ms != self._suffix_ms:  # a batch's frames share their time
                    self._suffix_ms = received_ms
                    self._suffix = metadata_suffix(received_ms, SOURCE_WEBSOCKET, instance)
                value = splice_record(raw, kind, data, self._suffix)
                if value is None and lite and is_partial(data):
                    # never (the codec's lite reads are what splice_record takes, tested);
                    # if it happened, the record comes from the full parse, not the part
                    full = _full_record(raw)
                    if full is None:
                        if rejected is None:
                            rejected = []
                        rejected.append((KIND_MALFORMED, "lite read refused in full", raw))
                        continue
                    data = full
            if value is None or keep:
                data["_ingested_at"] = received_ms
                data["_source"] = SOURCE_WEBSOCKET
                data["_collector"] = instance
                if value is None and encode:
                    value = dumps(data)
            if keep or value is None:
                stage(SinkEvent(kind, market, data, raw, value))
            else:  # only bytes are read: the parsed dict goes now, while it is hot
                stage(value_event(kind, market, raw, value))
            counts[kind] += 1
            last_event_ms = received_ms
        counters = self.counters
        counters.frames += len(frames)
        if last_event_ms:
            counters.last_event_ms = last_event_ms
            events = counters.events
            for kind, count in counts.items():
                if count:
                    events[kind] += count
        if duplicates:
            counters.duplicates += duplicates
        await self._deliver()
        if rejected is not None:
            for kind, reason, raw in rejected:
                await self.dead_letters.put(kind, reason, raw)
        return market_data

    async def _on_shard_frames(self, shard: int, frames: Sequence[tuple[bytes, int]]) -> bool:
        """A batch of frames of one connection (all of one session)."""
        session = self.connections[shard].state.connects
        if session != self._sessions[shard]:
            self._sessions[shard] = session
            self._session_started(shard)
        return await self.on_frames(frames)

    def _stage_backfilled(self, trade: dict[str, Any], raw: bytes, received_ms: int) -> bool:
        """Stage a first-seen REST-backfilled trade for every sink (``_deliver`` hands it
        over); False for a duplicate. Its dict is copied into the record. Live frames take
        the same steps in :meth:`on_frames`, written out there for speed (with the resume
        point and gap bookkeeping that only live trades move).

        ``_deliver`` must follow before the next ``await``: a batch's events reach every
        sink's buffer, and are counted in the durable ledger, in one synchronous step."""
        market = trade["market"]
        if not self.dedup.first_time(event_key("trade", market, trade)):
            self.counters.duplicates += 1
            return False
        if self._fresh and market in self._fresh:
            self._exchange_clock_seen(market, trade)
        sid = trade.get("sequential_id")
        if self._kafka_has and isinstance(sid, int) and (market, sid) in self._kafka_has:
            # already in Kafka from an earlier run
            self._staged_not_kafka.add(len(self._staged))
        record = dict(trade)
        record["_ingested_at"] = received_ms
        record["_source"] = SOURCE_BACKFILL
        record["_collector"] = self.instance_id
        value = orjson.dumps(record) if self._encode else None
        event = SinkEvent("trade", market, record if self._keep_records else None, raw, value)
        self._staged.append(event)
        self.counters.events["trade"] += 1
        self.counters.last_event_ms = received_ms
        return True

    async def _deliver(self) -> None:
        """Hand the staged events to every sink: all buffers first, counted in the durable
        ledger, and the batch's resume-point moves registered behind them (one synchronous
        step, so each sink's order matches the ledger's marks); then wait out backpressure."""
        staged = self._staged
        if not staged:
            return
        skipped = self._staged_not_kafka
        self._staged = []
        if skipped:
            self._staged_not_kafka = set()
        handed = self.ledger.handed
        waits: list[SinkRunner] = []
        size = raw_bytes_of(staged)
        for index, runner in enumerate(self.runners):
            if skipped and index == self._kafka_index:
                events = [e for i, e in enumerate(staged) if i not in skipped]
                wait = runner.add_all(events)
            else:
                events = staged
                wait = runner.add_all(staged, size)
            handed[index] += len(events)
            if wait:
                waits.append(runner)
        tips = self._staged_tips
        if tips:
            # the newest live trade per market of this batch becomes its resume point once
            # everything handed so far is durable (sinks write in order: durable is a prefix)
            self._staged_tips = {}
            self.ledger.when_durable(functools.partial(self._advance_resume, tips))
        for runner in waits:
            await runner.wait_for_room()

    def _advance_resume(self, tips: dict[str, LiveTrade]) -> None:
        for market, (ms, sid, received_ms) in tips.items():
            self.state.resume.advance(market, Tip(ms, sid, received_ms))

    def _first_after_gap(self, market: str, trade: LiveTrade) -> None:
        """The first live trade of a market whose new session opened a gap ends it."""
        gap = self._awaiting_first.pop(market, None)
        if gap is not None and (gap.to_ms is None or trade[0] <= gap.to_ms):
            gap.to_ms, gap.to_sid = trade[0], trade[1]
            self._dirty = True

    def _exchange_clock_seen(self, market: str, data: dict[str, Any]) -> None:
        """The first event of a market that starts afresh: its resume point (our clock at
        start) moves back to the exchange's clock if that is behind ours, so a crash before
        its first durable trade resumes early enough whatever the clocks say."""
        stamp = data.get("timestamp")
        if isinstance(stamp, int) and not isinstance(stamp, bool):
            self._fresh.discard(market)
            tip = self.state.resume.tips.get(market)
            if tip is not None and tip.sid is None:
                tip.ms = min(tip.ms, stamp - FIRST_START_MARGIN_MS)
                self._dirty = True

    async def _emit_backfilled(self, trade: dict[str, Any]) -> bool:
        problem = self.gate.trade_problem(trade["market"], trade)
        if problem is not None:
            await self.dead_letters.put(*problem, rebuild_frame(trade))
            return False
        first = self._stage_backfilled(trade, rebuild_frame(trade), int(time.time() * 1000))
        await self._deliver()
        return first

    # -- gaps and backfill -----------------------------------------------------------

    def _session_started(self, shard: int) -> None:
        """A new session's first frame is here: open a gap for each of its markets from the
        last trade known before it (captured now, before this frame can move it)."""
        if "trade" not in self.plan.types or not self.settings.collector.backfill:
            return
        first = self._sessions[shard] == 1
        gaps: list[Gap] = []
        for market in self.connections[shard].state.markets:
            if first and market not in self._resumed:
                continue  # a first start: nothing before it to fill
            seen = self._last_seen.get(market)
            before = Tip(*seen) if seen is not None else self.state.resume.tips.get(market)
            if before is None:
                continue
            gap = self._open_gap(market, before)
            self._awaiting_first[market] = gap
            gaps.append(gap)
        self._session_gaps[shard] = gaps
        self._dirty = True

    def _open_gap(self, market: str, before: Tip) -> Gap:
        """A gap from ``before`` to the live stream; an open-ended gap of the same market that
        no backfill is working on (a crash left it) is widened instead of doubled."""
        for gap in self.state.gaps.open_gaps(market):
            if gap.to_ms is None and gap.id not in self._backfills:
                if before.ms < gap.from_ms:
                    gap.from_ms, gap.from_sid = before.ms, before.sid
                gap.state = "backfilling"
                return gap
        return self.state.gaps.add(Gap(market=market, from_ms=before.ms, from_sid=before.sid))

    async def on_reconnect(self, state: ConnectionState, outage_seconds: float) -> None:
        """The session is live (its first frame arrived): start filling its gaps."""
        for gap in self._session_gaps.pop(state.shard, []):
            self._start_fill(gap)

    def _start_fill(self, gap: Gap) -> None:
        if gap.id in self._backfills or not gap.open:
            return
        task = asyncio.create_task(self._fill(gap), name=f"backfill-{gap.market}")
        self._backfills[gap.id] = task
        task.add_done_callback(lambda _: self._backfills.pop(gap.id, None))

    async def _fill(self, gap: Gap) -> None:
        try:
            await self.filler.fill(gap)
        finally:
            self._dirty = True

    def _retry_gaps(self) -> None:
        """Start every open gap nobody works on that is not waiting for its session."""
        waiting = {g.id for gaps in self._session_gaps.values() for g in gaps}
        for gap in self.state.gaps.open_gaps():
            if gap.id in waiting or gap.id in self._backfills:
                continue
            if gap.market in self.plan.markets:
                self._start_fill(gap)

    # -- durable state ---------------------------------------------------------------

    async def _save_state(self) -> None:
        self.ledger.advance()
        if not (self._dirty or self.filler.changed or self.ledger.ran):
            return
        self._dirty = self.filler.changed = self.ledger.ran = False
        try:
            await asyncio.to_thread(self.state.save)
        except OSError as exc:
            self._dirty = True
            message = f"cannot save the resume point in {self.state.resume.path.parent}: {exc}"
            if message != self._save_error:
                log.error("%s", message)
            self._save_error = message
        else:
            self._save_error = ""

    async def _keep_state(self, stop: asyncio.Event) -> None:
        """Save durable progress as it happens; retry missing gaps now and then."""
        loop = asyncio.get_running_loop()
        next_retry = loop.time() + BACKFILL_RETRY_SECONDS
        while not stop.is_set():
            await self._save_state()
            if loop.time() >= next_retry:
                next_retry = loop.time() + BACKFILL_RETRY_SECONDS
                self._retry_gaps()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=SAVE_EVERY_SECONDS)

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start sinks and connections; on ``stop``, close sockets, drain and flush sinks.

        The resume point is saved before the first connect (so a crash in the first second
        still resumes from the start), then as the sinks make events durable, and last
        after the sinks stopped. A backfill still running at stop is cut: its gap record,
        shrunk to what was made durable, is taken up by the next start."""
        started: list[SinkRunner] = []
        failed: list[str] = []  # shards that stopped on an unexpected error
        deadline = 0.0
        keeper: asyncio.Task[None] | None = None
        gc_thresholds: tuple[int, int, int] | None = None
        try:
            # the resume point comes first: opening sinks can take seconds (lake tables)
            self.state.resume.start(self.plan.markets, int(time.time() * 1000))
            await asyncio.to_thread(self.state.save)
            self._dirty = False
            for runner in self.runners:
                await runner.start()
                started.append(runner)
            gc_thresholds = _freeze_startup_objects()
            for gap in self.state.gaps.open_gaps():
                if gap.to_ms is not None and gap.market in self.plan.markets:
                    self._start_fill(gap)  # closed-ended gaps of an earlier run
            keeper = asyncio.create_task(self._keep_state(stop), name="collector-state")
            tasks = [
                asyncio.create_task(conn.run(stop), name=f"conn-{conn.state.shard}")
                for conn in self.connections
            ]
            for task in tasks:
                task.add_done_callback(
                    functools.partial(self._shard_ended, stop=stop, failed=failed)
                )
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
            backfills = list(self._backfills.values())
            if backfills:  # a short one may finish; a long one goes on at the next start
                _, late = await asyncio.wait(backfills, timeout=timeout / 6)
                for task in late:
                    log.warning(
                        "%s cut short by shutdown; its gap is resumed next start", task.get_name()
                    )
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, *backfills, return_exceptions=True)
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            # all sinks drain in parallel towards one deadline; what misses it is spooled
            left = deadline - asyncio.get_running_loop().time() if deadline else 0.0
            left = max(left, self.settings.collector.shutdown_timeout_seconds / 3)
            await asyncio.gather(*(runner.stop(timeout=left) for runner in started))
            if started:
                self._dirty = True
                await self._save_state()
            if gc_thresholds is not None:
                gc.set_threshold(*gc_thresholds)
            gc.unfreeze()  # an embedding process gets its objects back under the GC
        if failed:
            msg = (
                f"{'; '.join(failed)}; the collector stopped (what it had collected is "
                "flushed; the next start resumes from the saved point)"
            )
            raise CollectorStoppedError(msg)

    def _shard_ended(
        self, task: asyncio.Task[None], *, stop: asyncio.Event, failed: list[str]
    ) -> None:
        """A connection's task ends only at stop (it never raises for network trouble): one
        ending on an unexpected error (a bug in the frame path) would otherwise leave its
        markets unread, silently, until shutdown. It stops the collector instead, loudly."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.error(
            "%s stopped on an unexpected error; stopping the collector",
            task.get_name(),
            exc_info=error,
        )
        failed.append(f"{task.get_name()} stopped on {type(error).__name__}: {error}")
        stop.set()

    @property
    def backfills_running(self) -> int:
        return len(self._backfills)

    @property
    def last_trade_ms(self) -> dict[str, int]:
        """Newest live trade time seen per market (not yet necessarily durable)."""
        return {m: t[0] for m, t in self._last_seen.items()}

    def snapshot(self, *, stopped: bool = False) -> CollectorStatus:
        """Everything `stats` and Prometheus show (the ``status.json`` contract)."""
        c = self.counters
        gaps = self.state.gaps
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
            lite_fallbacks=self.gate.lite_fallbacks,
            backfilled=dict(self.filler.recovered),
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
            backfill=BackfillStatus(
                runs=self.filler.counters.runs,
                completed=self.filler.counters.completed,
                failed=self.filler.counters.failed,
                requests=self.filler.counters.requests,
                running=len(self._backfills),
            ),
            gaps_open=len(gaps.open_gaps()),
            gaps_missing=[
                GapStatus.model_validate(g.to_json())
                for g in sorted(gaps.missing(), key=lambda g: (g.market, g.from_ms))[:50]
            ],
            resume_ms={m: t.ms for m, t in self.state.resume.tips.items()},
            metrics_url=self.metrics_url,
            stopped=stopped,
        )


#: cyclic-GC thresholds while events stream: the young generation is collected every 50,000
#: allocations instead of 700. Events are acyclic (dicts of numbers and strings, freed by
#: reference counting), yet each parsed orderbook allocates ~35 containers, so at the
#: default threshold a young collection ran every ~20 frames and kept promoting the batch
#: waiting in the sink buffers into the older generations, whose collections walk it all
#: again. Measured: collect --sink kafka 32.0 -> 29.1 CPU-us/msg (benchmarks/README.md).
STREAMING_GC_THRESHOLDS = (50_000, 20, 100)


def _freeze_startup_objects() -> tuple[int, int, int]:
    """Move what exists now (modules, settings, sink clients: ~100,000 objects that live as
    long as the process) out of the cyclic GC's sight: otherwise every full collection walks
    them all again while events stream through (see benchmarks/README.md, "hot path"), and
    collect less often (:data:`STREAMING_GC_THRESHOLDS`).
    (No ``gc.collect()`` first: a full collection of a freshly started process takes
    long enough to delay the first subscription, and what it would free is little.)
    Returns the thresholds before, which ``run`` restores at its end, and unfreezes."""
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(*STREAMING_GC_THRESHOLDS)
    return before


def rebuild_frame(trade: dict[str, Any]) -> bytes:
    """A DEFAULT-format trade frame for a REST-backfilled trade (archive and replay input)."""
    frame = to_default_wire("trade", trade)
    frame["stream_type"] = "BACKFILL"
    return orjson.dumps(frame)
