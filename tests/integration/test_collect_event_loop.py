"""`collect` on uvloop (``collector.event_loop = uvloop``): SIGTERM under load still drains
every received event into the sink, as on asyncio's loop (test_collect_stop_under_load)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from collect_support import collector_settings
from test_collect_stop_under_load import (
    MARKETS,
    _archive_counts,
    _assert_all_delivered,
    _first_run_under_load,
    _next_start,
)

from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer


async def test_archive_sigterm_under_load_on_uvloop_keeps_every_event(tmp_path: Path) -> None:
    server = ReplayServer(ReplayOptions(markets=MARKETS, rate=0, seed=9))
    server.start_in_thread()
    try:
        first = await asyncio.to_thread(
            _first_run_under_load,
            tmp_path,
            server,
            "archive",
            {"COLLECTOR__EVENT_LOOP": "uvloop"},
        )
    finally:
        server.stop_thread()
    second_started_ms = int(time.time() * 1000)
    second = await _next_start(tmp_path, "archive", {})
    root = collector_settings(tmp_path, server).collector.effective_archive_dir
    got, repeats = await asyncio.to_thread(_archive_counts, root, second_started_ms)
    _assert_all_delivered(first, second, got)
    assert repeats == 0, f"{repeats} frames archived twice"
