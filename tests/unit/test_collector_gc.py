"""The collector collects cyclic garbage less often while it streams, and gives the process
its GC settings back when it stops (an embedding program keeps its own)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from upbitpipe.collector.service import (
    STREAMING_GC_THRESHOLDS,
    CollectorPlan,
    CollectorService,
)
from upbitpipe.config import Settings
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.memory import MemorySink
from upbitpipe.upbit.rest import UpbitRestClient


def test_streaming_gc_thresholds_hold_while_running_and_are_restored(tmp_path: Path) -> None:
    markets = ["KRW-BTC"]
    settings = Settings.model_validate(
        {
            "collector": {"state_dir": str(tmp_path)},
            "upbit": {"websocket_url": "ws://127.0.0.1:9/websocket/v1"},  # refused: no data
        }
    )
    plan = CollectorPlan(markets=markets, types=["trade"], shards=[markets])
    rest = UpbitRestClient("http://127.0.0.1:9")
    svc = CollectorService(settings, plan, [MemorySink()], rest, DeadLetterBox(tmp_path / "dl"))
    before = gc.get_threshold()
    assert before != STREAMING_GC_THRESHOLDS

    async def run() -> tuple[int, ...]:
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        seen = gc.get_threshold()
        for _ in range(400):  # up to 20 s for the sinks to start
            await asyncio.sleep(0.05)
            seen = gc.get_threshold()
            if seen == STREAMING_GC_THRESHOLDS or task.done():
                break
        stop.set()
        await asyncio.wait_for(task, timeout=60)
        return seen

    seen = asyncio.run(run())
    assert seen == STREAMING_GC_THRESHOLDS, f"thresholds while running: {seen}"
    assert gc.get_threshold() == before
    assert not gc.get_freeze_count(), "run() leaves nothing frozen"
