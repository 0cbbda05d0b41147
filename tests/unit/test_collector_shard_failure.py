"""A connection task that ends on an unexpected error (a bug in the frame path) stops the
collector loudly instead of leaving its markets unread until shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from upbitpipe.collector.service import CollectorPlan, CollectorService
from upbitpipe.config import Settings
from upbitpipe.errors import CollectorStoppedError
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.memory import MemorySink
from upbitpipe.upbit.rest import UpbitRestClient


def _service(tmp_path: Path) -> CollectorService:
    markets = ["KRW-BTC", "KRW-ETH"]
    settings = Settings.model_validate(
        {
            "collector": {"state_dir": str(tmp_path), "backfill": False},
            "upbit": {"websocket_url": "ws://127.0.0.1:9/websocket/v1"},  # refused: no data
        }
    )
    plan = CollectorPlan(markets=markets, types=["trade"], shards=[markets[:1], markets[1:]])
    rest = UpbitRestClient("http://127.0.0.1:9")
    return CollectorService(settings, plan, [MemorySink()], rest, DeadLetterBox(tmp_path / "dl"))


def test_a_shard_that_fails_unexpectedly_stops_the_collector_with_its_reason(
    tmp_path: Path,
) -> None:
    svc = _service(tmp_path)
    broken = svc.connections[1]

    async def fails(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.2)
        msg = "Type is not JSON serializable: object"
        raise TypeError(msg)

    broken.run = fails  # type: ignore[method-assign]

    async def run() -> None:
        stop = asyncio.Event()
        await asyncio.wait_for(svc.run(stop), timeout=60)  # stops by itself

    with pytest.raises(CollectorStoppedError, match=r"conn-1 stopped on TypeError: Type is not"):
        asyncio.run(run())
    assert svc.state.resume.path.is_file()  # saved on the way out, for the next start


def test_shards_that_end_at_stop_raise_nothing(tmp_path: Path) -> None:
    svc = _service(tmp_path)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(task, timeout=60)

    asyncio.run(run())
