"""UpbitConnection over each transport, against the real replay server: reconnects after
dropped sockets (``on_reconnect`` once per session, after its first frame), the silence
watchdog recycles a socket that answers PING but sends no data, refused or silent handshakes
back off, wss:// trusts what SSL_CERT_FILE names, and a stop closes the socket."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from upbitpipe.backoff import Backoff
from upbitpipe.collector.connection import ConnectionState, UpbitConnection
from upbitpipe.collector.eventloop import run_on_loop
from upbitpipe.collector.ratelimit import RateLimiter
from upbitpipe.collector.transport import Frame
from upbitpipe.config import UpbitSettings
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MalformedFrameError, MarketEvent, StatusFrame, parse_frame

pytestmark = pytest.mark.timeout(90)

TRANSPORTS = ["picows", "websockets"]
MARKETS = ["KRW-BTC", "KRW-ETH"]
NO_LIMITS: dict[str, Any] = {
    "connect_per_second": None,
    "subscribe_per_second": None,
    "rest_per_second": None,
}


class Recorder:
    """What the connection handed over, per session (``state.connects`` at the time)."""

    def __init__(self) -> None:
        self.conn: UpbitConnection | None = None
        self.frames = 0
        self.events = 0
        self.status = 0
        self.by_session: Counter[int] = Counter()
        self.reconnects: list[tuple[int, int]] = []  # (session, its frames when called)

    async def on_frames(self, frames: list[Frame] | Any) -> bool:
        assert self.conn is not None
        self.frames += len(frames)
        self.by_session[self.conn.state.connects] += len(frames)
        market_data = False
        for raw, _ in frames:
            try:
                parsed = parse_frame(raw)
            except MalformedFrameError:
                continue
            if isinstance(parsed, MarketEvent):
                self.events += 1
                market_data = True
            elif isinstance(parsed, StatusFrame):
                self.status += 1
        return market_data

    async def on_reconnect(self, state: ConnectionState, outage: float) -> None:
        assert outage >= 0
        self.reconnects.append((state.connects, self.by_session[state.connects]))


def _connection(url: str, transport: str, **settings: Any) -> tuple[UpbitConnection, Recorder]:
    upbit = UpbitSettings.model_validate(
        {"websocket_url": url, "transport": transport, "request_timeout_seconds": 5, **settings}
    )
    recorder = Recorder()
    conn = UpbitConnection(
        0,
        MARKETS,
        ["trade", "ticker", "orderbook"],
        upbit,
        RateLimiter(100),
        recorder.on_frames,
        recorder.on_reconnect,
        backoff=Backoff(0.05, 0.2, rng=random.Random(1)),
    )
    recorder.conn = conn
    return conn, recorder


async def _run_until(conn: UpbitConnection, done: Callable[[], bool], what: str) -> None:
    """Run the connection until ``done()``, then stop it as the service does."""
    stop = asyncio.Event()
    task = asyncio.create_task(conn.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 45
    try:
        while not done():
            if task.done():
                task.result()
                pytest.fail(f"the connection stopped before {what}")
            if loop.time() > deadline:
                pytest.fail(f"gave up after 45s waiting for {what}: {conn.state}")
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await conn.close()
        await asyncio.wait_for(task, 10)


async def _sessions_closed(server: ReplayServer) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while server.sessions:
        assert loop.time() < deadline, "the server still holds the socket after stop"
        await asyncio.sleep(0.02)


def _on(loop_kind: str, coro: Coroutine[Any, Any, None]) -> None:
    run_on_loop(coro, "uvloop" if loop_kind == "uvloop" else "asyncio")


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dropped_sockets_reconnect_and_each_new_session_is_announced_after_its_first_frame(
    transport: str, loop_kind: str
) -> None:
    async def scenario() -> None:
        options = ReplayOptions(markets=MARKETS, rate=500.0, drop_after_messages=40, **NO_LIMITS)
        async with ReplayServer(options) as server:
            conn, rec = _connection(server.ws_url, transport)
            await _run_until(conn, lambda: len(rec.reconnects) >= 3, "three reconnects")
            await _sessions_closed(server)
        state = conn.state
        assert not state.connected and state.disconnects == state.connects >= 4
        assert state.frames == rec.frames > 0
        assert "no close frame" in state.last_error, state
        sessions = [session for session, _ in rec.reconnects]
        # the first session is no reconnect; every later one that got data is announced once
        assert sessions == list(range(2, 2 + len(sessions))), rec.reconnects
        assert all(frames >= 1 for _, frames in rec.reconnects), rec.reconnects
        assert all(rec.by_session[s] >= 1 for s in range(1, state.connects)), rec.by_session

    _on(loop_kind, scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_watchdog_recycles_a_socket_that_answers_ping_but_sends_no_data(
    transport: str,
) -> None:
    options = ReplayOptions(
        markets=MARKETS, rate=200.0, stall_every_seconds=1.0, stall_seconds=30.0, **NO_LIMITS
    )
    async with ReplayServer(options) as server:
        conn, rec = _connection(
            server.ws_url, transport, silence_timeout_seconds=1.0, ping_interval_seconds=0.2
        )
        await _run_until(
            conn, lambda: conn.state.connects >= 2 and rec.events > 0, "a watchdog reconnect"
        )
        assert server.stats["pings"] >= 3, server.stats
    assert "watchdog" in conn.state.last_error, conn.state
    assert rec.status >= 3, "the answers to our PINGs were not handed over"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refused_and_silent_handshakes_back_off_and_retry(transport: str) -> None:
    async with ReplayServer(ReplayOptions(markets=MARKETS, **NO_LIMITS)) as server:
        conn, _ = _connection(server.ws_url.replace("/websocket/v1", "/nope"), transport)
        await _run_until(conn, lambda: conn.backoff.attempt >= 3, "three refused handshakes")
    assert conn.state.connects == 0 and "404" in conn.state.last_error, conn.state

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts TCP, never answers the upgrade
        writer.close()

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        conn, _ = _connection(
            f"ws://127.0.0.1:{port}/websocket/v1", transport, request_timeout_seconds=0.3
        )
        await _run_until(conn, lambda: conn.backoff.attempt >= 2, "two handshake timeouts")
    finally:
        tcp.close()
    assert conn.state.connects == 0 and "TimeoutError" in conn.state.last_error, conn.state


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_wss_trusts_the_certificate_named_by_ssl_cert_file(
    transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = ReplayOptions(markets=MARKETS, rate=200.0, tls=True, tls_dir=tmp_path, **NO_LIMITS)
    async with ReplayServer(options) as server:
        assert server.ws_url.startswith("wss://") and server.cert_path is not None
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        conn, _ = _connection(server.ws_url, transport)
        await _run_until(conn, lambda: conn.backoff.attempt >= 1, "a refused certificate")
        assert conn.state.connects == 0
        refusal = conn.state.last_error.lower().replace(" ", "_")
        assert "certificate_verify_failed" in refusal, conn.state

        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert_path))
        conn, rec = _connection(server.ws_url, transport)
        await _run_until(conn, lambda: rec.events >= 20, "20 events over wss://")
        await _sessions_closed(server)
    assert conn.state.connects == 1 and conn.state.last_error == "", conn.state
