"""The Kafka sink's producer alone: the collector's ``KafkaSink`` next to aiokafka used plainly
and confluent-kafka (librdkafka), all transactional: records/s, CPU per record, latency.

Would a native producer cut the sink's CPU per record and its exchange -> committed latency?
Every variant gets the same prepared collector events (synthetic frames of ``replay serve``'s
market through the collector's codec, 10 KRW markets, ticker + trade + orderbook, as
``bench_lake.py`` makes them) and the same contract: ``write(batch)`` returns once the batch is
committed (acks=all, idempotent; transactional unless said otherwise). Each event carries its
JSON value already, as the collector makes it (encoded once where the event is made); every
variant turns a batch into Kafka records with the sink's ``encode_event`` (the market as key)
inside ``write``, so the rows differ only in what sends and commits them:

* ``null``: ``encode_event`` only, nothing sent (the harness floor);
* ``sink``: the collector's own ``upbitpipe.sinks.kafka.KafkaSink``, its default config
  (``kafka.compression``'s default codec unless ``--codec``; one transaction per write, one
  ``send_batch`` per partition);
* ``aiokafka``: ``AIOKafkaProducer`` with the sink's options and codec, plainly: begin, one
  ``send_batch`` per partition, wait for the acks, commit (what aiokafka can do at best);
* ``ck-lz4`` / ``ck-zstd``: confluent-kafka's ``Producer``, transactional: begin, one
  ``produce`` per record (delivery callback per record, as the sink needs per-record errors
  and the last offset for its in-doubt marker), ``commit_transaction`` in a worker thread so
  the event loop keeps running (acks=all, idempotent, ``linger.ms`` 5, murmur2 partitioner);
* ``ck-idem``: confluent-kafka idempotent without transactions (``flush`` in a worker thread
  is the "committed"; the sink's codec), for reference.

Two modes per variant, each a child process of its own (its CPU, threads and RSS alone):

* ``max``: write batches of ``--batch`` events (1,024: what the picows transport hands over at
  full rate) back to back: records/s and CPU-µs per record of the whole process (all
  threads: librdkafka's and aiokafka's work counts; ``process_time``, the counter psutil's
  ``cpu_times`` reads, at ns resolution), and of the event-loop thread alone;
* ``paced``: events arrive at ``--rate`` (5,000/s) in 2 ms ticks; a writer takes whatever
  arrived since its last write (at most ``--max-batch``, the sink runner's 2,000), as the
  collector's sink runner does. Latency per record: its arrival (the scheduled time, so a
  late tick counts) -> the write that carried it returned (committed); and the write call ->
  commit alone (what the producer adds once it has the batch).

Variants run interleaved, round by round; the table holds the medians of ``--runs`` rounds.
Each run writes its own topics (``topic_specs`` of the collector's config, 3 partitions),
and after it the parent counts what a read_committed consumer sees there: a run whose count
differs from what it wrote fails. Kafka is one broker from the pinned Apache jars started by
the project's infra code (``bench_memory``'s ``kafka_cluster``), or ``--bootstrap``.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_producer.py                  # ~6 min
    .venv/bin/python benchmarks/bench_producer.py --runs 1 --variants sink,ck-lz4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = ("null", "sink", "aiokafka", "ck-lz4", "ck-zstd", "ck-idem")
NOTES = {  # {codec}: --codec, the collector's default unless given
    "null": "encode_event only, nothing sent (harness floor)",
    "sink": "upbitpipe KafkaSink (aiokafka, txn, {codec})",
    "aiokafka": "aiokafka plainly: begin, send_batch per partition, commit ({codec})",
    "ck-lz4": "confluent-kafka txn, produce per record, commit in a thread (lz4)",
    "ck-zstd": "confluent-kafka txn, produce per record, commit in a thread (zstd)",
    "ck-idem": "confluent-kafka idempotent, no txn, flush in a thread ({codec})",
}
MARKETS = 10
POOL = 20_000  # prepared events (JSON values, ~30 MB), cycled
TIMEOUT_S = 30.0


# --- the child: one variant, one mode ------------------------------------------------------
class Producer(Protocol):
    committed_at: float | None  # monotonic time the last write's records were committed

    async def open(self) -> None: ...
    async def write(self, events: Sequence[Any]) -> None: ...
    async def close(self) -> None: ...
    def check(self, expected: int) -> str: ...


def default_codec() -> str:
    from upbitpipe.config import KafkaSettings

    return str(KafkaSettings().compression)


def kafka_settings(bootstrap: str, prefix: str, compression: str | None = None) -> Any:
    """The collector's Kafka config for one broker; ``compression`` None: its default."""
    from upbitpipe.config import KafkaSettings

    return KafkaSettings(
        bootstrap_servers=bootstrap.split(","),
        topic_prefix=prefix,
        replication_factor=1,
        min_insync_replicas=1,
        compression=compression or default_codec(),  # type: ignore[arg-type]
    )


