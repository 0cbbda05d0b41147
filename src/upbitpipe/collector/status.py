"""Collector counters, the machine-readable status file and the Prometheus endpoint.

The hot path only bumps plain ints in :class:`CollectorCounters`. Everything else reads a
snapshot, a typed :class:`CollectorStatus`: the status file (``<state_dir>/status.json``,
rewritten atomically every few seconds, read by ``upbitpipe stats``) and a Prometheus
collector evaluated on scrape.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from upbitpipe.errors import ConfigError, StateFileError

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


class _StatusModel(BaseModel):
    # unknown keys are ignored: a newer collector may add fields an older `stats` reads
    model_config = ConfigDict(extra="ignore")


class ConnectionStatus(_StatusModel):
    """One WebSocket connection (a shard of markets)."""

    shard: int
    markets: int
    connected: bool
    connects: int = 0
    disconnects: int = 0
    frames: int = 0
    last_frame_at: float = 0.0
    last_error: str = ""


class BackfillStatus(_StatusModel):
    """REST backfill runs (one per gap attempt) and the requests they made."""

    runs: int = 0
    completed: int = 0
    failed: int = 0
    requests: int = 0
    running: int = 0


class GapStatus(_StatusModel):
    """A gap record REST could not fill (``<state_dir>/gaps.json``): the trades of
    ``market`` after ``from_ms``/``from_sid`` and before ``to_ms``/``to_sid``."""

    market: str
    from_ms: int
    from_sid: int | None = None
    to_ms: int | None = None
    to_sid: int | None = None
    state: str = "missing"
    reason: str = ""
    attempts: int = 0


class CollectorStatus(_StatusModel):
    """The collector's status contract: written as ``status.json`` by the collector (every
    ``collector.status_interval_seconds`` and at stop), read by ``stats``, the demo and the
    Prometheus endpoint, returned by ``run_collector``. One model, one writer
    (:func:`write_status`), one reader (:func:`read_status`)."""

    instance_id: str
    pid: int
    updated_at: float
    started_at: float
    markets: list[str]
    types: list[str]
    frames: int = 0
    events: dict[str, int] = Field(default_factory=dict)
    duplicates: int = 0
    status_frames: int = 0
    # DEFAULT frames a Kafka-only collector's lite read left to the full parse (see
    # FrameGate.lite_fallbacks): stored all the same, at more CPU
    lite_fallbacks: int = 0
    backfilled: dict[str, int] = Field(default_factory=dict)
    last_event_ms: int = 0
    dead_letters: dict[str, int] = Field(default_factory=dict)
    dead_letter_write_failures: int = 0
    connections: list[ConnectionStatus] = Field(default_factory=list)
    # per sink: its own counters (``Sink.stats()``) plus the runner's (``SinkRunner.stats()``:
    # queued, written, write_errors, backpressure_* and the stop spool's counters)
    sinks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    backfill: BackfillStatus = Field(default_factory=BackfillStatus)
    gaps_open: int = 0  # gap records not closed yet (being backfilled or missing)
    gaps_missing: list[GapStatus] = Field(default_factory=list)  # what REST could not give
    resume_ms: dict[str, int] = Field(default_factory=dict)  # durable resume point per market
    metrics_url: str | None = None
    stopped: bool = False

    @property
    def backfilled_total(self) -> int:
        return sum(self.backfilled.values())

    @property
    def dead_letters_total(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def disconnects(self) -> int:
        return sum(conn.disconnects for conn in self.connections)


Snapshot = Callable[[], CollectorStatus]


def write_status(path: Path, status: CollectorStatus) -> None:
    """Atomic replace so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(status.model_dump_json(indent=2).encode())
    tmp.replace(path)


