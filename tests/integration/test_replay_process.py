"""`upbitpipe replay serve` as a real process: prints its URLs, serves both protocols, SIGINT exits 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from upbitpipe.archive.capture import CaptureWriter, read_capture
from upbitpipe.collector.status import read_status
from upbitpipe.config import load_settings
from upbitpipe.lake.read import trade_id_counts
from upbitpipe.upbit.codec import MarketEvent, parse_frame, subscribe_request

pytestmark = pytest.mark.timeout(60)  # replay tier: no services needed
DATA = Path(__file__).parent.parent / "data"


def _start(*args: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "upbitpipe", "replay", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    ws_url = rest_url = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (ws_url and rest_url):
        line = proc.stdout.readline()
        if not line:
            break
        if match := re.search(r"UPBITPIPE_UPBIT__WEBSOCKET_URL=(\S+)", line):
            ws_url = match.group(1)
        if match := re.search(r"UPBITPIPE_UPBIT__REST_URL=(\S+)", line):
            rest_url = match.group(1)
    if not (ws_url and rest_url):
        proc.kill()
        pytest.fail("replay serve did not print its URLs")
    return proc, ws_url, rest_url


@pytest.fixture
def synthetic() -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    proc, ws_url, rest_url = _start("--synthetic", "--markets", "KRW-BTC,KRW-XRP", "--rate", "300")
    try:
        yield proc, ws_url, rest_url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def _trades(ws_url: str, n: int) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    async with connect(ws_url) as ws:
        await ws.send(subscribe_request("it", ["trade"], ["KRW-XRP"]))
        while len(out) < n:
            event = parse_frame(await asyncio.wait_for(ws.recv(), 5))
            assert isinstance(event, MarketEvent)
            out.append(event)
    return out


def test_serves_both_protocols_and_stops_on_sigint(
    synthetic: tuple[subprocess.Popen[str], str, str],
) -> None:
    proc, ws_url, rest_url = synthetic
    trades = asyncio.run(_trades(ws_url, 10))
    assert {t.market for t in trades} == {"KRW-XRP"}
    markets = httpx.get(f"{rest_url}/v1/market/all", timeout=5).json()
    assert [m["market"] for m in markets] == ["KRW-BTC", "KRW-XRP"]
    ticks = httpx.get(
        f"{rest_url}/v1/trades/ticks", params={"market": "KRW-XRP", "count": 50}, timeout=5
    )
    assert {t.sequential_id for t in trades} <= {row["sequential_id"] for row in ticks.json()}
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0


def test_replays_a_capture_file(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path) as writer:
        for i, frame in enumerate((DATA / "upbit_simple_frames.jsonl").read_bytes().splitlines()):
            writer.write(1_676_965_262_000 + 10 * i, frame)
    proc, ws_url, _ = _start(str(tmp_path), "--speed", "5")
    try:

        async def play() -> list[str]:
            async with connect(ws_url) as ws:
                await ws.send(
                    subscribe_request("cap", ["ticker", "trade", "orderbook"], ["KRW-BTC"])
                )
                kinds = []
                for _ in range(3):
                    event = parse_frame(await asyncio.wait_for(ws.recv(), 5))
                    assert isinstance(event, MarketEvent)
                    kinds.append(event.type)
                return kinds

        assert asyncio.run(play()) == ["ticker", "trade", "orderbook"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


CORPUS = DATA / "upbit_cryptofeed_2021.jsonl.gz"


@pytest.mark.timeout(180)  # two processes and a lake commit on a shared machine
def test_real_frames_go_through_replay_collect_and_lake_once(tmp_path: Path) -> None:
    """Real Upbit frames as a capture: replay serve -> collect -> lake, no dead letter,
    every recorded trade stored exactly once."""
    recorded: Counter[tuple[str, int]] = Counter()
    markets: set[str] = set()
    for _, frame in read_capture(CORPUS):
        event = parse_frame(frame)
        assert isinstance(event, MarketEvent)
        markets.add(event.market)
        if event.type == "trade":
            recorded[(event.market, int(event.data["sequential_id"]))] += 1
    proc, ws_url, rest_url = _start(str(CORPUS), "--speed", "10", "--no-limits")
    state, lake_dir = tmp_path / "state", tmp_path / "lake"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UPBITPIPE_")},
        "UPBITPIPE_UPBIT__WEBSOCKET_URL": ws_url,
        "UPBITPIPE_UPBIT__REST_URL": rest_url,
        "UPBITPIPE_COLLECTOR__STATE_DIR": str(state),
        "UPBITPIPE_LAKE__WAREHOUSE": str(lake_dir),
        "UPBITPIPE_METRICS__PORT": "0",
    }
    try:
        collect = subprocess.run(
            [
                sys.executable,
                "-m",
                "upbitpipe",
                "collect",
                "--markets",
                ",".join(sorted(markets)),
                "--types",
                "trade,orderbook",
                "--sink",
                "lake",
                "--duration",
                "15",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert collect.returncode == 0, collect.stderr[-2000:]
    status = read_status(state / "status.json")
    assert status is not None
    assert status.dead_letters_total == 0, status.dead_letters
    assert status.events.get("orderbook", 0) == 145
    settings = load_settings(
        overrides={"lake.warehouse": str(lake_dir), "collector.state_dir": str(state)}, env={}
    ).settings
    stored = trade_id_counts(settings)
    assert set(stored) == set(recorded), "recorded trades missing from (or added to) the lake"
    assert max(stored.values()) == 1, "a trade is stored twice"


def test_clock_jump_across_midnight_from_the_command_line() -> None:
    """--clock-start before midnight, /_replay/advance over it: REST pages (today, then
    daysAgo=1) serve exactly the trades the twin made in the skipped span."""
    proc, _, rest_url = _start(
        "--synthetic", "--markets", "KRW-BTC", "--rate", "20", "--no-limits",
        "--clock-start", "2026-11-27T23:50:00Z", "--gap-trade-rate", "50",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=rest_url, timeout=60) as http:
            span = http.get("/_replay/advance", params={"minutes": 20}).json()
            assert span["trades"] == {"KRW-BTC": 60_000}  # 20 min x 60 s x 50/s
            served: list[int] = []
            for days_ago in (None, 1):
                cursor = None
                while True:
                    params: dict[str, str | int] = {"market": "KRW-BTC", "count": 500}
                    if days_ago:
                        params["daysAgo"] = days_ago
                    if cursor:
                        params["cursor"] = cursor
                    page = http.get("/v1/trades/ticks", params=params).json()
                    if not page:
                        break
                    served += [row["sequential_id"] for row in page]
                    cursor = page[-1]["sequential_id"]
            truth = http.get(
                "/_replay/trade_ids",
                params={"market": "KRW-BTC", "from_ms": span["from_ms"], "to_ms": span["to_ms"]},
            ).json()["sequential_ids"]
        assert len(truth) == 60_000
        assert set(truth) <= set(served) and len(served) == len(set(served))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
