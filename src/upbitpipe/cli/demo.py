"""`upbitpipe demo`: the whole embedded path offline, in one command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console

from upbitpipe.cli.context import cli_context
from upbitpipe.collector.status import CollectorStatus
from upbitpipe.demo import run_demo
from upbitpipe.logs import LogFormat, configure_logging
from upbitpipe.stats.report import gather, render

#: Without a terminal a progress line is printed at most this often (a short transcript).
PIPE_PROGRESS_EVERY_SECONDS = 5.0


def progress_line(snap: CollectorStatus) -> str:
    """One line of collector progress from a status snapshot."""
    events = ", ".join(f"{k} {v}" for k, v in sorted(snap.events.items()))
    return (
        f"  collected {events}; disconnects {snap.disconnects}; "
        f"backfilled {snap.backfilled_total}; dead letters {snap.dead_letters_total}"
    )


class ProgressPrinter:
    """Prints a progress line when it says something new: never the same line twice, and
    without a terminal at most every ``every`` seconds (a piped run stays short)."""

    def __init__(
        self,
        emit: Callable[[str], None],
        *,
        every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit = emit
        self.every = every
        self.clock = clock
        self.last_line = ""
        self.last_at = float("-inf")

    def __call__(self, snap: CollectorStatus) -> None:
        if not any(snap.events.values()):
            return  # still connecting
        line = progress_line(snap)
        now = self.clock()
        if line == self.last_line or now - self.last_at < self.every:
            return
        self.last_line, self.last_at = line, now
        self.emit(line)


def _demo_logging(ctx: typer.Context) -> None:
    """The demo narrates itself (progress lines, the stats table, the verdict), so unless
    asked otherwise it logs only warnings - the faults it injects - and as plain text even
    when piped to a file (JSON lines are for services under systemd).
    ``--log-level info`` shows the collector's own log; ``--log-format json`` JSON lines."""
    root = ctx.find_root()
    given = {
        name
        for name in ("log_level", "log_format")
        if getattr(root.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
    }
    if given == {"log_level", "log_format"}:
        return
    level = str(root.params.get("log_level", "info")) if "log_level" in given else "warning"
    fmt: LogFormat = root.params["log_format"] if "log_format" in given else "human"
    configure_logging(level, fmt)


def demo(
    ctx: typer.Context,
    duration: Annotated[
        float, typer.Option("--duration", "-d", min=3, help="Seconds to collect.")
    ] = 20,
    markets: Annotated[
        str, typer.Option("--markets", "-m", help="Synthetic markets.")
    ] = "KRW-BTC,KRW-ETH,KRW-XRP",
    rate: Annotated[
        float, typer.Option("--rate", min=1, help="Exchange messages per second.")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic market.")] = 1,
    warehouse: Annotated[
        str | None, typer.Option("--warehouse", help="Paimon warehouse (default lake.warehouse).")
    ] = None,
) -> None:
    """Replay server -> collector -> Paimon lake -> stats, with no services and no network.

    A local Upbit stand-in streams a seeded synthetic market; the connection is dropped once
    and a few garbage frames are sent, so you see reconnect, REST backfill and dead letters.
    At the end the lake is read back and checked against the trades the stand-in generated:
    each present exactly once. Exit code 1 if not.

    Examples:

      upbitpipe demo

      upbitpipe demo --duration 60 --markets KRW-BTC --rate 1000 --warehouse /tmp/lake

      upbitpipe demo > demo.txt 2>&1        # a short plain-text transcript
    """
    _demo_logging(ctx)
    settings = cli_context(ctx).settings({"lake.warehouse": warehouse})
    codes = [m.strip().upper() for m in markets.split(",") if m.strip()]
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(
        f"demo: {len(codes)} synthetic markets at {rate:.0f} msg/s for {duration:.0f}s "
        f"-> lake {settings.lake.warehouse}"
    )
    every = 0.0 if console.is_terminal else PIPE_PROGRESS_EVERY_SECONDS
    tick = ProgressPrinter(lambda line: console.print(line, markup=False), every=every)
    report = asyncio.run(
        run_demo(settings, codes, duration=duration, rate=rate, seed=seed, on_tick=tick)
    )
    demo_settings = settings.model_copy(
        update={
            "collector": settings.collector.model_copy(
                update={"state_dir": settings.collector.state_dir / "demo"}
            )
        }
    )
    Console().print(render(gather(demo_settings, ["collector", "lake"])))
    verdict = "OK" if report.ok else "FAILED"
    console.print(
        f"demo {verdict}: {report.lake_trades} trades in the lake, {report.stored_twice} stored twice; "
        f"of the {report.expected_trades} the exchange made between the first and the last one "
        f"collected, {report.missing} missing; {report.candles} one-minute candles rebuilt "
        "(upbitpipe lake candles)"
    )
    if not report.ok:
        raise typer.Exit(1)
