"""The collector against a hostile exchange and broken state (issue #18), end to end into
the lake: poison, future-dated and junk-market frames never reach a commit or the resume
point; a zombie socket is recycled; a dead letter that cannot be written is no reconnect."""

from __future__ import annotations

import asyncio
import http
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from collect_support import collector_settings, expected_trade_ids, lake_trade_ids
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from conftest import S3Fixture
from upbitpipe.collector.runtime import RESUME_FILE, run_collector
from upbitpipe.config import S3Settings, Settings, load_settings
from upbitpipe.errors import AuthError, UpbitpipeError
from upbitpipe.lake.read import read_table
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.storage.buckets import check_warehouse_bucket

# replay tier: the replay twin or a small hostile server in this file, nothing else
MARKETS = ["KRW-BTC", "KRW-ETH"]
YEAR_MS = 365 * 86_400_000


def _trade(market: str, ts: int, sid: int) -> dict[str, Any]:
    return {
        "type": "trade",
        "code": market,
        "timestamp": ts,
        "trade_date": time.strftime("%Y-%m-%d", time.gmtime(ts / 1000)),
        "trade_time": time.strftime("%H:%M:%S", time.gmtime(ts / 1000)),
        "trade_timestamp": ts,
        "trade_price": 100_000.0,
        "trade_volume": 0.25,
        "ask_bid": "BID",
        "prev_closing_price": 99_000.0,
        "change": "RISE",
        "change_price": 1000.0,
        "sequential_id": sid,
        "best_ask_price": 100_001.0,
        "best_ask_size": 1.0,
        "best_bid_price": 100_000.0,
        "best_bid_size": 1.0,
        "stream_type": "REALTIME",
    }


def _poison(ts: int, sid: int) -> list[bytes]:
    """The review's bad frames (exp4 evil_server): each would have stalled or polluted the lake."""
    base = _trade("KRW-BTC", ts, sid)
    frames = [
        {**base, "trade_timestamp": "now"},
        {**base, "trade_timestamp": 10**18, "sequential_id": sid + 1},
        {**base, "trade_timestamp": ts + YEAR_MS, "sequential_id": sid + 2},
        {
            **base,
            "timestamp": ts + YEAR_MS,
            "trade_timestamp": ts + YEAR_MS,
            "sequential_id": sid + 3,
        },
        {**base, "sequential_id": 1.5},
        {**base, "sequential_id": -7},
        {**base, "trade_price": "abc", "sequential_id": sid + 4},
        {**base, "trade_volume": "1.5", "sequential_id": sid + 5},
        {**base, "code": "KRW-ZZZ", "sequential_id": sid + 6},
        {**base, "code": "", "sequential_id": sid + 7},
        {**base, "code": "../../etc/passwd", "sequential_id": sid + 8},
    ]
    return [orjson.dumps(frame) for frame in frames]