class NullProducer:
    committed_at: float | None = None

    def __init__(self, args: argparse.Namespace) -> None:
        from upbitpipe.sinks.kafka import encode_event

        self.encode = encode_event
        self.settings = kafka_settings(args.bootstrap, args.prefix)

    async def open(self) -> None:
        pass

    async def write(self, events: Sequence[Any]) -> None:
        topic = self.settings.topic
        [self.encode(e, topic(e.type)) for e in events]

    async def close(self) -> None:
        pass

    def check(self, expected: int) -> str:
        return ""


class SinkProducer:
    """The collector's KafkaSink, as ``collector.runtime`` builds it.

    Its ``write`` lingers after the commit (``kafka.linger_ms`` after the transaction began,
    to gather the next batch): the records are committed when that wait starts, so that is
    the moment taken as committed."""

    committed_at: float | None = None

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        from upbitpipe.sinks.deadletter import DeadLetterBox
        from upbitpipe.sinks.kafka import KafkaSink

        self.sink = KafkaSink(
            kafka_settings(args.bootstrap, args.prefix, args.codec),
            tmp / "kafka-spool",
            DeadLetterBox(tmp / "deadletter"),
        )

    async def open(self) -> None:
        await self.sink.open()
        self._watch_linger()

    async def write(self, events: Sequence[Any]) -> None:
        self.committed_at = None
        await self.sink.write(events)

    def _watch_linger(self) -> None:
        linger = getattr(self.sink, "_linger", None)
        if linger is None:  # a sink without the post-commit wait
            return

        async def timed() -> None:
            self.committed_at = time.monotonic()
            await linger()

        self.sink._linger = timed  # type: ignore[method-assign]

    async def close(self) -> None:
        await self.sink.close()

    def check(self, expected: int) -> str:
        stats = self.sink.stats()
        if stats["sent"] != expected or stats["spooled_total"] or stats["delivery_errors"]:
            return f"sink stats: {stats}"
        return ""


class AiokafkaProducer:
    """aiokafka with the sink's options, without the sink's bookkeeping."""

    committed_at: float | None = None

    def __init__(self, args: argparse.Namespace) -> None:
        from aiokafka import AIOKafkaProducer

        from upbitpipe.sinks.kafka import encode_event, producer_options

        self.settings = kafka_settings(args.bootstrap, args.prefix, args.codec)
        self.producer = AIOKafkaProducer(
            **producer_options(self.settings, f"bench-{uuid.uuid4().hex}")
        )
        self.encode = encode_event
        self.partition_of: dict[tuple[str, bytes], int] = {}
        self.partitions: dict[str, list[int]] = {}
        self.sent = 0

    async def open(self) -> None:
        await self.producer.start()

    async def write(self, events: Sequence[Any]) -> None:
        from aiokafka.partitioner import murmur2

        producer = self.producer
        topic_of = self.settings.topic
        await producer.begin_transaction()
        batches: dict[tuple[str, int], Any] = {}
        futures = []
        for event in events:
            record = self.encode(event, topic_of(event.type))
            tp_key = (record.topic, record.key)
            partition = self.partition_of.get(tp_key)
            if partition is None:
                known = self.partitions.get(record.topic)
                if known is None:
                    known = self.partitions[record.topic] = sorted(
                        await producer.partitions_for(record.topic)
                    )
                partition = known[(murmur2(record.key) & 0x7FFFFFFF) % len(known)]
                self.partition_of[tp_key] = partition
            batch = batches.get((record.topic, partition))
            if batch is None:
                batch = batches[(record.topic, partition)] = producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, record.topic, partition=partition))
                batch = batches[(record.topic, partition)] = producer.create_batch()
                batch.append(key=record.key, value=record.value, timestamp=None)
        for (topic, partition), batch in batches.items():
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
        await producer.commit_transaction()
        self.sent += len(events)

    async def close(self) -> None:
        await self.producer.stop()

    def check(self, expected: int) -> str:
        return "" if self.sent == expected else f"sent {self.sent}"


