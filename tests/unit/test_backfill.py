"""Backfill windows over the twin's day-scoped REST, gap records, resume points and the
durable ledger that keeps them honest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from upbitpipe.collector.backfill import GapFiller
from upbitpipe.collector.gaps import Gap, GapBook
from upbitpipe.collector.resume import DurableLedger, ResumePoints, Tip
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.rest import TradeWindow, UpbitRestClient

pytestmark = pytest.mark.timeout(60)
MIDNIGHT = int(datetime(2026, 11, 27, tzinfo=UTC).timestamp() * 1000)
MARKET = "KRW-BTC"


def _options(**overrides: Any) -> ReplayOptions:
    base: dict[str, Any] = {
        "markets": [MARKET],
        "rate": 20.0,
        "rest_per_second": None,
        "connect_per_second": None,
        "clock_start_ms": MIDNIGHT - 30 * 60_000,  # 23:30 UTC
    }
    base.update(overrides)
    return ReplayOptions(**base)


def _client(server: ReplayServer) -> UpbitRestClient:
    return UpbitRestClient(
        server.rest_url, requests_per_second=1000.0, backoff_base=0.01, max_retries=1
    )


async def _window_ids(
    server: ReplayServer, since: int, until: int | None, known: int | None = None
) -> tuple[set[int], Any]:
    async with _client(server) as client:
        window = TradeWindow(client, MARKET, since_ms=since, until_ms=until, known_ms=known)
        ids = {row["sequential_id"] async for page in window.pages() for row in page}
    return ids, window


async def test_window_pages_back_across_midnight_by_cursor_and_days_ago() -> None:
    async with ReplayServer(_options()) as server:
        span = server.advance_clock(2 * 3600_000, trade_rate=20)  # 23:30 -> 01:30
        since, until = span.from_ms + 60_000, span.to_ms - 60_000
        ids, window = await _window_ids(server, since, until)
        truth = set(server.trade_ids(MARKET, since, until + 1))
    assert since < MIDNIGHT < until
    assert len(truth) > 100_000  # far beyond any page cap of the old backfill
    assert ids == truth
    assert window.complete
    assert window.requests <= len(truth) // 500 + 6  # 500 a page, a few day switches


async def test_window_up_to_now_and_out_of_reach() -> None:
    async with ReplayServer(_options()) as server:
        span = server.advance_clock(3600_000, trade_rate=5)
        server.forget_before(span.from_ms + 600_000)  # REST lost the first 10 minutes
        # a trade is known to have happened at the window's start: REST lost it
        ids, window = await _window_ids(server, span.from_ms, None, known=span.from_ms + 1)
        served = set(server.trade_ids(MARKET, span.from_ms + 600_000, span.to_ms))
    assert served <= ids
    assert not window.complete
    assert window.reached_ms is not None
    assert span.from_ms < window.reached_ms <= span.from_ms + 600_000 + 1000


class _Durable:
    def __init__(self) -> None:
        self.durable_events = 0


def test_ledger_waits_for_every_sink() -> None:
    lake, kafka = _Durable(), _Durable()
    ledger = DurableLedger([lake, kafka])
    done: list[str] = []
    ledger.handed_to(0)
    ledger.handed_to(1)
    ledger.when_durable(lambda: done.append("first"))
    ledger.handed_to(0)  # only the lake gets this one (Kafka already had it)
    ledger.when_durable(lambda: done.append("second"))
    kafka.durable_events = 1
    ledger.advance()
    assert done == []
    lake.durable_events = 1
    ledger.advance()
    assert done == ["first"]
    lake.durable_events = 2
    ledger.advance()
    assert done == ["first", "second"] and len(ledger) == 0


async def test_filler_records_a_refused_gap_and_closes_it_on_retry(tmp_path: Path) -> None:
    async with ReplayServer(_options()) as server:
        span = server.advance_clock(600_000, trade_rate=10)
        book = GapBook(tmp_path / "gaps.json")
        sink = _Durable()
        ledger = DurableLedger([sink])
        emitted: dict[int, dict[str, Any]] = {}

        async def emit(trade: dict[str, Any]) -> bool:
            ledger.handed_to(0)
            if trade["sequential_id"] in emitted:
                return False
            emitted[trade["sequential_id"]] = trade
            return True

        gap = book.add(Gap(market=MARKET, from_ms=span.from_ms + 65_000, to_ms=span.to_ms - 5000))
        server.refuse_rest(60)
        async with _client(server) as client:
            filler = GapFiller(client, book, ledger, emit)
            assert await filler.fill(gap) is False
            ledger.advance()
            assert gap.state == "missing" and "503" in gap.reason
            book.save()
            again = GapBook.load(tmp_path / "gaps.json")
            assert [g.state for g in again] == ["missing"]
            assert again.summary()["missing_ranges"][0]["from_ms"] == span.from_ms + 65_000

            server.refuse_rest(0)
            assert await filler.fill(gap) is True
            assert gap.state == "missing"  # closing waits until the sink made it durable
            sink.durable_events = ledger.handed[0]
            ledger.advance()
        # the filler asks from OVERLAP_MS before the gap's start up to its end, inclusive
        truth = set(server.trade_ids(MARKET, span.from_ms + 60_000, span.to_ms - 5000 + 1))
    assert gap.state == "closed" and gap.was_missing
    assert set(emitted) == truth
    assert filler.recovered[MARKET] == len(emitted)


def test_resume_points_survive_bad_files_and_future_tips(tmp_path: Path) -> None:
    path = tmp_path / "resume.json"
    for junk in (b"[1,2,3]", b"null", b"\xff\xfe", b""):
        path.write_bytes(junk)
        assert ResumePoints.load(path).tips == {}
    assert len(list(tmp_path.glob("resume.json.bad-*"))) >= 1
    now = 1_800_000_000_000
    path.write_bytes(orjson.dumps({"KRW-BTC": now - 1_000, "KRW-ETH": 10**15, "KRW-X": "a"}))
    tips = ResumePoints.load(path, now_ms=now).tips  # the first format: {market: ms}
    assert tips["KRW-BTC"] == Tip(ms=now - 1_000)
    assert set(tips) == {"KRW-BTC"}  # one in the future or not a time is dropped
    tip = Tip(ms=now - 7, sid=70, received_ms=now - 5)
    points = ResumePoints(path, {"KRW-BTC": tip})
    points.start(["KRW-BTC", "KRW-XRP"], now_ms=now)
    points.save()
    again = ResumePoints.load(path, now_ms=now)
    assert again.tips["KRW-BTC"] == tip
    assert again.tips["KRW-XRP"].ms < now  # a first start resumes from its start


def _trade_frame(market: str, ts: int) -> bytes:
    moment = datetime.fromtimestamp(ts / 1000, tz=UTC)
    return orjson.dumps(
        {
            "type": "trade",
            "code": market,
            "timestamp": ts,
            "trade_date": f"{moment:%Y-%m-%d}",
            "trade_time": f"{moment:%H:%M:%S}",
            "trade_timestamp": ts,
            "trade_price": 100_000.0,
            "trade_volume": 0.5,
            "ask_bid": "BID",
            "prev_closing_price": 99_000.0,
            "change": "RISE",
            "change_price": 1000.0,
            "sequential_id": ts * 10_000,
            "stream_type": "REALTIME",
        }
    )


def test_a_session_gap_starts_before_the_sessions_first_frame(tmp_path: Path) -> None:
    """Issue #18: with ``--types trade`` the first frame after resubscribing is a trade of
    the first market, and a market with no trade seen yet still gets its gap."""
    from upbitpipe.collector.service import CollectorPlan, CollectorService
    from upbitpipe.config import Settings
    from upbitpipe.sinks.deadletter import DeadLetterBox
    from upbitpipe.sinks.memory import MemorySink

    markets = ["KRW-BTC", "KRW-ETH"]
    settings = Settings.model_validate({"collector": {"state_dir": str(tmp_path)}})
    plan = CollectorPlan(markets=markets, types=["trade"], shards=[markets])
    rest = UpbitRestClient("http://127.0.0.1:9")
    svc = CollectorService(settings, plan, [MemorySink()], rest, DeadLetterBox(tmp_path / "dl"))
    now = MIDNIGHT
    svc.state.resume.start(markets, now)  # what run() does before the first connect
    state = svc.connections[0].state

    async def feed() -> None:
        state.connects = 1  # first session of a fresh start: no gap
        for i in range(5):
            await svc._on_shard_frames(
                0, ((_trade_frame("KRW-BTC", now + i * 100), now + i * 100),)
            )
        state.connects = 2  # a reconnect 20 s later; its first frame is a BTC trade
        await svc._on_shard_frames(0, ((_trade_frame("KRW-BTC", now + 20_000), now + 20_000),))

    asyncio.run(feed())
    gaps = {g.market: g for g in svc.state.gaps.open_gaps()}
    assert set(gaps) == set(markets)
    btc, eth = gaps["KRW-BTC"], gaps["KRW-ETH"]
    assert (btc.from_ms, btc.from_sid) == (now + 400, (now + 400) * 10_000)  # before, not after
    assert (btc.to_ms, btc.to_sid) == (now + 20_000, (now + 20_000) * 10_000)
    assert eth.from_ms <= now and eth.to_ms is None  # no ETH trade yet: up to the stream
