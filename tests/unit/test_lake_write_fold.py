"""The Arrow steps that replace pypaimon's row-by-row ones give the same rows."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from pypaimon.common.options.core_options import CoreOptions
from pypaimon.common.options.options import Options
from pypaimon.read.reader.deduplicate_merge_function import DeduplicateMergeFunction
from pypaimon.write.row_key_extractor import FixedBucketRowKeyExtractor, RowKeyExtractor
from pypaimon.write.writer.data_writer import SequenceGenerator
from pypaimon.write.writer.key_value_data_writer import KeyValueDataWriter

from upbitpipe.lake.write import (
    _last_of_each_key,
    _partitions_of,
    _system_fields,
    newest_per_key,
    use_columnar_dedup_fold,
    use_fast_write_paths,
)


def sorted_kv_table(rows: int, seed: int) -> pa.Table:
    """Shaped like a writer's buffer: key columns, _SEQUENCE_NUMBER, _VALUE_KIND, values;
    sorted by key then sequence, with runs of repeated keys (and a nullable key)."""
    rng = random.Random(seed)
    keys = sorted(
        (
            (rng.choice(["KRW-BTC", "KRW-ETH", None]), rng.randint(0, rows // 3), seq)
            for seq in range(rows)
        ),
        key=lambda k: (k[0] is not None, k[0] or "", k[1], k[2]),  # nulls first, as pypaimon
    )
    return pa.table(
        {
            "_KEY_market": pa.array([k[0] for k in keys], pa.string()),
            "_KEY_id": pa.array([k[1] for k in keys], pa.int64()),
            "_SEQUENCE_NUMBER": pa.array([k[2] for k in keys], pa.int64()),
            "_VALUE_KIND": pa.array([0] * rows, pa.int8()),
            "units": pa.array(
                [[{"p": float(k[2]), "s": 1.0}] for k in keys],
                pa.list_(pa.struct([("p", pa.float64()), ("s", pa.float64())])),
            ),
        }
    )


def writer() -> KeyValueDataWriter:
    fake: KeyValueDataWriter = object.__new__(KeyValueDataWriter)
    fake.trimmed_primary_keys = ["market", "id"]
    fake._merge_function = DeduplicateMergeFunction()
    return fake


def test_columnar_fold_equals_pypaimons_fold() -> None:
    current = KeyValueDataWriter._merge_pending_by_pk
    original = getattr(current, "_original", current)  # pypaimon's own
    for seed in range(5):
        data = sorted_kv_table(300, seed)
        expected = original(writer(), data)
        got = _last_of_each_key(writer(), data)
        assert got.to_pylist() == expected.to_pylist()
        keys = [(r["_KEY_market"], r["_KEY_id"]) for r in got.to_pylist()]
        assert len(keys) == len(set(keys)) and got.num_rows < data.num_rows


def test_install_is_idempotent_and_keeps_other_merge_engines() -> None:
    use_columnar_dedup_fold()
    installed = KeyValueDataWriter._merge_pending_by_pk
    use_columnar_dedup_fold()
    assert KeyValueDataWriter._merge_pending_by_pk is installed
    one = sorted_kv_table(1, 0)
    assert installed(writer(), one).num_rows == 1


def test_newest_per_key_keeps_what_the_table_would() -> None:
    """Per key the greatest sequence value (nulls least), of equals the last written; read
    over many chunks, as the sink hands a commit's parts."""
    for seed in range(5):
        rng = random.Random(seed)
        rows = [
            {
                "market": rng.choice(["KRW-BTC", "KRW-ETH", "KRW-XRP"]),
                "timestamp": rng.choice([None, *range(5)]),
                "arrival": index,
            }
            for index in range(200)
        ]
        schema = pa.schema(
            [("market", pa.string()), ("timestamp", pa.int64()), ("arrival", pa.int64())]
        )
        parts = [pa.Table.from_pylist(rows[i : i + 37], schema=schema) for i in range(0, 200, 37)]
        expected: dict[str, dict[str, Any]] = {}
        for row in rows:
            kept = expected.get(row["market"])
            rank = -1 if row["timestamp"] is None else row["timestamp"]
            if kept is None or rank >= (-1 if kept["timestamp"] is None else kept["timestamp"]):
                expected[row["market"]] = row
        got = newest_per_key(pa.concat_tables(parts), ["market"], ["timestamp"])
        assert got.column(0).num_chunks == 1
        assert sorted(got.to_pylist(), key=lambda r: r["market"]) == sorted(
            expected.values(), key=lambda r: r["market"]
        )


