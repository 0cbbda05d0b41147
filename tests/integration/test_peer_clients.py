"""Code nobody here wrote, against `replay serve`: the twin's conformance suite.

cryptofeed's Upbit feed (in its own process, as users run it) and pyupbit's REST functions
and ``WebSocketManager`` talk to ``replay serve --synthetic --tls`` unmodified, except for
their endpoint addresses: cryptofeed's endpoint class attributes are set to the twin, and
pyupbit's ``requests`` / ``websockets`` module references are wrapped so that the
``api.upbit.com`` addresses written inside its functions point at the twin. Their logic is
untouched. Each test checks that the client got exactly what the twin made (ground truth
from ``/_replay/trades``): every trade, in order, nothing missing between the first and the
last one received, with the same price, volume and side.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

pyupbit = pytest.importorskip("pyupbit")
pytest.importorskip("cryptofeed")

pytestmark = pytest.mark.timeout(180)
MARKETS = ["KRW-BTC", "KRW-ETH"]
UPBIT_REST = "https://api.upbit.com"
UPBIT_WS = "wss://api.upbit.com/websocket/v1"

CRYPTOFEED_DRIVER = r"""
import json, sys
from cryptofeed import FeedHandler
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import L2_BOOK, TRADES
from cryptofeed.exchanges import Upbit

ws_url, rest_url = sys.argv[1], sys.argv[2]
# the only change: where the exchange is
Upbit.websocket_endpoints = [WebsocketEndpoint(ws_url)]
Upbit.rest_endpoints = [RestEndpoint(rest_url, routes=Routes("/v1/market/all"))]


async def trade(t, receipt):
    print(json.dumps({"kind": "trade", "symbol": t.symbol, "id": t.id, "price": str(t.price),
                      "amount": str(t.amount), "side": t.side}), flush=True)


async def book(b, receipt):
    bids, asks = b.book.bids.to_list(), b.book.asks.to_list()
    print(json.dumps({"kind": "book", "symbol": b.symbol, "bid": str(bids[0][0]),
                      "ask": str(asks[0][0]), "levels": len(bids)}), flush=True)


fh = FeedHandler(config={"log": {"disabled": True}, "uvloop": False})
fh.add_feed(Upbit(symbols=["BTC-KRW", "ETH-KRW"], channels=[TRADES, L2_BOOK],
                  callbacks={TRADES: trade, L2_BOOK: book}))
fh.run()
"""


@dataclass
class Twin:
    ws_url: str
    rest_url: str
    cert: Path

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.rest_url, verify=ssl.create_default_context(cafile=str(self.cert))
        )

    def truth(self, market: str) -> list[dict[str, Any]]:
        with self.http() as http:
            answer = http.get("/_replay/trades", params={"market": market}, timeout=60)
        answer.raise_for_status()
        rows: list[dict[str, Any]] = answer.json()
        return rows


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    tls_dir = tmp_path_factory.mktemp("tls")
    # market time two hours behind the wall clock: a clock jump for candle history stays in
    # the past of the `to=now` that pyupbit sends
    clock_start = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = (
        f"--synthetic --tls --port 0 --rate 200 --seed 12 --no-limits --clock-start {clock_start}"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "upbitpipe",
            "replay",
            "serve",
            *args.split(),
            "--tls-dir",
            str(tls_dir),
            "--markets",
            ",".join(MARKETS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    found: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(found) < 3:
        line = proc.stdout.readline()
        if not line:
            break
        for key, pattern in (
            ("ws", r"UPBITPIPE_UPBIT__WEBSOCKET_URL=(\S+)"),
            ("rest", r"UPBITPIPE_UPBIT__REST_URL=(\S+)"),
            ("cert", r"certificate: (\S+)"),
        ):
            if match := re.search(pattern, line):
                found[key] = match.group(1)
    if len(found) < 3:
        proc.kill()
        pytest.fail(f"replay serve --tls did not print its URLs and certificate: {found}")
    try:
        yield Twin(found["ws"], found["rest"], Path(found["cert"]))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _assert_contiguous(received: list[int], truth: list[dict[str, Any]], market: str) -> None:
    """The received ids are one unbroken run of the twin's trades, in the twin's order."""
    ids = [int(t["sequential_id"]) for t in truth]
    assert received, f"{market}: no trade received"
    assert received[0] in ids, f"{market}: trade {received[0]} was never made by the twin"
    start = ids.index(received[0])
    assert received == ids[start : start + len(received)], f"{market}: missing or extra trades"


def test_cryptofeed_upbit_feed_receives_what_the_twin_sent(twin: Twin) -> None:
    env = {**os.environ, "SSL_CERT_FILE": str(twin.cert), "REQUESTS_CA_BUNDLE": str(twin.cert)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRYPTOFEED_DRIVER, twin.ws_url, twin.rest_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    trades: dict[str, list[dict[str, str]]] = {"BTC-KRW": [], "ETH-KRW": []}
    books: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event["kind"] == "trade":
                trades[event["symbol"]].append(event)
            else:
                books.append(event)
            if min(len(v) for v in trades.values()) >= 40 and len(books) >= 10:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert min(len(v) for v in trades.values()) >= 40, f"cryptofeed got too little: {err[-2000:]}"
    for symbol, got in trades.items():
        market = "KRW-" + symbol.split("-")[0]
        truth = twin.truth(market)
        by_id = {str(t["sequential_id"]): t for t in truth}
        _assert_contiguous([int(t["id"]) for t in got], truth, market)
        for t in got:
            made = by_id[t["id"]]
            assert Decimal(t["price"]) == Decimal(str(made["trade_price"]))
            assert Decimal(t["amount"]) == Decimal(str(made["trade_volume"]))
            assert t["side"] == ("buy" if made["ask_bid"] == "BID" else "sell")
    assert {b["symbol"] for b in books} == {"BTC-KRW", "ETH-KRW"}
    for b in books:
        assert Decimal(b["bid"]) < Decimal(b["ask"])
        assert b["levels"] == 30


@pytest.fixture
def upbit_at_twin(twin: Twin, monkeypatch: pytest.MonkeyPatch) -> Twin:
    """pyupbit's own functions, with api.upbit.com pointed at the twin (addresses only)."""
    import requests
    import websockets

    def readdress(url: str) -> str:
        return url.replace(UPBIT_WS, twin.ws_url).replace(UPBIT_REST, twin.rest_url)

    def get(url: str, **kwargs: Any) -> Any:
        return requests.get(readdress(url), **kwargs)

    def connect(uri: str, **kwargs: Any) -> Any:
        return websockets.connect(readdress(uri), **kwargs)

    monkeypatch.setattr(
        pyupbit.request_api, "requests", types.SimpleNamespace(get=get, post=requests.post)
    )
    monkeypatch.setattr(
        pyupbit.websocket_api,
        "websockets",
        types.SimpleNamespace(connect=connect, ConnectionClosed=websockets.ConnectionClosed),
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(twin.cert))
    monkeypatch.setenv("SSL_CERT_FILE", str(twin.cert))
    return twin


