"""REST client against the replay server over real HTTP: paging, Remaining-Req, 429/418."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect

from upbitpipe.errors import ServiceUnavailableError, UnknownMarketError
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MarketEvent, parse_frame, subscribe_request
from upbitpipe.upbit.rest import UpbitRestClient, normalise_rest_trade, parse_remaining_req


def connect(url: str, **kwargs: Any) -> ws_connect:
    """A client that does not wait 10 s to close when the test stopped reading."""
    return ws_connect(url, close_timeout=0.5, **kwargs)


pytestmark = pytest.mark.timeout(30)
DATA = Path(__file__).parent.parent / "data"


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    options = ReplayOptions(rate=2000, rest_per_second=None, connect_per_second=None)
    async with ReplayServer(options) as srv:
        yield srv


def _client(server: ReplayServer, **kwargs: Any) -> UpbitRestClient:
    kwargs.setdefault("requests_per_second", 200.0)
    kwargs.setdefault("backoff_base", 0.01)
    return UpbitRestClient(server.rest_url, **kwargs)


def test_remaining_req_header() -> None:
    assert parse_remaining_req("group=default; min=1800; sec=29") == 29
    assert parse_remaining_req("group=trades; sec=0") == 0
    assert parse_remaining_req(None) is None
    assert parse_remaining_req("garbage") is None


def test_rest_rows_normalise_to_websocket_trade_shape() -> None:
    rows = orjson.loads((DATA / "upbit_rest_trades_ticks.json").read_bytes())
    trade = normalise_rest_trade(rows[0])
    ws_line = (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()[1]
    ws = parse_frame(ws_line)
    assert isinstance(ws, MarketEvent)
    for key in set(trade) - {"timestamp"}:
        assert trade[key] == ws.data[key], key


async def test_list_markets(server: ReplayServer) -> None:
    async with _client(server) as client:
        markets = await client.list_markets(details=True)
    assert [m.market for m in markets] == ["KRW-BTC", "KRW-ETH"]
    assert markets[0].english_name == "Bitcoin" and markets[0].warning is False


async def test_streamed_trades_equal_rest_and_ground_truth(server: ReplayServer) -> None:
    streamed: dict[int, dict[str, Any]] = {}
    async with connect(server.ws_url) as ws:
        await ws.send(subscribe_request("t", ["trade"], ["KRW-BTC"], only_realtime=True))
        while len(streamed) < 150:
            event = parse_frame(await asyncio.wait_for(ws.recv(), 3))
            assert isinstance(event, MarketEvent)
            assert event.sequential_id is not None
            streamed[event.sequential_id] = event.data
    since = min(t["trade_timestamp"] for t in streamed.values())
    fetched: dict[int, dict[str, Any]] = {}
    async with _client(server) as client:
        pages = [
            p
            async for p in client.iter_recent_trades("KRW-BTC", stop_before_ms=since, page_size=40)
        ]
    assert len(pages) > 3
    for page in pages:
        for row in page:
            fetched[row["sequential_id"]] = row
    assert set(streamed) <= set(fetched)
    keys = ("trade_price", "trade_volume", "ask_bid", "trade_timestamp", "trade_date", "trade_time")
    for sid, trade in streamed.items():
        assert {k: fetched[sid][k] for k in keys} == {k: trade[k] for k in keys}
    truth = {t["sequential_id"]: t for t in server.generated_trades("KRW-BTC")}
    assert set(fetched) <= set(truth)
    assert all(fetched[sid] == truth[sid] for sid in fetched)


async def test_pages_are_newest_first_and_do_not_overlap(server: ReplayServer) -> None:
    await asyncio.sleep(0.3)
    async with _client(server) as client:
        first = await client.trade_ticks("KRW-ETH", count=20)
        second = await client.trade_ticks("KRW-ETH", count=20, cursor=first[-1]["sequential_id"])
    times = [t["trade_timestamp"] for t in first + second]
    assert times == sorted(times, reverse=True)
    assert not {t["sequential_id"] for t in first} & {t["sequential_id"] for t in second}


async def test_market_clock_runs_while_client_is_away(server: ReplayServer) -> None:
    async with _client(server) as client:
        before = await client.trade_ticks("KRW-BTC", count=1)
        await asyncio.sleep(0.3)
        since = before[0]["trade_timestamp"]
        pages = [p async for p in client.iter_recent_trades("KRW-BTC", stop_before_ms=since)]
    after = [t for page in pages for t in page]
    assert len(after) > 20  # nobody was subscribed, trades kept happening
    assert before[0]["sequential_id"] in {t["sequential_id"] for t in after}


async def test_unknown_market(server: ReplayServer) -> None:
    async with _client(server) as client:
        with pytest.raises(UnknownMarketError, match="KRW-NOPE"):
            await client.trade_ticks("KRW-NOPE")


@pytest.mark.parametrize("status", [429, 418, 503])
async def test_retries_transient_errors(server: ReplayServer, status: int) -> None:
    server.inject_rest_errors(2, status)
    async with _client(server) as client:
        trades = await client.trade_ticks("KRW-BTC", count=5)
        assert client.retries == 2
    assert len(trades) == 5


async def test_gives_up_with_one_clear_line(server: ReplayServer) -> None:
    server.inject_rest_errors(100, 429)
    async with _client(server, max_retries=1) as client:
        with pytest.raises(ServiceUnavailableError) as info:
            await client.trade_ticks("KRW-BTC")
    message = str(info.value)
    assert "429" in message and "2 attempts" in message and "\n" not in message


async def test_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with UpbitRestClient(f"http://127.0.0.1:{port}", max_retries=1, backoff_base=0.01) as c:
        with pytest.raises(ServiceUnavailableError, match="ConnectError"):
            await c.list_markets()


async def test_remaining_req_zero_waits_for_next_second() -> None:
    options = ReplayOptions(rate=100, rest_per_second=3, connect_per_second=None)
    async with ReplayServer(options) as srv, _client(srv) as client:
        started = time.monotonic()
        for _ in range(7):
            await client.trade_ticks("KRW-BTC", count=1)
        elapsed = time.monotonic() - started
        stats = srv.stats_snapshot()
    assert stats.get("rest_rate_limited", 0) == 0, stats  # never over the limit
    assert client.retries == 0
    assert elapsed >= 1.0  # 7 requests at 3/s need at least two second boundaries


async def test_shared_budget_429_is_retried_after_next_second() -> None:
    options = ReplayOptions(rate=100, rest_per_second=4, connect_per_second=None)
    async with ReplayServer(options) as srv:
        # Two clients from one address share the server's budget, but each only sees the
        # headers of its own answers: some requests meet a real 429 and must wait it out.
        async with _client(srv) as first, _client(srv) as second:

            async def burst(client: UpbitRestClient) -> None:
                for _ in range(6):
                    await client.trade_ticks("KRW-BTC", count=1)

            await asyncio.gather(burst(first), burst(second))
            assert first.retries + second.retries >= 1
        assert srv.stats_snapshot()["rest_rate_limited"] >= 1
