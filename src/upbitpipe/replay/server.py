"""An Upbit-compatible WebSocket + REST server on one port, for tests, demos and benchmarks.

WebSocket at ``/websocket/v1`` (binary frames; text ``PING`` -> ``{"status":"UP"}``; error
frames for bad requests; idle close), REST under ``/v1/`` consistent with what was streamed
(see :mod:`upbitpipe.replay.rest_api`). Usage::

    async with ReplayServer(ReplayOptions(markets=["KRW-BTC"], rate=200)) as server:
        ...  # point upbit.websocket_url at server.ws_url, upbit.rest_url at server.rest_url

or, from synchronous code, ``server.start_in_thread()`` / ``server.stop_thread()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from upbitpipe.errors import ServiceUnavailableError
from upbitpipe.replay.clock import MarketClock, SkippedSpan, wall_ms
from upbitpipe.replay.frames import STATUS_UP, WireEvent, error_frame
from upbitpipe.replay.http import json_response
from upbitpipe.replay.limits import KeyedLimits
from upbitpipe.replay.market import SyntheticMarket
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.rest_api import RestApi
from upbitpipe.replay.rest_faults import RestFaults
from upbitpipe.replay.session import ClientSession, ReplayConnection
from upbitpipe.replay.sources import capture_markets, run_capture, run_synthetic
from upbitpipe.replay.subscription import RequestError, parse_request
from upbitpipe.replay.tls import make_certificate, server_context
from upbitpipe.replay.tradebook import TradeStore

log = logging.getLogger(__name__)
WS_PATH = "/websocket/v1"

_ws_log = logging.getLogger("upbitpipe.replay.websockets")
T = TypeVar("T")


class ReplayServer:
    """See the module docstring; construct, then ``start()`` (or ``async with``)."""

    def __init__(self, options: ReplayOptions | None = None) -> None:
        self.options = options or ReplayOptions()
        self.options.validate()
        self.stats: Counter[str] = Counter()
        self.trades = TradeStore(self.options.trades_kept)
        self.sessions: set[ClientSession] = set()
        self._latest: dict[tuple[str, str], WireEvent] = {}
        # a capture lists the markets it holds (scanned at start), not the synthetic default
        self._markets: list[str] = [] if self.options.capture else list(self.options.markets)
        self.clock = MarketClock(self.options.clock_start_ms)
        self.market: SyntheticMarket | None = None
        if self.options.capture is None:
            self.market = SyntheticMarket(
                self.options.markets,
                self.options.seed,
                self.clock.now_ms(),
                self.options.orderbook_share,
            )
        self.rest_faults = RestFaults(
            error_budget=self.options.rest_error_count,
            error_status=self.options.rest_error_status,
            refuse_status=self.options.rest_error_status,
            refuse_before_ms=self.options.rest_refuse_before_ms,
        )
        self._rest = RestApi(self)
        self._connects = KeyedLimits(self.options.connect_per_second)
        self._server: Server | None = None
        self._source: asyncio.Task[None] | None = None
        self._port = 0
        self._session_seq = 0
        self._started_at = 0.0
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._subscribed = asyncio.Event()
        self._filling = False  # a clock jump is making trades: live generation pauses
        self.cert_path: Path | None = None  # with tls: the certificate clients must trust

    # --- addresses ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.options.tls else "ws"
        return f"{scheme}://{self._url_host}:{self._port}{WS_PATH}"

    @property
    def rest_url(self) -> str:
        scheme = "https" if self.options.tls else "http"
        return f"{scheme}://{self._url_host}:{self._port}"

    @property
    def _url_host(self) -> str:
        host = self.options.host
        if host in ("0.0.0.0", ""):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self._server is not None:
            return
        options = self.options
        if _ws_log.level == logging.NOTSET:  # websockets logs every REST answer as a rejection
            _ws_log.setLevel(logging.WARNING)
        context = None
        if options.tls:
            directory = options.tls_dir or Path(tempfile.mkdtemp(prefix="upbitpipe-replay-tls-"))
            self.cert_path, key_path = make_certificate(directory, options.host)
            context = server_context(self.cert_path, key_path)
        try:
            self._server = await serve(
                self._handle_ws,
                options.host,
                options.port,
                process_request=self._process_request,
                process_response=self._process_response,
                create_connection=ReplayConnection,
                compression="deflate" if options.compression else None,
                ping_interval=None,  # Upbit does not ping clients; clients keep themselves alive
                write_limit=options.write_buffer_bytes,
                max_size=2**16,
                open_timeout=120,  # a clock jump answers /_replay/advance after its trades
                logger=_ws_log,
                ssl=context,
            )
        except OSError as exc:
            msg = f"replay server cannot listen on {options.host}:{options.port}: {exc.strerror or exc}"
            raise ServiceUnavailableError(msg) from None
        if options.capture is not None:
            for market in await asyncio.to_thread(capture_markets, options.capture):
                if market not in self._markets:
                    self._markets.append(market)
        self._port = self._server.sockets[0].getsockname()[1]
        self._started_at = time.monotonic()
        if options.rest_refuse_seconds:
            self.rest_faults.refuse_for(options.rest_refuse_seconds, options.rest_error_status)
        self._source = asyncio.get_running_loop().create_task(self._run_source())
        log.info("replay server listening on %s and %s", self.ws_url, self.rest_url)

    async def stop(self) -> None:
        if self._source is not None:
            self._source.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._source
            self._source = None
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> None:
        """Run the server on its own event loop in a daemon thread (for sync tests/benchmarks)."""
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=main, name="replay-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            msg = f"replay server did not start within {timeout}s"
            raise ServiceUnavailableError(msg)
        if failure:
            self._thread = None
            raise failure[0]

    def stop_thread(self, timeout: float = 10.0) -> None:
        thread, loop = self._thread, self._thread_loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self._thread_loop = None

    # --- sources and fan-out ------------------------------------------------------------
    async def _run_source(self) -> None:
        options = self.options
        try:
            if options.capture is not None:
                if options.wait_for_subscriber:
                    await self._subscribed.wait()
                await run_capture(
                    options.capture,
                    speed=options.speed,
                    rate=options.rate,
                    loop=options.loop_capture,
                    dispatch=self.dispatch,
                    on_skip=self._count_skip,
                )
            elif self.market is not None:
                await run_synthetic(
                    self.market,
                    options.rate,
                    self.dispatch,
                    self._backlog,
                    self.clock.now_ms,
                    lambda: self._filling,
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("replay source failed")
            raise

    def _count_skip(self) -> None:
        self.stats["capture_frames_skipped"] += 1

    def _backlog(self) -> int | None:
        listening = [len(s.queue) for s in self.sessions if s.routes]
        return max(listening) if listening else None

    def dispatch(self, events: list[WireEvent]) -> None:
        """Record events (trades for REST, latest for snapshots) and queue them to clients."""
        latest = self._latest
        trades = 0
        for event in events:
            if event.key not in latest and event.market not in self._markets:
                self._markets.append(event.market)
            latest[event.key] = event
            if event.is_trade:
                self.trades.add(event.wire)
                trades += 1
        self.stats["messages_generated"] += len(events)
        self.stats["trades_generated"] += trades
        for session in self.sessions:
            if session.routes:
                session.offer(events)

    def latest(self, kind: str, market: str) -> WireEvent | None:
        return self._latest.get((kind, market))

    def market_codes(self) -> list[str]:
        return self._markets

    def generated_trades(
        self, market: str, from_ms: int = 0, to_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """Kept trades of ``market`` (trade time in ``[from_ms, to_ms)``), oldest first, in
        the collector's trade shape: the ground truth tests compare a lake against."""
        return self.trades.normalised(market, from_ms, to_ms)

    def trade_ids(self, market: str, from_ms: int = 0, to_ms: int | None = None) -> list[int]:
        """``sequential_id`` of every kept trade of ``market`` in ``[from_ms, to_ms)``."""
        return self.trades.ids(market, from_ms, to_ms)

    # --- market clock -------------------------------------------------------------------
    def market_now_ms(self) -> int:
        """Market time: the synthetic clock, or a capture's newest trade (else wall time)."""
        if self.market is not None:
            return self.clock.now_ms()
        return self.trades.newest_ms() or wall_ms()

    def clock_snapshot(self) -> dict[str, Any]:
        return {**self.clock.as_json(), "now_ms": self.market_now_ms()}

    def advance_clock(
        self, span_ms: int, *, trade_rate: float | None = None, force: bool = False
    ) -> SkippedSpan:
        """Jump market time forward by ``span_ms``, making that span's trades (REST only).

        ``trade_rate`` is trades per second per market (default: ``gap_trade_rate`` or the
        live rate's share). Raises ``ValueError`` for a capture, a bad span, or while a
        WebSocket client is subscribed (unless ``force``: it then misses the span). Safe
        to call from another thread when the server runs in :meth:`start_in_thread`.
        """
        return self._call(lambda: self._advance(span_ms, trade_rate, force))

    async def advance_clock_async(
        self, span_ms: int, *, trade_rate: float | None = None, force: bool = False
    ) -> SkippedSpan:
        """:meth:`advance_clock` for the server's own loop: the trades are made in a worker
        thread while live generation pauses, so REST and WebSocket stay responsive."""
        market, rate = self._check_advance(trade_rate, force)
        if self._filling:
            msg = "the clock is already moving"
            raise ValueError(msg)
        self._filling = True
        try:
            span = self.clock.jump(span_ms)
            span.trades = await asyncio.to_thread(
                market.fill, span.from_ms, span.to_ms, rate, self.trades
            )
        finally:
            self._filling = False
        return self._after_fill(span)

    def _check_advance(
        self, trade_rate: float | None, force: bool
    ) -> tuple[SyntheticMarket, float]:
        market = self.market
        if market is None:
            msg = "the clock of a capture cannot be moved"
            raise ValueError(msg)
        if not force and any(s.routes for s in self.sessions):
            msg = "a WebSocket client is subscribed (disconnect it first, or force=1)"
            raise ValueError(msg)
        rate = trade_rate or self.options.gap_trade_rate or market.trade_rate(self.options.rate)
        if not 0 < rate <= 1000:
            msg = f"trade_rate must be within (0, 1000] trades/s per market, got {rate}"
            raise ValueError(msg)
        return market, rate

    def _advance(self, span_ms: int, trade_rate: float | None, force: bool) -> SkippedSpan:
        market, rate = self._check_advance(trade_rate, force)
        span = self.clock.jump(span_ms)
        span.trades = market.fill(span.from_ms, span.to_ms, rate, self.trades)
        return self._after_fill(span)

    def _after_fill(self, span: SkippedSpan) -> SkippedSpan:
        made = sum(span.trades.values())
        self.stats["trades_generated"] += made
        self.stats["trades_skipped_span"] += made
        self.trades.expire(span.to_ms)
        log.info(
            "market clock moved %d ms ahead: %d trades made in the span",
            span.to_ms - span.from_ms,
            made,
        )
        return span

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (waiting for it) when called from another thread."""
        loop = self._thread_loop
        if loop is None or threading.current_thread() is self._thread:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=120)

    def drop_connections(self) -> int:
        """Cut every open WebSocket connection (a network failure); returns how many.

        Safe to call from another thread when the server runs in :meth:`start_in_thread`.
        """
        sessions = list(self.sessions)
        for session in sessions:
            self._on_loop(session.drop)
        return len(sessions)

    def inject_rest_errors(self, count: int, status: int = 429) -> None:
        """Answer the next ``count`` ``/v1`` requests with ``status`` (any thread)."""

        def apply() -> None:
            self.rest_faults.error_budget = count
            self.rest_faults.error_status = status

        self._on_loop(apply)

    def refuse_rest(self, seconds: float, status: int = 503) -> None:
        """Answer every ``/v1/trades/ticks`` request with ``status`` for ``seconds``."""
        self._on_loop(lambda: self.rest_faults.refuse_for(seconds, status))

    def refuse_rest_before(self, market_ms: int | None, status: int = 503) -> None:
        """Refuse (``status``) any ticks page holding a trade older than ``market_ms``."""

        def apply() -> None:
            self.rest_faults.refuse_before_ms = market_ms
            self.rest_faults.refuse_status = status

        self._on_loop(apply)

    def forget_before(self, market_ms: int) -> None:
        """REST serves no trade older than ``market_ms`` (ground truth still has them)."""

        def apply() -> None:
            self.trades.served_from_ms = market_ms

        self._on_loop(apply)

    def _on_loop(self, fn: Any) -> None:
        loop = self._thread_loop
        if loop is not None and threading.current_thread() is not self._thread:
            loop.call_soon_threadsafe(fn)
        else:
            fn()

    def stats_snapshot(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.stats)
        data["connections_open"] = len(self.sessions)
        data["uptime_seconds"] = round(time.monotonic() - self._started_at, 3)
        data["markets"] = list(self._markets)
        data["trades_kept"] = {m: self.trades.count(m) for m in self.trades.markets()}
        return data

    # --- HTTP and WebSocket -------------------------------------------------------------
    def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | Awaitable[Response] | None:
        client = str((connection.remote_address or ("?",))[0])
        path = request.path.partition("?")[0].rstrip("/")
        if path == WS_PATH:
            allowed, remaining = self._connects.take(client)
            if isinstance(connection, ReplayConnection):
                connection.remaining_connects = remaining
            if not allowed:
                self.stats["connections_rejected"] += 1
                return json_response(
                    429,
                    {"error": {"name": "too_many_requests", "message": "Too many connections."}},
                )
            return None
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return json_response(404, {"error": {"name": "not_found", "message": "use " + WS_PATH}})
        return self._rest.handle(client, request)

    def _process_response(
        self, connection: ServerConnection, _request: Request, response: Response
    ) -> Response:
        """Upgrade answers carry Upbit's connect budget headers, as the live service sends."""
        if response.status_code == 101:
            remaining = getattr(connection, "remaining_connects", 0)
            response.headers["Remaining-Req"] = f"group=websocket; min=300; sec={remaining}"
            response.headers["limit-by-ip"] = "Yes"
        return response

    async def _handle_ws(self, ws: ServerConnection) -> None:
        self._session_seq += 1
        session = ClientSession(ws, self.options, self.stats, self.options.seed + self._session_seq)
        self.sessions.add(session)
        self.stats["connections_total"] += 1
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(session.run_sender()),
            loop.create_task(session.watch_idle()),
        ]
        timer = None
        if self.options.drop_after_seconds:
            timer = loop.call_later(self.options.drop_after_seconds, session.drop)
        try:
            async for message in ws:
                if message in ("PING", b"PING"):
                    self.stats["pings"] += 1
                    session.send_control(STATUS_UP)
                    continue
                self._on_request(session, message)
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(session)
            if timer is not None:
                timer.cancel()
            for task in tasks:
                task.cancel()
            if session.closing is not None:
                tasks.append(session.closing)
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_request(self, session: ClientSession, message: str | bytes) -> None:
        if not session.allow_request():
            self.stats["requests_rate_limited"] += 1
            session.send_control(error_frame("TOO_MANY_REQUEST", "too many subscribe requests"))
            return
        try:
            subscription = parse_request(message)
        except RequestError as exc:
            self.stats["request_errors"] += 1
            session.send_control(error_frame(exc.name, exc.message))
            session.close_after_error()
            return
        self.stats["subscriptions"] += 1
        self._subscribed.set()
        fmt = subscription.format
        snapshot_keys = {(kind, market) for kind, market, _ in subscription.snapshots()}
        session.replace(fmt, subscription.routes(), snapshot_keys)
        snapshots = []
        for kind, market, depth in subscription.snapshots():
            event = self._latest.get((kind, market))
            if event is not None:
                snapshots.append(event.frame(fmt, depth, snapshot=True))
        if snapshots:
            session.enqueue(snapshots)
