"""Gather every source concurrently (threads, bounded time) and render with rich."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
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


GATHER_DEADLINE_SECONDS = 8.0


def gather(
    settings: Settings, names: Sequence[str], *, deadline: float = GATHER_DEADLINE_SECONDS
) -> list[Section]:
    """Every source at once; client libraries' own connection-error logs are muted, the
    section's one-line detail says what is wrong instead.

    A source that has not answered within ``deadline`` seconds (a client library retrying
    behind its own timeouts) is reported as down; it runs in a daemon thread, so `stats`
    neither waits for it nor hangs at exit.
    """
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    results: dict[str, Section] = {}

    def run(name: str) -> None:
        results[name] = ALL_SOURCES[name](settings)

    threads = [
        threading.Thread(target=run, args=(name,), name=f"stats-{name}", daemon=True)
        for name in names
    ]
    for thread in threads:
        thread.start()
    ends_at = time.monotonic() + deadline
    for thread in threads:
        thread.join(timeout=max(0.0, ends_at - time.monotonic()))
    return [
        results.get(name) or Section(name, "down", f"no answer within {deadline:.0f}s")
        for name in names
    ]


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
