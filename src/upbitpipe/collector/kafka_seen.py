"""What Kafka already holds of the trades a restart is about to backfill.

The resume point trails what Kafka acknowledged (the sink reports durability at its flush,
and a SIGKILL can come between an acknowledgement and the next save of ``resume.json``), so
a restart's backfill re-fetches a few trades Kafka already has. Rather than re-send them,
the collector reads the trade topic back from the moment the oldest of those trades can
have been sent (the receive time of the resume point, less a margin) to its current end,
plus the sink's own on-disk spool (records acknowledged to the collector, not yet sent),
and skips those ``(market, sequential_id)`` for the Kafka sink only. Kafka then holds each
trade once across restarts; the lake's primary keys make the same re-fetch harmless there.

The read-back is exact because the sink is transactional: first a producer with the sink's
transactional.id starts (fencing the killed one: its open transaction is aborted, a commit
it had asked for is completed), then the topic is read read_committed up to the last stable
offset, so what the read-back sees is what consumers will ever see of the old run.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson

from upbitpipe.config import KafkaSettings
from upbitpipe.sinks.kafka import consumer_options, fence
from upbitpipe.sinks.kafka_txn import transactional_id

log = logging.getLogger(__name__)

READ_MARGIN_MS = 60_000
TradeKey = tuple[str, int]


def _key(value: bytes) -> TradeKey | None:
    try:
        record = orjson.loads(value)
        return (str(record["market"]), int(record["sequential_id"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


async def trades_in_kafka(
    settings: KafkaSettings, since_wall_ms: int, spool_dir: Path, *, limit_seconds: float = 30.0
) -> set[TradeKey] | None:
    """Trade keys in the trade topic written since ``since_wall_ms`` (our clock, less a
    margin) by the sink whose spool is ``spool_dir``; None when Kafka cannot be read (the
    restart then re-sends at least once)."""
    from aiokafka import AIOKafkaConsumer

    topic = settings.topic("trade")
    txn_id = await asyncio.to_thread(transactional_id, settings, spool_dir)
    if not await fence(settings, txn_id, limit_seconds=limit_seconds):
        return None
    # subscribed without a group: the consumer loads the topic's metadata and takes every
    # partition (``partitions_for_topic`` alone never asks the brokers)
    consumer = AIOKafkaConsumer(
        topic, **consumer_options(settings), isolation_level="read_committed"
    )
    seen: set[TradeKey] = set()
    try:
        async with asyncio.timeout(limit_seconds):
            await consumer.start()
            while not consumer.assignment():
                if consumer.partitions_for_topic(topic) == set():
                    return seen  # the topic has no partitions (yet)
                await asyncio.sleep(0.1)
            tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.offsets_for_times(
                {tp: max(0, since_wall_ms - READ_MARGIN_MS) for tp in tps}
            )
            todo = {}
            for tp in tps:
                found = starts.get(tp)
                if found is None or found.offset >= ends[tp]:
                    continue
                consumer.seek(tp, found.offset)
                todo[tp] = ends[tp]
            while todo:
                batches = await consumer.getmany(*todo, timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        if record.value is not None and (key := _key(record.value)):
                            seen.add(key)
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        del todo[tp]
    except Exception as exc:  # Kafka down or slow: at-least-once is the fallback
        log.warning(
            "cannot read back the trade topic %s (%s: %s); trades the restart backfills may "
            "reach Kafka twice",
            topic,
            type(exc).__name__,
            exc,
        )
        return None
    finally:
        try:
            await consumer.stop()
        except Exception as exc:  # closing a consumer that never started
            log.debug("kafka read-back consumer stop: %s", exc)
    return seen


def trades_in_spool(spool_dir: Path, topic: str) -> set[TradeKey]:
    """Trade keys waiting in the Kafka sink's spool (sent again by the sink at start)."""
    from upbitpipe.sinks.spool import DiskSpool

    if not spool_dir.is_dir() or not any(spool_dir.glob("segment-*")):
        return set()
    spool = DiskSpool(spool_dir, max_bytes=1 << 62)
    return {
        key
        for record in spool.peek(len(spool))
        if record.topic == topic and (key := _key(record.value))
    }
