"""In-doubt commits against a real 3-broker Kafka: the spool holds a batch that a killed
collector had sent in a transaction, and a marker names it. Whether that transaction was
committed (killed between the commit and the spool's acknowledgement) or left open (killed
before the commit), the next start leaves each record in Kafka once, as a read_committed
consumer sees it. A record too large for Kafka is dead-lettered alone, its batch delivered.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from conftest import KafkaFixture
from upbitpipe.config import KafkaSettings
from upbitpipe.infra.kafka import topic_specs
from upbitpipe.infra.kafka_admin import TopicSpec, ensure_topics
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.kafka import KafkaSink, encode_event, producer_options
from upbitpipe.sinks.kafka_txn import MARKER_FILE, InDoubt, save_marker, transactional_id
from upbitpipe.sinks.spool import DiskSpool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MARKETS = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]


def _events(start: int, n: int) -> list[SinkEvent]:
    return [
        SinkEvent(
            type="trade",
            market=MARKETS[i % 3],
            record={"market": MARKETS[i % 3], "sequential_id": i},
            raw=b"",
        )
        for i in range(start, start + n)
    ]


async def _trade_ids(settings: KafkaSettings, idle_seconds: float = 3.0) -> Counter[int]:
    consumer = AIOKafkaConsumer(
        settings.topic("trade"),
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    out: Counter[int] = Counter()
    try:
        loop = asyncio.get_running_loop()
        deadline, quiet_since = loop.time() + 60, loop.time()
        while loop.time() < deadline and loop.time() - quiet_since < idle_seconds:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    out[int(orjson.loads(record.value)["sequential_id"])] += 1
                    quiet_since = loop.time()
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("committed", [True, False], ids=["committed", "left-open"])
async def test_in_doubt_spool_batch_reaches_kafka_once(
    tmp_path: Path, kafka_cluster: KafkaFixture, committed: bool
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=kafka_cluster.bootstrap_servers,
        topic_prefix=f"d{uuid.uuid4().hex[:6]}-",
        request_timeout_ms=5000,
    )
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings, 3))
    spool_dir = tmp_path / "kafka-spool"
    spool = DiskSpool(spool_dir, max_bytes=1 << 24)
    records = [encode_event(e, settings.topic("trade")) for e in _events(0, 30)]
    spool.append(records)
    position = spool.head_position()

    # the killed collector: its first 12 spool records went out in one transaction
    producer = AIOKafkaProducer(**producer_options(settings, transactional_id(settings, spool_dir)))
    await producer.start()
    await producer.begin_transaction()
    futures = [await producer.send(r.topic, r.value, key=r.key) for r in records[:12]]
    last = await futures[-1]
    await asyncio.gather(*futures)
    save_marker(
        spool_dir / MARKER_FILE,
        InDoubt(last.topic, last.partition, last.offset, position=position, count=12),
    )
    if committed:
        await producer.commit_transaction()
    await producer.stop()  # "killed": a transaction left open stays open at the coordinator

    sink = KafkaSink(settings, spool_dir, DeadLetterBox(tmp_path / "dead"))
    await sink.open()
    drainer = sink._drainer  # noqa: SLF001  (settles the marker, then drains the spool)
    assert drainer is not None
    await asyncio.wait_for(asyncio.shield(drainer), timeout=120)
    assert sink.stats()["spool_records"] == 0
    await sink.write(_events(30, 6))
    await sink.close()

    ids = await _trade_ids(settings)
    assert sorted(ids) == list(range(36)), "records missing from Kafka"
    assert [i for i, n in ids.items() if n > 1] == [], "records in Kafka twice"
    assert not (spool_dir / MARKER_FILE).exists()
    assert sink.stats()["resent_from_spool"] == 30


async def test_records_kafka_refuses_are_dead_lettered_alone(
    tmp_path: Path, kafka_cluster: KafkaFixture
) -> None:
    """One record above the topic's ``max.message.bytes`` (refused by the brokers: its
    batch's transaction is aborted, the batch goes again record by record) and one above the
    producer's request size (refused by the client): both dead-lettered, the rest once."""
    settings = KafkaSettings(
        bootstrap_servers=kafka_cluster.bootstrap_servers,
        topic_prefix=f"l{uuid.uuid4().hex[:6]}-",
        request_timeout_ms=5000,
    )
    specs = [
        TopicSpec(
            s.name, s.partitions, s.replication_factor, {**s.configs, "max.message.bytes": "65536"}
        )
        for s in topic_specs(settings, 3)
    ]
    await ensure_topics(settings.bootstrap_servers, specs)
    events = _events(0, 24)
    noise = base64.b64encode(os.urandom(150_000)).decode()  # does not compress below 64 KiB
    events[4] = SinkEvent("trade", "KRW-ETH", {"sequential_id": 4, "pad": noise}, b"")
    events[7] = SinkEvent("trade", "KRW-ETH", {"sequential_id": 7, "pad": "x" * 1_200_000}, b"")
    dead = DeadLetterBox(tmp_path / "dead")
    sink = KafkaSink(settings, tmp_path / "kafka-spool", dead)
    await sink.open()
    await sink.write(events)
    await sink.close()
    ids = await _trade_ids(settings)
    assert sorted(ids) == [i for i in range(24) if i not in (4, 7)], sink.stats()["last_error"]
    assert max(ids.values()) == 1
    assert sink.stats()["spool_records"] == 0
    assert sink.stats()["transactions_aborted"] >= 1
    assert dead.counts["kafka_rejected"] == 2
