"""Reading lake tables back with pypaimon (merged on the primary key, as a query would)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from upbitpipe.config import Settings
from upbitpipe.lake.catalog import open_catalog


def read_table(
    settings: Settings, table: str, columns: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Every row of ``lake.database.table`` as dicts (optionally only ``columns``)."""
    catalog = open_catalog(settings, create=False)
    paimon_table = catalog.get_table(f"{settings.lake.database}.{table}")
    builder = paimon_table.new_read_builder()
    if columns:
        builder = builder.with_projection(list(columns))
    arrow = builder.new_read().to_arrow(builder.new_scan().plan().splits())
    rows: list[dict[str, Any]] = arrow.to_pylist()
    return rows


def trade_id_counts(settings: Settings) -> Counter[tuple[str, int]]:
    """How often each (market, sequential_id) is in the merged ``trade`` table (1 = once)."""
    rows = read_table(settings, "trade", ["market", "sequential_id"])
    return Counter((r["market"], r["sequential_id"]) for r in rows)