def read_status(path: Path) -> CollectorStatus | None:
    """The status a collector wrote at ``path``; None if there is none (yet).

    Raises :class:`StateFileError` with one line when the path is not a readable file or
    holds something other than a collector status (truncated, garbage, wrong shape).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        msg = f"status file {path}: cannot read it ({exc.strerror or exc})"
        raise StateFileError(msg) from None
    try:
        return CollectorStatus.model_validate_json(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"])
        detail = f"{where}: {err['msg']}" if where else err["msg"]
        msg = f"status file {path} is not a collector status ({detail})"
        raise StateFileError(msg) from None


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        snap = self.snapshot()
        events = CounterMetricFamily(
            "upbitpipe_events", "Events emitted once, by type", labels=["type"]
        )
        for event_type, count in snap.events.items():
            events.add_metric([event_type], count)
        yield events
        yield CounterMetricFamily(
            "upbitpipe_frames", "WebSocket frames received", value=snap.frames
        )
        yield CounterMetricFamily(
            "upbitpipe_duplicates", "Events dropped as duplicates", value=snap.duplicates
        )
        yield CounterMetricFamily(
            "upbitpipe_lite_fallbacks",
            "DEFAULT frames the collector's lite read left to the full parse",
            value=snap.lite_fallbacks,
        )
        backfill = CounterMetricFamily(
            "upbitpipe_backfilled_trades", "Trades recovered from REST", labels=["market"]
        )
        for market, count in snap.backfilled.items():
            backfill.add_metric([market], count)
        yield backfill
        yield GaugeMetricFamily(
            "upbitpipe_gaps_open", "Gap records not closed yet", value=snap.gaps_open
        )
        yield GaugeMetricFamily(
            "upbitpipe_gaps_missing",
            "Gap records REST could not fill (see gaps.json)",
            value=len(snap.gaps_missing),
        )
        yield CounterMetricFamily(
            "upbitpipe_backfill_failures", "Backfill runs that failed", value=snap.backfill.failed
        )
        dead = CounterMetricFamily(
            "upbitpipe_dead_letters", "Frames dead-lettered", labels=["kind"]
        )
        for kind, count in snap.dead_letters.items():
            dead.add_metric([kind], count)
        yield dead
        yield CounterMetricFamily(
            "upbitpipe_dead_letter_write_failures",
            "Dead letters that could not be written (counted, not stored)",
            value=snap.dead_letter_write_failures,
        )
        connected = GaugeMetricFamily(
            "upbitpipe_connection_up", "1 if the shard is connected", labels=["shard"]
        )
        reconnects = CounterMetricFamily(
            "upbitpipe_disconnects", "Connection losses", labels=["shard"]
        )
        for conn in snap.connections:
            connected.add_metric([str(conn.shard)], 1.0 if conn.connected else 0.0)
            reconnects.add_metric([str(conn.shard)], conn.disconnects)
        yield connected
        yield reconnects
        sink_gauge = GaugeMetricFamily(
            "upbitpipe_sink", "Sink counters", labels=["sink", "counter"]
        )
        for sink, counters in snap.sinks.items():
            for name, value in counters.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    sink_gauge.add_metric([sink, name], float(value))
                elif isinstance(value, bool):
                    sink_gauge.add_metric([sink, name], 1.0 if value else 0.0)
        yield sink_gauge


def serve_metrics(snapshot: Snapshot, host: str, port: int) -> tuple[int, Callable[[], None]]:
    """Start the Prometheus endpoint on its own registry; returns (port, shutdown).

    A port in use or a host that does not resolve raises :class:`ConfigError` naming the key.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except socket.gaierror as exc:
        msg = f"metrics.host: cannot listen on {host!r} ({exc.strerror or exc})"
        raise ConfigError(msg) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            msg = (
                f"metrics.port: {host}:{port} is in use (another collector?); set another "
                "metrics.port, 0 for any free port, or metrics.enabled=false"
            )
        else:
            msg = (
                f"metrics.host/metrics.port: cannot listen on {host}:{port} ({exc.strerror or exc})"
            )
        raise ConfigError(msg) from None
    bound = int(server.server_address[1])

    def shutdown() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return bound, shutdown
