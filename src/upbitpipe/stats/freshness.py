"""Lake freshness: the newest trade a reader of the lake can see.

Reads only ``trade_timestamp`` of the trade table's two newest ``dt`` partitions (today and
yesterday in the lake's time zone) - the newest trade is there unless the lake has been idle
for a day, and only then is the whole table scanned.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.compute as pc


def newest_trade_ms(table: Any, timezone: str, now: datetime | None = None) -> int | None:
    """Max ``trade_timestamp`` (epoch ms) visible in ``table`` (a pypaimon table), or None."""
    today = (now or datetime.now(ZoneInfo(timezone))).astimezone(ZoneInfo(timezone))
    recent = [(today - timedelta(days=d)).strftime("%Y-%m-%d") for d in (0, 1)]
    newest = _max_timestamp(table, recent)
    return newest if newest is not None else _max_timestamp(table, None)


def _max_timestamp(table: Any, partitions: list[str] | None) -> int | None:
    builder = table.new_read_builder()
    if partitions is not None:  # the filter first: the predicate builder sees projected fields
        builder = builder.with_filter(builder.new_predicate_builder().is_in("dt", partitions))
    builder = builder.with_projection(["trade_timestamp"])
    splits = builder.new_scan().plan().splits()
    if not splits:
        return None
    column = builder.new_read().to_arrow(splits).column("trade_timestamp")
    value = pc.max(column).as_py() if len(column) else None
    return int(value) if value is not None else None
