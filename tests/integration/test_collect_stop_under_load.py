"""SIGTERM under load loses nothing, for each sink.

`upbitpipe collect` runs as its own process against `replay serve` at the highest rate the
machine reaches (``rate=0``: as fast as the collector reads), with a shutdown deadline too
short to commit the backlog. After SIGTERM, every trade, ticker and orderbook the collector
counted as received (``status.json`` events, emitted once) must be in the sink or in the
stop spool; a second start (another instance id, a slow exchange) delivers the spool first.
The sink is then counted per type, per instance, against the first run's counts.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from collect_support import collector_process_env, collector_settings

from conftest import KafkaFixture
from upbitpipe.archive.capture import read_capture
from upbitpipe.collector.runtime import run_collector
from upbitpipe.collector.status import read_status
from upbitpipe.config import Settings
from upbitpipe.infra.kafka import topic_specs
from upbitpipe.infra.kafka_admin import ensure_topics
from upbitpipe.lake.read import read_table
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MalformedFrameError, MarketEvent, parse_frame

MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE", "KRW-ADA", "KRW-USDT"]
TYPES = ("trade", "ticker", "orderbook")
RUN_SECONDS = 6
SHUTDOWN_SECONDS = 3


def _status(path: Path) -> dict[str, Any] | None:
    status = read_status(path)
    return status.model_dump() if status is not None else None


def _collect_then_sigterm(proc: subprocess.Popen[bytes], status_path: Path) -> bytes:
    """Wait for RUN_SECONDS of events, SIGTERM, return the output."""
    deadline = time.monotonic() + 90
    first_event_at = 0.0
    while time.monotonic() < deadline:
        status = _status(status_path)
        if status and sum(status["events"].values()) and not first_event_at:
            first_event_at = time.monotonic()
        if first_event_at and time.monotonic() - first_event_at >= RUN_SECONDS:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"collector produced no events: {proc.communicate()[0].decode()[-3000:]}")
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=SHUTDOWN_SECONDS + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"no exit within {SHUTDOWN_SECONDS + 30}s of SIGTERM")
    return out


def _first_run_under_load(
    tmp_path: Path, server: ReplayServer, sink: str, extra: dict[str, str]
) -> dict[str, Any]:
    """Collect at full speed for RUN_SECONDS, SIGTERM, return the final status."""
    settings = {
        "COLLECTOR__INSTANCE_ID": "run1",
        "COLLECTOR__SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_SECONDS),
        "COLLECTOR__STATUS_INTERVAL_SECONDS": "0.5",
        "LAKE__BUCKETS": "1",
        **extra,
    }
    env = collector_process_env(tmp_path, server, **settings)
    cmd = [sys.executable, "-m", "upbitpipe", "collect", "--markets", ",".join(MARKETS)]
    proc = subprocess.Popen(
        [*cmd, "--sink", sink], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    status_path = tmp_path / "state" / "status.json"
    try:
        out = _collect_then_sigterm(proc, status_path)
    finally:
        if proc.poll() is None:  # any failure above: never leave the collector running
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, out.decode()[-3000:]
    final = _status(status_path)
    assert final is not None and final["stopped"] is True, out.decode()[-3000:]
    assert all(final["events"].get(t, 0) > 0 for t in TYPES), final["events"]
    return final


async def _next_start(tmp_path: Path, sink: str, extra: dict[str, Any]) -> dict[str, Any]:
    """A second run (instance run2) on a slow exchange: it must deliver the spool first."""
    async with ReplayServer(ReplayOptions(markets=MARKETS, rate=20, seed=2)) as slow:
        settings = collector_settings(
            tmp_path,
            slow,
            **{
                "collector.markets": ",".join(MARKETS),
                "collector.sinks": sink,
                "collector.instance_id": "run2",
                **extra,
            },
        )
        stop = asyncio.Event()
        run = asyncio.create_task(run_collector(settings, stop=stop, handle_signals=False))
        status_path = settings.collector.state_dir / "status.json"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while loop.time() < deadline and not run.done():
            await asyncio.sleep(0.5)
            status = _status(status_path)
            if status and status.get("instance_id") == "run2" and status["sinks"]:
                counters = next(iter(status["sinks"].values()))
                if counters["stop_spool_records"] == 0 and sum(status["events"].values()) > 20:
                    break
        stop.set()
        result = await asyncio.wait_for(run, timeout=60)
    return result.snapshot.model_dump()


def _lake_counts(settings: Settings) -> Counter[str]:
    out: Counter[str] = Counter()
    for table in TYPES:
        rows = read_table(settings, table, ["_collector"])
        out[table] = sum(1 for r in rows if r["_collector"] == "run1")
    return out


def _archive_counts(root: Path, before_ms: int) -> tuple[Counter[str], int]:
    """Distinct frames per type received before ``before_ms``; and how many repeated."""
    seen: set[tuple[int, bytes]] = set()
    out: Counter[str] = Counter()
    repeats = 0
    for recv_ms, frame in read_capture(root):
        if recv_ms >= before_ms:
            continue
        try:
            event = parse_frame(frame)
        except MalformedFrameError:
            continue
        if not isinstance(event, MarketEvent):
            continue
        if (recv_ms, frame) in seen:
            repeats += 1
            continue
        seen.add((recv_ms, frame))
        out[event.type] += 1
    return out, repeats


async def _kafka_counts(settings: Settings, idle_seconds: float = 4.0) -> Counter[str]:
    """Distinct run1 values per topic (a redelivery at a cut-short stop counts once)."""
    topics = {settings.kafka.topic(t): t for t in TYPES}
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",  # what every consumer of the pipeline sees
    )
    await consumer.start()
    seen: set[bytes] = set()
    out: Counter[str] = Counter()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        quiet_since = loop.time()
        while loop.time() < deadline and loop.time() - quiet_since < idle_seconds:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    quiet_since = loop.time()
                    if record.value is None or record.value in seen:
                        continue
                    seen.add(record.value)
                    if orjson.loads(record.value).get("_collector") == "run1":
                        out[topics[record.topic]] += 1
    finally:
        await consumer.stop()
    return out


def _assert_all_delivered(first: dict[str, Any], second: dict[str, Any], got: Counter[str]) -> None:
    received = {t: first["events"][t] for t in TYPES}
    assert dict(got) == received, (
        f"received {received}, in the sink after the next start {dict(got)}; "
        f"first run's sink counters {first['sinks']}"
    )
    name = next(iter(first["sinks"]))
    spooled = first["sinks"][name]["spooled_at_stop"]
    assert first["sinks"][name]["lost_at_stop"] == 0
    assert second["sinks"][name]["replayed_from_spool"] == spooled
    assert second["sinks"][name]["stop_spool_records"] == 0


async def test_lake_sigterm_under_load_keeps_every_event(tmp_path: Path) -> None:
    server = ReplayServer(ReplayOptions(markets=MARKETS, rate=0, seed=7))
    server.start_in_thread()
    try:
        # commits wait for the shutdown, which is short: the backlog is usually spooled
        # (whether it is depends on the machine's speed; the counts must hold either way)
        extra = {
            "LAKE__COMMIT_ROWS": "1000000",
            "LAKE__COMMIT_INTERVAL_SECONDS": "60",
            "COLLECTOR__SHUTDOWN_TIMEOUT_SECONDS": "1",
        }
        first = await asyncio.to_thread(_first_run_under_load, tmp_path, server, "lake", extra)
    finally:
        server.stop_thread()
    second = await _next_start(tmp_path, "lake", {"lake.buckets": 1})
    settings = collector_settings(tmp_path, server)
    got = await asyncio.to_thread(_lake_counts, settings)
    _assert_all_delivered(first, second, got)


@pytest.mark.parametrize(
    "first_env",
    [
        pytest.param({}, id="asyncio"),
        pytest.param({"COLLECTOR__EVENT_LOOP": "uvloop"}, id="uvloop"),
    ],
)
async def test_archive_sigterm_under_load_keeps_every_event(
    tmp_path: Path, first_env: dict[str, str]
) -> None:
    """Also on uvloop (``collector.event_loop``): SIGTERM under load still drains every
    received event into the sink."""
    server = ReplayServer(ReplayOptions(markets=MARKETS, rate=0, seed=8))
    server.start_in_thread()
    try:
        first = await asyncio.to_thread(
            _first_run_under_load, tmp_path, server, "archive", first_env
        )
    finally:
        server.stop_thread()
    second_started_ms = int(time.time() * 1000)
    second = await _next_start(tmp_path, "archive", {})
    root = collector_settings(tmp_path, server).collector.effective_archive_dir
    got, repeats = await asyncio.to_thread(_archive_counts, root, second_started_ms)
    _assert_all_delivered(first, second, got)
    assert repeats == 0, f"{repeats} frames archived twice"


@pytest.mark.integration
async def test_kafka_sigterm_under_load_keeps_every_event(
    tmp_path: Path, kafka_cluster: KafkaFixture
) -> None:
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    kafka = {
        "KAFKA__BOOTSTRAP_SERVERS": ",".join(kafka_cluster.bootstrap_servers),
        "KAFKA__TOPIC_PREFIX": prefix,
        "KAFKA__REQUEST_TIMEOUT_MS": "5000",
    }
    server = ReplayServer(ReplayOptions(markets=MARKETS, rate=0, seed=9))
    server.start_in_thread()
    try:
        settings = collector_settings(
            tmp_path,
            server,
            **{f"kafka.{k.split('__')[1].lower()}": v for k, v in kafka.items()},
        )
        await ensure_topics(settings.kafka.bootstrap_servers, topic_specs(settings.kafka, 3))
        first = await asyncio.to_thread(_first_run_under_load, tmp_path, server, "kafka", kafka)
    finally:
        server.stop_thread()
    second = await _next_start(
        tmp_path, "kafka", {f"kafka.{k.split('__')[1].lower()}": v for k, v in kafka.items()}
    )
    got = await _kafka_counts(settings)
    _assert_all_delivered(first, second, got)
