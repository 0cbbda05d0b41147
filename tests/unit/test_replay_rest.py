"""The twin's REST API against what Upbit documents and what probes of the live service saw."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from upbitpipe.archive.capture import CaptureWriter
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer

pytestmark = pytest.mark.timeout(60)
MARKETS = ["KRW-BTC", "KRW-ETH", "BTC-XRP"]
DATA = Path(__file__).parent.parent / "data"


@pytest.fixture
async def client() -> AsyncIterator[tuple[ReplayServer, httpx.AsyncClient]]:
    options = ReplayOptions(
        markets=MARKETS, rate=600.0, rest_per_second=None, connect_per_second=None, seed=3
    )
    async with ReplayServer(options) as srv:
        srv.advance_clock(10 * 60_000, trade_rate=5.0)  # ten minutes of trades for candles
        async with httpx.AsyncClient(base_url=srv.rest_url, timeout=30) as http:
            yield srv, http


async def _json(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    answer = await http.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_ticker_takes_comma_and_repeated_markets_in_any_case(
    client: tuple[ReplayServer, httpx.AsyncClient],
) -> None:
    _, http = client
    comma = await _json(http, "/v1/ticker", markets="KRW-BTC,krw-eth")
    repeated = (await http.get("/v1/ticker?markets=KRW-BTC&markets=KRW-ETH")).json()
    assert [r["market"] for r in comma] == [r["market"] for r in repeated] == MARKETS[:2]
    row = comma[0]
    assert isinstance(row["trade_price"], float)
    assert {"trade_date_kst", "trade_time_kst", "acc_trade_price_24h"} <= set(row)
    assert "stream_type" not in row and "ask_bid" not in row  # WebSocket-only fields
    every = await _json(http, "/v1/ticker/all", quote_currencies="KRW")
    assert [r["market"] for r in every] == MARKETS[:2]


async def test_errors_have_upbits_shape(client: tuple[ReplayServer, httpx.AsyncClient]) -> None:
    _, http = client
    unknown = await http.get("/v1/ticker", params={"markets": "KRW-BTC,KRW-NOPE"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": {"name": 404, "message": "Code not found"}}
    missing = await http.get("/v1/orderbook")
    assert missing.json() == {
        "error": {
            "name": 400,
            "message": "Missing request parameter error. Check the required parameters!",
        }
    }
    mismatch = await http.get("/v1/orderbook", params={"markets": "KRW-BTC", "count": "abc"})
    assert mismatch.json()["error"] == {
        "name": 400,
        "message": "Type mismatch error. Check the parameters type!",
    }
    bad_unit = await http.get("/v1/candles/minutes/7", params={"market": "KRW-BTC"})
    assert bad_unit.json() == {"error": {"name": 400, "message": "specified unit is not valid."}}
    nowhere = await http.get("/v1/nope")
    assert nowhere.json()["error"]["name"] == "not_found"
    assert "Remaining-Req" not in nowhere.headers


async def test_orderbook_rows(client: tuple[ReplayServer, httpx.AsyncClient]) -> None:
    srv, http = client
    rows = await _json(http, "/v1/orderbook", markets="KRW-BTC,KRW-ETH", count=5)
    assert [r["market"] for r in rows] == ["KRW-BTC", "KRW-ETH"]
    units = rows[0]["orderbook_units"]
    assert len(units) == 5
    assert units[0]["ask_price"] > units[0]["bid_price"]
    latest = srv.latest("orderbook", "KRW-BTC")
    assert latest is not None
    assert rows[0]["timestamp"] <= latest.wire["timestamp"]


async def test_minute_and_day_candles_match_the_trades(
    client: tuple[ReplayServer, httpx.AsyncClient],
) -> None:
    srv, http = client
    span = srv.clock.skipped[0]
    to_ms = span.to_ms - span.to_ms % 60_000  # the last whole minute of the jump
    to_iso = datetime.fromtimestamp(to_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = await _json(http, "/v1/candles/minutes/1", market="KRW-BTC", count=3, to=to_iso)
    assert len(rows) == 3
    trades = srv.generated_trades("KRW-BTC", to_ms - 60_000, to_ms)
    newest = rows[0]
    assert newest["candle_date_time_utc"] == datetime.fromtimestamp(
        (to_ms - 60_000) / 1000, tz=UTC
    ).strftime("%Y-%m-%dT%H:%M:%S")
    assert newest["opening_price"] == trades[0]["trade_price"]
    assert newest["trade_price"] == trades[-1]["trade_price"]
    assert newest["high_price"] == max(t["trade_price"] for t in trades)
    assert newest["candle_acc_trade_volume"] == pytest.approx(
        sum(t["trade_volume"] for t in trades)
    )
    assert newest["unit"] == 1
    assert rows[0]["candle_date_time_utc"] > rows[1]["candle_date_time_utc"]  # newest first
    capped = await _json(http, "/v1/candles/minutes/1", market="KRW-BTC", count=500)
    assert 0 < len(capped) <= 200
    days = await _json(http, "/v1/candles/days", market="KRW-BTC", count=2)
    assert days and days[0]["candle_date_time_utc"].endswith("T00:00:00")
    assert {"prev_closing_price", "change_rate"} <= set(days[0])


async def test_each_endpoint_family_has_its_own_budget() -> None:
    options = ReplayOptions(markets=["KRW-BTC"], rate=50.0, rest_per_second=2)
    async with (
        ReplayServer(options) as srv,
        httpx.AsyncClient(base_url=srv.rest_url) as http,
    ):
        groups = []
        for path in ("/v1/ticker", "/v1/ticker", "/v1/orderbook", "/v1/market/all"):
            answer = await http.get(path, params={"markets": "KRW-BTC"})
            assert answer.status_code == 200, answer.text
            assert answer.headers["limit-by-ip"] == "Yes"
            groups.append(answer.headers["Remaining-Req"])
        assert groups[0].startswith("group=ticker; min=600; sec=")
        assert groups[2].startswith("group=orderbook;") and groups[3].startswith("group=market;")


async def test_market_all_of_a_capture_lists_every_market_before_playback(
    tmp_path: Path,
) -> None:
    root = tmp_path / "capture"
    writer = CaptureWriter(root)
    frames = (DATA / "upbit_default_frames.jsonl").read_bytes().splitlines()
    frames += (DATA / "upbit_simple_frames.jsonl").read_bytes().splitlines()
    for i, frame in enumerate(frames):
        writer.write(1_790_000_000_000 + i, frame)
    writer.close()
    expected = sorted(set(_codes(frames)))
    async with (
        ReplayServer(ReplayOptions(capture=root)) as srv,  # waits for a subscriber to play
        httpx.AsyncClient(base_url=srv.rest_url) as http,
    ):
        listed = await _json(http, "/v1/market/all")
    assert sorted(r["market"] for r in listed) == expected


def _codes(frames: list[bytes]) -> list[str]:
    out = []
    for frame in frames:
        data = orjson.loads(frame)
        code = data.get("code") or data.get("cd")
        if code:
            out.append(code)
    return out
