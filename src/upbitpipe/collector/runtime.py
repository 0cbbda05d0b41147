"""Wire a collector from the config and run it until stopped (signal, --duration)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from upbitpipe.collector.gaps import GAPS_FILE
from upbitpipe.collector.markets import resolve_markets, shard
from upbitpipe.collector.resume import RESUME_FILE, RESUME_MAX_AGE_MS
from upbitpipe.collector.service import CollectorPlan, CollectorService, CollectorState
from upbitpipe.collector.statefiles import prepare_state_dir, state_dir_lock
from upbitpipe.collector.status import STATUS_FILE, CollectorStatus, serve_metrics, write_status
from upbitpipe.config import Settings
from upbitpipe.malloc import fix_mmap_threshold
from upbitpipe.native import warn_if_stale
from upbitpipe.sinks.base import Sink
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.upbit.rest import UpbitRestClient

log = logging.getLogger(__name__)


@dataclass
class CollectorResult:
    snapshot: CollectorStatus
    status_file: Path
    metrics_port: int | None


def build_sinks(settings: Settings, dead_letters: DeadLetterBox) -> list[Sink]:
    sinks: list[Sink] = []
    state = settings.collector.state_dir
    for name in settings.collector.sinks:
        if name == "kafka":
            from upbitpipe.sinks.kafka import KafkaSink

            sinks.append(KafkaSink(settings.kafka, state / "kafka-spool", dead_letters))
        elif name == "lake":
            from upbitpipe.sinks.lake import LakeSink

            sinks.append(LakeSink(settings, dead_letters))
        elif name == "archive":
            from upbitpipe.sinks.archive import ArchiveSink

            sinks.append(ArchiveSink(settings.collector.effective_archive_dir))
    return sinks


async def plan_collection(settings: Settings, rest: UpbitRestClient) -> CollectorPlan:
    listed = [m.market for m in await rest.list_markets()]
    markets = resolve_markets(settings.collector.markets, listed)
    return CollectorPlan(
        markets=markets,
        types=list(settings.collector.types),
        shards=shard(markets, settings.upbit.codes_per_connection),
    )


async def run_collector(
    settings: Settings,
    *,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> CollectorResult:
    """Run until SIGINT/SIGTERM, ``duration`` seconds, or ``stop`` is set; flush and return."""
    cfg = settings.collector
    stop = stop or asyncio.Event()
    # a collector runs for days: without a fixed glibc mmap threshold its heap crept up by
    # a few MB every few dedup generations (see upbitpipe.malloc); whatever the sinks
    fix_mmap_threshold()
    warn_if_stale(log)  # an edited hot module whose old compiled copy still runs
    status_path = cfg.state_dir / STATUS_FILE
    prepare_state_dir(cfg.state_dir, (STATUS_FILE, RESUME_FILE, GAPS_FILE))
    with state_dir_lock(cfg.state_dir):
        dead_letters = DeadLetterBox(cfg.state_dir / "deadletter")
        async with UpbitRestClient(
            str(settings.upbit.rest_url).rstrip("/"),
            requests_per_second=settings.upbit.rest_per_second,
            timeout=settings.upbit.request_timeout_seconds,
        ) as rest:
            plan = await plan_collection(settings, rest)
            log.info(
                "collecting %s for %d markets over %d connections into %s",
                ",".join(plan.types),
                len(plan.markets),
                len(plan.shards),
                ",".join(cfg.sinks),
            )
            state = load_state(settings, plan)
            kafka_has = await kafka_read_back(settings, state)
            service = CollectorService(
                settings,
                plan,
                build_sinks(settings, dead_letters),
                rest,
                dead_letters,
                state=state,
                kafka_has=kafka_has,
            )
            metrics_port: int | None = None
            shutdown_metrics = None
            if settings.metrics.enabled:
                metrics_port, shutdown_metrics = serve_metrics(
                    service.snapshot, settings.metrics.host, settings.metrics.port
                )
                service.metrics_url = f"http://{settings.metrics.host}:{metrics_port}/metrics"
                log.info("prometheus metrics on %s", service.metrics_url)
            loop = asyncio.get_running_loop()
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, _on_signal, stop, sig)
            timer = loop.call_later(duration, stop.set) if duration else None
            status_task = asyncio.create_task(
                _status_loop(service, status_path, cfg.status_interval_seconds, stop)
            )
            try:
                await service.run(stop)
            finally:
                stop.set()
                if timer is not None:
                    timer.cancel()
                await status_task
                if handle_signals:
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.remove_signal_handler(sig)
                final = service.snapshot(stopped=True)
                try:
                    await asyncio.to_thread(write_status, status_path, final)
                except OSError as exc:  # disk full, turned read-only: say so, no traceback
                    log.error("cannot write the final state in %s: %s", cfg.state_dir, exc)
                if shutdown_metrics is not None:
                    await asyncio.to_thread(shutdown_metrics)
    return CollectorResult(snapshot=final, status_file=status_path, metrics_port=metrics_port)


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("%s received: stopping, flushing sinks", sig.name)
    stop.set()


async def _status_loop(
    service: CollectorService, path: Path, interval: float, stop: asyncio.Event
) -> None:
    """status.json every ``interval`` (the resume point is saved by the service itself, as
    the sinks make events durable)."""
    warned = False
    while not stop.is_set():
        try:
            await asyncio.to_thread(write_status, path, service.snapshot())
            warned = False
        except OSError as exc:
            if not warned:
                log.warning("cannot write status file %s: %s", path, exc)
            warned = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def load_state(settings: Settings, plan: CollectorPlan) -> CollectorState:
    """Resume points and gaps of the last run (with ``collector.backfill`` off, none: the
    run starts afresh). A resume point older than REST reaches is kept: its gap becomes a
    ``missing`` record with the exact range, instead of silently vanishing."""
    state_dir = settings.collector.state_dir
    if not settings.collector.backfill:
        return CollectorState.empty(state_dir)
    state = CollectorState.load(state_dir)
    now_ms = int(time.time() * 1000)
    resumed = [m for m in plan.markets if m in state.resume.tips]
    if resumed:
        log.info("resuming: backfilling trades since the last run for %d markets", len(resumed))
    stale = [m for m in resumed if now_ms - state.resume.tips[m].ms > RESUME_MAX_AGE_MS]
    if stale:
        log.warning(
            "resume: %d markets stopped more than 7 days ago; REST no longer serves all of "
            "that gap (recorded in %s)",
            len(stale),
            GAPS_FILE,
        )
    return state


async def kafka_read_back(settings: Settings, state: CollectorState) -> set[tuple[str, int]] | None:
    """Trades Kafka (or the Kafka sink's spool) already holds from where this run resumes."""
    if "kafka" not in settings.collector.sinks or not settings.collector.backfill:
        return None
    # a tip without a receive time is a first start's (its time is our clock at the first
    # subscription): Kafka may hold what that run sent before it was killed
    received = [t.received_ms or t.ms for t in state.resume.tips.values()]
    open_gaps = state.gaps.open_gaps()
    if not received and not open_gaps:
        return None
    since = min([*received, *(int(g.created_at * 1000) for g in open_gaps)])
    from upbitpipe.collector.kafka_seen import trades_in_kafka, trades_in_spool

    spool_dir = settings.collector.state_dir / "kafka-spool"
    seen = await trades_in_kafka(settings.kafka, since, spool_dir)
    spooled = await asyncio.to_thread(trades_in_spool, spool_dir, settings.kafka.topic("trade"))
    if seen is None:
        return spooled or None
    log.info("kafka already holds %d trades of the resume window", len(seen))
    return seen | spooled
