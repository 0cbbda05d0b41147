"""Writing Arrow into a lake table with pypaimon: one batch, one snapshot.

pypaimon does some of its per-batch work row by row in Python; :func:`use_fast_write_paths`
replaces three such steps with Arrow ones that give the same result:

* The fold of rows with the same primary key before a file is written, over
  ``to_pydict()`` (``KeyValueDataWriter._merge_pending_by_pk``): 80-90 % of a commit's CPU
  and several times the batch in memory (orderbook units as Python dicts). For the
  ``deduplicate`` merge engine - every lake table here - the fold keeps the last row of each
  key run of the sorted data; :func:`_last_of_each_key` does exactly that with Arrow compute
  (other merge engines keep pypaimon's fold).
* The partition of every row (``RowKeyExtractor._extract_partitions_batch``, one
  ``scalar.as_py()`` per row and partition key): ~20 % of a commit. The same tuples come
  from one ``to_pylist()`` per partition column.
* The system columns of a primary-key table (``KeyValueDataWriter._add_system_fields``): a
  Python call per row for the sequence number and a Python list for the row kind; numpy
  ranges give the same columns (:func:`_system_fields`).
* Parquet dictionary encoding of every column (pyarrow's default, which pypaimon keeps):
  prices and sizes are nearly all distinct, so their dictionaries are built and then
  dropped for plain encoding; an orderbook's 120 doubles a row made the parquet encoding
  1.7x dearer for the same file size. :func:`_dictionary_columns` keeps dictionaries for the
  string columns only (market, dates, enums: smaller files).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _run_ends(columns: Sequence[Any], rows: int) -> pa.ChunkedArray | None:
    """A mask of the rows (of columns sorted by key) that end a run of equal keys (a null
    equals a null); None without key columns."""
    keep: Any = None
    for column in columns:
        a, b = column.slice(0, rows - 1), column.slice(1)
        both = pc.and_(pc.is_valid(a), pc.is_valid(b))
        differs = pc.if_else(both, pc.not_equal(a, b), pc.xor(pc.is_null(a), pc.is_null(b)))
        keep = differs if keep is None else pc.or_(keep, differs)
    if keep is None:
        return None
    chunks = keep.chunks if isinstance(keep, pa.ChunkedArray) else [keep]
    return pa.chunked_array([*chunks, pa.array([True])], type=pa.bool_())


def _last_of_each_key(writer: Any, data: pa.Table) -> pa.Table:
    """Rows of ``data`` (sorted by key, then sequence) that end a run of equal keys."""
    keys = [data.column(index) for index in range(len(writer.trimmed_primary_keys))]
    keep = _run_ends(keys, data.num_rows)
    if keep is None:
        return data
    if pc.all(keep).as_py():  # no key twice (the usual history batch): no filtered copy
        return data if data.column(0).num_chunks == 1 else data.combine_chunks()
    # one chunk, as pypaimon's own fold returns: with a multi-chunk table the files it
    # wrote were read back unmerged (duplicate keys across commits)
    return data.filter(keep).combine_chunks()


def newest_per_key(data: pa.Table, keys: Sequence[str], sequence: Sequence[str]) -> pa.Table:
    """The rows a ``deduplicate`` table keeps of ``data``: per key, the greatest
    ``sequence`` (nulls least), of equals the last written - as pypaimon's sort and fold
    before a file is written, but reading only the key and sequence columns; ``data`` may
    be in many chunks (the result is one). A floating-point sequence (pypaimon orders it
    as Java does) is not folded here."""
    if data.num_rows < 2 or not keys:
        return data.combine_chunks()
    if any(pa.types.is_floating(data.schema.field(name).type) for name in sequence):
        return data.combine_chunks()
    names = [*keys, *sequence]
    # a stable sort: rows with equal key and sequence stay in the order written
    order = pc.sort_indices(
        data.select(names),
        sort_keys=[(name, "ascending") for name in names],
        null_placement="at_start",
    )
    ordered_keys = data.select(list(keys)).take(order)
    keep = _run_ends(ordered_keys.columns, data.num_rows)
    assert keep is not None
    return data.take(order.filter(keep.combine_chunks())).combine_chunks()


def use_fast_write_paths() -> None:
    """Install the Arrow replacements for pypaimon's row-by-row steps (idempotent)."""
    use_columnar_dedup_fold()
    _use_columnar_partitions()
    _use_string_dictionaries()
    _use_columnar_system_fields()


