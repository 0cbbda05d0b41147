"""Helpers shared by the collector integration tests: settings against a replay server,
and readers for what each sink wrote."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from upbitpipe import demo
from upbitpipe.archive.capture import read_capture
from upbitpipe.collector.runtime import CollectorResult, run_collector
from upbitpipe.collector.status import CollectorStatus, read_status
from upbitpipe.config import Settings, load_settings
from upbitpipe.lake.read import trade_id_counts
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MalformedFrameError, MarketEvent, parse_frame


def collector_settings(tmp_path: Path, server: ReplayServer, **overrides: Any) -> Settings:
    """Settings pointing at ``server`` with small, fast knobs for tests."""
    flat: dict[str, Any] = {
        "upbit.websocket_url": server.ws_url,
        "upbit.rest_url": server.rest_url,
        "upbit.silence_timeout_seconds": 5,
        "collector.state_dir": str(tmp_path / "state"),
        "collector.reconnect_initial_delay_seconds": 0.2,
        "collector.reconnect_max_delay_seconds": 1.0,
        "collector.shutdown_timeout_seconds": 20,
        "collector.status_interval_seconds": 0.5,
        "lake.warehouse": str(tmp_path / "lake"),
        "lake.commit_interval_seconds": 1.0,
        "lake.buckets": 1,
        "metrics.port": 0,
    }
    flat.update(overrides)
    return load_settings(overrides=flat, env={}).settings


def collector_process_env(tmp_path: Path, server: ReplayServer, **extra: str) -> dict[str, str]:
    """Environment for `upbitpipe collect` run as its own process against ``server``, with
    state and lake under ``tmp_path`` (the paths :func:`collector_settings` uses too)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("UPBITPIPE_")},
        "UPBITPIPE_UPBIT__WEBSOCKET_URL": server.ws_url,
        "UPBITPIPE_UPBIT__REST_URL": server.rest_url,
        "UPBITPIPE_COLLECTOR__STATE_DIR": str(tmp_path / "state"),
        "UPBITPIPE_LAKE__WAREHOUSE": str(tmp_path / "lake"),
        "UPBITPIPE_METRICS__PORT": "0",
        **{f"UPBITPIPE_{key}": value for key, value in extra.items()},
    }


async def run_collector_until(
    settings: Settings,
    done: Callable[[CollectorStatus], bool],
    *,
    at_least: float,
    limit: float = 120.0,
) -> CollectorResult:
    """Run the collector in this loop for at least ``at_least`` seconds after its first
    event, and on until its status file shows ``done`` (or ``limit`` seconds passed: the
    test's own asserts then say what did not happen). A fixed duration is not enough on a
    loaded machine, where opening the sinks alone can take most of it."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_collector(settings, stop=stop, handle_signals=False))
    status_path = settings.collector.state_dir / "status.json"
    started = time.monotonic()
    first_event: float | None = None
    while not task.done() and time.monotonic() - started < limit:
        await asyncio.sleep(0.25)
        status = read_status(status_path)
        if status is None or not status.events:
            continue
        first_event = first_event or time.monotonic()
        if time.monotonic() - first_event >= at_least and done(status):
            break
    stop.set()
    return await task


def lake_trade_ids(settings: Settings) -> Counter[tuple[str, int]]:
    return trade_id_counts(settings)


def archive_trade_ids(root: Path) -> Counter[tuple[str, int]]:
    out: Counter[tuple[str, int]] = Counter()
    for _, frame in read_capture(root):
        try:
            event = parse_frame(frame)
        except MalformedFrameError:
            continue
        if isinstance(event, MarketEvent) and event.type == "trade":
            out[(event.market, int(event.data["sequential_id"]))] += 1
    return out


def expected_trade_ids(
    server: ReplayServer, collected: Counter[tuple[str, int]], markets: list[str]
) -> set[tuple[str, int]]:
    return demo.expected_trade_ids(server.generated_trades, collected, markets)


async def kafka_trade_ids(
    settings: Settings, idle_seconds: float = 4.0, limit_seconds: float = 60.0
) -> Counter[tuple[str, int]]:
    """Read the trade topic from the beginning until it stays quiet for ``idle_seconds``."""
    consumer = AIOKafkaConsumer(
        settings.kafka.topic("trade"),
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",  # what every consumer of the pipeline sees
    )
    await consumer.start()
    out: Counter[tuple[str, int]] = Counter()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_seconds
        quiet_since = loop.time()
        while loop.time() < deadline and loop.time() - quiet_since < idle_seconds:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    value = orjson.loads(record.value)
                    assert record.key == value["market"].encode()
                    out[(value["market"], int(value["sequential_id"]))] += 1
                    quiet_since = loop.time()
    finally:
        await consumer.stop()
    return out