class ConfluentProducer:
    """confluent-kafka (librdkafka): produce per record on the loop thread (a C call that
    only enqueues), the blocking commit (or flush) in a worker thread."""

    committed_at: float | None = None

    def __init__(self, args: argparse.Namespace, compression: str, transactional: bool) -> None:
        from confluent_kafka import Producer

        from upbitpipe.sinks.kafka import MAX_REQUEST_BYTES, encode_event

        self.settings = kafka_settings(args.bootstrap, args.prefix, compression)
        config: dict[str, Any] = {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": compression,
            "linger.ms": args.ck_linger_ms,
            "message.max.bytes": MAX_REQUEST_BYTES,
            "request.timeout.ms": self.settings.request_timeout_ms,
            # Java's and aiokafka's partitioner: a market keeps its partition across a switch
            "partitioner": "murmur2_random",
            "on_delivery": self._delivered,
        }
        if transactional:
            config["transactional.id"] = f"bench-{uuid.uuid4().hex}"
            config["transaction.timeout.ms"] = self.settings.transaction_timeout_ms
        self.transactional = transactional
        self.producer = Producer(config)
        self.encode = encode_event
        self.errors: list[str] = []
        self.last: tuple[str, int, int] | None = None  # the in-doubt marker's record
        self.delivered = 0
        self.sent = 0

    def _delivered(self, err: Any, msg: Any) -> None:
        # runs on whichever thread serves the delivery reports (the commit's worker thread)
        if err is not None:
            self.errors.append(str(err))
        else:
            self.delivered += 1
            self.last = (msg.topic(), msg.partition(), msg.offset())

    async def open(self) -> None:
        if self.transactional:
            await asyncio.to_thread(self.producer.init_transactions, TIMEOUT_S)
        else:
            await asyncio.to_thread(self.producer.list_topics, None, TIMEOUT_S)

    async def write(self, events: Sequence[Any]) -> None:
        producer = self.producer
        produce = producer.produce
        topic_of = self.settings.topic
        encode = self.encode
        if self.transactional:
            producer.begin_transaction()
        for event in events:
            record = encode(event, topic_of(event.type))
            produce(record.topic, record.value, record.key)
        if self.transactional:
            await asyncio.to_thread(producer.commit_transaction, TIMEOUT_S)
        else:
            left = await asyncio.to_thread(producer.flush, TIMEOUT_S)
            if left:
                msg = f"{left} records not acknowledged in {TIMEOUT_S}s"
                raise RuntimeError(msg)
        if self.errors:
            msg = f"delivery errors: {self.errors[:3]}"
            raise RuntimeError(msg)
        self.sent += len(events)

    async def close(self) -> None:
        await asyncio.to_thread(self.producer.flush, 10)

    def check(self, expected: int) -> str:
        if self.sent != expected or self.delivered != expected:
            return f"sent {self.sent}, delivered {self.delivered}"
        return ""


def make_producer(args: argparse.Namespace, tmp: Path) -> Producer:
    if args.variant == "null":
        return NullProducer(args)
    if args.variant == "sink":
        return SinkProducer(args, tmp)
    if args.variant == "aiokafka":
        return AiokafkaProducer(args)
    if args.variant == "ck-idem":
        return ConfluentProducer(args, args.codec, transactional=False)
    return ConfluentProducer(args, args.variant.removeprefix("ck-"), transactional=True)


class RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak = max(self.peak, self.proc.memory_info().rss)


def prepared_events(count: int) -> list[Any]:
    """Collector events as ``bench_lake.event_batches`` makes them (synthetic SIMPLE frames
    through the codec), without its lake imports (pyarrow, pypaimon: RSS the producer
    variants would carry)."""
    from upbitpipe.replay.market import SyntheticMarket
    from upbitpipe.sinks.base import SOURCE_WEBSOCKET, SinkEvent
    from upbitpipe.upbit.codec import MarketEvent, parse_frame

    names = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE", "KRW-ADA", "KRW-USDT"]
    names = (names + [f"KRW-S{i:03d}" for i in range(MARKETS)])[:MARKETS]
    now_ms = 1_764_288_000_000
    synthetic = SyntheticMarket(names, seed=7, now_ms=now_ms, orderbook_share=0.3)
    out: list[Any] = []
    while len(out) < count:
        for wire in synthetic.generate(min(2000, count - len(out)), now_ms):
            parsed = parse_frame(wire.frame("SIMPLE"))
            assert isinstance(parsed, MarketEvent)
            record = dict(parsed.data)
            record["_ingested_at"] = now_ms
            record["_source"] = SOURCE_WEBSOCKET
            record["_collector"] = "bench"
            value = SinkEvent(parsed.type, parsed.market, record, parsed.raw).value
            # as the collector hands them to a sink that needs no record: the JSON only.
            # Copies: orjson's bytes keep their ~8 KB write buffer, the frames a larger one
            value, raw = bytes(bytearray(value)), bytes(bytearray(parsed.raw))
            out.append(SinkEvent(parsed.type, parsed.market, None, raw, value))
        now_ms += 400
    return out


