"""Real Upbit frames (recorded by cryptofeed in 2021, see tests/data/README.md) through the
codec and through the twin: nothing is rejected, every value survives, nothing is made up."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from upbitpipe.archive.capture import read_capture
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MarketEvent, parse_frame, subscribe_request

pytestmark = pytest.mark.timeout(60)
CORPUS = Path(__file__).parent.parent / "data" / "upbit_cryptofeed_2021.jsonl.gz"
TRADE_KEYS = {"tp": "trade_price", "tv": "trade_volume", "ttms": "trade_timestamp", "ab": "ask_bid"}


def _frames() -> list[bytes]:
    return [frame for _, frame in read_capture(CORPUS)]


def test_every_real_frame_parses_with_its_values() -> None:
    kinds: Counter[str] = Counter()
    trade_ids: Counter[tuple[str, int]] = Counter()
    for frame in _frames():
        raw = orjson.loads(frame)
        event = parse_frame(frame)
        assert isinstance(event, MarketEvent), frame[:120]
        assert event.market == raw["cd"]
        kinds[event.type] += 1
        if event.type == "trade":
            for short, name in TRADE_KEYS.items():
                assert event.data[name] == raw[short]
            trade_ids[(event.market, int(event.data["sequential_id"]))] += 1
        else:
            units = raw["obu"]
            asks = [u["ap"] for u in units if u["ap"] > 0 and u["as"] > 0]
            bids = [u["bp"] for u in units if u["bp"] > 0 and u["bs"] > 0]
            assert event.data["best_ask_price"] == min(asks)
            assert event.data["best_bid_price"] == max(bids)
            assert len(event.data["orderbook_units"]) == len(units) == 15
    assert kinds == {"trade": 304, "orderbook": 145}
    assert max(trade_ids.values()) == 1  # the recording holds each trade once


async def test_the_twin_replays_real_frames_byte_for_byte(tmp_path: Path) -> None:
    """Asked for the recorded format (SIMPLE), a client gets the recorded bytes back."""
    frames = _frames()
    markets = sorted({orjson.loads(f)["cd"] for f in frames})
    options = ReplayOptions(capture=CORPUS, speed=None, rate=0, connect_per_second=None)
    async with ReplayServer(options) as srv, connect(srv.ws_url) as ws:
        await ws.send(
            subscribe_request("real", ["trade", "orderbook"], markets, only_realtime=True)
        )
        got = [await ws.recv() for _ in frames]
    assert got == frames


@pytest.mark.parametrize("only_realtime", [False, True])
async def test_a_capture_keeps_snapshot_and_realtime_apart(
    tmp_path: Path, only_realtime: bool
) -> None:
    """Recorded SNAPSHOT frames stay SNAPSHOT, and go only to clients that want snapshots."""
    realtime = _frames()[:6]
    first = orjson.loads(realtime[0])
    snapshot = orjson.dumps({**first, "st": "SNAPSHOT"})
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(
        b"".join(
            orjson.dumps({"recv_ms": 1_618_678_263_000 + i, "frame": f.decode()}) + b"\n"
            for i, f in enumerate([snapshot, *realtime])
        )
    )
    markets = sorted({orjson.loads(f)["cd"] for f in realtime})
    options = ReplayOptions(capture=capture, speed=None, rate=0, connect_per_second=None)
    async with ReplayServer(options) as srv, connect(srv.ws_url) as ws:
        await ws.send(
            subscribe_request("st", ["trade", "orderbook"], markets, only_realtime=only_realtime)
        )
        got = [await ws.recv() for _ in range(len(realtime) + (0 if only_realtime else 1))]
    kinds = [orjson.loads(frame)["st"] for frame in got]
    if only_realtime:
        assert got == realtime and set(kinds) == {"REALTIME"}
    else:
        assert got == [snapshot, *realtime]
        assert kinds == ["SNAPSHOT"] + ["REALTIME"] * len(realtime)
