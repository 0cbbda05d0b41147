"""Where a restart resumes: per market, the newest live trade every sink has made durable.

``resume.json`` (with ``gaps.json``, see :mod:`upbitpipe.collector.gaps`) is the
collector's promise about the past: every trade of a market up to its *tip* is durable in
every sink, or lies in a recorded gap. So a restart backfills from the tip, and a crash at
any moment loses nothing REST still serves:

* it exists from the first second: at start every market gets a tip at the start time of
  the first subscription (less a margin for clock skew), written before the first connect;
* it only moves when the sinks say so: :class:`DurableLedger` remembers, per sink, how many
  events had been handed to it when a trade was emitted, and applies the tip once every sink
  reports at least that many durable (sinks write in order, so durable is a prefix);
* only live trades move it (a REST page can be newer than frames still in the socket
  buffer), and only plausible ones (a trade dated in the future is not a resume point).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from upbitpipe.collector.statefiles import read_state_object, write_state_atomic
from upbitpipe.upbit.fields import MAX_EPOCH_MS, MIN_EPOCH_MS

log = logging.getLogger(__name__)

RESUME_FILE = "resume.json"
RESUME_MAX_AGE_MS = 7 * 24 * 3600 * 1000  # Upbit's REST serves the last 7 days
# a resume time this far past our clock is corrupt, not a clock difference (the exchange's
# clock, or a replay twin's that ran ahead, may well be some minutes or hours off ours)
FUTURE_TOLERANCE_MS = 24 * 3600_000
FIRST_START_MARGIN_MS = 60_000  # clock skew between us and the exchange at a first start


@dataclass
class Tip:
    """The newest durable live trade of a market: its time, id, and when we received it
    (our clock: where a read-back of Kafka has to start)."""

    ms: int
    sid: int | None = None
    received_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ms": self.ms, "sid": self.sid, "received_ms": self.received_ms}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_tips(data: Any, now_ms: int) -> dict[str, Tip]:
    """Tips from ``resume.json``: ``{"version": 2, "markets": {m: {ms, sid, received_ms}}}``
    or the first format ``{m: ms}``. Entries that are not plausible trade times (not an
    integer, before 2017, in the future) are dropped with one warning naming them: they
    would otherwise pin or skip that market's backfill."""
    if not isinstance(data, dict):
        return {}
    markets = data.get("markets") if data.get("version") == 2 else data
    latest = min(MAX_EPOCH_MS, now_ms + FUTURE_TOLERANCE_MS)
    tips: dict[str, Tip] = {}
    bad: list[str] = []
    for market, value in markets.items() if isinstance(markets, dict) else ():
        ms = value.get("ms") if isinstance(value, dict) else value
        if not (isinstance(ms, int) and not isinstance(ms, bool) and MIN_EPOCH_MS <= ms <= latest):
            bad.append(f"{market}={str(value)[:24]}")
            continue
        sid = value.get("sid") if isinstance(value, dict) else None
        received = value.get("received_ms") if isinstance(value, dict) else None
        tips[market] = Tip(
            ms=ms,
            sid=sid if _is_int(sid) else None,
            received_ms=received if _is_int(received) else None,
        )
    if bad:
        log.warning(
            "resume: ignored %d entries that are not plausible trade times: %s",
            len(bad),
            ", ".join(bad[:5]),
        )
    return tips


class ResumePoints:
    """The tips of one state dir."""

    def __init__(self, path: Path, tips: dict[str, Tip] | None = None) -> None:
        self.path = path
        self.tips: dict[str, Tip] = dict(tips or {})
        self.saved_at = 0.0

    @classmethod
    def load(cls, path: Path, *, now_ms: int | None = None) -> ResumePoints:
        """Tips saved by an earlier run (a file of the wrong shape is moved aside)."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return cls(path, parse_tips(read_state_object(path, "resume"), now))

    def start(self, markets: Sequence[str], now_ms: int) -> list[str]:
        """Give every market without a tip one at ``now_ms`` (the first subscription);
        returns the markets that already had one (they resume)."""
        resumed = [m for m in markets if m in self.tips]
        for market in markets:
            self.tips.setdefault(market, Tip(ms=now_ms - FIRST_START_MARGIN_MS))
        return resumed

    def advance(self, market: str, tip: Tip) -> None:
        """The newest durable live trade: live trades become durable in stream order, so
        the last one is the tip (never a max: a bad value cannot pin it)."""
        self.tips[market] = tip

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 2,
            "saved_at": int(time.time() * 1000),
            "markets": {m: t.to_json() for m, t in sorted(self.tips.items())},
        }

    def save(self) -> None:
        write_state_atomic(self.path, self.to_json())
        self.saved_at = time.time()


class DurableCounter(Protocol):
    """What a sink runner reports: of the events handed to it in this run, how many (a
    prefix, in order) are durable at the destination or in an on-disk spool."""

    durable_events: int


class DurableLedger:
    """Actions that must wait until every sink made the events emitted so far durable."""

    def __init__(self, sinks: Sequence[DurableCounter]) -> None:
        self.sinks = list(sinks)
        self.handed = [0] * len(self.sinks)  # events handed to each sink
        self._waiting: deque[tuple[tuple[int, ...], Callable[[], None]]] = deque()
        self.ran = False  # set when an action ran (the caller clears it once it saved)

    def handed_to(self, index: int) -> None:
        self.handed[index] += 1

    def when_durable(self, action: Callable[[], None]) -> None:
        """Run ``action`` once everything handed to the sinks so far is durable."""
        marks = tuple(self.handed)
        if self._waiting and self._waiting[-1][0] == marks:
            previous = self._waiting[-1][1]

            def both() -> None:
                previous()
                action()

            self._waiting[-1] = (marks, both)
        else:
            self._waiting.append((marks, action))

    def advance(self) -> int:
        """Run the actions whose events are durable now; returns how many ran."""
        durable = [s.durable_events for s in self.sinks]
        ran = 0
        while self._waiting:
            marks, action = self._waiting[0]
            if any(d < m for d, m in zip(durable, marks, strict=True)):
                break
            self._waiting.popleft()
            action()
            ran += 1
        self.ran = self.ran or ran > 0
        return ran

    def __len__(self) -> int:
        return len(self._waiting)
