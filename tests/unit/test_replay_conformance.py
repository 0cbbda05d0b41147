"""A plain `websockets` client against the replay server: does it speak Upbit?"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import ErrorFrame, MarketEvent, StatusFrame, parse_frame


def connect(url: str, **kwargs: Any) -> ws_connect:
    """A client that does not wait 10 s to close when the test stopped reading."""
    return ws_connect(url, close_timeout=0.5, **kwargs)


pytestmark = pytest.mark.timeout(30)


def _options(**overrides: Any) -> ReplayOptions:
    base: dict[str, Any] = {"rate": 400.0, "connect_per_second": None}
    base.update(overrides)
    return ReplayOptions(**base)


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    async with ReplayServer(_options()) as srv:
        yield srv


async def _recv(ws: ClientConnection) -> bytes:
    message = await asyncio.wait_for(ws.recv(), 3.0)
    assert isinstance(message, bytes), "Upbit sends binary frames"
    return message


async def _events(ws: ClientConnection, n: int) -> list[tuple[bytes, MarketEvent]]:
    out = []
    while len(out) < n:
        raw = await _recv(ws)
        event = parse_frame(raw)
        assert isinstance(event, MarketEvent), raw
        out.append((raw, event))
    return out


@pytest.mark.parametrize("compression", ["deflate", None])  # None: the pre-framed fast path
async def test_default_format_gets_exactly_what_was_asked(
    server: ReplayServer, compression: str | None
) -> None:
    request = [
        {"ticket": "conf-1"},
        {"type": "trade", "codes": ["KRW-BTC"]},
        {"type": "ticker", "codes": ["KRW-BTC"]},
        {"format": "DEFAULT"},
    ]
    async with connect(server.ws_url, compression=compression) as ws:
        await ws.send(orjson.dumps(request).decode())
        got = await _events(ws, 40)
    assert {e.type for _, e in got} == {"trade", "ticker"}
    assert {e.market for _, e in got} == {"KRW-BTC"}
    assert all(b'"type":' in raw and b'"code":"KRW-BTC"' in raw for raw, _ in got)
    streams = [e.stream_type for _, e in got]
    assert streams[:2] == ["SNAPSHOT", "SNAPSHOT"]
    assert set(streams[2:]) == {"REALTIME"}


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_simple_format_orderbook_depth_suffix(
    server: ReplayServer, compression: str | None
) -> None:
    request = '[{"ticket":"c2"},{"format":"SIMPLE"},{"type":"orderbook","codes":["KRW-ETH.5"]}]'
    async with connect(server.ws_url, compression=compression) as ws:
        await ws.send(request)
        got = await _events(ws, 10)
    for raw, event in got:
        assert raw.startswith(b'{"ty":"orderbook","cd":"KRW-ETH"'), raw[:40]
        assert event.type == "orderbook" and event.market == "KRW-ETH"
        units = event.data["orderbook_units"]
        assert len(units) == 5
        assert event.data["best_ask_price"] > event.data["best_bid_price"]
        assert event.data["total_ask_size"] == pytest.approx(sum(u["ask_size"] for u in units))


@pytest.mark.parametrize("spelling", ["isOnlySnapshot", "is_only_snapshot"])
async def test_only_snapshot_sends_one_frame_per_code(server: ReplayServer, spelling: str) -> None:
    request = [
        {"ticket": "c3"},
        {"type": "ticker", "codes": ["KRW-BTC", "KRW-ETH"], spelling: True},
    ]
    async with connect(server.ws_url) as ws:
        await ws.send(orjson.dumps(request))
        got = await _events(ws, 2)
        assert {e.market for _, e in got} == {"KRW-BTC", "KRW-ETH"}
        assert {e.stream_type for _, e in got} == {"SNAPSHOT"}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.4)


@pytest.mark.parametrize("spelling", ["isOnlyRealtime", "is_only_realtime"])
async def test_only_realtime_skips_snapshots(server: ReplayServer, spelling: str) -> None:
    request = [{"ticket": "c4"}, {"type": "trade", "codes": ["KRW-BTC"], spelling: True}]
    async with connect(server.ws_url) as ws:
        await ws.send(orjson.dumps(request))
        got = await _events(ws, 10)
    assert {e.stream_type for _, e in got} == {"REALTIME"}


async def test_new_request_replaces_subscription(server: ReplayServer) -> None:
    async with connect(server.ws_url) as ws:
        await ws.send('[{"ticket":"a"},{"type":"trade","codes":["KRW-BTC"],"isOnlyRealtime":true}]')
        await _events(ws, 3)
        await ws.send(
            '[{"ticket":"a"},{"type":"ticker","codes":["KRW-ETH"],"isOnlyRealtime":true}]'
        )
        await asyncio.sleep(0.1)
        while True:  # drain what was in flight before the switch
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.01)
            except TimeoutError:
                break
            assert isinstance(raw, bytes)
        got = await _events(ws, 10)
    assert {(e.type, e.market) for _, e in got} == {("ticker", "KRW-ETH")}


async def test_ping_text_and_protocol(server: ReplayServer) -> None:
    async with connect(server.ws_url) as ws:
        await ws.send("PING")
        assert parse_frame(await _recv(ws)) == StatusFrame("UP")
        pong = await ws.ping()
        await asyncio.wait_for(pong, 2)


@pytest.mark.parametrize(
    ("request_text", "name"),
    [
        ("not json", "WRONG_FORMAT"),
        ("[]", "WRONG_FORMAT"),
        ('[{"type":"trade","codes":["KRW-BTC"]}]', "NO_TICKET"),
        ('[{"ticket":"x"},{"format":"SIMPLE"}]', "NO_TYPE"),
        ('[{"ticket":"x"},{"type":"trade"}]', "NO_CODES"),
        ('[{"ticket":"x"},{"type":"trade","codes":[]}]', "INVALID_PARAM"),
        ('{"ticket":"x","type":"trade","codes":["KRW-BTC"]}', "WRONG_FORMAT"),
        ("hello", "WRONG_FORMAT"),
        ('[{"ticket":"x"},{"type":"candle.1s","codes":["KRW-BTC"]}]', "INVALID_PARAM"),
        ('[{"ticket":"x"},{"type":"trade","codes":"KRW-BTC"}]', "INVALID_PARAM"),
        ('[{"ticket":"x"},{"type":"trade","codes":["KRW-BTC"]},{"format":"XML"}]', "INVALID_PARAM"),
    ],
)
async def test_bad_requests_get_error_frames(
    server: ReplayServer, request_text: str, name: str
) -> None:
    async with connect(server.ws_url) as ws:
        await ws.send(request_text)
        frame = parse_frame(await _recv(ws))
        assert isinstance(frame, ErrorFrame)
        assert frame.name == name
        # as on Upbit, the server then closes the connection (1000) itself
        with pytest.raises(ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1000


async def test_unknown_and_lower_case_codes_are_accepted_and_never_sent(
    server: ReplayServer,
) -> None:
    async with connect(server.ws_url) as ws:
        await ws.send('[{"ticket":"u"},{"type":"trade","codes":["krw-btc","KRW-NOPE","KRW-BTC"]}]')
        markets = {event.market for _, event in await _events(ws, 10)}
        assert markets == {"KRW-BTC"}


async def test_idle_connection_is_closed() -> None:
    async with ReplayServer(_options(idle_timeout_seconds=0.3)) as srv:
        async with connect(srv.ws_url) as ws:
            started = time.monotonic()
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 3)
            assert 0.25 <= time.monotonic() - started < 2.0
            assert ws.close_code == 1006  # cut without a close frame, as Upbit does


async def test_pinging_client_stays_connected() -> None:
    async with ReplayServer(_options(idle_timeout_seconds=0.4)) as srv:
        async with connect(srv.ws_url, ping_interval=None) as ws:
            for _ in range(8):
                await ws.send("PING")
                await _recv(ws)
                await asyncio.sleep(0.1)


async def test_connect_rate_limit_answers_429() -> None:
    async with ReplayServer(_options(connect_per_second=2)) as srv:
        statuses = []
        for _ in range(6):  # quick connects span at most one second boundary: one side gets 3+
            try:
                async with connect(srv.ws_url):
                    statuses.append(101)
            except InvalidStatus as exc:
                statuses.append(exc.response.status_code)
    assert 429 in statuses and statuses[0] == 101


async def test_subscribe_rate_limit_sends_error() -> None:
    async with ReplayServer(_options(subscribe_per_second=2, rate=1)) as srv:
        async with connect(srv.ws_url) as ws:
            for _ in range(3):
                await ws.send('[{"ticket":"r"},{"type":"trade","codes":["KRW-BTC"]}]')
            names = []
            for _ in range(3):
                frame = parse_frame(await _recv(ws))
                names.append(frame.name if isinstance(frame, ErrorFrame) else "data")
    assert "TOO_MANY_REQUEST" in names


async def test_rest_and_websocket_share_the_port(server: ReplayServer) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=server.rest_url) as client:
        response = await client.get("/v1/market/all")
        assert response.status_code == 200
        assert [row["market"] for row in response.json()] == ["KRW-BTC", "KRW-ETH"]
        assert "sec=" in response.headers["Remaining-Req"]
        assert (await client.get("/v1/nothing")).status_code == 404
        stats = (await client.get("/_replay/stats")).json()
        assert stats["messages_generated"] > 0


async def test_upgrade_answer_carries_the_connect_budget(server: ReplayServer) -> None:
    async with connect(server.ws_url) as ws:
        assert ws.response is not None
        headers = ws.response.headers
        assert headers["Remaining-Req"].startswith("group=websocket; min=300; sec=")
        assert headers["limit-by-ip"] == "Yes"
