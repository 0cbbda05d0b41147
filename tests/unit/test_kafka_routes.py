"""The Kafka sink's routes: a write's records sorted into partitions in one pass per event,
the same as sorting the records one by one with aiokafka's default partitioner, in arrival
order per partition; a topic whose partitions change has its records routed again."""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from upbitpipe.config import KafkaSettings
from upbitpipe.sinks.base import SinkEvent, ValueEvent
from upbitpipe.sinks.kafka_routes import Router

TYPES = ("ticker", "trade", "orderbook")


class Partitions:
    """A producer's metadata: how many partitions each topic has (changeable)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.asked = 0

    async def partitions_for(self, topic: str) -> set[int]:
        self.asked += 1
        return set(range(self.count))


def events(n: int, markets: int = 7, start: int = 0) -> list[SinkEvent]:
    out: list[SinkEvent] = []
    for i in range(start, start + n):
        kind, market = TYPES[i % 3], f"KRW-M{(i // 3) % markets}"
        value = f'{{"i":{i}}}'.encode()
        if i % 2:
            out.append(ValueEvent(kind, market, b"raw", value))
        else:
            out.append(SinkEvent(kind, market, {"i": i}, b"raw", value))
    return out


def expected_lanes(
    settings: KafkaSettings, batch: list[SinkEvent], count: int
) -> dict[tuple[str, int], list[bytes]]:
    """Each record's partition as aiokafka's producer would pick it, in arrival order."""
    partitioner = DefaultPartitioner()
    partitions = list(range(count))
    lanes: dict[tuple[str, int], list[bytes]] = {}
    for e in batch:
        key = e.market.encode()
        tp = (settings.topic(e.type), partitioner(key, partitions, partitions))
        lanes.setdefault(tp, []).append(e.value)
    return lanes


async def sorted_by_router(
    router: Router, producer: Any, batch: list[SinkEvent]
) -> tuple[dict[tuple[str, int], list[bytes]], bool]:
    """As ``KafkaSink._send_all`` sorts a write: the lanes, and whether they came from the
    write's own pass (every route known and still valid)."""
    routed = router.route(batch)
    assert [r[2] for r in routed.records] == [e.value for e in batch]  # arrival order
    assert all(r[1] == e.market.encode() for r, e in zip(routed.records, batch, strict=True))
    await router.check(producer, router.topics_of(routed))
    lanes = router.routed_lanes(routed)
    direct = lanes is not None
    if lanes is None:
        lanes = list((await router.lanes_of(producer, routed.records)).items())
    return {tp: [r[2] for r in lane] for tp, lane in lanes}, direct


async def test_a_write_is_routed_in_one_pass_once_its_markets_are_known() -> None:
    settings = KafkaSettings()
    router = Router(settings.topic)
    producer = Partitions(3)
    first = events(60)
    lanes, direct = await sorted_by_router(router, producer, first)
    assert not direct  # new markets: sorted record by record, and their routes kept
    assert lanes == expected_lanes(settings, first, 3)
    second = events(90, start=60)
    lanes, direct = await sorted_by_router(router, producer, second)
    assert direct
    assert lanes == expected_lanes(settings, second, 3)
    newcomer = [*events(30, start=150), ValueEvent("trade", "KRW-NEW", b"", b"{}")]
    lanes, direct = await sorted_by_router(router, producer, newcomer)
    assert not direct  # one unknown market: the whole write is sorted the general way
    assert lanes == expected_lanes(settings, newcomer, 3)
    lanes, direct = await sorted_by_router(router, producer, newcomer)
    assert direct and lanes == expected_lanes(settings, newcomer, 3)


async def test_a_topic_whose_partitions_change_is_routed_again() -> None:
    settings = KafkaSettings()
    router = Router(settings.topic)
    producer = Partitions(3)
    batch = events(120, markets=20)
    await sorted_by_router(router, producer, batch)
    routed = router.route(batch)  # routed with 3 partitions, sent after the topic grew
    assert routed.lanes is not None
    producer.count = 7
    await router.check(producer, router.topics_of(routed))
    assert router.routed_lanes(routed) is None  # its routes no longer hold
    lanes, direct = await sorted_by_router(router, producer, batch)
    assert not direct
    assert lanes == expected_lanes(settings, batch, 7)
    assert expected_lanes(settings, batch, 7) != expected_lanes(settings, batch, 3)
    lanes, direct = await sorted_by_router(router, producer, batch)
    assert direct and lanes == expected_lanes(settings, batch, 7)


async def test_records_of_a_topic_the_sink_does_not_name_are_sorted_but_not_kept() -> None:
    """A spool written under another topic prefix: sent where its key says, each time."""
    router = Router(KafkaSettings().topic)
    producer = Partitions(3)
    records = [("other.trade", f"KRW-M{i % 5}".encode(), b"{}") for i in range(20)]
    lanes = await router.lanes_of(producer, records)
    assert sum(len(lane) for lane in lanes.values()) == 20
    assert all(tp[0] == "other.trade" for tp in lanes)
    assert router.lanes == []
