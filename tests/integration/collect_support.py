"""Helpers shared by the collector integration tests: settings against a replay server,
and readers for what each sink wrote."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from upbitpipe.config import Settings, load_settings
from upbitpipe.lake.tables import lake_catalog_options
from upbitpipe.replay.capture import read_capture
from upbitpipe.replay.server import ReplayServer
from upbitpipe.upbit.codec import MalformedFrameError, MarketEvent, parse_frame


def collector_settings(tmp_path: Path, server: ReplayServer, **overrides: Any) -> Settings:
    """Settings pointing at ``server`` with small, fast knobs for tests."""
    flat: dict[str, Any] = {
        "upbit.websocket_url": server.ws_url,
        "upbit.rest_url": server.rest_url,
        "upbit.silence_timeout_seconds": 5,
        "collector.state_dir": str(tmp_path / "state"),
        "collector.reconnect_initial_delay_seconds": 0.2,
        "collector.reconnect_max_delay_seconds": 1.0,
        "collector.shutdown_timeout_seconds": 20,
        "collector.status_interval_seconds": 0.5,
        "lake.warehouse": str(tmp_path / "lake"),
        "lake.commit_interval_seconds": 1.0,
        "lake.buckets": 1,
        "metrics.port": 0,
    }
    flat.update(overrides)
    return load_settings(overrides=flat, env={}).settings


def lake_trade_ids(settings: Settings) -> Counter[tuple[str, int]]:
    """(market, sequential_id) of every trade row as read back, merged, by pypaimon."""
    from pypaimon import CatalogFactory

    catalog = CatalogFactory.create(lake_catalog_options(settings))
    table = catalog.get_table(f"{settings.lake.database}.trade")
    builder = table.new_read_builder()
    splits = builder.new_scan().plan().splits()
    arrow = builder.new_read().to_arrow(splits)
    rows = arrow.select(["market", "sequential_id"]).to_pylist()
    return Counter((r["market"], r["sequential_id"]) for r in rows)


def archive_trade_ids(root: Path) -> Counter[tuple[str, int]]:
    out: Counter[tuple[str, int]] = Counter()
    for _, frame in read_capture(root):
        try:
            event = parse_frame(frame)
        except MalformedFrameError:
            continue
        if isinstance(event, MarketEvent) and event.type == "trade":
            out[(event.market, int(event.data["sequential_id"]))] += 1
    return out


def expected_trade_ids(
    server: ReplayServer, collected: Counter[tuple[str, int]], markets: list[str]
) -> set[tuple[str, int]]:
    """Every trade the exchange generated between the first and last trade we collected
    (per market): all of them must be there, whatever the outages in between."""
    expected: set[tuple[str, int]] = set()
    for market in markets:
        generated = server.generated_trades(market)
        by_sid = {int(t["sequential_id"]): int(t["trade_timestamp"]) for t in generated}
        ours = [by_sid[sid] for (m, sid) in collected if m == market and sid in by_sid]
        if not ours:
            continue
        lo, hi = min(ours), max(ours)
        expected |= {(market, sid) for sid, ts in by_sid.items() if lo <= ts <= hi}
    return expected
