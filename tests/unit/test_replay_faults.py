"""Fault injection and capture playback of the replay server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from upbitpipe.archive.capture import CaptureWriter
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MalformedFrameError, MarketEvent, parse_frame, subscribe_request


def connect(url: str, **kwargs: Any) -> ws_connect:
    """A client that does not wait 10 s to close when the test stopped reading."""
    return ws_connect(url, close_timeout=0.5, **kwargs)


pytestmark = pytest.mark.timeout(30)
DATA = Path(__file__).parent.parent / "data"
ALL = ["ticker", "trade", "orderbook"]


def _options(**overrides: Any) -> ReplayOptions:
    base: dict[str, Any] = {"rate": 1000.0, "connect_per_second": None}
    base.update(overrides)
    return ReplayOptions(**base)


async def _frames(ws: ClientConnection, n: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < n:
        message = await asyncio.wait_for(ws.recv(), 3)
        assert isinstance(message, bytes)
        out.append(message)
    return out


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_drop_after_messages_cuts_without_close_frame(compression: str | None) -> None:
    async with ReplayServer(_options(drop_after_messages=25)) as srv:
        async with connect(srv.ws_url, compression=compression) as ws:
            await ws.send(subscribe_request("d", ALL, ["KRW-BTC"]))
            received = 0
            with pytest.raises(ConnectionClosedError):
                while True:
                    await asyncio.wait_for(ws.recv(), 3)
                    received += 1
            assert received == 25
            assert ws.close_code == 1006  # abnormal: no close frame, like a network drop
        assert srv.stats_snapshot()["connections_dropped"] == 1


async def test_drop_after_seconds() -> None:
    async with ReplayServer(_options(drop_after_seconds=0.3)) as srv:
        started = time.monotonic()  # the server's timer starts at the handshake, after this
        async with connect(srv.ws_url) as ws:
            await ws.send(subscribe_request("d", ["trade"], ["KRW-BTC"]))
            with pytest.raises(ConnectionClosedError):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            # never before the timer; the upper bound only tells a timed drop from a hang
            # (a loaded machine can delay the timer by seconds)
            assert 0.3 <= time.monotonic() - started < 30


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_malformed_every_n(compression: str | None) -> None:
    server = ReplayServer(_options(malformed_every=5))
    async with server as srv, connect(srv.ws_url, compression=compression) as ws:
        await ws.send(subscribe_request("m", ALL, ["KRW-BTC", "KRW-ETH"]))
        frames = await _frames(ws, 60)
    bad = 0
    for raw in frames:
        try:
            parse_frame(raw)
        except MalformedFrameError:
            bad += 1
    assert bad == 10  # one garbage frame before every 5th data frame: 50 data + 10


async def _trade_ids(ws: ClientConnection, n: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < n:
        event = parse_frame((await _frames(ws, 1))[0])
        assert isinstance(event, MarketEvent)
        if event.sequential_id is not None:
            ids.append(event.sequential_id)
    return ids


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_duplicates_are_resent_trades(compression: str | None) -> None:
    server = ReplayServer(_options(duplicate_rate=1.0))
    async with server as srv, connect(srv.ws_url, compression=compression) as ws:
        await ws.send(subscribe_request("x", ["trade"], ["KRW-BTC"], only_realtime=True))
        ids = await _trade_ids(ws, 40)
    assert ids[0::2] == ids[1::2]
    assert len(set(ids)) == 20


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_reorder_swaps_adjacent_trades(compression: str | None) -> None:
    server = ReplayServer(_options(reorder_rate=1.0))
    async with server as srv, connect(srv.ws_url, compression=compression) as ws:
        await ws.send(subscribe_request("x", ["trade"], ["KRW-BTC"], only_realtime=True))
        ids = await _trade_ids(ws, 40)
    truth = [t["sequential_id"] for t in srv.generated_trades("KRW-BTC")]
    first = truth.index(min(ids, key=truth.index))
    in_order = truth[first : first + 40]
    assert sorted(ids) == sorted(in_order)
    assert ids != in_order  # same trades, different order
    assert ids[:2] == [in_order[1], in_order[0]]


async def test_stall_holds_frames_then_delivers() -> None:
    options = _options(stall_every_seconds=0.2, stall_seconds=0.5, rate=500)
    async with ReplayServer(options) as srv, connect(srv.ws_url) as ws:
        await ws.send(subscribe_request("s", ALL, ["KRW-BTC"]))
        gaps = []
        last = time.monotonic()
        deadline = last + 1.5
        while time.monotonic() < deadline:
            await asyncio.wait_for(ws.recv(), 3)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
    assert max(gaps) >= 0.4
    assert srv.stats_snapshot()["stalls"] >= 1


async def test_fault_endpoint_drops_all_connections_and_injects_errors() -> None:
    async with ReplayServer(_options()) as srv, connect(srv.ws_url) as ws:
        await ws.send(subscribe_request("f", ["trade"], ["KRW-BTC"]))
        await _frames(ws, 2)
        async with httpx.AsyncClient(base_url=srv.rest_url) as client:
            answer = await client.get("/_replay/fault", params={"drop": "1", "rest_errors": "1"})
            answered = answer.json()
            assert (answered["rest_errors"], answered["dropped"]) == (1, 1)
            with pytest.raises(ConnectionClosed):
                await _frames(ws, 10_000)
            failed = await client.get("/v1/trades/ticks", params={"market": "KRW-BTC"})
            assert failed.status_code == 429
            ok = await client.get("/v1/trades/ticks", params={"market": "KRW-BTC"})
            assert ok.status_code == 200


def _write_capture(root: Path) -> list[bytes]:
    """The sample frames of both formats, 50 ms apart, plus a status frame and garbage."""
    frames = [
        *(DATA / "upbit_simple_frames.jsonl").read_bytes().splitlines(),
        *(DATA / "upbit_default_frames.jsonl").read_bytes().splitlines(),
    ]
    frames.insert(2, b'{"status":"UP"}')
    frames.insert(4, b"\xffgarbage")
    with CaptureWriter(root) as writer:
        for i, frame in enumerate(frames):
            writer.write(1_676_965_262_000 + 50 * i, frame)
    return frames


async def test_capture_frames_in_their_own_format_are_sent_verbatim(tmp_path: Path) -> None:
    recorded = _write_capture(tmp_path)
    options = _options(capture=tmp_path, speed=10.0, markets=[])
    async with ReplayServer(options) as srv, connect(srv.ws_url) as ws:
        await ws.send(subscribe_request("v", ALL, ["KRW-BTC"], fmt="SIMPLE"))
        frames = await _frames(ws, 6)
    assert frames[:2] == recorded[:2]  # SIMPLE ticker and trade, byte for byte
    assert frames[2] == recorded[3]  # the orderbook recorded as SNAPSHOT stays one
    assert b'"st":"SNAPSHOT"' in frames[2]
    assert b'"st":"SNAPSHOT"' in frames[5]  # re-encoded from DEFAULT, still a SNAPSHOT


async def test_capture_playback_in_any_format(tmp_path: Path) -> None:
    _write_capture(tmp_path)
    options = _options(capture=tmp_path, speed=1.0, markets=[])
    async with ReplayServer(options) as srv:
        async with connect(srv.ws_url) as ws:
            await ws.send(subscribe_request("c", ALL, ["KRW-BTC"], fmt="DEFAULT"))
            started = time.monotonic()
            frames = await _frames(ws, 6)
            elapsed = time.monotonic() - started
        stats = srv.stats_snapshot()
    events = [parse_frame(raw) for raw in frames]
    assert all(isinstance(e, MarketEvent) for e in events)
    assert [e.type for e in events if isinstance(e, MarketEvent)] == [
        "ticker",
        "trade",
        "orderbook",
    ] * 2
    assert all(raw.startswith(b'{"type":') for raw in frames)  # SIMPLE capture served as DEFAULT
    assert elapsed >= 0.25  # recorded spacing (7 gaps of 50 ms) honoured
    assert stats["capture_frames_skipped"] == 2
    assert stats["trades_kept"] == {"KRW-BTC": 2}
    first_book = events[2]
    assert isinstance(first_book, MarketEvent)
    assert first_book.data["best_ask_price"] == 32288000.0


async def test_capture_at_fixed_rate_and_rest(tmp_path: Path) -> None:
    _write_capture(tmp_path)
    options = _options(capture=tmp_path, speed=None, rate=0, markets=[], wait_for_subscriber=False)
    async with ReplayServer(options) as srv:
        for _ in range(100):
            if srv.stats_snapshot().get("trades_generated", 0) == 2:
                break
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=srv.rest_url) as client:
            rows = (
                await client.get("/v1/trades/ticks", params={"market": "KRW-BTC", "count": 5})
            ).json()
            markets = (await client.get("/v1/market/all")).json()
    assert [row["sequential_id"] for row in rows] == [1676965262139000, 1676965262139000]
    assert [m["market"] for m in markets] == ["KRW-BTC"]


async def test_slow_consumer_is_closed() -> None:
    options = _options(rate=5000, max_pending_frames=300, write_buffer_bytes=16_384)
    async with ReplayServer(options) as srv:
        async with connect(srv.ws_url, max_queue=1, compression=None) as ws:
            await ws.send(subscribe_request("slow", ALL, ["KRW-BTC", "KRW-ETH"]))
            for _ in range(100):  # never read: the server must give up on us
                if srv.stats_snapshot().get("slow_consumer_closes"):
                    break
                await asyncio.sleep(0.05)
        assert srv.stats_snapshot()["slow_consumer_closes"] == 1
