"""The picows session: a full buffer pauses reading and nothing is lost; fragmented messages
are assembled; the server's CLOSE is answered and named."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import picows
import pytest

from upbitpipe.collector import transport_picows
from upbitpipe.collector.transport import Frame, WireClosed
from upbitpipe.collector.transport_picows import PicowsSession, open_picows
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MarketEvent, parse_frame, subscribe_request

pytestmark = pytest.mark.timeout(60)

MARKETS = ["KRW-BTC", "KRW-ETH"]
NO_LIMITS: dict[str, Any] = {
    "connect_per_second": None,
    "subscribe_per_second": None,
    "rest_per_second": None,
}


async def _wait_for(condition: object, what: str, seconds: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            pytest.fail(f"gave up after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("tls", "batch_cap"), [(False, 10_000), (True, 10_000), (False, 5)], ids=["ws", "wss", "capped"]
)
async def test_a_full_buffer_pauses_reading_until_taken_and_no_trade_is_lost(
    tls: bool, batch_cap: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_picows, "MAX_BUFFERED_FRAMES", 16)
    monkeypatch.setattr(transport_picows, "MAX_BATCH_FRAMES", batch_cap)
    options = ReplayOptions(
        markets=MARKETS, rate=2000.0, seed=5, tls=tls, tls_dir=tmp_path, **NO_LIMITS
    )
    received: list[Frame] = []
    async with ReplayServer(options) as server:
        if server.cert_path is not None:
            monkeypatch.setenv("SSL_CERT_FILE", str(server.cert_path))
        async with open_picows(server.ws_url, open_timeout=5) as session:
            assert isinstance(session, PicowsSession)
            await session.send_text(subscribe_request(uuid.uuid4().hex, ["trade"], MARKETS))
            for cycle in range(4):  # a reader slower than the exchange
                await _wait_for(lambda: session.reading_paused, f"a pause (cycle {cycle})")
                held = session.buffered
                assert held >= 16
                await asyncio.sleep(0.3)  # the server keeps producing meanwhile
                assert session.reading_paused and session.buffered == held, (
                    "frames were read while paused"
                )
                while True:  # batches of at most batch_cap; resumed once under the bound
                    before = session.buffered
                    batch = await session.receive()
                    assert len(batch) == min(before, batch_cap)
                    received += batch
                    assert session.reading_paused == (session.buffered >= 16), session.buffered
                    if not session.reading_paused:
                        break
            assert session.pauses >= 4
            loop = asyncio.get_running_loop()
            until = loop.time() + 1.0
            while loop.time() < until:  # then a fast reader: whatever piled up upstream
                received += await session.receive()
        trades: dict[str, list[int]] = {m: [] for m in MARKETS}
        for raw, _ in received:
            event = parse_frame(raw)
            assert isinstance(event, MarketEvent)
            trades[event.market].append(int(event.data["sequential_id"]))
        for market, got in trades.items():
            assert len(got) > 5, f"too few {market} trades to judge: {got}"
            made = server.trade_ids(market)
            first, last = made.index(got[0]), made.index(got[-1])
            # in the order the exchange made them (sequential_id is not monotonic within a ms)
            assert got == made[first : last + 1], f"{market}: trades lost, repeated or reordered"


class _FragmentingServer(picows.WSListener):
    """Sends one message in three fragments, one whole message, then CLOSE (1001)."""

    closes_received: list[int]

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        transport.send(picows.WSMsgType.TEXT, b'{"a":', fin=False)
        transport.send(picows.WSMsgType.CONTINUATION, b"1", fin=False)
        transport.send(picows.WSMsgType.CONTINUATION, b"}", fin=True)
        transport.send(picows.WSMsgType.BINARY, b"whole")
        transport.send_close(picows.WSCloseCode.GOING_AWAY, b"bye")

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type is picows.WSMsgType.CLOSE:
            self.closes_received.append(frame.get_close_code().value)
            transport.disconnect()


async def test_fragments_are_assembled_and_the_servers_close_is_answered() -> None:
    closes: list[int] = []

    def factory(_request: picows.WSUpgradeRequest) -> picows.WSListener:
        listener = _FragmentingServer()
        listener.closes_received = closes
        return listener

    server = await picows.ws_create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with open_picows(f"ws://127.0.0.1:{port}/", open_timeout=5) as session:
            payloads: list[bytes] = []
            with pytest.raises(WireClosed) as closed:
                while True:
                    payloads += [raw for raw, _ in await session.receive()]
        assert payloads == [b'{"a":1}', b"whole"]
        assert "1001" in str(closed.value) and "bye" in str(closed.value)
        await _wait_for(lambda: closes, "the client's CLOSE answer", 5)
        assert closes == [1000]
    finally:
        server.close()
        await server.wait_closed()
