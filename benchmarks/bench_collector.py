"""What does a message cost the collector as users run it, next to cryptofeed and the floors?

One run, one exchange: `upbitpipe replay serve --synthetic --tls` (10 KRW markets, ticker +
trade + orderbook; wss:// because cryptofeed accepts nothing else, so every client pays TLS
as it does against Upbit). Every client is its own process, one at a time,
variants interleaved round by round (``--runs`` rounds, medians reported):

  websockets        floor: `websockets` + `orjson.loads`, no work (SIMPLE frames)
  picows            floor: `picows` + `orjson.loads`, no work (SIMPLE frames)
  picows-default    the same on DEFAULT frames (larger: long key names): the floor for a
                    collector that subscribes in DEFAULT
  cryptofeed        cryptofeed 2.4.1's Upbit feed, a counting callback (trade + orderbook:
                    its Upbit feed has no ticker channel)
  cryptofeed-kafka  the same feed into its Kafka backend (TradeKafka/BookKafka, acks=all);
                    it awaits each record's ack before the next and queues what it reads
                    meanwhile without bound, so its CPU per *delivered* message is mostly
                    reading
  kafka             `upbitpipe collect --sink kafka` (acks=all, idempotent), subscribed in
                    the format users get by default (`upbit.format`; ``--upbit-format``
                    overrides it for a comparison)
  kafka-2types      the same with `--types trade,orderbook`: like for like with cryptofeed
  kafka-uvloop      `kafka` on uvloop (`collector.event_loop = uvloop`)
  archive           `upbitpipe collect --sink archive`
  lake              `upbitpipe collect --sink lake` (embedded Paimon on local disk)
  lake-uvloop       `lake` on uvloop

CPU phase: the twin sends as fast as the client reads (`--rate 0`). Latency phase: a second
twin at a fixed ``--latency-rate`` (5,000 msgs/s, running for the whole run), for the two
Kafka clients and a picows reference (exchange `tms` -> receipt, no sink: what the twin,
TLS and the scheduler alone add).

What is measured (per run, over a window that starts ``--warmup`` s after the first
delivered message and lasts ``--seconds``; start-up and shutdown are outside it):
  * CPU-µs/msg: the client process's user+system CPU (psutil, sampled every 0.2 s and
    interpolated to the moment of each count) divided by the messages delivered in the window.
  * delivered = what the client's destination confirmed:
      floors, cryptofeed      messages parsed / callbacks run (counted by the driver);
      kafka variants          records a live read_committed consumer has received: what
                              the broker holds and (with the collector's transactional
                              sink) committed, nothing aborted, no transaction markers;
      archive, lake           `written` of the sink in the collector's status.json
                              (events the sink accepted; the lake commits them every
                              `lake.commit_rows` rows / 16 MiB / flush interval).
  * latency (latency phase): exchange event `timestamp` -> the moment a live
    read_committed consumer (in this process, fetch wait 5 ms) received the record: the
    commit as downstream sees it, at most one fetch later than the producer's ack. For the
    records the broker appended inside the window (the topics are created before the
    client starts with `message.timestamp.type=LogAppendTime`, so a record's timestamp is
    its broker append time; exchange -> append is printed per run and kept in --json).
    After the client stops, the consumer reads on until nothing new came for 3 s.
  * peak RSS: the largest RSS sampled.

Kafka: one broker from the pinned Apache jars, started by the project's infra code (the same
code as `bench_memory.py --start-kafka`), unless ``--kafka HOST:PORT`` names one. A variant
that cannot run (no Java, no cryptofeed, ...) is listed as skipped with the reason.

Examples:

    .venv/bin/python benchmarks/bench_collector.py                       # ~15 min
    .venv/bin/python benchmarks/bench_collector.py --runs 1 --seconds 8  # quick look
    .venv/bin/python benchmarks/bench_collector.py --variants picows,kafka --no-latency
    .venv/bin/python benchmarks/bench_collector.py --kafka 127.0.0.1:29092 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKETS = [
    "KRW-BTC",
    "KRW-ETH",
    "KRW-XRP",
    "KRW-SOL",
    "KRW-DOGE",
    "KRW-ADA",
    "KRW-USDT",
    "KRW-TRX",
    "KRW-LINK",
    "KRW-AVAX",
]
TYPES = ["ticker", "trade", "orderbook"]
CPU_VARIANTS = [
    "websockets",
    "picows",
    "picows-default",
    "cryptofeed",
    "cryptofeed-kafka",
    "kafka",
    "kafka-2types",
    "kafka-uvloop",
    "archive",
    "lake",
    "lake-uvloop",
]
LATENCY_VARIANTS = ["picows", "kafka", "cryptofeed-kafka"]
KAFKA_VARIANTS = {"kafka", "kafka-2types", "kafka-uvloop", "cryptofeed-kafka"}
TARGET_CF_RATIO = 0.5
TARGET_PICOWS_RATIO = 3.0
TARGET_P99_MS = 50.0


def default_format() -> str:
    """The ``upbit.format`` users get when they set none."""
    from upbitpipe.config import UpbitSettings

    return str(UpbitSettings.model_fields["format"].default)


# --- client drivers (each runs as `python -c DRIVER ...`; prints "wall_time count" lines) ---
_REPORT = """
import sys, time
_next = 0.0
def report(n):
    global _next
    now = time.time()
    if now >= _next:
        sys.stdout.write(f"{now} {n}\\n")
        sys.stdout.flush()
        _next = now + 0.2
