"""A collector stopped for 3 hours of market time across 00:00 UTC, at 50 trades/s: REST
refusing leaves an exact gap record that ``stats`` shows; the next run fills it, and the
lake then holds every trade the twin made (missing 0, duplicated 0).

The collector runs as its own process (``upbitpipe collect``) against the replay twin,
whose market clock jumps the 3 hours ahead (making their trades for REST) while the
collector is down.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from collect_process import Collector, account, lake_trades
from collect_support import collector_settings

from upbitpipe.collector.gaps import GAPS_FILE, GapBook
from upbitpipe.collector.runtime import run_collector
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.stats.sources import collector_section

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
MARKET = "KRW-BTC"
DAY_MS = 86_400_000
GAP_MS = 3 * 3600_000
GAP_RATE = 50  # trades per second per market while the collector is down


def test_three_hours_across_midnight_refused_then_filled(tmp_path: Path) -> None:
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    start = today - 2 * DAY_MS + 22 * 3600_000 + 30 * 60_000  # 22:30 UTC, two days ago
    options = ReplayOptions(
        markets=[MARKET],
        seed=12,
        rate=100,
        rest_per_second=None,
        connect_per_second=None,
        clock_start_ms=start,
    )
    server = ReplayServer(options)
    server.start_in_thread()
    collector = Collector(
        tmp_path,
        server,
        ["--markets", MARKET, "--types", "trade", "--sink", "lake"],
        LAKE__COMMIT_INTERVAL_SECONDS="1",
        COLLECTOR__STATUS_INTERVAL_SECONDS="0.5",
        UPBIT__REST_PER_SECOND="100",
    )
    settings = collector_settings(tmp_path, server)
    try:
        # 1. collect a little, stop cleanly
        collector.start()
        collector.wait_for("two lake commits", lambda s: s.sinks["lake"]["commits"] >= 2)
        assert collector.signal(signal.SIGTERM) == 0, collector.log_tail()

        # 2. three hours pass across midnight; REST refuses: an exact gap record
        span = server.advance_clock(GAP_MS, trade_rate=GAP_RATE)
        midnight = (span.from_ms // DAY_MS + 1) * DAY_MS
        assert span.from_ms < midnight < span.to_ms
        server.refuse_rest(3600)
        collector.start()
        refused = collector.wait_for("a missing gap", lambda s: bool(s.gaps_missing))
        section = collector_section(settings)
        assert collector.signal(signal.SIGTERM) == 0, collector.log_tail()

        gaps = GapBook.load(settings.collector.state_dir / GAPS_FILE).missing()
        assert len(gaps) == 1, gaps
        gap = gaps[0]
        assert gap.market == MARKET and gap.from_sid is not None and gap.to_sid is not None
        assert gap.from_ms < span.from_ms and gap.to_ms is not None and gap.to_ms >= span.to_ms
        stored = lake_trades(settings)
        sids = {sid for (_, sid) in stored}
        assert gap.from_sid in sids and gap.to_sid in sids  # both ends are known trades
        between = {
            sid
            for sid in server.trade_ids(MARKET, gap.from_ms, gap.to_ms + 1)
            if gap.from_sid < sid < gap.to_sid
        }
        assert len(between) >= GAP_MS // 1000 * GAP_RATE  # the whole skipped span
        expected, missing, duplicated = account(server, stored, [MARKET])
        # the record names exactly what is missing: nothing inside is stored, all else is
        assert not between & sids
        assert missing == {(MARKET, sid) for sid in between}
        assert duplicated == 0
        shown = [row for row in section.rows if str(row["what"]).startswith("gap missing")]
        assert shown and MARKET in str(shown[0]["what"]), section.rows
        assert refused.gaps_open >= 1

        # 3. REST serves again: the next run closes the record and fills the lake
        server.refuse_rest(0)
        collector.start()
        done = collector.wait_for(
            "the gap filled",
            lambda s: s.gaps_open == 0 and s.backfilled_total >= len(between),
            timeout=400,
        )
        assert collector.signal(signal.SIGTERM) == 0, collector.log_tail()
    finally:
        collector.kill()
        server.stop_thread()

    stored = lake_trades(settings)
    expected, missing, duplicated = account(server, stored, [MARKET])
    assert len(expected) > len(between)
    assert not missing, f"{len(missing)} of {len(expected)} trades missing"
    assert duplicated == 0
    book = GapBook.load(settings.collector.state_dir / GAPS_FILE)
    closed = [g for g in book if g.id == gap.id]
    assert closed and closed[0].state == "closed" and closed[0].was_missing
    assert done.backfill.requests >= len(between) // 500  # 500 a page, not a page cap


async def test_types_trade_outages_longer_than_the_old_margin_lose_nothing(
    tmp_path: Path,
) -> None:
    """``--types trade``: the first frame after resubscribing is a trade of the connection's
    first market; the gap must be taken from before it (issue #18: 560 lost in 20 s)."""
    markets = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]
    options = ReplayOptions(
        markets=markets, seed=18, rate=150, drop_after_seconds=3, rest_per_second=None
    )
    async with ReplayServer(options) as server:
        settings = collector_settings(
            tmp_path,
            server,
            **{
                "collector.markets": ",".join(markets),
                "collector.types": "trade",
                # every outage lasts ~7 s: beyond the 5 s margin the old backfill relied on
                "collector.reconnect_initial_delay_seconds": 7,
                "collector.reconnect_max_delay_seconds": 7,
            },
        )
        result = await run_collector(settings, duration=24, handle_signals=False)
        stored = await asyncio.to_thread(lake_trades, settings)
        expected, missing, duplicated = account(server, stored, markets)
    assert result.snapshot.disconnects >= 2
    assert result.snapshot.backfill.completed >= 2 * len(markets)
    assert not missing, f"{len(missing)} of {len(expected)} trades missing"
    assert duplicated == 0
