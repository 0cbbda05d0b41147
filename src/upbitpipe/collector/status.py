"""Collector counters, the machine-readable status file and the Prometheus endpoint.

The hot path only bumps plain ints in :class:`CollectorCounters`. Everything else reads a
snapshot: the status file (``<state_dir>/status.json``, rewritten atomically every few
seconds, read by ``upbitpipe stats``) and a Prometheus collector evaluated on scrape.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

STATUS_FILE = "status.json"


@dataclass
class CollectorCounters:
    started_at: float = field(default_factory=time.time)
    events: Counter[str] = field(default_factory=Counter)  # by type, emitted once
    backfilled: Counter[str] = field(default_factory=Counter)  # by market
    duplicates: int = 0
    status_frames: int = 0
    frames: int = 0
    last_event_ms: int = 0


Snapshot = Callable[[], dict[str, Any]]


def write_status(path: Path, snapshot: dict[str, Any]) -> None:
    """Atomic replace so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(snapshot, option=orjson.OPT_INDENT_2))
    tmp.replace(path)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        snap = self.snapshot()
        events = CounterMetricFamily(
            "upbitpipe_events", "Events emitted once, by type", labels=["type"]
        )
        for event_type, count in snap["events"].items():
            events.add_metric([event_type], count)
        yield events
        yield CounterMetricFamily(
            "upbitpipe_frames", "WebSocket frames received", value=snap["frames"]
        )
        yield CounterMetricFamily(
            "upbitpipe_duplicates", "Events dropped as duplicates", value=snap["duplicates"]
        )
        backfill = CounterMetricFamily(
            "upbitpipe_backfilled_trades", "Trades recovered from REST", labels=["market"]
        )
        for market, count in snap["backfilled"].items():
            backfill.add_metric([market], count)
        yield backfill
        dead = CounterMetricFamily(
            "upbitpipe_dead_letters", "Frames dead-lettered", labels=["kind"]
        )
        for kind, count in snap["dead_letters"].items():
            dead.add_metric([kind], count)
        yield dead
        connected = GaugeMetricFamily(
            "upbitpipe_connection_up", "1 if the shard is connected", labels=["shard"]
        )
        reconnects = CounterMetricFamily(
            "upbitpipe_disconnects", "Connection losses", labels=["shard"]
        )
        for conn in snap["connections"]:
            connected.add_metric([str(conn["shard"])], 1.0 if conn["connected"] else 0.0)
            reconnects.add_metric([str(conn["shard"])], conn["disconnects"])
        yield connected
        yield reconnects
        sink_gauge = GaugeMetricFamily(
            "upbitpipe_sink", "Sink counters", labels=["sink", "counter"]
        )
        for sink, counters in snap["sinks"].items():
            for name, value in counters.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    sink_gauge.add_metric([sink, name], float(value))
                elif isinstance(value, bool):
                    sink_gauge.add_metric([sink, name], 1.0 if value else 0.0)
        yield sink_gauge


def serve_metrics(snapshot: Snapshot, host: str, port: int) -> tuple[int, Callable[[], None]]:
    """Start the Prometheus endpoint on its own registry; returns (port, shutdown)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    server, thread = start_http_server(port, addr=host, registry=registry)
    bound = int(server.server_address[1])

    def shutdown() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return bound, shutdown