def _partitions_of(extractor: Any, data: pa.RecordBatch) -> list[tuple[Any, ...]]:
    """Each row's partition values, as ``RowKeyExtractor._extract_partitions_batch``."""
    if not extractor.partition_indices:
        return [() for _ in range(data.num_rows)]
    columns = extractor._input_columns(data, extractor.partition_indices)
    if len(columns) == 1:  # one partition key (dt), nearly always one value in a batch
        values = pc.unique(columns[0])
        if len(values) == 1:
            return [(values[0].as_py(),)] * data.num_rows
    return list(zip(*(column.to_pylist() for column in columns), strict=True))


def _replace_method(owner: type, name: str, make: Callable[[Any], Any]) -> None:
    """Install ``make(original)`` as ``owner.name`` (idempotent: a method already replaced
    is left; a pypaimon without the method is left alone). The replacement keeps the
    original as ``_original``, which the tests compare against."""
    original = getattr(owner, name, None)
    if original is None or getattr(original, "_upbitpipe_columnar", False):
        return
    replacement = make(original)
    replacement._upbitpipe_columnar = True
    replacement._original = original
    setattr(owner, name, replacement)


def _use_columnar_partitions() -> None:
    from pypaimon.write.row_key_extractor import RowKeyExtractor

    if not hasattr(RowKeyExtractor, "_input_columns"):  # another pypaimon: leave it alone
        return

    def make(original: Any) -> Any:
        def partitions(self: Any, data: pa.RecordBatch) -> list[tuple[Any, ...]]:
            return _partitions_of(self, data)

        return partitions

    _replace_method(RowKeyExtractor, "_extract_partitions_batch", make)


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth a parquet dictionary: strings (top level; nested ones stay plain)."""
    strings = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    return [f.name for f in schema if any(is_type(f.type) for is_type in strings)]


def _use_string_dictionaries() -> None:
    from pypaimon.write.writer.data_writer import DataWriter

    def make(original: Any) -> Any:
        def write_parquet_data(self: Any, path: str, data: pa.Table) -> Any:
            options = getattr(self, "parquet_writer_options", None)
            if not isinstance(options, dict) or "use_dictionary" in options:
                return original(self, path, data)
            self.parquet_writer_options = {
                **options,
                "use_dictionary": _dictionary_columns(data.schema),
            }
            try:
                return original(self, path, data)
            finally:
                self.parquet_writer_options = options

        return write_parquet_data

    _replace_method(DataWriter, "_write_parquet_data", make)


def _system_fields(writer: Any, data: pa.RecordBatch) -> pa.RecordBatch:
    """``data`` behind the key copies (``_KEY_<pk>``), ``_SEQUENCE_NUMBER`` (the writer's
    next numbers, in row order) and ``_VALUE_KIND`` (insert: no ``rowkind.field``), as
    ``KeyValueDataWriter._add_system_fields``."""
    rows = data.num_rows
    names = data.schema.names
    arrays: list[Any] = []
    fields: list[pa.Field] = []
    for key in writer.trimmed_primary_keys:
        if key in names:
            arrays.append(data.column(key))
            source = data.schema.field(key)
            fields.append(pa.field(f"_KEY_{key}", source.type, nullable=source.nullable))
    sequence = writer.sequence_generator
    first = sequence.current + 1
    sequence.current += rows
    arrays.append(pa.array(np.arange(first, first + rows, dtype=np.int64)))
    fields.append(pa.field("_SEQUENCE_NUMBER", pa.int64(), nullable=False))
    arrays.append(pa.array(np.zeros(rows, dtype=np.int8)))
    fields.append(pa.field("_VALUE_KIND", pa.int8(), nullable=False))
    arrays.extend(data.columns)
    fields.extend(data.schema)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _use_columnar_system_fields() -> None:
    from pypaimon.write.writer.key_value_data_writer import KeyValueDataWriter

    def make(original: Any) -> Any:
        def add_system_fields(self: Any, data: pa.RecordBatch) -> pa.RecordBatch:
            if "rowkind.field" in self.options.options.to_map():  # kinds from a column
                return original(self, data)
            return _system_fields(self, data)

        return add_system_fields

    _replace_method(KeyValueDataWriter, "_add_system_fields", make)


def use_columnar_dedup_fold() -> None:
    """Replace pypaimon's row-by-row fold with :func:`_last_of_each_key` for deduplicate
    tables (idempotent; a pypaimon without that method is left alone)."""
    from pypaimon.read.reader.deduplicate_merge_function import DeduplicateMergeFunction
    from pypaimon.write.writer.key_value_data_writer import KeyValueDataWriter

    def make(original: Any) -> Any:
        def fold(self: Any, data: pa.Table) -> pa.Table:
            if data.num_rows < 2 or type(self._merge_function) is not DeduplicateMergeFunction:
                return original(self, data)
            return _last_of_each_key(self, data)

        return fold

    _replace_method(KeyValueDataWriter, "_merge_pending_by_pk", make)


def commit_arrow(paimon_table: Any, arrow: pa.Table, partition_keys: Sequence[str]) -> None:
    """Write ``arrow`` and commit it as one snapshot of ``paimon_table``.

    A one-bucket table skips pypaimon's per-row bucket hashing (~40 µs a row) by handing
    it bucket 0, one partition at a time.
    """
    use_fast_write_paths()
    builder = paimon_table.new_batch_write_builder()
    writer = builder.new_write()
    committer = builder.new_commit()
    try:
        _write_arrow(paimon_table, writer, arrow, partition_keys)
        committer.commit(writer.prepare_commit())
    finally:
        writer.close()
        committer.close()


def _write_arrow(
    paimon_table: Any, writer: Any, arrow: pa.Table, partition_keys: Sequence[str]
) -> None:
    if paimon_table.options.bucket() == 1:
        for part in split_by_partition(arrow, partition_keys):
            writer.write_arrow(part, bucket=0)
    else:
        writer.write_arrow(arrow)


class TableCommitter:
    """Commits Arrow into one table, one snapshot per :meth:`commit`, with a pypaimon stream
    writer kept from one commit to the next.

    A new (batch) writer looks up the highest sequence number of each partition it writes
    to by planning a scan of the partition's files: a cost that grows with every commit
    (pypaimon does not compact), ~30 % of a commit after a few hundred of them. A kept
    writer looks it up once and counts on. A failed commit drops the writer (its files may
    stay as orphans: pypaimon never deletes files after a commit error, a snapshot may
    reference them) and the next commit starts a fresh one. Thread-safe: one commit at a
    time (the sink's commits run in worker threads).
    """

    def __init__(self, paimon_table: Any, partition_keys: Sequence[str]) -> None:
        self.table = paimon_table
        self.partition_keys = tuple(partition_keys)
        self._lock = threading.Lock()
        self._writer: Any = None
        self._committer: Any = None
        self._identifier = 0

    def commit(self, arrow: pa.Table) -> None:
        use_fast_write_paths()
        with self._lock:
            if self._writer is None:
                builder = self.table.new_stream_write_builder()
                self._writer, self._committer = builder.new_write(), builder.new_commit()
            try:
                _write_arrow(self.table, self._writer, arrow, self.partition_keys)
                self._identifier += 1
                messages = self._writer.prepare_commit(self._identifier)
                self._committer.commit(messages, self._identifier)
            except BaseException:
                self._drop()
                raise

    def close(self) -> None:
        """Release the writer, unless a commit still holds it (a commit cut short by a
        bounded shutdown runs on in its daemon thread: closing must not wait for it)."""
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()

    def _drop(self) -> None:
        writer, committer = self._writer, self._committer
        self._writer = self._committer = None
        try:
            if writer is not None:
                writer.close()
        finally:
            if committer is not None:
                committer.close()


def split_by_partition(arrow: pa.Table, partition_keys: Sequence[str]) -> list[pa.Table]:
    """One table per distinct partition value (only ``dt``-style single keys occur here)."""
    if not partition_keys or arrow.num_rows == 0:
        return [arrow]
    column = arrow.column(partition_keys[0])
    values = pc.unique(column).to_pylist()
    if len(values) == 1:
        return [arrow]
    return [arrow.filter(pc.equal(column, value)) for value in values]