"""

WEBSOCKETS_DRIVER = (
    _REPORT
    + """
import asyncio, orjson
from websockets.asyncio.client import connect

async def main(url, request):
    n = 0
    async with connect(url, compression=None, max_size=2**22, ping_interval=None) as ws:
        await ws.send(request)
        async for raw in ws:
            orjson.loads(raw)
            n += 1
            if not n & 127:
                report(n)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""
)

PICOWS_DRIVER = (
    _REPORT
    + """
import asyncio, ssl, orjson
from picows import WSListener, WSMsgType, ws_connect

latency_file = open(sys.argv[3], "a") if len(sys.argv) > 3 else None  # latency phase only

class Listener(WSListener):
    n = 0
    def on_ws_connected(self, transport):
        transport.send(WSMsgType.TEXT, sys.argv[2].encode())
    def on_ws_frame(self, transport, frame):
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            obj = orjson.loads(frame.get_payload_as_bytes())
            self.n += 1
            if latency_file is not None:  # receipt time, exchange time (ms)
                stamp = obj.get('tms') or obj.get('timestamp', 0)
                latency_file.write(f"{time.time() * 1000:.1f} {stamp}\\n")
            if not self.n & 127:
                report(self.n)
                if latency_file is not None:
                    latency_file.flush()
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()

async def main():
    transport, _ = await ws_connect(
        Listener, sys.argv[1], ssl_context=ssl.create_default_context(), max_frame_size=2**22
    )
    await transport.wait_disconnected()

asyncio.run(main())
"""
)

# the only change to cryptofeed: where the exchange is (as tests/integration/test_peer_clients)
CRYPTOFEED_DRIVER = (
    _REPORT
    + """
from cryptofeed import FeedHandler
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import L2_BOOK, TRADES
from cryptofeed.exchanges import Upbit

ws_url, rest_url, symbols, kafka, prefix = sys.argv[1:6]
Upbit.websocket_endpoints = [WebsocketEndpoint(ws_url)]
Upbit.rest_endpoints = [RestEndpoint(rest_url, routes=Routes("/v1/market/all"))]
n = 0

async def count(obj, receipt):
    global n
    n += 1
    if not n & 127:
        report(n)

if kafka:
    from cryptofeed.backends.kafka import BookKafka, TradeKafka
    options = {"bootstrap_servers": kafka, "acks": "all"}
    callbacks = {TRADES: TradeKafka(key=prefix + "trades", **options),
                 L2_BOOK: BookKafka(key=prefix + "book", **options)}
else:
    callbacks = {TRADES: count, L2_BOOK: count}
fh = FeedHandler(config={"log": {"disabled": True}, "uvloop": False})
fh.add_feed(Upbit(symbols=symbols.split(","), channels=[TRADES, L2_BOOK], callbacks=callbacks))
fh.run()
"""
)


# --- results -------------------------------------------------------------------------------
@dataclass
class Sample:
    msgs_per_s: float
    cpu_us_per_msg: float
    rss_mb: float
    p50_ms: float | None = None  # latency phase: exchange -> visible to read_committed
    p99_ms: float | None = None
    p50_append_ms: float | None = None  # exchange -> broker append (LogAppendTime)
    p99_append_ms: float | None = None


@dataclass
class Row:
    """One table row: a variant in one phase, its runs, or why it could not run."""

    name: str
    note: str = ""
    samples: list[Sample] = field(default_factory=list)
    skipped: str = ""  # reason the variant did not run at all
    failures: list[str] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        values = [getattr(s, key) for s in self.samples if getattr(s, key) is not None]
        return statistics.median(values) if values else None


class VariantFailed(Exception):
    """A run of a variant could not be measured; the message goes into the table."""


