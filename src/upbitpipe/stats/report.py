"""Gather every source concurrently (threads, bounded time) and render with rich."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from upbitpipe.config import Settings
from upbitpipe.stats.sources import ALL_SOURCES, Section

STATE_STYLE = {
    "ok": "green",
    "degraded": "yellow",
    "idle": "dim",
    "down": "red",
    "stale": "yellow",
    "stopped": "yellow",
    "skipped": "dim",
}


QUIET_LOGGERS = ("aiokafka", "kafka", "clickhouse_driver", "asyncio", "urllib3", "httpx")


def gather(settings: Settings, names: Sequence[str]) -> list[Section]:
    """Every source at once; client libraries' own connection-error logs are muted, the
    section's one-line detail says what is wrong instead."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        futures = [pool.submit(ALL_SOURCES[name], settings) for name in names]
        return [f.result() for f in futures]


def as_json(sections: Sequence[Section]) -> dict[str, Any]:
    return {s.name: asdict(s) for s in sections}


def render(sections: Sequence[Section]) -> Group:
    parts: list[Table | Text] = []
    for section in sections:
        style = STATE_STYLE.get(section.state, "")
        title = Text.assemble(
            (section.name, "bold"), " ", (section.state, style), " ", (section.detail, "dim")
        )
        if not section.rows:
            parts.append(title)
            continue
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("what", style="cyan")
        table.add_column("value", justify="right")
        table.add_column("rate/s", justify="right")
        table.add_column("detail", style="dim", overflow="fold")
        for row in section.rows:
            table.add_row(
                str(row.get("what", "")),
                str(row.get("value", "")),
                str(row.get("rate_per_s", "")),
                str(row.get("detail", "")),
            )
        parts.append(table)
    return Group(*parts)