def cpu_seconds() -> float:
    """CPU time of the whole process, all threads (librdkafka's and aiokafka's included);
    ``process_time`` reads the same counters as psutil's ``cpu_times`` at ns resolution
    instead of 10 ms ticks."""
    return time.process_time()


async def run_max(producer: Producer, pool: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    batches = [
        [pool[(start + i) % len(pool)] for i in range(args.batch)]
        for start in range(0, args.events, args.batch)
    ]
    await producer.write(batches[0])  # warm-up: producer id, metadata, first AddPartitions
    cpu0, loop0, wall0 = cpu_seconds(), time.thread_time(), time.monotonic()
    for batch in batches[1:]:
        await producer.write(batch)
    wall = time.monotonic() - wall0
    cpu, loop_cpu = cpu_seconds() - cpu0, time.thread_time() - loop0
    records = sum(map(len, batches[1:]))
    return {
        "records": records,
        "written": sum(map(len, batches)),
        "records_per_s": records / wall,
        "cpu_us_per_record": cpu / records * 1e6,
        "loop_cpu_us_per_record": loop_cpu / records * 1e6,
        "cpu_share": cpu / wall,
        "writes": len(batches) - 1,
    }


async def run_paced(
    producer: Producer, pool: list[Any], args: argparse.Namespace
) -> dict[str, Any]:
    await producer.write(pool[: args.batch])  # warm-up, as in max mode
    total = int(args.rate * args.seconds)
    buffer: list[tuple[float, Any]] = []
    wake = asyncio.Event()
    start = time.monotonic() + 0.01

    async def arrive() -> None:
        made = 0
        while made < total:
            due = min(total, int((time.monotonic() - start) * args.rate))
            while made < due:
                buffer.append((start + made / args.rate, pool[made % len(pool)]))
                made += 1
            wake.set()
            await asyncio.sleep(0.002)

    latency: list[float] = []
    write_latency: list[float] = []
    sizes: list[int] = []
    cpu0, loop0, wall0 = cpu_seconds(), time.thread_time(), time.monotonic()
    arrival = asyncio.create_task(arrive())
    done = 0
    gather = args.gather_ms / 1000
    last_call = 0.0
    while done < total:
        if gather and time.monotonic() < last_call + gather:
            await asyncio.sleep(last_call + gather - time.monotonic())
        if not buffer:
            wake.clear()
            await wake.wait()
            continue
        batch = buffer[: args.max_batch]
        del buffer[: args.max_batch]
        called = last_call = time.monotonic()
        await producer.write([event for _, event in batch])
        committed = producer.committed_at or time.monotonic()
        latency.extend((committed - due) * 1000 for due, _ in batch)
        write_latency.extend([(committed - called) * 1000] * len(batch))
        sizes.append(len(batch))
        done += len(batch)
    wall = time.monotonic() - wall0
    cpu, loop_cpu = cpu_seconds() - cpu0, time.thread_time() - loop0
    await arrival
    return {
        "records": done,
        "written": done + args.batch,
        "records_per_s": done / wall,
        "cpu_us_per_record": cpu / done * 1e6,
        "loop_cpu_us_per_record": loop_cpu / done * 1e6,
        "cpu_share": cpu / wall,
        "writes": len(sizes),
        "mean_batch": statistics.fmean(sizes),
        "p50_ms": percentile(latency, 50),
        "p99_ms": percentile(latency, 99),
        "max_ms": max(latency),
        "write_p50_ms": percentile(write_latency, 50),
        "write_p99_ms": percentile(write_latency, 99),
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def child(args: argparse.Namespace) -> dict[str, Any]:
    pool = prepared_events(POOL)
    rss_base = psutil.Process().memory_info().rss
    sampler = RssSampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as tmp:
        producer = make_producer(args, Path(tmp))
        await producer.open()
        try:
            if args.mode == "max":
                result = await run_max(producer, pool, args)
            else:
                result = await run_paced(producer, pool, args)
            result["threads"] = psutil.Process().num_threads()
        finally:
            await producer.close()
        problem = producer.check(result["written"])
    sampler.done.set()
    sampler.join()
    result["rss_base_mb"] = rss_base / 1e6
    result["rss_peak_mb"] = sampler.peak / 1e6
    if problem:
        result["problem"] = problem
    return result


# --- the parent: broker, topics, rounds, table ---------------------------------------------
@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from bench_memory import kafka_cluster

    print("starting one Kafka broker (project infra code) ...", flush=True)
    with kafka_cluster(1) as started:
        yield started


def create_topics(bootstrap: str, prefix: str) -> list[str]:
    from upbitpipe.infra.kafka import topic_specs
    from upbitpipe.infra.kafka_admin import ensure_topics

    specs = topic_specs(kafka_settings(bootstrap, prefix), 1)
    asyncio.run(ensure_topics(bootstrap.split(","), specs))
    return [spec.name for spec in specs]


async def committed_count(bootstrap: str, topics: list[str]) -> int:
    """Records a read_committed consumer sees in ``topics`` (aborted ones and transaction
    markers are not counted)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = kafka_settings(bootstrap, "").partitions  # as topic_specs made them
        parts = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        count = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=50_000)).values():
                count += len(records)
            positions = [await consumer.position(tp) for tp in parts]
            if all(pos >= ends[tp] for pos, tp in zip(positions, parts, strict=True)):
                break
        return count
    finally:
        await consumer.stop()


def run_child(args: argparse.Namespace, bootstrap: str, variant: str, mode: str) -> dict[str, Any]:
    prefix = f"bp-{uuid.uuid4().hex[:8]}-"
    topics = create_topics(bootstrap, prefix)
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--variant", variant]
    argv += ["--mode", mode, "--bootstrap", bootstrap, "--prefix", prefix]
    argv += ["--batch", str(args.batch), "--max-batch", str(args.max_batch)]
    argv += ["--events", str(args.events), "--rate", str(args.rate)]
    argv += ["--seconds", str(args.seconds), "--ck-linger-ms", str(args.ck_linger_ms)]
    argv += ["--gather-ms", str(args.gather_ms), "--codec", args.codec]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"problem": f"exit {done.returncode}: {' | '.join(tail)}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if variant != "null" and "problem" not in result:
        seen = asyncio.run(committed_count(bootstrap, topics))
        if seen != result["written"]:
            result["problem"] = f"read_committed saw {seen}, wrote {result['written']}"
    return result


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if key in r and "problem" not in r]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(results: dict[str, dict[str, list[dict[str, Any]]]], codec: str) -> list[str]:
    lines = [
        "| variant | max: records/s | max: CPU-µs/rec | max: loop-thread µs/rec "
        "| @rate: CPU-µs/rec | @rate: p50 ms | @rate: p99 ms | @rate: write->commit p99 ms "
        "| @rate: records/write | peak RSS MB (+ over base) | runs ok | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, modes in results.items():
        fast, paced = modes.get("max", []), modes.get("paced", [])
        peaks = [median_of(fast, "rss_peak_mb"), median_of(paced, "rss_peak_mb")]
        bases = [median_of(fast, "rss_base_mb"), median_of(paced, "rss_base_mb")]
        peak = max((p for p in peaks if p is not None), default=None)
        base = min((b for b in bases if b is not None), default=None)
        growth = None if peak is None or base is None else peak - base
        ok = sum("problem" not in r for r in fast + paced)
        lines.append(
            f"| {variant} | {fmt(median_of(fast, 'records_per_s'), ',.0f')} "
            f"| {fmt(median_of(fast, 'cpu_us_per_record'), '.1f')} "
            f"| {fmt(median_of(fast, 'loop_cpu_us_per_record'), '.1f')} "
            f"| {fmt(median_of(paced, 'cpu_us_per_record'), '.1f')} "
            f"| {fmt(median_of(paced, 'p50_ms'), '.1f')} "
            f"| {fmt(median_of(paced, 'p99_ms'), '.1f')} "
            f"| {fmt(median_of(paced, 'write_p99_ms'), '.1f')} "
            f"| {fmt(median_of(paced, 'mean_batch'), '.0f')} "
            f"| {fmt(peak, '.0f')} (+{fmt(growth, '.0f')}) "
            f"| {ok}/{len(fast) + len(paced)} | {NOTES[variant].format(codec=codec)} |"
        )
    return lines


def verdict(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    def get(variant: str, mode: str, key: str) -> float | None:
        return median_of(results.get(variant, {}).get(mode, []), key)

    sink = {m: get("sink", m, "cpu_us_per_record") for m in ("max", "paced")}
    sink_p99 = get("sink", "paced", "p99_ms")
    best = None
    for variant in ("ck-lz4", "ck-zstd"):
        cpu = get(variant, "max", "cpu_us_per_record")
        if cpu is not None and (best is None or cpu < best[1]):
            best = (variant, cpu)
    if best is None or sink["max"] is None or sink["paced"] is None or sink_p99 is None:
        return "verdict: incomplete (sink or confluent-kafka rows missing)"
    variant = best[0]
    ck_paced = get(variant, "paced", "cpu_us_per_record") or float("nan")
    ck_p99 = get(variant, "paced", "p99_ms") or float("nan")
    cut_max = 1 - best[1] / sink["max"]
    cut_paced = 1 - ck_paced / sink["paced"]
    # switching is a rewrite of the sink's delivery path: worth it for a large, clear win
    worth = cut_max >= 0.3 and cut_paced >= 0.3 and ck_p99 <= sink_p99
    return (
        f"verdict: {variant} vs sink: CPU/record {cut_max:+.0%} cut at max rate "
        f"({best[1]:.1f} vs {sink['max']:.1f} µs), {cut_paced:+.0%} at the paced rate "
        f"({ck_paced:.1f} vs {sink['paced']:.1f} µs); p99 {ck_p99:.1f} vs {sink_p99:.1f} ms -> "
        + (
            "switching pays (>= 30 % less CPU in both modes, p99 no worse)"
            if worth
            else "not worth a switch on these numbers (needs >= 30 % less CPU in both modes and p99 no worse)"
        )
    )


def parent(args: argparse.Namespace) -> None:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        msg = f"unknown variants: {sorted(unknown)}; known: {', '.join(VARIANTS)}"
        raise SystemExit(msg)
    modes = [m for m in ("max", "paced") if m in args.modes.split(",")]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {v: {} for v in variants}
    load_start = psutil.getloadavg()
    started = time.monotonic()
    with broker(args.bootstrap) as bootstrap:
        for round_ in range(args.runs):
            for variant in variants:
                for mode in modes:
                    load = psutil.getloadavg()[0]
                    result = run_child(args, bootstrap, variant, mode)
                    result["load_1min"] = load
                    results[variant].setdefault(mode, []).append(result)
                    shown = {
                        k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()
                    }
                    print(f"round {round_ + 1} {variant} {mode}: {json.dumps(shown)}", flush=True)
    load_end = psutil.getloadavg()
    print()
    print(
        f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end; "
        f"{(time.monotonic() - started) / 60:.1f} min; codec {args.codec}; batch {args.batch} (max), "
        f"{args.rate:,.0f} records/s for {args.seconds:.0f} s (paced"
        + (f", a write at most every {args.gather_ms:g} ms)" if args.gather_ms else ")")
    )
    for line in table(results, args.codec):
        print(line)
    print(verdict(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json)},
                    "load": [load_start, load_end],
                    "results": results,
                },
                indent=2,
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--modes", default="max,paced")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bootstrap", default=None, help="an existing Kafka; default: start one")
    ap.add_argument("--batch", type=int, default=1024, help="events per write at max rate")
    ap.add_argument("--events", type=int, default=60_000, help="events written at max rate")
    ap.add_argument("--rate", type=float, default=5000, help="paced: events/s")
    ap.add_argument("--seconds", type=float, default=12, help="paced: how long")
    ap.add_argument("--max-batch", type=int, default=2000, help="paced: largest write")
    ap.add_argument(
        "--gather-ms",
        type=float,
        default=0,
        help="paced: start a write at most every MS ms (fewer, larger transactions); 0 = "
        "as the sink runner does, as soon as the last write returned",
    )
    ap.add_argument(
        "--codec",
        default=None,
        choices=["none", "gzip", "snappy", "lz4", "zstd"],
        help="codec of sink, aiokafka and ck-idem (default: the collector's kafka.compression)",
    )
    ap.add_argument("--ck-linger-ms", type=int, default=5, help="confluent-kafka linger.ms")
    ap.add_argument("--json", type=Path, default=None, help="also write every run here")
    # the child process of one run
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.codec = args.codec or default_codec()
    if args.child:
        print(json.dumps(asyncio.run(child(args))))
    else:
        parent(args)


if __name__ == "__main__":
    main()