# --- the exchange --------------------------------------------------------------------------
@dataclass
class Twin:
    ws_url: str
    rest_url: str
    cert: str
    proc: subprocess.Popen[str]


def cli_path() -> str:
    return str(Path(sys.executable).with_name("upbitpipe"))


@contextlib.contextmanager
def twin(rate: float, tls_dir: Path, seed: int = 3) -> Iterator[Twin]:
    """`upbitpipe replay serve --synthetic --tls` in its own process; its URLs from stdout."""
    argv = [cli_path(), "replay", "serve", "--synthetic", "--tls", "--tls-dir", str(tls_dir)]
    argv += ["--port", "0", "--rate", str(rate), "--no-limits", "--seed", str(seed)]
    argv += ["--markets", ",".join(MARKETS)]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    found: dict[str, str] = {}
    patterns = {
        "ws": r"UPBITPIPE_UPBIT__WEBSOCKET_URL=(\S+)",
        "rest": r"UPBITPIPE_UPBIT__REST_URL=(\S+)",
        "cert": r"certificate: (\S+)",
    }
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(found) < 3:
        line = proc.stdout.readline()
        if not line:
            break
        for key, pattern in patterns.items():
            if match := re.search(pattern, line):
                found[key] = match.group(1)
    if len(found) < 3:
        proc.kill()
        msg = f"replay serve did not start (exit {proc.poll()}; found {sorted(found)})"
        raise SystemExit(msg)
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # never block its prints
    try:
        yield Twin(found["ws"], found["rest"], found["cert"], proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- Kafka: the broker and a probe ---------------------------------------------------------
@contextlib.contextmanager
def kafka_broker(bootstrap: str | None) -> Iterator[tuple[str | None, str]]:
    """(bootstrap, reason-if-none): the given one, or one broker started with bench_memory's
    `kafka_cluster` (the project's infra code: pinned Apache jars, KRaft)."""
    if bootstrap:
        yield bootstrap, ""
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_memory import kafka_cluster

    with contextlib.ExitStack() as stack:
        try:
            print("starting one Kafka broker (project infra code) ...", flush=True)
            started = stack.enter_context(kafka_cluster(1))
        except Exception as exc:  # no Java, no jars, port trouble: skip the Kafka variants
            yield None, f"Kafka did not start: {type(exc).__name__}: {str(exc)[:120]}"
            return
        yield started, ""


_TIMESTAMP = re.compile(rb'"timestamp":\s*([0-9.]+)')  # the event's exchange time


@dataclass
class Watch:
    """A live consumer's record -> wall ms it became visible to read_committed consumers."""

    keep_times: bool = False  # the latency phase needs each record's time; counting does not
    count: int = 0  # records visible so far
    last_seen: float = 0.0  # monotonic time of the last record
    stop: threading.Event = field(default_factory=threading.Event)
    # (visible wall ms, broker append ms or None, exchange ms or None) per record
    rows: list[tuple[float, float | None, float | None]] = field(default_factory=list)
    future: Any = None


class KafkaProbe:
    """Topic creation, a live read_committed consumer and the read-back after a run, on a
    private event loop in a thread (its CPU is the benchmark's, not the client's)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap.split(",")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def create(self, names: Sequence[str], partitions: int) -> list[Any]:
        """Topics stamped by the broker (LogAppendTime); returns their partitions."""
        from aiokafka import TopicPartition

        from upbitpipe.infra.kafka_admin import TopicSpec, ensure_topics

        configs = {"message.timestamp.type": "LogAppendTime", "min.insync.replicas": "1"}
        specs = [TopicSpec(name, partitions, 1, configs) for name in names]
        self.call(ensure_topics(self.bootstrap, specs))
        return [TopicPartition(n, p) for n in names for p in range(partitions)]

    def watch(self, partitions: list[Any], keep_times: bool) -> Watch:
        """Start a live read_committed consumer: how many records are visible, and (with
        ``keep_times``) when each became visible (wall ms)."""
        watch = Watch(keep_times)
        watch.future = asyncio.run_coroutine_threadsafe(self._watch(partitions, watch), self.loop)
        return watch

    async def _watch(self, partitions: list[Any], watch: Watch) -> None:
        consumer = self._consumer(fetch_max_wait_ms=5)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while not watch.stop.is_set():
                batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
                now = time.time() * 1000
                for records in batches.values():
                    watch.count += len(records)
                    watch.last_seen = time.monotonic()
                    if watch.keep_times:
                        for record in records:
                            match = _TIMESTAMP.search(record.value or b"")
                            stamp = float(match.group(1)) if match else None
                            if stamp is not None and stamp < 1e11:
                                stamp *= 1000  # cryptofeed: seconds
                            append = float(record.timestamp) if record.timestamp_type == 1 else None
                            watch.rows.append((now, append, stamp))
        finally:
            await consumer.stop()

    def latencies(
        self, watch: Watch, from_ms: float, to_ms: float
    ) -> tuple[list[float], list[float]]:
        """(visible, appended) latencies in ms of the records the broker appended in the
        window: when the live read_committed consumer received them and the broker's append
        time, each minus the event's exchange `timestamp`. Called after the client stopped:
        the consumer first reads on until nothing new came for 3 s (at most 60 s), so records
        committed late are counted late, not left out."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and time.monotonic() - watch.last_seen < 3:
            time.sleep(0.2)
        watch.stop.set()
        with contextlib.suppress(Exception):
            watch.future.result(30)
        seen = {"records": len(watch.rows), "not_append_time": 0, "no_timestamp": 0}
        visible: list[float] = []
        appended: list[float] = []
        for at, append, stamp in watch.rows:
            if append is None:
                seen["not_append_time"] += 1
            elif stamp is None:
                seen["no_timestamp"] += 1
            elif from_ms <= append <= to_ms:
                visible.append(at - stamp)
                appended.append(append - stamp)
        if not visible:
            msg = f"no broker-stamped record in the window ({seen})"
            raise VariantFailed(msg)
        return visible, appended

    def _consumer(self, **options: Any) -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            **options,
        )

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --- one measured client process -----------------------------------------------------------
Counter = Callable[[], tuple[float, int] | None]  # (wall time the count held, count) or None


