"""`replay serve --tls`: wss:// and https:// with a self-signed certificate made at start."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MarketEvent, parse_frame, subscribe_request

pytestmark = pytest.mark.timeout(30)


async def test_tls_serves_both_protocols_to_clients_that_trust_the_certificate(
    tmp_path: Path,
) -> None:
    options = ReplayOptions(markets=["KRW-BTC"], rate=200.0, tls=True, tls_dir=tmp_path)
    async with ReplayServer(options) as srv:
        assert srv.ws_url.startswith("wss://") and srv.rest_url.startswith("https://")
        assert srv.cert_path is not None and srv.cert_path.parent == tmp_path
        trusting = ssl.create_default_context(cafile=str(srv.cert_path))
        async with httpx.AsyncClient(base_url=srv.rest_url, verify=trusting) as http:
            listed = (await http.get("/v1/market/all")).json()
        assert [row["market"] for row in listed] == ["KRW-BTC"]
        async with connect(srv.ws_url, ssl=trusting) as ws:
            await ws.send(subscribe_request("t", ["trade"], ["KRW-BTC"]))
            event = parse_frame(await ws.recv())
            assert isinstance(event, MarketEvent) and event.market == "KRW-BTC"
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connect(srv.ws_url, ssl=ssl.create_default_context()):
                pass
