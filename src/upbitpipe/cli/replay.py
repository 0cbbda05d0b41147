"""`upbitpipe replay serve`: an Upbit-compatible WebSocket + REST server on one port."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from upbitpipe.cli.context import fail
from upbitpipe.replay.options import ReplayOptions
from upbitpipe.replay.server import ReplayServer

app = typer.Typer(
    help="Stand-in for the Upbit exchange: replay a capture or a seeded synthetic market.",
    no_args_is_help=True,
)


def _markets(value: str) -> list[str]:
    return [part.strip().upper() for part in value.split(",") if part.strip()]


def _clock_start(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--clock-start must be ISO 8601 (e.g. 2026-11-27T22:30:00Z), got {value!r}", code=2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@app.command("serve")
def serve(
    capture: Annotated[
        Path | None,
        typer.Argument(
            help="Capture file or directory written by the archive sink (omit with --synthetic)."
        ),
    ] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Generate a seeded synthetic market instead.")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port; 0 picks a free one.")] = 8765,
    markets: Annotated[
        str, typer.Option("--markets", help="Comma-separated synthetic markets.")
    ] = "KRW-BTC,KRW-ETH",
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="Messages/s over all markets (synthetic: default 50; a capture: ignore its "
            "recorded timing); 0 = as fast as clients read.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Synthetic market seed.")] = 1,
    speed: Annotated[
        float | None,
        typer.Option("--speed", help="Capture playback speed multiplier (default 1.0)."),
    ] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Replay the capture forever.")] = False,
    drop_after_messages: Annotated[
        int | None,
        typer.Option("--drop-after-messages", help="Cut each connection after N frames."),
    ] = None,
    drop_after_seconds: Annotated[
        float | None, typer.Option("--drop-after-seconds", help="Cut each connection after T s.")
    ] = None,
    malformed_every: Annotated[
        int | None, typer.Option("--malformed-every", help="Send a garbage frame every N frames.")
    ] = None,
    duplicate_rate: Annotated[
        float, typer.Option("--duplicate-rate", help="Share of trade frames sent twice.")
    ] = 0.0,
    reorder_rate: Annotated[
        float, typer.Option("--reorder-rate", help="Share of trade frames swapped with the next.")
    ] = 0.0,
    stall_every: Annotated[
        float | None, typer.Option("--stall-every", help="Pause sending every T seconds ...")
    ] = None,
    stall_seconds: Annotated[
        float, typer.Option("--stall-seconds", help="... for this long.")
    ] = 5.0,
    idle_timeout: Annotated[
        float,
        typer.Option("--idle-timeout", help="Cut silent connections after T s (as Upbit: 60)."),
    ] = 60.0,
    no_limits: Annotated[
        bool, typer.Option("--no-limits", help="Disable Upbit-like connect/subscribe/REST limits.")
    ] = False,
    rest_per_second: Annotated[
        float,
        typer.Option("--rest-per-second", help="REST requests/s per client and endpoint group."),
    ] = 10.0,
    clock_start: Annotated[
        str | None,
        typer.Option(
            "--clock-start",
            help="Synthetic market time at start, ISO 8601 UTC (e.g. 2026-11-27T22:30:00Z).",
        ),
    ] = None,
    trades_kept: Annotated[
        int,
        typer.Option(
            "--trades-kept",
            help="Trades kept per market for REST (memory bound; REST also stops at 7 days).",
        ),
    ] = 1_000_000,
    gap_trade_rate: Annotated[
        float | None,
        typer.Option(
            "--gap-trade-rate",
            help="Trades/s per market made for a span skipped by /_replay/advance "
            "(default: the live rate's share of trades).",
        ),
    ] = None,
    rest_errors: Annotated[
        int,
        typer.Option("--rest-errors", help="Fault: answer the first N /v1 requests with an error."),
    ] = 0,
    rest_refuse_seconds: Annotated[
        float,
        typer.Option(
            "--rest-refuse-seconds",
            help="Fault: answer every /v1/trades/ticks request with an error for T s after start.",
        ),
    ] = 0.0,
    rest_error_status: Annotated[
        int, typer.Option("--rest-error-status", help="HTTP status of those REST faults.")
    ] = 503,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve wss:// and https:// with a self-signed certificate made at start "
            "(its path is printed; clients trust it via SSL_CERT_FILE / REQUESTS_CA_BUNDLE).",
        ),
    ] = False,
    tls_dir: Annotated[
        Path | None,
        typer.Option("--tls-dir", help="Folder for the certificate (default: a temporary one)."),
    ] = None,
) -> None:
    """Serve WebSocket at /websocket/v1 and REST under /v1/ on one port until Ctrl-C.

    Examples:

      upbitpipe replay serve --synthetic --markets KRW-BTC,KRW-ETH,KRW-XRP --rate 500

      upbitpipe replay serve ./data/archive --speed 10

      upbitpipe replay serve ./data/archive/dt=2026-11-23 --rate 0 --loop

      upbitpipe replay serve --synthetic --port 0 --drop-after-seconds 30 --duplicate-rate 0.01

      upbitpipe replay serve --synthetic --clock-start 2026-11-27T22:30:00Z --gap-trade-rate 50

      upbitpipe replay serve --synthetic --tls   (wss:// for clients that accept nothing else)

    REST as on Upbit: /v1/market/all, /v1/ticker?markets=A,B, /v1/trades/ticks (count up
    to 500, newest first, one UTC day - today, or daysAgo=1..7 days back - paged with
    cursor=<sequential_id> and to=HHmmss; trades are kept for 7 days of market time).

    Test controls (not Upbit; all faults are off unless asked for):

      GET /_replay/advance?hours=3[&trade_rate=50][&force=1]  jump the synthetic market
      clock forward, making the skipped span's trades (REST only; refused while a
      WebSocket client is subscribed unless force=1)

      GET /_replay/clock  market time now and every skipped span with its trade counts

      GET /_replay/trade_ids?market=KRW-BTC[&from_ms=..&to_ms=..]  ground truth ids;
      /_replay/trades?... the trades themselves

      GET /_replay/fault?rest_errors=N[&status=429]  the next N /v1 answers are errors;
      ?rest_refuse_seconds=T[&status=503]  /v1/trades/ticks refuses for T s;
      ?rest_refuse_before_ms=MS  refuse ticks pages holding older trades;
      ?rest_forget_before_ms=MS  REST no longer serves older trades;
      ?clear=1  remove REST faults;  ?drop=1  cut every WebSocket connection

      GET /_replay/stats  counters
    """
    if (capture is None) == (not synthetic):
        fail("give a capture FILE or --synthetic (not both)", code=2)
    if clock_start is not None and not synthetic:
        fail("--clock-start applies to --synthetic", code=2)
    if capture is not None and not capture.exists():
        fail(f"capture {capture} does not exist", code=2)
    if speed is not None and rate is not None:
        fail("use --speed (recorded timing) or --rate (fixed rate), not both", code=2)
    if synthetic and speed is not None:
        fail("--speed applies to a capture; use --rate with --synthetic", code=2)
    options = ReplayOptions(
        host=host,
        port=port,
        markets=_markets(markets),
        seed=seed,
        rate=50.0 if rate is None else rate,
        speed=None if rate is not None else (speed or 1.0),
        capture=capture,
        loop_capture=loop,
        drop_after_messages=drop_after_messages,
        drop_after_seconds=drop_after_seconds,
        malformed_every=malformed_every,
        duplicate_rate=duplicate_rate,
        reorder_rate=reorder_rate,
        stall_every_seconds=stall_every,
        stall_seconds=stall_seconds,
        idle_timeout_seconds=idle_timeout,
        rest_per_second=rest_per_second,
        clock_start_ms=_clock_start(clock_start),
        gap_trade_rate=gap_trade_rate,
        trades_kept=trades_kept,
        rest_error_count=rest_errors,
        rest_error_status=rest_error_status,
        rest_refuse_seconds=rest_refuse_seconds,
        tls=tls,
        tls_dir=tls_dir,
    )
    if no_limits:
        options.connect_per_second = options.subscribe_per_second = None
        options.subscribe_per_minute = None
        options.rest_per_second = None
    try:
        options.validate()
    except ValueError as exc:
        fail(str(exc), code=2)
    asyncio.run(_serve(options))


async def _serve(options: ReplayOptions) -> None:
    server = ReplayServer(options)
    await server.start()
    source = (
        f"capture {options.capture}"
        if options.capture
        else f"synthetic {','.join(options.markets)} at {options.rate:g} msg/s, seed {options.seed}"
    )
    typer.echo(f"replay server ({source})")
    typer.echo(f"  websocket: {server.ws_url}")
    typer.echo(f"  rest:      {server.rest_url}")
    if server.cert_path is not None:
        typer.echo(f"  certificate: {server.cert_path}")
    if options.clock_start_ms is not None:
        start = datetime.fromtimestamp(options.clock_start_ms / 1000, tz=UTC)
        typer.echo(f"  market clock started at {start:%Y-%m-%dT%H:%M:%SZ}")
    typer.echo("point upbitpipe at it:")
    typer.echo(f"  export UPBITPIPE_UPBIT__WEBSOCKET_URL={server.ws_url}")
    typer.echo(f"  export UPBITPIPE_UPBIT__REST_URL={server.rest_url}")
    if server.cert_path is not None:
        typer.echo(
            f"  export SSL_CERT_FILE={server.cert_path} REQUESTS_CA_BUNDLE={server.cert_path}"
        )
    typer.echo("Ctrl-C stops.", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        stats = server.stats_snapshot()
        typer.echo(
            f"stopped: {stats.get('messages_generated', 0)} messages generated, "
            f"{stats.get('frames_sent', 0)} frames sent, "
            f"{stats.get('connections_total', 0)} connections",
            err=True,
        )