class Client:
    """A client process: CPU/RSS sampled by psutil, counts from a variant-specific source."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        import psutil

        self.log = log
        self.out = log.open("wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=self.out)
        self.ps = psutil.Process(self.proc.pid)
        self.cpu: list[tuple[float, float]] = []
        self.rss_peak = 0.0
        self.lines: list[tuple[float, int]] = []  # driver reports
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            parts = raw.split()
            if len(parts) == 2:
                with contextlib.suppress(ValueError):
                    self.lines.append((float(parts[0]), int(parts[1])))

    def sample(self) -> None:
        with contextlib.suppress(Exception):  # the process may be gone
            times = self.ps.cpu_times()
            self.cpu.append((time.time(), times.user + times.system))
            self.rss_peak = max(self.rss_peak, self.ps.memory_info().rss / 1e6)

    def cpu_at(self, when: float) -> float:
        """Process CPU seconds at wall time ``when``, interpolated between samples."""
        before = [s for s in self.cpu if s[0] <= when]
        after = [s for s in self.cpu if s[0] >= when]
        if not before:
            return after[0][1]
        if not after:
            return before[-1][1]
        (t0, c0), (t1, c1) = before[-1], after[0]
        return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)

    def tail(self, lines: int = 3) -> str:
        self.out.flush()
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " // ".join(line[:160] for line in text[-lines:]) or "(no output)"

    def stop(self, graceful: bool) -> None:
        """SIGTERM and wait (the collector: what users do), or kill (drivers: not measured)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.out.close()


@dataclass
class Window:
    start: tuple[float, int]
    end: tuple[float, int]


def measure_window(
    client: Client, count: Counter, warmup: float, seconds: float, start_timeout: float = 90.0
) -> Window:
    """Sample until ``seconds`` after the warm-up point; (time, count) at both ends."""
    counts: list[tuple[float, int]] = []
    started = time.monotonic()
    first: float | None = None
    while True:
        client.sample()
        got = count()
        if got is not None and (not counts or got[0] > counts[-1][0]):
            counts.append(got)
            if first is None and got[1] > 0:
                first = got[0]
        if client.proc.poll() is not None:
            msg = f"exited with {client.proc.returncode}: {client.tail()}"
            raise VariantFailed(msg)
        if first is None and time.monotonic() - started > start_timeout:
            msg = f"nothing delivered in {start_timeout:.0f} s: {client.tail()}"
            raise VariantFailed(msg)
        if first is not None:
            warm = [c for c in counts if c[0] >= first + warmup]
            if warm and counts[-1][0] >= warm[0][0] + seconds:
                if counts[-1][1] <= warm[0][1]:
                    msg = f"delivered nothing after the warm-up: {client.tail()}"
                    raise VariantFailed(msg)
                return Window(warm[0], counts[-1])
            if time.monotonic() - started > start_timeout + warmup + seconds * 3:
                msg = f"counts stopped moving (last {counts[-1][1]}): {client.tail()}"
                raise VariantFailed(msg)
        time.sleep(0.2)


