"""A bounded, ordered, on-disk FIFO of records: the Kafka sink's spool while the brokers are
away, and every sink runner's shutdown spool (events a sink could not make durable within
``collector.shutdown_timeout_seconds``; the next start delivers them first).

Records are appended to numbered segment files (``<dir>/segment-000001.bin``) as
length-prefixed frames ``[u32 len][u16 topic len][topic][u16 key len][key][value]``. Reading
goes strictly in order; a segment is deleted once all its records were acknowledged. The
spool survives a restart of the collector: whatever is on disk at start is sent first.

All methods are synchronous file I/O; the Kafka sink calls them through a worker thread.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from upbitpipe.sinks.base import SinkEvent

_HEADER = struct.Struct(">I")
_SHORT = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    topic: str
    key: bytes
    value: bytes


class SpoolFullError(Exception):
    """The spool reached its byte bound; the caller must wait (backpressure)."""


def _encode(record: SpoolRecord) -> bytes:
    topic = record.topic.encode()
    body = (
        _SHORT.pack(len(topic)) + topic + _SHORT.pack(len(record.key)) + record.key + record.value
    )
    return _HEADER.pack(len(body)) + body


def _decode(body: bytes) -> SpoolRecord:
    (tlen,) = _SHORT.unpack_from(body, 0)
    topic = body[2 : 2 + tlen].decode()
    offset = 2 + tlen
    (klen,) = _SHORT.unpack_from(body, offset)
    key = body[offset + 2 : offset + 2 + klen]
    return SpoolRecord(topic=topic, key=key, value=body[offset + 2 + klen :])


class DiskSpool:
    """Ordered FIFO over segment files; the acknowledged position survives restarts."""

    def __init__(
        self, directory: Path, max_bytes: int, segment_bytes: int = 16 * 1024 * 1024
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._offset_file = directory / "head.offset"
        self._segments = sorted(directory.glob("segment-*.bin"))
        self._next_index = (int(self._segments[-1].stem.split("-")[1]) + 1) if self._segments else 1
        self._head_acked = self._read_offset()
        self._head_cache: list[SpoolRecord] | None = None
        self._head_cache_size = -1
        self.bytes = sum(p.stat().st_size for p in self._segments)
        self.records = sum(len(self._load(p)) for p in self._segments) - self._head_acked

    def __len__(self) -> int:
        return self.records

    def append(self, records: list[SpoolRecord]) -> None:
        """Append in order (fsynced); raises SpoolFullError, appending nothing, when full."""
        blob = b"".join(_encode(r) for r in records)
        if self.bytes + len(blob) > self.max_bytes:
            msg = f"spool at {self.bytes} bytes cannot take {len(blob)} more (max {self.max_bytes})"
            raise SpoolFullError(msg)
        if not self._segments or self._segments[-1].stat().st_size >= self.segment_bytes:
            self._segments.append(self.directory / f"segment-{self._next_index:06d}.bin")
            self._next_index += 1
        with self._segments[-1].open("ab") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        self.bytes += len(blob)
        self.records += len(records)

    def peek(self, limit: int) -> list[SpoolRecord]:
        """Up to ``limit`` oldest unacknowledged records (from the head segment)."""
        head = self._head()
        return head[self._head_acked : self._head_acked + limit]

    def ack(self, count: int) -> None:
        """Mark the ``count`` oldest records (as returned by ``peek``) delivered."""
        head = self._head()
        self._head_acked += count
        self.records -= count
        if self._head_acked >= len(head) and len(self._segments) > 0:
            path = self._segments.pop(0)
            self.bytes -= path.stat().st_size
            path.unlink()
            self._head_acked = 0
            self._head_cache = None
        self._write_offset()

    def head_position(self) -> str:
        """Where the oldest unacknowledged record is (or the next appended one will be): names
        a batch across restarts, and changes with every ``ack``."""
        if self._segments:
            return f"{self._segments[0].name}:{self._head_acked}"
        return f"segment-{self._next_index:06d}.bin:0"

    def _head(self) -> list[SpoolRecord]:
        if not self._segments:
            return []
        size = self._segments[0].stat().st_size
        if self._head_cache is None or size != self._head_cache_size:
            self._head_cache = self._load(self._segments[0])
            self._head_cache_size = size
        return self._head_cache

    def _read_offset(self) -> int:
        try:
            return int(self._offset_file.read_text().strip() or 0) if self._segments else 0
        except (OSError, ValueError):
            return 0

    def _write_offset(self) -> None:
        tmp = self._offset_file.with_suffix(".tmp")
        tmp.write_text(str(self._head_acked))
        tmp.replace(self._offset_file)

    @staticmethod
    def _load(path: Path) -> list[SpoolRecord]:
        data = path.read_bytes()
        out: list[SpoolRecord] = []
        offset = 0
        while offset + _HEADER.size <= len(data):
            (length,) = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            if start + length > len(data):
                break  # torn write at a crash: ignore the partial tail
            out.append(_decode(data[start : start + length]))
            offset = start + length
        return out


def event_to_spool(event: SinkEvent) -> SpoolRecord:
    """A sink event as a spool record: topic = event type, key = market, value =
    ``[u32 raw len][raw][record JSON]`` (the record keeps every field the sinks need)."""
    return SpoolRecord(
        topic=event.type,
        key=event.market.encode(),
        value=_HEADER.pack(len(event.raw)) + event.raw + event.value,
    )


def event_from_spool(record: SpoolRecord) -> SinkEvent:
    (raw_len,) = _HEADER.unpack_from(record.value, 0)
    start = _HEADER.size
    raw = record.value[start : start + raw_len]
    value = record.value[start + raw_len :]
    return SinkEvent(record.topic, record.key.decode(), None, raw, value)  # record on first use
