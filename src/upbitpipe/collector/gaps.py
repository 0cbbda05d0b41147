"""Gap records: every stretch of a market's trades the collector did not receive live.

A gap opens when a connection (re)subscribes or the collector restarts: from the last trade
known before (time and ``sequential_id``) to the first trade after (or, until that arrives,
the open end). The backfill works on it; what it recovers shrinks the gap from its newest
end once the sinks made those trades durable. Its state:

* ``backfilling`` - REST has not been asked yet, or the answer is on its way;
* ``missing`` - REST could not give it (older than REST keeps, or refusing for longer than
  the retry budget): an explicit record, counted in metrics and shown by ``stats``. Every
  collector start, and a retry timer while running, tries it again;
* ``closed`` - every trade REST serves in the range is durable. Closed gaps that were once
  ``missing`` stay in the file (the audit trail), the others are dropped.

The book is ``<state_dir>/gaps.json``, rewritten atomically with ``resume.json``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from upbitpipe.collector.statefiles import read_state_object, write_state_atomic

GAPS_FILE = "gaps.json"
KEEP_CLOSED = 200  # closed gaps that were once missing, kept as the audit trail

GapState = Literal["backfilling", "missing", "closed"]
STATES: tuple[GapState, ...] = ("backfilling", "missing", "closed")


@dataclass
class Gap:
    """Trades of ``market`` after ``from_ms``/``from_sid`` (the last trade known before) and
    before ``to_ms``/``to_sid`` (the first trade known after; None: up to the live stream).
    Times are the exchange's trade times (epoch ms)."""

    market: str
    from_ms: int
    from_sid: int | None = None
    to_ms: int | None = None
    to_sid: int | None = None
    state: GapState = "backfilling"
    reason: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    attempts: int = 0
    recovered: int = 0
    was_missing: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Gap:
        """Raises ``ValueError`` for a record of the wrong shape."""
        if not isinstance(data, dict):
            msg = f"a gap record must be an object, got {type(data).__name__}"
            raise ValueError(msg)
        market, from_ms = data.get("market"), data.get("from_ms")
        if not isinstance(market, str) or not isinstance(from_ms, int):
            msg = "a gap record needs a market (text) and from_ms (integer)"
            raise ValueError(msg)
        state = data.get("state", "backfilling")
        if state not in STATES:
            msg = f"gap state must be one of {', '.join(STATES)}, got {state!r}"
            raise ValueError(msg)
        gap = cls(market=market, from_ms=int(from_ms), state=state)
        for name in ("from_sid", "to_ms", "to_sid"):
            value = data.get(name)
            if value is not None and not _is_int(value):
                msg = f"gap {name} must be an integer or null, got {value!r}"
                raise ValueError(msg)
            setattr(gap, name, value)
        for name in ("id", "reason"):
            if isinstance(data.get(name), str):
                setattr(gap, name, data[name])
        for name in ("created_at", "updated_at"):
            if isinstance(data.get(name), int | float) and not isinstance(data.get(name), bool):
                setattr(gap, name, float(data[name]))
        for name in ("attempts", "recovered"):
            if _is_int(data.get(name)):
                setattr(gap, name, int(data[name]))
        gap.was_missing = bool(data.get("was_missing", state == "missing"))
        return gap

    @property
    def open(self) -> bool:
        return self.state != "closed"

    def describe(self) -> str:
        """One line for logs and ``stats``."""
        end = "the live stream" if self.to_ms is None else _iso(self.to_ms)
        ids = f" (after sequential_id {self.from_sid}" if self.from_sid is not None else " ("
        ids += f", before {self.to_sid})" if self.to_sid is not None else ")"
        text = f"{self.market} {_iso(self.from_ms)} .. {end}{ids if ids != ' ()' else ''}"
        return f"{text}: {self.reason}" if self.reason else text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _iso(ms: int) -> str:
    moment = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{ms % 1000:03d}Z"


class GapBook:
    """The gaps of one state dir, in memory; ``save`` writes them (the caller decides when:
    together with the resume point, so the two never disagree on disk)."""

    def __init__(self, path: Path, gaps: Iterable[Gap] = ()) -> None:
        self.path = path
        self._gaps: dict[str, Gap] = {g.id: g for g in gaps}

    @classmethod
    def load(cls, path: Path) -> GapBook:
        """The book at ``path`` (empty if there is none). A file of the wrong shape is moved
        aside with one warning (see :func:`read_state_json`); bad records are skipped."""
        data = read_state_object(path, "gap records") or {}
        records = data.get("gaps")
        gaps: list[Gap] = []
        for raw in records if isinstance(records, list) else []:
            try:
                gaps.append(Gap.from_json(raw))
            except ValueError:
                continue
        return cls(path, gaps)

    def __iter__(self) -> Iterator[Gap]:
        return iter(list(self._gaps.values()))

    def __len__(self) -> int:
        return len(self._gaps)

    def get(self, gap_id: str) -> Gap | None:
        return self._gaps.get(gap_id)

    def add(self, gap: Gap) -> Gap:
        self._gaps[gap.id] = gap
        return gap

    def open_gaps(self, market: str | None = None) -> list[Gap]:
        return [g for g in self._gaps.values() if g.open and market in (None, g.market)]

    def missing(self) -> list[Gap]:
        return [g for g in self._gaps.values() if g.state == "missing"]

    def close(self, gap: Gap) -> None:
        gap.state = "closed"
        gap.reason = ""
        gap.updated_at = time.time()
        if not gap.was_missing:
            self._gaps.pop(gap.id, None)
        closed = [g for g in self._gaps.values() if g.state == "closed"]
        for old in sorted(closed, key=lambda g: g.updated_at)[:-KEEP_CLOSED]:
            self._gaps.pop(old.id, None)

    def mark_missing(self, gap: Gap, reason: str) -> None:
        gap.state = "missing"
        gap.was_missing = True
        gap.reason = reason
        gap.updated_at = time.time()

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "gaps": [g.to_json() for g in self._gaps.values()]}

    def save(self) -> None:
        write_state_atomic(self.path, self.to_json())

    def summary(self) -> dict[str, Any]:
        """What status.json, metrics and ``stats`` show."""
        missing = self.missing()
        return {
            "open": len(self.open_gaps()),
            "missing": len(missing),
            "backfilling": sum(1 for g in self._gaps.values() if g.state == "backfilling"),
            "missing_ranges": [
                {
                    "market": g.market,
                    "from_ms": g.from_ms,
                    "to_ms": g.to_ms,
                    "from_sid": g.from_sid,
                    "to_sid": g.to_sid,
                    "reason": g.reason,
                }
                for g in sorted(missing, key=lambda g: (g.market, g.from_ms))[:20]
            ],
        }