# --- variants ------------------------------------------------------------------------------
@dataclass
class Context:
    args: argparse.Namespace
    kafka: str | None
    kafka_reason: str
    probe: KafkaProbe | None
    tmp: Path


def variant_note(name: str) -> str:
    return {
        "websockets": "floor: websockets + orjson, no work",
        "picows": "floor: picows + orjson, no work",
        "picows-default": "floor: picows + orjson on DEFAULT frames, no work",
        "picows-latency": "reference: twin -> picows receipt, no sink",
        "cryptofeed": "callback only; trade+orderbook (no ticker channel)",
        "cryptofeed-kafka": "KafkaCallback, acks=all; trade+orderbook; awaits each ack, "
        "queues the rest unbounded",
        "kafka": "collect --sink kafka, acks=all",
        "kafka-2types": "collect --sink kafka --types trade,orderbook",
        "kafka-uvloop": "collect --sink kafka on uvloop (collector.event_loop)",
        "archive": "collect --sink archive",
        "lake": "collect --sink lake (local disk)",
        "lake-uvloop": "collect --sink lake on uvloop (collector.event_loop)",
    }[name]


def unavailable(name: str, ctx: Context) -> str:
    """Why ``name`` cannot run here ('' when it can)."""
    import importlib.util

    if name.startswith("picows") and importlib.util.find_spec("picows") is None:
        return "picows not installed (pip install -e '.[bench]')"
    if name.endswith("-uvloop") and importlib.util.find_spec("uvloop") is None:
        return "uvloop not installed (pip install uvloop)"
    if name.startswith("cryptofeed") and importlib.util.find_spec("cryptofeed") is None:
        return "cryptofeed not installed (pip install -e '.[bench]')"
    if name in KAFKA_VARIANTS and ctx.kafka is None:
        return ctx.kafka_reason or "no Kafka"
    if not Path(cli_path()).exists():
        return f"{cli_path()} not found (pip install -e .)"
    return ""


