"""Fill a gap from REST, or record exactly what could not be filled.

One :class:`GapFiller` run walks a gap's window with :class:`~upbitpipe.upbit.rest.
TradeWindow` (500 per page, cursor and ``daysAgo`` across UTC days, paced by the client's
rate limit, bounded by the gap's time) and hands each trade to ``emit`` (the service's dedup
and sinks). What it does to the gap record waits until the sinks made the trades durable
(:class:`~upbitpipe.collector.resume.DurableLedger`):

* after each page the gap shrinks to end at that page's oldest trade, so a stop or crash in
  the middle resumes where the durable part ends, not at the start;
* when REST covered the whole window the gap is closed;
* when REST cannot (refusing past the client's retry budget, or the window is older than
  the 7 days REST keeps) the gap becomes ``missing`` with the reason and the exact range
  still missing - a record that ``stats`` shows and a later run tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from upbitpipe.collector.gaps import Gap, GapBook
from upbitpipe.collector.resume import DurableLedger
from upbitpipe.upbit.rest import TradeWindow, UpbitRestClient

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[bool]]  # True when the trade was new
# REST is asked from this long before the gap's start: frames can arrive out of order (and
# Upbit does not promise sequential_id order), so a trade older than the last one seen may
# still have been in flight. The overlap costs one page; dedup drops it.
OVERLAP_MS = 5_000


@dataclass
class BackfillCounters:
    runs: int = 0
    completed: int = 0
    failed: int = 0
    requests: int = 0


class GapFiller:
    def __init__(
        self,
        rest: UpbitRestClient,
        book: GapBook,
        ledger: DurableLedger,
        emit: Emit,
        *,
        page_size: int = 500,
    ) -> None:
        self.rest = rest
        self.book = book
        self.ledger = ledger
        self.emit = emit
        self.page_size = page_size
        self.counters = BackfillCounters()
        self.recovered: dict[str, int] = {}
        self.changed = False  # the book changed since the caller last saved it

    async def fill(self, gap: Gap) -> bool:
        """Run the gap once; True when REST covered it (closing waits for durability)."""
        self.counters.runs += 1
        gap.attempts += 1
        market = gap.market
        window = TradeWindow(
            self.rest,
            market,
            since_ms=gap.from_ms - OVERLAP_MS,
            until_ms=gap.to_ms,
            known_ms=gap.from_ms if gap.from_sid is not None else None,
            page_size=self.page_size,
        )
        recovered = 0
        try:
            async for page in window.pages():
                new = 0
                for trade in reversed(page):  # oldest first within the page
                    if gap.from_sid is not None and trade["sequential_id"] == gap.from_sid:
                        continue
                    if await self.emit(trade):
                        new += 1
                recovered += new
                self.recovered[market] = self.recovered.get(market, 0) + new
                oldest = page[-1]
                self.ledger.when_durable(
                    _Shrink(self, gap, oldest["trade_timestamp"], oldest["sequential_id"], new)
                )
        except Exception as exc:  # REST refusing, unreachable, or answering garbage
            self.counters.failed += 1
            reason = f"REST backfill failed: {exc}"
            log.error("backfill %s: %s; recorded as a gap, retried later", market, reason)
            self.ledger.when_durable(_Missing(self, gap, reason))
            return False
        finally:
            self.counters.requests += window.requests
        if not window.complete:
            self.counters.failed += 1
            reason = "older than the exchange's REST keeps trades (7 days)"
            log.error("backfill %s: %s; recorded as a gap", market, reason)
            reached = window.reached_ms
            self.ledger.when_durable(_Missing(self, gap, reason, reached))
            return False
        self.counters.completed += 1
        log.info("backfill %s: %d missed trades recovered", market, recovered)
        self.ledger.when_durable(_Close(self, gap))
        return True


@dataclass
class _Shrink:
    """A page is durable: the gap now ends at its oldest trade."""

    filler: GapFiller
    gap: Gap
    ms: int
    sid: int
    recovered: int

    def __call__(self) -> None:
        gap = self.gap
        gap.recovered += self.recovered
        if gap.to_ms is None or self.ms <= gap.to_ms:
            gap.to_ms, gap.to_sid = self.ms, self.sid
        self.filler.changed = True


@dataclass
class _Close:
    filler: GapFiller
    gap: Gap

    def __call__(self) -> None:
        self.filler.book.close(self.gap)
        self.filler.changed = True


@dataclass
class _Missing:
    filler: GapFiller
    gap: Gap
    reason: str
    reached_ms: int | None = None

    def __call__(self) -> None:
        gap = self.gap
        if self.reached_ms is not None and (gap.to_ms is None or self.reached_ms < gap.to_ms):
            gap.to_ms, gap.to_sid = self.reached_ms, None
        self.filler.book.mark_missing(gap, self.reason)
        self.filler.changed = True
