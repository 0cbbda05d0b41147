"""How many messages per second does the replay server push over loopback?

The server runs in this process (its own thread and event loop, ``start_in_thread``); each
client is a separate process that subscribes to ticker+trade+orderbook of every market and
counts frames for ``--seconds`` after a one-second warm-up. Figures are medians of
``--runs`` runs. CPU is measured per process (server: this process; client: the child).

Client kinds:
  websockets  a plain ``websockets`` client doing ``recv()`` (what a collector pays)
  raw         a minimal asyncio protocol that only splits frames: shows the server's ceiling
              rather than the client's

Modes: ``rate=0`` is "as fast as the clients read" (back-pressure driven); a number runs
the market clock at that many messages/s and shows whether the server keeps up.

    .venv/bin/python benchmarks/bench_replay.py
    .venv/bin/python benchmarks/bench_replay.py --runs 3 --seconds 5 --config raw:1:0 --config raw:4:15000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any

import psutil

from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import subscribe_request

MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"]


@dataclass
class Config:
    client: str  # websockets | raw
    clients: int
    rate: float  # 0 = unlimited

    @classmethod
    def parse(cls, text: str) -> Config:
        client, clients, rate = text.split(":")
        return cls(client, int(clients), float(rate))

    def label(self) -> str:
        rate = "max" if self.rate <= 0 else f"{self.rate:,.0f}/s"
        return f"{self.client} x{self.clients}, clock {rate}"


# --- client processes --------------------------------------------------------------------
class _RawCounter(asyncio.Protocol):
    """Counts WebSocket frames from an unmasked server stream; no decoding at all."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.frames = 0
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.opened.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in bytes(buf[: buf.find(b"\r\n")]):
                self.opened.set_exception(RuntimeError(bytes(buf[:end]).decode()))
                return
            del buf[: end + 4]
            self.opened.set_result(None)
        pos, size, frames = 0, len(buf), 0
        while size - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            pos += head + length
            frames += 1
        del buf[:pos]
        self.frames += frames


def _masked_text(payload: bytes) -> bytes:
    """A client text frame with an all-zero mask (valid per RFC 6455, payload unchanged)."""
    size = len(payload)
    head = (
        bytes([0x81, 0x80 | size])
        if size < 126
        else bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    )
    return head + b"\x00\x00\x00\x00" + payload


async def _raw_client(
    port: int, request: str, warmup: float, seconds: float
) -> tuple[int, float, float]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(_RawCounter, "127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    transport.write(
        (
            f"GET /websocket/v1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await asyncio.wait_for(proto.opened, 10)
    transport.write(_masked_text(request.encode()))
    await asyncio.sleep(warmup)
    me = psutil.Process()
    cpu0, n0, t0 = sum(me.cpu_times()[:2]), proto.frames, time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, n1, t1 = sum(me.cpu_times()[:2]), proto.frames, time.perf_counter()
    transport.abort()
    return n1 - n0, t1 - t0, cpu1 - cpu0


async def _ws_client(
    port: int, request: str, warmup: float, seconds: float
) -> tuple[int, float, float]:
    from websockets.asyncio.client import connect

    me = psutil.Process()
    async with connect(
        f"ws://127.0.0.1:{port}/websocket/v1", compression=None, max_queue=None
    ) as ws:
        await ws.send(request)
        count = 0
        started = time.perf_counter()
        window: tuple[int, float, float] | None = None
        while True:
            await ws.recv()
            count += 1
            if count % 256:
                continue
            now = time.perf_counter()
            if window is None and now - started >= warmup:
                window = (count, now, sum(me.cpu_times()[:2]))
            elif window is not None and now - window[1] >= seconds:
                return count - window[0], now - window[1], sum(me.cpu_times()[:2]) - window[2]


def _client_main(kind: str, port: int, warmup: float, seconds: float, out: Any) -> None:
    request = subscribe_request(f"bench-{os.getpid()}", ["ticker", "trade", "orderbook"], MARKETS)
    runner = _raw_client if kind == "raw" else _ws_client
    out.put(asyncio.run(runner(port, request, warmup, seconds)))


# --- one run ---------------------------------------------------------------------------
def run_once(config: Config, seconds: float) -> dict[str, float]:
    options = ReplayOptions(
        markets=MARKETS,
        rate=config.rate,
        connect_per_second=None,
        subscribe_per_second=None,
        subscribe_per_minute=None,
        compression=False,
        max_pending_frames=2_000_000,
    )
    server = ReplayServer(options)
    server.start_in_thread()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    warmup = 1.5
    procs = [
        ctx.Process(target=_client_main, args=(config.client, server.port, warmup, seconds, out))
        for _ in range(config.clients)
    ]
    try:
        for proc in procs:
            proc.start()
        me = psutil.Process()
        time.sleep(warmup + 1.0)  # clients spawn (~1 s) then warm up
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        time.sleep(seconds - 0.5)
        cpu1, t1 = sum(me.cpu_times()[:2]), time.perf_counter()
        results = [out.get(timeout=seconds + 30) for _ in procs]
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        server.stop_thread()
    frames = sum(r[0] for r in results)
    rate = sum(r[0] / r[1] for r in results)
    client_cpu_us = statistics.mean(r[2] / r[0] * 1e6 for r in results if r[0])
    server_cpu = (cpu1 - cpu0) / (t1 - t0)
    return {
        "msgs_per_s": rate,
        "frames": frames,
        "server_cpu_pct": server_cpu * 100,
        "server_cpu_us": server_cpu / rate * 1e6 if rate else float("nan"),
        "client_cpu_us": client_cpu_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--config",
        action="append",
        type=Config.parse,
        help="client:clients:rate, e.g. raw:1:0 (repeatable)",
    )
    args = parser.parse_args()
    configs = args.config or [
        Config("websockets", 1, 0),
        Config("raw", 1, 0),
        Config("raw", 1, 50_000),
        Config("raw", 4, 15_000),
    ]
    print(
        f"# bench_replay: {args.runs} runs x {args.seconds:g} s each (median), "
        f"{len(MARKETS)} markets, all types, no compression; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        f"| {'config':<30} | {'msgs/s (sum)':>12} | {'server CPU %':>12} | {'server CPU-µs/msg':>17} | {'client CPU-µs/msg':>17} |"
    )
    print(f"|{'-' * 32}|{'-' * 14}|{'-' * 14}|{'-' * 19}|{'-' * 19}|")
    for config in configs:
        runs = [run_once(config, args.seconds) for _ in range(args.runs)]
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(
            f"| {config.label():<30} | {med['msgs_per_s']:>12,.0f} | {med['server_cpu_pct']:>12.0f} | "
            f"{med['server_cpu_us']:>17.2f} | {med['client_cpu_us']:>17.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
