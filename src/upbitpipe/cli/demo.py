"""`upbitpipe demo`: the whole embedded path offline, in one command."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from upbitpipe.cli.context import cli_context, fail
from upbitpipe.collector.status import CollectorStatus
from upbitpipe.demo import run_demo
from upbitpipe.errors import UpbitpipeError
from upbitpipe.stats.report import gather, render


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
    """
    settings = cli_context(ctx).settings({"lake.warehouse": warehouse})
    codes = [m.strip().upper() for m in markets.split(",") if m.strip()]
    console = Console(stderr=True, highlight=False)
    console.print(
        f"demo: {len(codes)} synthetic markets at {rate:.0f} msg/s for {duration:.0f}s "
        f"-> lake {settings.lake.warehouse}"
    )

    def tick(snap: CollectorStatus) -> None:
        events = ", ".join(f"{k} {v}" for k, v in sorted(snap.events.items()))
        console.print(
            f"  collected {events}; disconnects {snap.disconnects}; "
            f"backfilled {snap.backfilled_total}"
        )

    try:
        report = asyncio.run(
            run_demo(settings, codes, duration=duration, rate=rate, seed=seed, on_tick=tick)
        )
    except UpbitpipeError as exc:
        fail(str(exc))
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
