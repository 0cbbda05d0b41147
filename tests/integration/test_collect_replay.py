"""The collector against the replay server: forced disconnects, duplicates, reordering and
garbage frames; every trade must land exactly once in the lake and in the archive."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from collect_support import (
    archive_trade_ids,
    collector_process_env,
    collector_settings,
    expected_trade_ids,
    lake_trade_ids,
    run_collector_until,
)

from upbitpipe.collector.runtime import run_collector
from upbitpipe.collector.status import CollectorStatus, read_status
from upbitpipe.errors import ServiceUnavailableError, UnknownMarketError
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer

# replay tier: needs only the replay twin and collector processes (no Java, no Go)
MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]


async def test_disconnects_lose_no_trade_and_store_each_once(tmp_path: Path) -> None:
    options = ReplayOptions(
        markets=MARKETS,
        seed=11,
        rate=300,
        drop_after_messages=400,
        malformed_every=250,
        duplicate_rate=0.05,
        reorder_rate=0.05,
    )
    async with ReplayServer(options) as server:
        settings = collector_settings(
            tmp_path,
            server,
            **{"collector.markets": ",".join(MARKETS), "collector.sinks": "lake,archive"},
        )
        result = await run_collector_until(
            settings,
            lambda s: s.disconnects >= 2 and s.backfilled_total > 0 and s.duplicates > 0,
            at_least=10,
        )

    snap = result.snapshot
    assert snap.stopped is True
    assert snap.disconnects >= 2, snap.connections
    assert snap.backfilled_total > 0, "outages must be backfilled from REST"
    assert snap.dead_letters.get("malformed", 0) >= 1
    assert snap.duplicates > 0

    lake = lake_trade_ids(settings)
    assert lake, "no trades in the lake"
    assert max(lake.values()) == 1, "a trade is stored twice"
    expected = expected_trade_ids(server, lake, MARKETS)
    missing = expected - set(lake)
    assert not missing, f"{len(missing)} of {len(expected)} trades missing from the lake"

    archive = archive_trade_ids(settings.collector.effective_archive_dir)
    assert set(archive) == set(lake)
    assert max(archive.values()) == 1, "a trade is archived twice"
    assert snap.events["trade"] == len(lake)

    dead = list((settings.collector.state_dir / "deadletter").glob("*.jsonl"))
    lines = [json.loads(line) for f in dead for line in f.read_text().splitlines()]
    assert any(d["kind"] == "malformed" and d["raw_b64"] for d in lines)


async def test_unknown_market_is_a_clear_error(tmp_path: Path) -> None:
    async with ReplayServer(ReplayOptions(markets=MARKETS, rate=10)) as server:
        settings = collector_settings(tmp_path, server, **{"collector.markets": "KRW-BTX"})
        with pytest.raises(UnknownMarketError, match="did you mean KRW-BTC"):
            await run_collector(settings, duration=2, handle_signals=False)


def test_sigterm_flushes_and_exits_zero(tmp_path: Path) -> None:
    server = ReplayServer(ReplayOptions(markets=MARKETS, rate=200, seed=5))
    server.start_in_thread()
    try:
        # only the shutdown flush commits
        env = collector_process_env(tmp_path, server, LAKE__COMMIT_INTERVAL_SECONDS="60")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "upbitpipe",
                "collect",
                "--markets",
                ",".join(MARKETS),
                "--sink",
                "lake",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        status_path = tmp_path / "state" / "status.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = read_status(status_path)
            if status and status.events.get("trade", 0) >= 50:
                break
            time.sleep(0.3)
        else:
            proc.kill()
            pytest.fail(f"collector produced no trades: {proc.communicate()[0].decode()[-2000:]}")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()[-2000:]
    finally:
        server.stop_thread()
    final = read_status(status_path)
    assert final is not None and final.stopped is True
    settings = collector_settings(tmp_path, server)
    lake: Counter[tuple[str, int]] = lake_trade_ids(settings)
    assert len(lake) == final.events["trade"], "SIGTERM must flush every collected trade"


async def test_silent_socket_is_restarted_by_the_watchdog(tmp_path: Path) -> None:
    options = ReplayOptions(
        markets=MARKETS[:1], seed=3, rate=100, stall_every_seconds=2.5, stall_seconds=4
    )
    async with ReplayServer(options) as server:
        settings = collector_settings(
            tmp_path,
            server,
            **{
                "collector.markets": MARKETS[0],
                "collector.types": "trade",
                "upbit.silence_timeout_seconds": 1.5,
            },
        )
        result = await run_collector(settings, duration=8, handle_signals=False)
    conn = result.snapshot.connections[0]
    assert conn.disconnects >= 1
    assert "watchdog" in conn.last_error
    lake = lake_trade_ids(settings)
    assert not expected_trade_ids(server, lake, MARKETS[:1]) - set(lake)


async def test_a_sink_that_cannot_start_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the warehouse should be")
    async with ReplayServer(ReplayOptions(markets=MARKETS, rate=10)) as server:
        settings = collector_settings(tmp_path, server, **{"lake.warehouse": str(blocker / "lake")})
        with pytest.raises(ServiceUnavailableError, match=r"^sink lake cannot start: "):
            await run_collector(settings, duration=2, handle_signals=False)


async def test_prometheus_endpoint_serves_the_counters(tmp_path: Path) -> None:
    async with ReplayServer(ReplayOptions(markets=MARKETS, rate=200, seed=4)) as server:
        settings = collector_settings(tmp_path, server, **{"collector.sinks": "archive"})
        stop = asyncio.Event()
        run = asyncio.create_task(run_collector(settings, stop=stop, handle_signals=False))
        status_path = settings.collector.state_dir / "status.json"
        status: CollectorStatus | None = None
        for _ in range(100):
            await asyncio.sleep(0.2)
            status = read_status(status_path)
            if status and status.events.get("trade", 0) > 5:
                break
        assert status is not None and status.metrics_url, status
        async with httpx.AsyncClient() as client:
            body = (await client.get(status.metrics_url)).text
        stop.set()
        result = await run
    assert result.metrics_port is not None
    assert str(result.metrics_port) in status.metrics_url
    assert 'upbitpipe_events_total{type="trade"}' in body
    assert 'upbitpipe_connection_up{shard="0"} 1.0' in body


async def test_a_restart_backfills_the_downtime(tmp_path: Path) -> None:
    async with ReplayServer(ReplayOptions(markets=MARKETS[:2], seed=8, rate=150)) as server:
        settings = collector_settings(
            tmp_path, server, **{"collector.markets": ",".join(MARKETS[:2])}
        )
        await run_collector(settings, duration=4, handle_signals=False)
        await asyncio.sleep(3)  # the exchange keeps trading while the collector is down
        second = await run_collector(settings, duration=5, handle_signals=False)
    assert second.snapshot.backfilled_total > 0, "the downtime was not backfilled"
    lake = lake_trade_ids(settings)
    assert max(lake.values()) == 1
    missing = expected_trade_ids(server, lake, MARKETS[:2]) - set(lake)
    assert not missing, f"{len(missing)} trades of the downtime are missing"


async def test_after_a_crash_the_restart_fills_the_gap(tmp_path: Path) -> None:
    server = ReplayServer(ReplayOptions(markets=MARKETS[:2], rate=150, seed=9))
    server.start_in_thread()
    try:
        env = collector_process_env(
            tmp_path,
            server,
            LAKE__COMMIT_INTERVAL_SECONDS="1",
            LAKE__BUCKETS="1",
            COLLECTOR__STATUS_INTERVAL_SECONDS="0.5",
        )
        markets = ",".join(MARKETS[:2])
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "upbitpipe", "collect", "--markets", markets, "--sink", "lake"],
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        status_path = tmp_path / "state" / "status.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = read_status(status_path)
            if status and status.sinks["lake"]["commits"] >= 3:
                break
            await asyncio.sleep(0.3)
        proc.kill()  # no flush, no clean resume point
        await asyncio.wait_for(proc.wait(), timeout=10)
        await asyncio.sleep(2)
        settings = collector_settings(tmp_path, server, **{"collector.markets": markets})
        second = await run_collector(settings, duration=5, handle_signals=False)
    finally:
        server.stop_thread()
    assert second.snapshot.backfilled_total > 0
    lake = lake_trade_ids(settings)
    assert max(lake.values()) == 1
    missing = expected_trade_ids(server, lake, MARKETS[:2]) - set(lake)
    assert not missing, f"{len(missing)} trades lost across the crash"