class HostileExchange:
    """Valid trades for MARKETS, with every poison frame after each 10 valid ones.

    ``truth`` holds every valid trade sent on a socket. REST serves the market list and the
    valid trades (for a backfill)."""

    def __init__(self) -> None:
        self.truth: list[dict[str, Any]] = []
        self.bad_sent = 0
        self.port = 0
        self._sid = itertools.count(1)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/websocket/v1"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handler(self, ws: ServerConnection) -> None:
        await ws.recv()  # the subscribe request
        reader = asyncio.create_task(self._answer_pings(ws))
        try:
            for n in itertools.count():
                await asyncio.sleep(0.01)
                ts = int(time.time() * 1000)
                trade = _trade(MARKETS[n % 2], ts, ts * 1000 + next(self._sid) % 1000)
                await ws.send(orjson.dumps(trade))
                self.truth.append(trade)
                if n % 10 == 9:
                    for frame in _poison(ts, 9 * 10**15 + n * 100):
                        await ws.send(frame)
                        self.bad_sent += 1
        except Exception:  # the collector went away
            return
        finally:
            reader.cancel()

    async def _answer_pings(self, ws: ServerConnection) -> None:
        async for message in ws:
            if message in ("PING", b"PING"):
                await ws.send(b'{"status":"UP"}')

    def rest(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path == "/websocket/v1":
            return None
        if path == "/v1/market/all":
            body = orjson.dumps(
                [{"market": m, "korean_name": m, "english_name": m} for m in MARKETS]
            )
        elif path == "/v1/trades/ticks":
            market = request.path.partition("market=")[2].partition("&")[0]
            rows = [t for t in self.truth if t["code"] == market][::-1][:200]
            body = orjson.dumps(
                [
                    {
                        "market": t["code"],
                        "trade_date_utc": t["trade_date"],
                        "trade_time_utc": t["trade_time"],
                        "timestamp": t["trade_timestamp"],
                        "trade_price": t["trade_price"],
                        "trade_volume": t["trade_volume"],
                        "prev_closing_price": t["prev_closing_price"],
                        "change_price": t["change_price"],
                        "ask_bid": t["ask_bid"],
                        "sequential_id": t["sequential_id"],
                    }
                    for t in rows
                ]
            )
        else:
            return Response(404, "Not Found", Headers([("Content-Length", "0")]), b"")
        headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return Response(200, http.HTTPStatus(200).phrase, headers, body)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[HostileExchange]:
        async with serve(
            self.handler, "127.0.0.1", 0, process_request=self.rest, compression=None
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            yield self


def _settings(tmp_path: Path, exchange: HostileExchange, **overrides: Any) -> Settings:
    flat: dict[str, Any] = {
        "upbit.websocket_url": exchange.ws_url,
        "upbit.rest_url": exchange.rest_url,
        "upbit.format": "DEFAULT",
        "collector.markets": ",".join(MARKETS),
        "collector.types": "trade",
        "collector.state_dir": str(tmp_path / "state"),
        "collector.status_interval_seconds": 0.5,
        "lake.warehouse": str(tmp_path / "lake"),
        "lake.commit_interval_seconds": 0.5,
        "lake.buckets": 1,
        "metrics.port": 0,
        **overrides,
    }
    return load_settings(overrides=flat, env={}).settings


async def test_poison_future_and_junk_frames_never_reach_the_lake_or_the_resume_point(
    tmp_path: Path,
) -> None:
    exchange = HostileExchange()
    async with exchange.running():
        settings = _settings(tmp_path, exchange)
        result = await run_collector(settings, duration=6, handle_signals=False)
    snap = result.snapshot
    lake = lake_trade_ids(settings)
    truth = {(t["code"], t["sequential_id"]) for t in exchange.truth}
    received = snap.events["trade"]
    assert received >= 100, f"too few trades to judge: {received}"
    assert set(lake) <= truth, f"junk rows stored: {sorted(set(lake) - truth)[:5]}"
    assert sum(lake.values()) == len(lake) == received, "every collected trade, once"
    assert snap.sinks["lake"]["commit_failures"] == 0 and snap.sinks["lake"]["pending_rows"] == 0
    # batch k of bad frames follows valid trade 10k: every batch before the last trade read
    assert snap.dead_letters_total >= 11 * ((received - 1) // 10)
    assert set(snap.dead_letters) == {"malformed", "unsubscribed_market", "implausible_time"}
    assert snap.connections[0].connects == 1, "a bad frame must not cost the socket"
    rows = read_table(settings, "trade", ["market", "dt", "trade_timestamp"])
    newest = max(t["trade_timestamp"] for t in exchange.truth)
    assert {row["market"] for row in rows} <= set(MARKETS)
    assert max(row["trade_timestamp"] for row in rows) <= newest
    resume = orjson.loads((settings.collector.state_dir / RESUME_FILE).read_bytes())["markets"]
    assert set(resume) <= set(MARKETS), resume
    assert max(tip["ms"] for tip in resume.values()) <= newest, resume


async def test_an_unwritable_dead_letter_is_counted_and_is_no_reconnect(tmp_path: Path) -> None:
    exchange = HostileExchange()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "deadletter").write_text("a file where the directory should be")
    async with exchange.running():
        settings = _settings(tmp_path, exchange)
        result = await run_collector(settings, duration=4, handle_signals=False)
    snap = result.snapshot
    assert snap.connections[0].connects == 1, snap.connections
    assert snap.dead_letter_write_failures == snap.dead_letters_total > 0
    lake = lake_trade_ids(settings)
    assert sum(lake.values()) == len(lake) == snap.events["trade"] > 0


async def test_zombie_socket_answering_ping_is_recycled_and_backfilled(tmp_path: Path) -> None:
    """The twin stalls the data for longer than the silence timeout while it keeps answering
    our PINGs: the watchdog must still fire, and the backfill must close the gap."""
    options = ReplayOptions(
        markets=MARKETS[:1], seed=5, rate=100, stall_every_seconds=2.0, stall_seconds=6.0
    )
    async with ReplayServer(options) as server:
        settings = collector_settings(
            tmp_path,
            server,
            **{
                "collector.markets": MARKETS[0],
                "collector.types": "trade",
                "upbit.ping_interval_seconds": 0.3,
                "upbit.silence_timeout_seconds": 1.5,
            },
        )
        result = await run_collector(settings, duration=9, handle_signals=False)
    snap = result.snapshot
    assert snap.status_frames >= 3, "the zombie must have answered PINGs during the stall"
    assert snap.connections[0].connects >= 2, "a socket that only answers PING was not recycled"
    assert "watchdog" in snap.connections[0].last_error
    lake = lake_trade_ids(settings)
    assert not expected_trade_ids(server, lake, MARKETS[:1]) - set(lake)


@pytest.mark.integration
def test_s3_warehouse_check_names_the_real_cause(s3_server: S3Fixture) -> None:
    """Against a real S3 server: a missing bucket is a missing bucket, refused keys are
    refused keys - not a generic failure after minutes of pypaimon retries."""
    s3 = S3Settings(endpoint=s3_server.endpoint)  # type: ignore[arg-type]
    keys = (s3_server.access_key, s3_server.secret_key)
    with pytest.raises(UpbitpipeError, match="bucket 'no-such-bucket' does not exist"):
        check_warehouse_bucket(s3, "s3://no-such-bucket/wh", *keys)
    with pytest.raises(AuthError, match="refused the credentials"):
        check_warehouse_bucket(s3, "s3://no-such-bucket/wh", keys[0], "wrong-secret")
