"""The twin's market clock, day-scoped trade paging and REST faults (what backfill tests use)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from upbitpipe.replay.market import SyntheticMarket
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.replay.tradebook import DAY_MS, TicksQuery, TradeStore
from upbitpipe.upbit.codec import subscribe_request

pytestmark = pytest.mark.timeout(60)
MIDNIGHT = int(datetime(2026, 11, 28, tzinfo=UTC).timestamp() * 1000)
MARKETS = ["KRW-BTC", "KRW-ETH"]


def _options(**overrides: Any) -> ReplayOptions:
    base: dict[str, Any] = {
        "markets": MARKETS,
        "rate": 20.0,
        "rest_per_second": None,
        "connect_per_second": None,
        "clock_start_ms": MIDNIGHT - 10 * 60_000,  # 23:50 UTC
    }
    base.update(overrides)
    return ReplayOptions(**base)


async def _walk(client: httpx.AsyncClient, market: str, days_ago: int | None) -> list[int]:
    """Every trade of one UTC day as a client pages it: 500 a page, cursor = last id."""
    ids: list[int] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"market": market, "count": 500}
        if days_ago:
            params["daysAgo"] = days_ago
        if cursor is not None:
            params["cursor"] = cursor
        answer = await client.get("/v1/trades/ticks", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page) <= 500
        if not page:
            return ids
        ids.extend(row["sequential_id"] for row in page)
        cursor = page[-1]["sequential_id"]


def test_store_scopes_pages_to_one_utc_day() -> None:
    store = TradeStore()
    for i in range(40):  # 20 trades each side of midnight, 1 s apart
        ts = MIDNIGHT - 20_000 + i * 1000
        store.add(
            {
                "code": "KRW-BTC",
                "sequential_id": ts * 10_000 + 3,
                "trade_timestamp": ts,
                "trade_price": 1.0 + i,
                "trade_volume": 1.0,
                "ask_bid": "ASK",
            }
        )
    now = MIDNIGHT + 60_000
    today = store.ticks("KRW-BTC", TicksQuery(count=500), now)
    assert [r["trade_price"] for r in today] == [float(40 - i) for i in range(20)]
    yesterday = store.ticks("KRW-BTC", TicksQuery(count=500, days_ago=1), now)
    assert [r["trade_price"] for r in yesterday] == [float(20 - i) for i in range(20)]
    # the cursor of today's last page does not spill into yesterday without daysAgo
    assert store.ticks("KRW-BTC", TicksQuery(count=5, cursor=today[-1]["sequential_id"]), now) == []
    before = store.ticks("KRW-BTC", TicksQuery(count=500, days_ago=1, to="23:59:50"), now)
    assert [r["trade_time_utc"] for r in before][:1] == ["23:59:49"]
    assert len(store.ticks("KRW-BTC", TicksQuery(count=10_000), now)) == 20  # capped by the day
    store.expire(now + 8 * DAY_MS)
    assert store.count("KRW-BTC") == 0


async def test_clock_jump_across_midnight_is_served_by_rest_exactly() -> None:
    async with (
        ReplayServer(_options()) as srv,
        httpx.AsyncClient(base_url=srv.rest_url, timeout=60) as client,
    ):
        jumped = await client.get("/_replay/advance", params={"minutes": 20, "trade_rate": 50})
        assert jumped.status_code == 200, jumped.text
        span = srv.clock.skipped[0]  # 23:50 -> 00:10
        assert span.from_ms < MIDNIGHT < span.to_ms
        assert span.trades == {m: 60_000 for m in MARKETS}  # 20 min x 60 s x 50/s
        assert srv.market_now_ms() >= span.to_ms
        for market in MARKETS:
            served = await _walk(client, market, None) + await _walk(client, market, 1)
            truth = srv.trade_ids(market, span.from_ms, span.to_ms)
            assert len(truth) == 60_000
            in_span = set(served) & set(truth)
            assert in_span == set(truth)
            assert len(served) == len(set(served))  # no page repeats a trade
            assert all(len(str(sid)) == 17 for sid in truth)  # ms * 10^4 + k, like Upbit
        clock = (await client.get("/_replay/clock")).json()
        assert clock["skipped"][0]["trades"] == {m: 60_000 for m in MARKETS}
        ids = (
            await client.get(
                "/_replay/trade_ids",
                params={"market": "KRW-BTC", "from_ms": span.from_ms, "to_ms": span.to_ms},
            )
        ).json()
        assert ids["count"] == 60_000


async def test_advance_is_refused_while_a_client_listens() -> None:
    async with ReplayServer(_options()) as srv, connect(srv.ws_url) as ws:
        await ws.send(subscribe_request("c", ["trade"], ["KRW-BTC"]))
        await ws.recv()
        async with httpx.AsyncClient(base_url=srv.rest_url) as client:
            refused = await client.get("/_replay/advance", params={"minutes": 5})
            assert refused.status_code == 409
            assert "subscribed" in refused.json()["error"]["message"]
            forced = await client.get("/_replay/advance", params={"minutes": 5, "force": "1"})
            assert forced.status_code == 200
            assert forced.json()["to_ms"] - forced.json()["from_ms"] == 300_000


async def test_rest_refusal_for_a_time_and_before_a_moment() -> None:
    async with ReplayServer(_options()) as srv:
        span = srv.advance_clock(60_000, trade_rate=10.0)
        async with httpx.AsyncClient(base_url=srv.rest_url) as client:
            ticks = {"market": "KRW-BTC", "count": 500}
            on = await client.get(
                "/_replay/fault", params={"rest_refuse_seconds": 30, "status": 503}
            )
            assert on.json()["rest_refuse_seconds_left"] > 0
            refused = await client.get("/v1/trades/ticks", params=ticks)
            assert refused.status_code == 503
            assert set(refused.json()["error"]) == {"name", "message"}
            assert (await client.get("/v1/market/all")).status_code == 200  # only ticks refused
            await client.get("/_replay/fault", params={"clear": "1"})
            assert (await client.get("/v1/trades/ticks", params=ticks)).status_code == 200

            cut = span.from_ms + 30_000
            await client.get("/_replay/fault", params={"rest_refuse_before_ms": cut, "status": 500})
            newest = await client.get("/v1/trades/ticks", params={"market": "KRW-BTC", "count": 5})
            assert newest.status_code == 200
            assert (await client.get("/v1/trades/ticks", params=ticks)).status_code == 500
            await client.get("/_replay/fault", params={"clear": "1"})

            await client.get("/_replay/fault", params={"rest_forget_before_ms": cut})
            old_day = (await client.get("/v1/trades/ticks", params=ticks)).json()
            assert old_day and min(r["timestamp"] for r in old_day) >= cut
            assert len(srv.trade_ids("KRW-BTC", span.from_ms, cut)) > 0  # truth keeps them


async def test_capture_clock_cannot_move(tmp_path: Any) -> None:
    capture = tmp_path / "empty.jsonl"
    capture.write_text("")
    async with ReplayServer(ReplayOptions(capture=capture)) as srv:
        with pytest.raises(ValueError, match="capture"):
            srv.advance_clock(1000)


def test_filled_span_rolls_the_day_like_live_trades() -> None:
    market = SyntheticMarket(["KRW-BTC"], 3, MIDNIGHT - 60_000, 0.3)
    store = TradeStore()
    made = market.fill(MIDNIGHT - 60_000, MIDNIGHT + 60_000, 20.0, store)
    assert made == {"KRW-BTC": 2400}
    rows = store.normalised("KRW-BTC")
    before = [r for r in rows if r["trade_timestamp"] < MIDNIGHT]
    after = [r for r in rows if r["trade_timestamp"] >= MIDNIGHT]
    assert len(before) == len(after) == 1200
    assert {r["prev_closing_price"] for r in after} == {before[-1]["trade_price"]}
    live_trade, ticker = market.states["KRW-BTC"].trade(MIDNIGHT + 60_000)
    assert live_trade.wire["prev_closing_price"] == before[-1]["trade_price"]
    day_volume = sum(r["trade_volume"] for r in after) + live_trade.wire["trade_volume"]
    assert ticker.wire["acc_trade_volume"] == pytest.approx(day_volume)


def test_thin_markets_pad_the_bid_side_with_zero_units_like_upbit() -> None:
    market = SyntheticMarket(["BTC-XRP", "KRW-BTC"], 5, MIDNIGHT, 1.0)
    for event in market.generate(50, MIDNIGHT):
        units = event.wire["orderbook_units"]
        assert len(units) == 30
        padded = [u for u in units if u["bid_size"] == 0]
        if event.market == "KRW-BTC":
            assert not padded
        else:
            assert padded and all(u["bid_price"] == 0 for u in padded)
            assert units[-1]["bid_price"] == 0 and units[0]["bid_size"] > 0
            assert event.wire["total_bid_size"] == pytest.approx(sum(u["bid_size"] for u in units))