def start_profiler(
    ctx: Context, name: str, run_id: str, client: Client, latency: bool
) -> subprocess.Popen[bytes] | None:
    """With ``--profile DIR``: py-spy samples the client (collapsed stacks, all threads)
    from its start until the window ends; not for the floors' ``python -c`` drivers'
    numbers (profiling costs the profiled process CPU: read the profile, not the row)."""
    if ctx.args.profile is None:
        return None
    ctx.args.profile.mkdir(parents=True, exist_ok=True)
    phase = "latency" if latency else "cpu"
    out = ctx.args.profile / f"{name}-{phase}-{run_id}.txt"
    beside = Path(sys.executable).with_name("py-spy")  # the bench extra's, in this venv
    argv = [
        str(beside) if beside.exists() else "py-spy",
        "record",
        "--pid",
        str(client.proc.pid),
        "--format",
        "raw",
    ]
    argv += ["--threads", "--nonblocking", "--rate", "200", "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_variant(name: str, exchange: Twin, ctx: Context, latency: bool) -> Sample:
    """Start the client, measure one window, stop it; latency from Kafka if asked."""
    run_id = uuid.uuid4().hex[:8]
    work = ctx.tmp / f"{name}-{run_id}"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPBITPIPE_")}
    env.update(SSL_CERT_FILE=exchange.cert, REQUESTS_CA_BUNDLE=exchange.cert)
    env["PYTHONUNBUFFERED"] = "1"
    types = ["trade", "orderbook"] if name in {"kafka-2types"} else TYPES
    symbols = ",".join(m.split("-")[1] + "-KRW" for m in MARKETS)
    partitions: list[Any] = []
    if name in KAFKA_VARIANTS:
        assert ctx.probe is not None
        if name.startswith("cryptofeed"):
            topics = [
                f"cf{run_id}{key}-UPBIT-{s}"
                for key in ("trades", "book")
                for s in symbols.split(",")
            ]
            partitions = ctx.probe.create(topics, 1)
        else:
            prefix = f"bench{run_id}-"
            partitions = ctx.probe.create([prefix + t for t in types], 3)
            env["UPBITPIPE_KAFKA__TOPIC_PREFIX"] = prefix

    if name in ("websockets", "picows", "picows-default"):
        from upbitpipe.upbit.codec import subscribe_request

        fmt = "DEFAULT" if name == "picows-default" else "SIMPLE"
        request = subscribe_request(uuid.uuid4().hex, TYPES, MARKETS, fmt=fmt)
        driver = WEBSOCKETS_DRIVER if name == "websockets" else PICOWS_DRIVER
        argv = [sys.executable, "-c", driver, exchange.ws_url, request]
        if latency and name == "picows":
            argv.append(str(work / "latency.txt"))
    elif name.startswith("cryptofeed"):
        kafka = ctx.kafka if name == "cryptofeed-kafka" else ""
        argv = [sys.executable, "-c", CRYPTOFEED_DRIVER, exchange.ws_url, exchange.rest_url]
        argv += [symbols, kafka or "", f"cf{run_id}"]
    else:
        sink = "kafka" if name.startswith("kafka") else name.removesuffix("-uvloop")
        argv = [cli_path(), "collect", "--markets", ",".join(MARKETS), "--sink", sink]
        argv += ["--types", ",".join(types)]
        env.update(
            UPBITPIPE_UPBIT__WEBSOCKET_URL=exchange.ws_url,
            UPBITPIPE_UPBIT__REST_URL=exchange.rest_url,
            UPBITPIPE_COLLECTOR__STATE_DIR=str(work / "state"),
            UPBITPIPE_COLLECTOR__ARCHIVE_DIR=str(work / "archive"),
            UPBITPIPE_LAKE__WAREHOUSE=str(work / "lake"),
            UPBITPIPE_METRICS__ENABLED="false",
        )
        if name.endswith("-uvloop"):
            env["UPBITPIPE_COLLECTOR__EVENT_LOOP"] = "uvloop"
        if ctx.args.upbit_format:
            env["UPBITPIPE_UPBIT__FORMAT"] = ctx.args.upbit_format
        if ctx.kafka:
            env.update(
                UPBITPIPE_KAFKA__BOOTSTRAP_SERVERS=ctx.kafka,
                UPBITPIPE_KAFKA__REPLICATION_FACTOR="1",
                UPBITPIPE_KAFKA__MIN_INSYNC_REPLICAS="1",
            )

    watch = ctx.probe.watch(partitions, keep_times=latency) if partitions and ctx.probe else None
    client = Client(argv, env, work / "client.log")
    count = make_counter(name, client, watch, work / "state" / "status.json")
    profiler = start_profiler(ctx, name, run_id, client, latency)
    try:
        window = measure_window(client, count, ctx.args.warmup, ctx.args.seconds)
    except BaseException:
        if watch is not None:
            watch.stop.set()
        raise
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(30)
        client.stop(graceful=argv[0] == cli_path())
    if watch is not None and not latency:
        watch.stop.set()
    (t0, c0), (t1, c1) = window.start, window.end
    cpu = client.cpu_at(t1) - client.cpu_at(t0)
    sample = Sample(
        msgs_per_s=(c1 - c0) / (t1 - t0),
        cpu_us_per_msg=cpu / (c1 - c0) * 1e6,
        rss_mb=client.rss_peak,
    )
    if latency:
        if name == "picows":
            lat = sorted(receipt_latencies(work / "latency.txt", t0 * 1000, t1 * 1000))
        else:
            assert ctx.probe is not None and watch is not None
            lat, appended = ctx.probe.latencies(watch, t0 * 1000, t1 * 1000)
            lat.sort()
            appended.sort()
            sample.p50_append_ms = appended[len(appended) // 2]
            sample.p99_append_ms = appended[min(len(appended) - 1, int(len(appended) * 0.99))]
        sample.p50_ms = lat[len(lat) // 2]
        sample.p99_ms = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    if not ctx.args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return sample


def receipt_latencies(path: Path, from_ms: float, to_ms: float) -> list[float]:
    """The picows reference: receipt time - exchange `tms` of messages received in the window."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and from_ms <= float(parts[0]) <= to_ms and float(parts[1]) > 0:
            out.append(float(parts[0]) - float(parts[1]))
    if not out:
        msg = "the picows reference received nothing in the window"
        raise VariantFailed(msg)
    return out


def make_counter(name: str, client: Client, watch: Watch | None, status: Path) -> Counter:
    """Where a variant's delivered count comes from (see the module docstring)."""
    if watch is not None:  # Kafka: records visible to read_committed consumers
        return lambda: (time.time(), watch.count)
    sink = name.removesuffix("-uvloop")
    if sink in {"archive", "lake"}:
        seen = [0.0]

        def from_status() -> tuple[float, int] | None:
            try:
                data = json.loads(status.read_text())
            except (OSError, ValueError):
                return None
            if data["updated_at"] <= seen[0]:
                return None
            seen[0] = data["updated_at"]
            return data["updated_at"], int(data["sinks"].get(sink, {}).get("written", 0))

        return from_status
    return lambda: client.lines[-1] if client.lines else None


# --- the run ------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    cpu_rows = {v: Row(v, variant_note(v)) for v in args.variants}
    lat_rows = {
        v: Row(
            f"{v} @{args.latency_rate:,.0f}/s",
            variant_note("picows-latency" if v == "picows" else v),
        )
        for v in LATENCY_VARIANTS
        if v in args.variants and args.latency_rate > 0
    }
    meta: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_start": os.getloadavg()[0],
        "started": time.time(),
        "collector_format": args.upbit_format or default_format(),
    }
    needs_kafka = any(v in KAFKA_VARIANTS for v in args.variants)
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = Path(tempfile.mkdtemp(prefix="bench-collector-"))
            print(f"keeping every run's files and logs in {tmp}", flush=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-collector-")))
        kafka, reason = (None, "not asked for")
        if needs_kafka:
            kafka, reason = stack.enter_context(kafka_broker(args.kafka))
        probe = KafkaProbe(kafka) if kafka else None
        if probe is not None:
            stack.callback(probe.close)
        ctx = Context(args, kafka, reason, probe, tmp)
        for row_map in (cpu_rows, lat_rows):
            for key, row in row_map.items():
                row.skipped = unavailable(key, ctx)
        fast = stack.enter_context(twin(0, tmp / "tls-max"))
        slow = stack.enter_context(twin(args.latency_rate, tmp / "tls-rate")) if lat_rows else None
        for round_no in range(1, args.runs + 1):
            plan = [(v, cpu_rows[v], fast, False) for v in args.variants]
            if slow is not None:
                plan += [(v, row, slow, True) for v, row in lat_rows.items()]
            for key, row, exchange, latency in plan:
                if row.skipped:
                    continue
                try:
                    sample = run_variant(key, exchange, ctx, latency)
                except VariantFailed as exc:
                    row.failures.append(str(exc))
                    print(f"round {round_no} {row.name:24s} FAILED: {exc}", flush=True)
                    continue
                row.samples.append(sample)
                lat = f" p50 {sample.p50_ms:.1f} ms p99 {sample.p99_ms:.1f} ms" if latency else ""
                if sample.p99_append_ms is not None:
                    lat += (
                        f" (append: p50 {sample.p50_append_ms:.1f} ms"
                        f" p99 {sample.p99_append_ms:.1f} ms)"
                    )
                print(
                    f"round {round_no} {row.name:24s} {sample.msgs_per_s:9,.0f} msgs/s "
                    f"{sample.cpu_us_per_msg:7.1f} CPU-µs/msg{lat}",
                    flush=True,
                )
    meta["load_end"] = os.getloadavg()[0]
    meta["minutes"] = (time.time() - meta.pop("started")) / 60
    return [*cpu_rows.values(), *lat_rows.values()], meta


# --- the table ---------------------------------------------------------------------------
def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def table(rows: Sequence[Row]) -> list[str]:
    """Markdown table: medians, ratios against the picows floors (SIMPLE and DEFAULT frames)
    and cryptofeed callback-only."""
    by_name = {r.name: r for r in rows}

    def cpu_of(name: str) -> float | None:
        return by_name[name].median("cpu_us_per_msg") if name in by_name else None

    picows, picows_d, cfeed = cpu_of("picows"), cpu_of("picows-default"), cpu_of("cryptofeed")
    head = "| variant | msgs/s | CPU-µs/msg | vs picows | vs picows-default | vs cryptofeed | p50 ms | p99 ms | peak RSS MB | runs | note |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.skipped or not row.samples:
            why = (
                f"skipped: {row.skipped}"
                if row.skipped
                else "failed: " + (row.failures or ["?"])[-1]
            )
            why = why.replace("|", "/")[:240]
            lines.append(f"| {row.name} | — | — | — | — | — | — | — | — | 0 | {why} |")
            continue
        cpu = row.median("cpu_us_per_msg")
        vs_p = f"{cpu / picows:.2f}x" if cpu and picows else "—"
        vs_d = f"{cpu / picows_d:.2f}x" if cpu and picows_d else "—"
        vs_c = f"{cpu / cfeed:.2f}x" if cpu and cfeed else "—"
        runs = f"{len(row.samples)}" + (f" ({len(row.failures)} failed)" if row.failures else "")
        lines.append(
            f"| {row.name} | {_fmt(row.median('msgs_per_s'), ',.0f')} | {_fmt(cpu, '.1f')} "
            f"| {vs_p} | {vs_d} | {vs_c} | {_fmt(row.median('p50_ms'), '.1f')} "
            f"| {_fmt(row.median('p99_ms'), '.1f')} | {_fmt(row.median('rss_mb'), '.0f')} "
            f"| {runs} | {row.note} |"
        )
    return lines


def verdict(rows: Sequence[Row], latency_rate: float, fmt: str | None = None) -> str:
    """The issue's targets, each MET / NOT MET / not measured. ``fmt``: the format the
    collector subscribed in (default: ``upbit.format``'s default); the picows target is
    judged against the floor in that format, and the ratio to the other floor is shown."""
    by_name = {r.name: r for r in rows}

    def cpu(name: str) -> float | None:
        return by_name[name].median("cpu_us_per_msg") if name in by_name else None

    parts = []
    like, cf = cpu("kafka-2types"), cpu("cryptofeed")
    if like and cf:
        ok = like <= TARGET_CF_RATIO * cf
        parts.append(
            f"kafka (trade+orderbook) {like / cf:.2f}x cryptofeed callback CPU "
            f"(target <= {TARGET_CF_RATIO}): {'MET' if ok else 'NOT MET'}"
        )
    else:
        parts.append("kafka vs cryptofeed: not measured")
    kafka = cpu("kafka")
    floors = {"SIMPLE": cpu("picows"), "DEFAULT": cpu("picows-default")}
    fmt = fmt or default_format()
    own = floors[fmt]
    if kafka and own:
        ok = kafka <= TARGET_PICOWS_RATIO * own
        other_fmt = "SIMPLE" if fmt == "DEFAULT" else "DEFAULT"
        other = floors[other_fmt]
        also = f"; {kafka / other:.2f}x the {other_fmt} floor" if other else ""
        parts.append(
            f"kafka {kafka / own:.2f}x picows floor on {fmt} frames, its format{also} "
            f"(target <= {TARGET_PICOWS_RATIO:g}x): {'MET' if ok else 'NOT MET'}"
        )
    else:
        name = "picows-default" if fmt == "DEFAULT" else "picows"
        parts.append(f"kafka vs {name} ({fmt} frames, the collector's format): not measured")
    lat = by_name.get(f"kafka @{latency_rate:,.0f}/s")
    p99 = lat.median("p99_ms") if lat else None
    if p99 is not None:
        ok = p99 < TARGET_P99_MS
        parts.append(
            f"p99 {p99:.1f} ms at {latency_rate:,.0f} msgs/s (target < {TARGET_P99_MS:g}): "
            f"{'MET' if ok else 'NOT MET'}"
        )
    else:
        parts.append("p99 latency: not measured")
    return "verdict: " + "; ".join(parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_collector.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="rounds (medians of these)")
    parser.add_argument("--seconds", type=float, default=15, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=3, help="s after the first message")
    parser.add_argument(
        "--variants",
        default=",".join(CPU_VARIANTS),
        help=f"comma-separated subset of {','.join(CPU_VARIANTS)}",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=5000,
        help="msgs/s of the latency phase's twin (0 = no latency phase)",
    )
    parser.add_argument("--no-latency", action="store_true", help="same as --latency-rate 0")
    parser.add_argument(
        "--kafka", default=None, help="use this bootstrap host:port instead of starting a broker"
    )
    parser.add_argument(
        "--upbit-format",
        choices=("DEFAULT", "SIMPLE"),
        default=None,
        help="subscribe the collector variants in this format (default: upbit.format's default)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep each run's files and logs")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write a py-spy profile (collapsed stacks) of each client run into this dir",
    )
    args = parser.parse_args(argv)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(CPU_VARIANTS))
    if unknown:
        parser.error(
            f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(CPU_VARIANTS)}"
        )
    args.variants = [v for v in CPU_VARIANTS if v in chosen]
    if args.no_latency:
        args.latency_rate = 0
    if args.runs < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--runs >= 1, --seconds > 0 and --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # aiokafka logs its own retries (e.g. a new topic's leader not known yet) at ERROR
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    rows, meta = run(args)
    print(f"\n{meta['date']}: {meta['command']}")
    print(
        f"{len(MARKETS)} markets, {'+'.join(TYPES)}, wss, collector subscribed in "
        f"{args.upbit_format or default_format()}; medians of {args.runs} "
        f"runs, {args.seconds:g} s windows; load average {meta['load_start']:.1f} -> "
        f"{meta['load_end']:.1f}; {meta['minutes']:.1f} min on {os.cpu_count()} CPUs"
    )
    for line in table(rows):
        print(line)
    print(verdict(rows, args.latency_rate, args.upbit_format))
    if args.json:
        payload = {
            "meta": meta,
            "rows": [
                {
                    "name": r.name,
                    "skipped": r.skipped,
                    "failures": r.failures,
                    "samples": [s.__dict__ for s in r.samples],
                }
                for r in rows
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