def test_pyupbit_rest_functions(upbit_at_twin: Twin) -> None:
    twin = upbit_at_twin
    with twin.http() as http:  # ten minutes of history for the candles
        jumped = http.get("/_replay/advance", params={"minutes": 10, "trade_rate": 5, "force": 1})
        assert jumped.status_code == 200, jumped.text
    assert pyupbit.get_tickers(fiat="KRW") == MARKETS
    prices = pyupbit.get_current_price(MARKETS)
    assert set(prices) == set(MARKETS)  # both markets, from one comma-joined request
    for market, price in prices.items():
        assert price in {t["trade_price"] for t in twin.truth(market)}
    book = pyupbit.get_orderbook("KRW-BTC")
    assert book["market"] == "KRW-BTC" and len(book["orderbook_units"]) == 30
    assert book["orderbook_units"][0]["ask_price"] > book["orderbook_units"][0]["bid_price"]

    frame = pyupbit.get_ohlcv("KRW-BTC", interval="minute1", count=5)
    assert frame is not None and len(frame) == 5, "pyupbit.get_ohlcv returned nothing"
    truth = twin.truth("KRW-BTC")
    for kst_start, row in frame.iloc[:-1].iterrows():  # the newest minute may still be open
        kst = kst_start.to_pydatetime().replace(tzinfo=UTC)  # pyupbit indexes by naive KST
        start_ms = int((kst - timedelta(hours=9)).timestamp() * 1000)
        in_minute = [t for t in truth if start_ms <= t["trade_timestamp"] < start_ms + 60_000]
        assert in_minute, f"a candle at {kst_start} without trades"
        assert row["open"] == in_minute[0]["trade_price"]
        assert row["close"] == in_minute[-1]["trade_price"]
        assert row["high"] == max(t["trade_price"] for t in in_minute)
        assert row["volume"] == pytest.approx(sum(t["trade_volume"] for t in in_minute))
    days = pyupbit.get_ohlcv("KRW-BTC", interval="day", count=1)
    assert days is not None and len(days) == 1


def test_pyupbit_websocket_manager_receives_what_the_twin_sent(upbit_at_twin: Twin) -> None:
    manager = pyupbit.WebSocketManager("trade", ["KRW-BTC"])
    got: list[dict[str, Any]] = []
    try:
        while len(got) < 40:
            message = manager.get()
            assert message != "ConnectionClosedError", "the twin closed pyupbit's socket"
            got.append(message)
    finally:
        manager.terminate()
        manager.join(10)
    assert {m["type"] for m in got} == {"trade"}
    assert {m["stream_type"] for m in got} == {"REALTIME"}  # isOnlyRealtime: no snapshot
    truth = upbit_at_twin.truth("KRW-BTC")
    _assert_contiguous([int(m["sequential_id"]) for m in got], truth, "KRW-BTC")
    by_id = {int(t["sequential_id"]): t for t in truth}
    for m in got:
        made = by_id[int(m["sequential_id"])]
        assert (m["trade_price"], m["trade_volume"]) == (made["trade_price"], made["trade_volume"])
