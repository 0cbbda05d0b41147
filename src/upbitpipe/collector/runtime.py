"""Wire a collector from the config and run it until stopped (signal, --duration)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upbitpipe.collector.markets import resolve_markets, shard
from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.collector.status import STATUS_FILE, serve_metrics, write_status
from upbitpipe.config import Settings
from upbitpipe.errors import ConfigError
from upbitpipe.sinks.base import Sink
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.upbit.rest import UpbitRestClient

log = logging.getLogger(__name__)


RESUME_FILE = "resume.json"
RESUME_MAX_AGE_MS = 7 * 24 * 3600 * 1000  # Upbit's REST serves trades of the last 7 days


def load_resume(path: Path, *, max_age_ms: int, now_ms: int | None = None) -> dict[str, int]:
    """Last trade time per market from an earlier run; entries older than REST can reach
    are dropped (that gap cannot be filled and is logged instead)."""
    import time

    import orjson

    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    fresh = {
        str(m): int(ts) for m, ts in data.items() if isinstance(ts, int) and now - ts <= max_age_ms
    }
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
    snapshot: dict[str, Any]
    status_file: Path
    metrics_port: int | None


@contextlib.contextmanager
def state_dir_lock(state_dir: Path) -> Iterator[None]:
    """One collector per state dir: the spool and dead letters are not shared."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / "collector.lock"
    with lock_path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            msg = (
                f"another collector is running with state dir {state_dir} (set collector.state_dir)"
            )
            raise ConfigError(msg) from None
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
                log.info(
                    "prometheus metrics on http://%s:%d/metrics",
                    settings.metrics.host,
                    metrics_port,
                )
            extra: dict[str, Any] = {
                "metrics_url": f"http://{settings.metrics.host}:{metrics_port}/metrics"
                if metrics_port is not None
                else None
            }
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
                    extra,
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
                final = {**service.snapshot(), **extra, "stopped": True}
                await asyncio.to_thread(
                    save_resume, resume_path, {**resume, **service.last_trade_ms}
                )
                await asyncio.to_thread(write_status, status_path, final)
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
    extra: dict[str, Any],
    resume_path: Path,
    resume: dict[str, int],
    crash_slack_ms: int,
) -> None:
    """status.json every ``interval``; resume.json too, held back by ``crash_slack_ms``
    (the clean shutdown writes the exact one)."""
    while not stop.is_set():
        behind = {m: ts - crash_slack_ms for m, ts in service.last_trade_ms.items()}
        try:
            await asyncio.to_thread(write_status, path, {**service.snapshot(), **extra})
            await asyncio.to_thread(save_resume, resume_path, {**resume, **behind})
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
