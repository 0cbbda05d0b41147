"""Which starters ``infra up/down/status`` drive, in which order, for which runtime.

It sits above ``infra`` (process plumbing: artifacts, Kafka, the S3 server, compose) and the
components that use that plumbing to host themselves (``flink.cluster``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from upbitpipe.config import Settings
from upbitpipe.errors import ConfigError
from upbitpipe.infra.base import ServiceStarter, ServiceStatus
from upbitpipe.infra.compose import ComposeService, default_compose_file, docker_available

Runtime = Literal["native", "docker"]
COMPONENTS: tuple[str, ...] = ("kafka", "s3", "flink", "clickhouse", "grafana")
ALIASES = {"minio": "s3", "ch": "clickhouse"}
NATIVE: tuple[str, ...] = ("kafka", "s3", "flink")
DOCKER_ONLY_MESSAGE = "ClickHouse/Grafana need --runtime docker (no native build here)"


def normalize_components(names: Sequence[str], runtime: Runtime) -> list[str]:
    """Known names in dependency order; none given = everything the runtime can run."""
    if not names:
        return list(NATIVE if runtime == "native" else COMPONENTS)
    wanted: set[str] = set()
    for raw in names:
        name = ALIASES.get(raw.lower(), raw.lower())
        if name not in COMPONENTS:
            msg = f"unknown component {raw!r} (choose from kafka, minio|s3, flink, clickhouse, grafana)"
            raise ConfigError(msg)
        wanted.add(name)
    return [c for c in COMPONENTS if c in wanted]


def resolve_runtime(requested: str) -> Runtime:
    """``auto`` = docker when an engine answers ``docker info``, else native."""
    if requested == "native":
        return "native"
    if requested == "docker":
        return "docker"
    return "docker" if docker_available() else "native"


def check_native(components: Sequence[str]) -> None:
    """Refuse components that have no native build before anything starts."""
    if any(c in ("clickhouse", "grafana") for c in components):
        raise ConfigError(DOCKER_ONLY_MESSAGE)


def flink_starter(settings: Settings) -> ServiceStarter:
    from upbitpipe.flink.cluster import FlinkCluster

    return FlinkCluster.from_settings(settings)


def native_starter(
    component: str, settings: Settings, *, brokers: int | None = None
) -> ServiceStarter:
    if component == "kafka":
        from upbitpipe.infra.kafka import KafkaCluster

        return KafkaCluster(settings.kafka, settings.infra, brokers=brokers)
    if component == "s3":
        from upbitpipe.infra.s3server import MinioServer

        return MinioServer(settings.s3, settings.infra)
    if component == "flink":
        return flink_starter(settings)
    raise ConfigError(DOCKER_ONLY_MESSAGE)


def component_address(component: str, settings: Settings) -> str:
    return {
        "kafka": ",".join(settings.kafka.bootstrap_servers),
        "s3": str(settings.s3.endpoint),
        "flink": str(settings.flink.rest_url),
        "clickhouse": f"{settings.clickhouse.host}:{settings.clickhouse.port}",
        "grafana": str(settings.grafana.url),
    }[component]


def starters(
    components: Sequence[str],
    settings: Settings,
    runtime: Runtime,
    *,
    brokers: int | None = None,
    compose_file: Path | None = None,
) -> list[ServiceStarter]:
    """One starter per component, in dependency order (stop them in reverse)."""
    if runtime == "docker":
        path = compose_file or default_compose_file()
        return [ComposeService(c, path, address=component_address(c, settings)) for c in components]
    check_native(components)
    return [native_starter(c, settings, brokers=brokers) for c in components]


def unavailable_status(component: str, settings: Settings, reason: str) -> ServiceStatus:
    """A status row for a component that cannot even be built (e.g. Flink module missing)."""
    return ServiceStatus(
        name=component,
        address=component_address(component, settings),
        running=False,
        detail=reason,
    )


def start_together(
    named: Sequence[tuple[str, ServiceStarter]],
    timeout: float,
    on_up: Callable[[str, ServiceStarter, float], None],
) -> list[tuple[str, BaseException]]:
    """Start every starter at once and wait for all; ``on_up(name, starter, seconds)`` runs
    (in a worker thread) as each one becomes healthy. Returns the failures, in ``named``
    order; what did start is left running (``infra up`` is idempotent, a rerun skips it)."""

    def one(item: tuple[str, ServiceStarter]) -> BaseException | None:
        name, starter = item
        began = time.monotonic()
        try:
            starter.start(timeout)
        except Exception as exc:  # every failure is reported, the others still finish
            return exc
        on_up(name, starter, time.monotonic() - began)
        return None

    if not named:
        return []
    with ThreadPoolExecutor(max_workers=len(named), thread_name_prefix="start") as pool:
        results = list(pool.map(one, named))
    return [(name, exc) for (name, _), exc in zip(named, results, strict=True) if exc is not None]
