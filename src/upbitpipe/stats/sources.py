"""Stats sources: each asks one part of the pipeline for its figures.

Contract of a source: ``gather(settings)`` returns a :class:`Section` and never raises - a part
that is not running or not configured is reported as ``state="down"`` or ``"skipped"`` with a
one-line ``detail``. Every network call has a short timeout so `stats` answers in seconds.
Sources are plain functions (blocking is fine: `stats` runs them in worker threads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from upbitpipe.collector.status import STATUS_FILE, read_status
from upbitpipe.config import Settings, reveal
from upbitpipe.errors import StateFileError

TIMEOUT = 2.0


@dataclass
class Section:
    name: str
    state: str  # ok | down | skipped | stale
    detail: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)


StatsSource = Callable[[Settings], Section]


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def collector_section(settings: Settings) -> Section:
    path = settings.collector.state_dir / STATUS_FILE
    try:
        snap = read_status(path)
    except StateFileError as exc:
        return Section("collector", "down", str(exc))
    if snap is None:
        return Section(
            "collector", "skipped", f"no status file at {path} (collector never ran here)"
        )
    age = time.time() - snap.updated_at
    running = not snap.stopped and age < max(10.0, 5 * settings.collector.status_interval_seconds)
    elapsed = max(1e-9, snap.updated_at - snap.started_at)
    rows = [
        {"what": f"events {t}", "value": n, "rate_per_s": round(n / elapsed, 1)}
        for t, n in sorted(snap.events.items())
    ]
    rows.append({"what": "duplicates dropped", "value": snap.duplicates})
    rows.append({"what": "backfilled trades", "value": snap.backfilled_total})
    rows.append({"what": "gaps open", "value": snap.gaps_open})
    for gap in snap.gaps_missing:  # what REST could not give (collector gaps.json)
        rows.append(
            {
                "what": f"gap missing {gap.market}",
                "value": f"{_utc(gap.from_ms)} .. {_utc(gap.to_ms) if gap.to_ms else 'live'}",
                "detail": f"after sid {gap.from_sid}, before sid {gap.to_sid}: {gap.reason}",
            }
        )
    rows.append({"what": "dead letters", "value": snap.dead_letters_total})
    if snap.dead_letter_write_failures:
        rows.append({"what": "dead letters not written", "value": snap.dead_letter_write_failures})
    for conn in snap.connections:
        rows.append(
            {
                "what": f"connection {conn.shard} ({conn.markets} markets)",
                "value": "up" if conn.connected else "down",
                "detail": f"disconnects={conn.disconnects} {conn.last_error}".strip(),
            }
        )
    for sink, counters in snap.sinks.items():
        shown = ", ".join(
            f"{k}={_ago(v) if k.endswith('_at') and isinstance(v, (int, float)) and v else v}"
            for k, v in counters.items()
            if v not in ("", None)
        )
        rows.append({"what": f"sink {sink}", "value": counters.get("written", 0), "detail": shown})
    state = "ok" if running else ("stopped" if snap.stopped else "stale")
    detail = f"pid {snap.pid}, status {age:.0f}s old, {len(snap.markets)} markets"
    return Section("collector", state, detail, rows)


def lake_section(settings: Settings) -> Section:
    if not settings.lake.is_s3 and not Path(settings.lake.warehouse).expanduser().exists():
        return Section("lake", "skipped", f"no lake at {settings.lake.warehouse} yet")
    try:
        from upbitpipe.lake.catalog import open_catalog
        from upbitpipe.lake.tables import LAKE_TABLES

        catalog = open_catalog(settings, create=False)
        rows: list[dict[str, Any]] = []
        for name in LAKE_TABLES:
            try:
                table = catalog.get_table(f"{settings.lake.database}.{name}")
            except Exception:
                rows.append({"what": name, "value": "missing"})
                continue
            snapshot = table.snapshot_manager().get_latest_snapshot()
            if snapshot is None:
                rows.append({"what": name, "value": 0, "detail": "no snapshot yet"})
                continue
            rows.append(
                {
                    "what": name,
                    "value": getattr(snapshot, "total_record_count", None),
                    "detail": f"snapshot {snapshot.id}, committed {_ago(snapshot.time_millis / 1000)}",
                }
            )
            if name == "trade":
                rows.append(freshness_row(table, settings.lake.timezone))
    except Exception as exc:
        return Section("lake", "down", f"{settings.lake.warehouse}: {type(exc).__name__}: {exc}")
    return Section(
        "lake",
        "ok",
        f"{settings.lake.warehouse} (rows = records in latest snapshot, before merge)",
        rows,
    )


def freshness_row(table: Any, timezone: str) -> dict[str, Any]:
    """Lake freshness: the newest ``trade_timestamp`` a reader sees vs now."""
    from upbitpipe.stats.freshness import newest_trade_ms

    newest = newest_trade_ms(table, timezone)
    if newest is None:
        return {"what": "freshness", "value": "-", "detail": "no trade visible yet"}
    lag = max(0.0, time.time() - newest / 1000)
    stamp = datetime.fromtimestamp(newest / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "what": "freshness",
        "value": f"{lag:.0f}s behind",
        "detail": f"newest trade_timestamp visible {stamp} UTC",
        "newest_trade_timestamp": newest,
        "lag_s": round(lag, 1),
    }


def _tcp_problem(servers: list[str]) -> str | None:
    """None if any ``host:port`` accepts a connection, else the real cause for each."""
    import socket

    problems = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=TIMEOUT):
                return None
        except ConnectionRefusedError:
            problems.append(f"{server} connection refused")
        except socket.gaierror:
            problems.append(f"{server} host not found")
        except TimeoutError:
            problems.append(f"{server} timed out")
        except OSError as exc:
            problems.append(f"{server} {exc.strerror or type(exc).__name__}")
    return "; ".join(problems)


def kafka_section(settings: Settings) -> Section:
    import asyncio

    problem = _tcp_problem(settings.kafka.bootstrap_servers)
    if problem:
        return Section("kafka", "down", problem)
    try:
        rows = asyncio.run(asyncio.wait_for(_kafka_rows(settings), timeout=3 * TIMEOUT))
    except Exception as exc:
        return Section(
            "kafka",
            "down",
            f"{','.join(settings.kafka.bootstrap_servers)}: {type(exc).__name__}",
        )
    return Section("kafka", "ok", ",".join(settings.kafka.bootstrap_servers), rows)


async def _kafka_rows(settings: Settings) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    servers = settings.kafka.bootstrap_servers
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, request_timeout_ms=int(TIMEOUT * 1000))
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=int(TIMEOUT * 1000))
    try:
        await consumer.start()
        await admin.start()
        rows: list[dict[str, Any]] = []
        groups = [settings.flink.consumer_group, settings.clickhouse.consumer_group]
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            try:
                offsets = await admin.list_consumer_group_offsets(group)
                committed[group] = {tp: meta.offset for tp, meta in offsets.items()}
            except Exception:
                committed[group] = {}
        for event_type in ("ticker", "trade", "orderbook"):
            topic = settings.kafka.topic(event_type)
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                await consumer._client.force_metadata_update()  # noqa: SLF001
                parts = consumer.partitions_for_topic(topic)
            if not parts:
                rows.append({"what": topic, "value": "missing"})
                continue
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                lags = [
                    f"{g} lag={ends[tp] - committed[g][tp]}" for g in groups if tp in committed[g]
                ]
                rows.append(
                    {
                        "what": f"{topic}[{tp.partition}]",
                        "value": ends[tp],
                        # an offset, not a record count: each transaction commit adds
                        # a marker to the partitions it wrote
                        "detail": "; ".join(["end offset", *lags]),
                    }
                )
        return rows
    finally:
        await consumer.stop()
        await admin.close()


def flink_section(settings: Settings) -> Section:
    """Jobs with their real state, restarts, checkpoint age and failed-checkpoint causes
    (:mod:`upbitpipe.stats.flink`); ``degraded`` when a job is not RUNNING."""
    from upbitpipe.stats.flink import flink_state

    base = str(settings.flink.rest_url).rstrip("/")
    try:
        state, detail, rows = flink_state(settings)
    except Exception as exc:
        return Section("flink", "down", f"{base}: {type(exc).__name__}")
    return Section("flink", state, detail, rows)


def clickhouse_section(settings: Settings) -> Section:
    ch = settings.clickhouse
    try:
        from clickhouse_driver import Client

        client = Client(
            host=ch.host,
            port=ch.port,
            user=ch.user,
            password=reveal(ch.password) or "",
            connect_timeout=TIMEOUT,
            send_receive_timeout=TIMEOUT,
            secure=ch.secure,
        )
        rows: list[dict[str, Any]] = []
        for table in ("trade", "ticker", "orderbook"):
            count, newest = client.execute(
                f"SELECT count(), max(_ingested_at) FROM {ch.database}.{table}"  # noqa: S608
            )[0]
            rows.append(
                {
                    "what": table,
                    "value": count,
                    "detail": f"newest ingest {_ago(newest / 1000) if newest else '-'}",
                }
            )
        client.disconnect()
    except Exception as exc:
        return Section("clickhouse", "down", f"{ch.host}:{ch.port}: {type(exc).__name__}")
    return Section("clickhouse", "ok", f"{ch.host}:{ch.port}", rows)


def s3_section(settings: Settings) -> Section:
    from upbitpipe.storage.buckets import make_client
    from upbitpipe.storage.credentials import local_credentials

    s3 = settings.s3
    endpoint = str(s3.endpoint).rstrip("/")
    try:
        creds = local_credentials(s3, settings.infra.state_dir, create=False)
        if creds is None:
            return Section(
                "s3", "skipped", "no s3.access_key / s3.secret_key (and no local server keys)"
            )
        client = make_client(
            endpoint, creds.access_key, creds.secret_key, s3.region, timeout=TIMEOUT
        )
        rows: list[dict[str, Any]] = []
        for bucket in (s3.warehouse_bucket, s3.archive_bucket):
            if not client.bucket_exists(bucket):
                rows.append({"what": bucket, "value": "missing"})
                continue
            size = count = 0
            for obj in client.list_objects(bucket, recursive=True):
                size += obj.size or 0
                count += 1
            rows.append(
                {"what": bucket, "value": f"{size / 1e6:.1f} MB", "detail": f"{count} objects"}
            )
    except Exception as exc:
        return Section("s3", "down", f"{s3.endpoint}: {type(exc).__name__}")
    return Section("s3", "ok", str(s3.endpoint), rows)


def _ago(epoch_seconds: float) -> str:
    return f"{max(0.0, time.time() - epoch_seconds):.0f}s ago"


ALL_SOURCES: dict[str, StatsSource] = {
    "collector": collector_section,
    "lake": lake_section,
    "kafka": kafka_section,
    "flink": flink_section,
    "clickhouse": clickhouse_section,
    "s3": s3_section,
}