def test_columnar_partitions_equal_pypaimons() -> None:
    """The partition tuples of a batch, as pypaimon's row-by-row extraction gives them."""
    current = RowKeyExtractor._extract_partitions_batch
    original = getattr(current, "_original", current)
    batch = pa.record_batch(
        {
            "dt": ["2026-11-27", "2026-11-28", "2026-11-28", None],
            "hour": [1, 2, 2, 3],
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )
    for indices in ([0], [0, 1], []):
        extractor = object.__new__(FixedBucketRowKeyExtractor)
        extractor.table_schema = SimpleNamespace(  # type: ignore[assignment]
            fields=[SimpleNamespace(name=n) for n in batch.schema.names]
        )
        extractor.partition_indices = indices
        for data in (batch, batch.slice(1, 2), batch.slice(0, 0)):
            assert _partitions_of(extractor, data) == original(extractor, data)


def test_columnar_fold_of_unique_keys_is_the_data_in_one_chunk() -> None:
    """No key twice (a history table's usual batch): the rows as they are, in one chunk."""
    current = KeyValueDataWriter._merge_pending_by_pk
    original = getattr(current, "_original", current)
    data = sorted_kv_table(300, 1)
    keys = data.select(["_KEY_market", "_KEY_id"]).to_pylist()
    unique = data.filter(pa.array([i == 0 or keys[i] != keys[i - 1] for i in range(len(keys))]))
    two_chunks = pa.concat_tables([unique.slice(0, 100), unique.slice(100)])
    for table in (unique, two_chunks):
        got = _last_of_each_key(writer(), table)
        assert got.to_pylist() == original(writer(), table).to_pylist() == unique.to_pylist()
        assert got.column(0).num_chunks == 1


def test_columnar_system_fields_equal_pypaimons() -> None:
    """Key copies, sequence numbers (counted on from batch to batch) and row kinds, as
    pypaimon's per-row ``_add_system_fields`` makes them; a ``rowkind.field`` table keeps
    pypaimon's own."""
    use_fast_write_paths()
    current = KeyValueDataWriter._add_system_fields
    original = getattr(current, "_original", current)
    assert original is not current  # installed
    batch = pa.record_batch(
        {
            "dt": pa.array(["2026-11-28", "2026-11-28", "2026-11-29"], pa.string()),
            "market": pa.array(["KRW-BTC", "KRW-ETH", None], pa.string()),
            "price": pa.array([1.0, None, 3.0], pa.float64()),
        },
        schema=pa.schema(
            [
                pa.field("dt", pa.string(), nullable=False),
                pa.field("market", pa.string()),
                pa.field("price", pa.float64()),
            ]
        ),
    )

    def kv_writer(options: dict[str, str]) -> KeyValueDataWriter:
        fake: KeyValueDataWriter = object.__new__(KeyValueDataWriter)
        fake.trimmed_primary_keys = ["dt", "market", "absent"]
        fake.sequence_generator = SequenceGenerator(41)
        fake.options = CoreOptions(Options(options))
        return fake

    ours, theirs = kv_writer({}), kv_writer({})
    for data in (batch, batch.slice(1, 2), batch.slice(0, 0), batch):
        got = _system_fields(ours, data)
        expected = original(theirs, data)
        assert got.schema == expected.schema
        assert got.equals(expected)
        assert ours.sequence_generator.current == theirs.sequence_generator.current
    assert ours.sequence_generator.current == 41 + 3 + 2 + 0 + 3
    kinds = kv_writer({"rowkind.field": "market"})
    with pytest.raises(ValueError):  # pypaimon's own: 'None' is no row kind
        current(kinds, batch)
