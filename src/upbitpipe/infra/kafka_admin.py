"""Small Kafka admin operations (aiokafka): broker list, idempotent topic creation.

The async functions are for code already in an event loop; the ``*_sync`` wrappers run them
on a private loop in a worker thread, so they are safe to call from plain code *and* from
inside a running loop (a pytest-asyncio test calling ``kill_broker``, for instance).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from upbitpipe.errors import ServiceUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: partitions, replication factor and per-topic configs."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


def run_blocking(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` to completion on a fresh loop in a worker thread; bounded by ``timeout``."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(asyncio.run, asyncio.wait_for(coro, timeout))
        return future.result(timeout=timeout + 5)


def _admin(bootstrap: Sequence[str], timeout: float) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(
        bootstrap_servers=list(bootstrap),
        request_timeout_ms=max(1000, int(timeout * 1000)),
        client_id="upbitpipe-infra",
    )


async def broker_ids(bootstrap: Sequence[str], request_timeout: float = 5.0) -> list[int]:
    """Ids of the brokers the cluster metadata lists right now (raises when unreachable)."""
    admin = _admin(bootstrap, request_timeout)
    try:
        await admin.start()
        info = await admin.describe_cluster()
        return sorted(int(b["node_id"]) for b in info.get("brokers", []))
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def broker_ids_sync(bootstrap: Sequence[str], timeout: float = 5.0) -> list[int]:
    """:func:`broker_ids` for sync code; ``[]`` when the cluster cannot be reached."""
    try:
        return run_blocking(broker_ids(bootstrap, timeout), timeout + 2)
    except Exception as exc:  # any client error means "not (yet) reachable" here
        log.debug("kafka metadata from %s failed: %s", bootstrap, exc)
        return []


async def ensure_topics(
    bootstrap: Sequence[str], topics: Sequence[TopicSpec], request_timeout: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created.

    Existing topics are left as they are (partitions and configs are not changed).
    """
    from aiokafka.admin import NewTopic

    admin = _admin(bootstrap, request_timeout)
    try:
        try:
            await admin.start()
            existing = set(await admin.list_topics())
        except Exception as exc:
            msg = f"kafka at {','.join(bootstrap)} is not reachable ({type(exc).__name__})"
            raise ServiceUnavailableError(msg) from None
        wanted = [t for t in topics if t.name not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=dict(t.configs))
            for t in wanted
        ]
        response = await admin.create_topics(new, timeout_ms=int(request_timeout * 1000))
        created: list[str] = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            message = entry[2] if len(entry) > 2 else ""
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:
                msg = f"kafka: creating topic {name} failed (error {code}: {message})"
                raise ServiceUnavailableError(msg)
        await _wait_visible(admin, {t.name: t.partitions for t in wanted}, request_timeout)
        return created
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _wait_visible(admin: Any, partitions: dict[str, int], seconds: float) -> None:
    """Wait until the metadata shows every topic with all its partitions led.

    A create response only means the controller accepted the topic; the broker a client asks
    next may not know it yet. Returning before that makes the first produce fail.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        described = await admin.describe_topics(list(partitions))
        ready = {
            t["topic"]
            for t in described
            if t.get("error_code", 0) == 0
            and len(t.get("partitions", [])) == partitions.get(t["topic"], -1)
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
        }
        if ready >= set(partitions):
            return
        if loop.time() >= deadline:
            missing = ", ".join(sorted(set(partitions) - ready))
            msg = f"kafka: topics {missing} created but not visible in the metadata after {seconds:.0f} s"
            raise ServiceUnavailableError(msg)
        await asyncio.sleep(0.2)


def ensure_topics_sync(
    bootstrap: Sequence[str], topics: Sequence[TopicSpec], timeout: float = 30.0
) -> list[str]:
    """:func:`ensure_topics` for sync code (CLI, fixtures)."""
    return run_blocking(ensure_topics(bootstrap, topics, timeout), timeout + 5)
