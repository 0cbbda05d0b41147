"""A real 3-broker KRaft cluster started by upbitpipe.infra.kafka: RF 3, min.insync 2, acks=all."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

if TYPE_CHECKING:
    from conftest import KafkaFixture
from upbitpipe.infra.kafka_admin import TopicSpec, broker_ids_sync, ensure_topics_sync, run_blocking

pytestmark = pytest.mark.integration


async def _produce(bootstrap: list[str], topic: str, count: int, tag: str, seconds: float) -> None:
    """acks=all writes; raises if they are not all acknowledged within ``seconds``."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(seconds * 1000),
    )
    await producer.start()
    try:
        async with asyncio.timeout(seconds):
            for i in range(count):
                await producer.send_and_wait(topic, f"{tag}-{i}".encode(), key=str(i % 3).encode())
    finally:
        # a refused batch is retried forever by aiokafka; do not wait for it on the way out
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(producer.stop(), 10)


async def _consume_all(bootstrap: list[str], topic: str, expected: int) -> list[str]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while len(seen) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    seen.extend(r.value.decode() for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return seen


async def _describe(bootstrap: list[str], topic: str) -> dict[str, object]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (info,) = await admin.describe_topics([topic])
        return dict(info)
    finally:
        await admin.close()


def test_three_brokers_and_collector_topics(kafka_cluster: KafkaFixture) -> None:
    assert broker_ids_sync(kafka_cluster.bootstrap_servers) == [1, 2, 3]
    info = run_blocking(_describe(kafka_cluster.bootstrap_servers, "upbit-trade"), 30)
    partitions = info["partitions"]
    assert isinstance(partitions, list)
    assert len(partitions) == 3
    assert all(len(p["replicas"]) == 3 for p in partitions)
    status = kafka_cluster.cluster.status()
    assert status.healthy and len(status.pids) == 3


def test_acks_all_survives_one_broker_down(kafka_cluster: KafkaFixture, tmp_topic: str) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    strict = f"strict-{uuid.uuid4().hex[:8]}"  # min.insync 3: must refuse with a broker down
    ensure_topics_sync(bootstrap, [TopicSpec(strict, 1, 3, {"min.insync.replicas": "3"})])
    asyncio.run(_produce(bootstrap, tmp_topic, 20, "before", 30))
    asyncio.run(_produce(bootstrap, strict, 1, "before", 30))

    kafka_cluster.kill_broker(2)
    try:
        assert not kafka_cluster.cluster.node_process(2).is_running()
        live = bootstrap[:2]
        asyncio.run(_produce(live, tmp_topic, 20, "after", 60))
        with pytest.raises(TimeoutError):  # NotEnoughReplicas, retried until the deadline
            asyncio.run(_produce(live, strict, 1, "after", 8))
        values = asyncio.run(_consume_all(live, tmp_topic, 40))
        assert {f"before-{i}" for i in range(20)} <= set(values)
        assert {f"after-{i}" for i in range(20)} <= set(values)
    finally:
        kafka_cluster.start_broker(2)
    assert broker_ids_sync(bootstrap) == [1, 2, 3]


def test_start_is_idempotent(kafka_cluster: KafkaFixture) -> None:
    pids = kafka_cluster.cluster.status().pids
    kafka_cluster.cluster.start(60)
    assert kafka_cluster.cluster.status().pids == pids
