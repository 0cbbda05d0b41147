"""Where the Kafka sink's records go: each event's topic, key and partition, worked out once
per (event type, market) and kept, so a write turns its events into records sorted by
partition in one pass (two dict lookups and a tuple per event: no key encoded, no
(topic, key) looked up per record).

A partition is the one aiokafka's default partitioner picks for the key (Java's murmur2
over the topic's sorted partitions), so a market keeps its partition. The routes hold for
the partitions the topics had when they were worked out: each transaction asks the producer
for its topics' partitions (:meth:`Router.check`, one metadata lookup per topic, as the sink
always did), and a change forgets every route (a new :attr:`Router.generation`); records
routed under an older generation are routed again (:meth:`Router.lanes_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka.partitioner import murmur2

from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.kafka_batch import Record

#: a topic's partition: (topic, partition)
TopicPartition = tuple[str, int]
#: (topic, key, lane): the record's topic and key, and the index of its (topic, partition)
#: in :attr:`Router.lanes`
Route = tuple[str, bytes, int]


class PartitionSource(Protocol):
    """What the router asks of the producer: a topic's partitions (from its metadata)."""

    async def partitions_for(self, topic: str) -> set[int]: ...


@dataclass(slots=True)
class Routed:
    """A write's records in arrival order, and (when every event had its route) the same
    record tuples by lane: ``lanes[i]`` goes to the router's ``lanes[i]`` partition of
    ``generation``, each in arrival order."""

    records: list[Record]
    lanes: list[list[Record]] | None
    generation: int


class Router:
    """Event type -> topic, (event type, market) -> route, and the per-partition lanes."""

    def __init__(self, topic_of: Callable[[str], str]) -> None:
        self._topic_of = topic_of
        self._topics: dict[str, str] = {}  # event type -> topic
        self._type_of: dict[str, str] = {}  # topic -> event type
        self._routes: dict[str, dict[str, Route]] = {}  # event type -> market -> route
        #: lane index -> (topic, partition)
        self.lanes: list[TopicPartition] = []
        self._lane_of: dict[TopicPartition, int] = {}
        self._partitions: dict[str, list[int]] = {}  # topic -> its sorted partitions
        self._index: dict[tuple[bytes, int], int] = {}  # (key, partition count) -> index
        #: counts the times the routes were forgotten (a topic's partitions changed)
        self.generation = 0

    def topic(self, event_type: str) -> str:
        """The topic of an event type (named once, not per record)."""
        topic = self._topics.get(event_type)
        if topic is None:
            topic = self._topics[event_type] = self._topic_of(event_type)
            self._type_of[topic] = event_type
        return topic

    def route(self, events: Sequence[SinkEvent]) -> Routed:
        """The events' records; by lane too when every (type, market) has its route (from
        an earlier transaction: a new market's first records are sorted by ``lanes_of``)."""
        routes = self._routes
        records: list[Record] = []
        add = records.append
        lanes: list[list[Record]] = [[] for _ in self.lanes]
        try:
            for event in events:
                topic, key, lane = routes[event.type][event.market]
                record = (topic, key, event.value)
                add(record)
                lanes[lane].append(record)
        except KeyError:
            topic_of = self.topic
            plain = [(topic_of(e.type), e.market.encode(), e.value) for e in events]
            return Routed(plain, None, self.generation)
        return Routed(records, lanes, self.generation)

    def routed_lanes(self, routed: Routed) -> list[tuple[TopicPartition, list[Record]]] | None:
        """``routed``'s non-empty lanes with their partitions, if its routes still hold
        (call :meth:`check` first)."""
        if routed.lanes is None or routed.generation != self.generation:
            return None
        tps = self.lanes
        return [(tps[index], lane) for index, lane in enumerate(routed.lanes) if lane]

    async def check(self, producer: PartitionSource, topics: Iterable[str]) -> None:
        """Ask the producer for ``topics``' partitions (its metadata); a topic whose
        partitions changed makes every route be worked out again."""
        known = self._partitions
        for topic in topics:
            partitions = sorted(await producer.partitions_for(topic))
            before = known.get(topic)
            if before != partitions:
                if before is not None:
                    self._forget()
                known[topic] = partitions

    def _forget(self) -> None:
        self._routes.clear()
        self.lanes = []
        self._lane_of.clear()
        self._partitions.clear()
        self.generation += 1

    def topics_of(self, routed: Routed) -> set[str]:
        """The topics ``routed``'s records go to."""
        if routed.lanes is not None and routed.generation == self.generation:
            return {self.lanes[index][0] for index, lane in enumerate(routed.lanes) if lane}
        return {topic for topic, _, _ in routed.records}

    async def lanes_of(
        self, producer: PartitionSource, records: list[Record]
    ) -> dict[TopicPartition, list[Record]]:
        """``records`` by (topic, partition), in order, one partition worked out per
        (topic, key); the routes it works out are kept for the next writes."""
        lanes: dict[TopicPartition, list[Record]] = {}
        seen: dict[tuple[str, bytes], list[Record]] = {}  # (topic, key) -> its lane
        for record in records:
            topic, key, _ = record
            lane = seen.get((topic, key))
            if lane is None:
                partitions = self._partitions.get(topic)
                if partitions is None:
                    await self.check(producer, (topic,))
                    partitions = self._partitions[topic]
                tp = (topic, self.partition_of(key, partitions))
                lane = lanes.get(tp)
                if lane is None:
                    lane = lanes[tp] = []
                seen[topic, key] = lane
                self._learn(topic, key, tp)
            lane.append(record)
        return lanes

    def _learn(self, topic: str, key: bytes, tp: TopicPartition) -> None:
        """Keep the route of an event type's topic and market key."""
        event_type = self._type_of.get(topic)
        if event_type is None:  # not a topic this sink names (a spool of another config)
            return
        index = self._lane_of.get(tp)
        if index is None:
            index = self._lane_of[tp] = len(self.lanes)
            self.lanes.append(tp)
        market = key.decode(errors="replace")
        self._routes.setdefault(event_type, {})[market] = (topic, key, index)

    def partition_of(self, key: bytes, partitions: list[int]) -> int:
        """aiokafka's default partitioner for a keyed record (Java's murmur2), cached."""
        cached = self._index.get((key, len(partitions)))
        if cached is None:
            cached = self._index[(key, len(partitions))] = (murmur2(key) & 0x7FFFFFFF) % len(
                partitions
            )
        return partitions[cached]
