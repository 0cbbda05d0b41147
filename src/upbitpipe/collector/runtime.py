"""Wire a collector from the config and run it until stopped (signal, --duration)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from upbitpipe.collector.markets import resolve_markets, shard
from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.collector.statefiles import prepare_state_dir, read_resume_file, state_dir_lock
from upbitpipe.collector.status import STATUS_FILE, CollectorStatus, serve_metrics, write_status
from upbitpipe.config import Settings
from upbitpipe.sinks.base import Sink
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.upbit.rest import UpbitRestClient

log = logging.getLogger(__name__)


RESUME_FILE = "resume.json"
RESUME_MAX_AGE_MS = 7 * 24 * 3600 * 1000  # Upbit's REST serves trades of the last 7 days


def load_resume(path: Path, *, max_age_ms: int, now_ms: int | None = None) -> dict[str, int]:
    """Last trade time per market from an earlier run; entries older than REST can reach
    are dropped (that gap cannot be filled and is logged instead). A file of the wrong shape
    is moved aside (:func:`read_resume_file`)."""
    import time

    now = now_ms if now_ms is not None else int(time.time() * 1000)
    data = read_resume_file(path, now_ms=now)
    fresh = {m: ts for m, ts in data.items() if now - ts <= max_age_ms}
    if len(fresh) < len(data):
        log.warning(
            "resume: %d markets stopped more than 7 days ago; that gap cannot be backfilled",
            len(data) - len(fresh),
        )
    return fresh


def save_resume(path: Path, last_trade_ms: dict[str, int]) -> None:
    import orjson

    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(last_trade_ms))
    tmp.replace(path)


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
    status_path = cfg.state_dir / STATUS_FILE
    prepare_state_dir(cfg.state_dir, (STATUS_FILE, RESUME_FILE))
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
            resume_path = cfg.state_dir / RESUME_FILE
            # after a crash, sinks may not have made the last seconds durable: the periodic
            # resume point stays behind by the lake's commit interval and some slack
            crash_slack_ms = int((settings.lake.commit_interval_seconds + 10) * 1000)
            resume = load_resume(resume_path, max_age_ms=RESUME_MAX_AGE_MS) if cfg.backfill else {}
            if resume:
                log.info(
                    "resuming: backfilling trades since the last run for %d markets", len(resume)
                )
            service = CollectorService(
                settings,
                plan,
                build_sinks(settings, dead_letters),
                rest,
                dead_letters,
                resume=resume,
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
                _status_loop(
                    service,
                    status_path,
                    cfg.status_interval_seconds,
                    stop,
                    resume_path,
                    resume,
                    crash_slack_ms,
                )
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
                    await asyncio.to_thread(
                        save_resume, resume_path, {**resume, **service.last_trade_ms}
                    )
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
    service: CollectorService,
    path: Path,
    interval: float,
    stop: asyncio.Event,
    resume_path: Path,
    resume: dict[str, int],
    crash_slack_ms: int,
) -> None:
    """status.json every ``interval``; resume.json too, held back by ``crash_slack_ms``
    (the clean shutdown writes the exact one)."""
    while not stop.is_set():
        behind = {m: ts - crash_slack_ms for m, ts in service.last_trade_ms.items()}
        try:
            await asyncio.to_thread(write_status, path, service.snapshot())
            await asyncio.to_thread(save_resume, resume_path, {**resume, **behind})
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
