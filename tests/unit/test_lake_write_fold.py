"""The columnar fold that replaces pypaimon's row-by-row one gives the same rows."""

from __future__ import annotations

import random

import pyarrow as pa
from pypaimon.read.reader.deduplicate_merge_function import DeduplicateMergeFunction
from pypaimon.write.writer.key_value_data_writer import KeyValueDataWriter

from upbitpipe.lake.write import _last_of_each_key, use_columnar_dedup_fold


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
