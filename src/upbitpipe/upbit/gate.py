"""The edge check of every event: parsed, subscribed, and plausible against the exchange clock.

:func:`~upbitpipe.upbit.codec.parse_frame` checks what one frame says about itself (types,
ranges, a trade not later than its own frame). What needs context is checked here, where
the collector receives the frame, before an event can reach a batch, a commit or a resume
point:

* the market is one this collector subscribed to (``""``, ``KRW-ZZZ`` or
  ``../../etc/passwd`` are not market data, whatever the frame claims);
* the event time is not ahead of the exchange's clock. The clock is the newest exchange
  time seen so far (frames of every market advance it); an event more than
  :data:`AHEAD_TOLERANCE_MS` beyond it is rejected. A real jump of the exchange's clock
  (a replay twin told to run ahead) is accepted at once after the stream was silent for
  :data:`STALE_AFTER_MS` (a reconnect), and otherwise once :data:`RESYNC_AFTER` events in
  a row agree on it: one bad frame in a live stream cannot move the clock, a new clock
  cannot be refused forever.

A rejected event raises :class:`RejectedEventError` (a :class:`MalformedFrameError` with a
dead-letter ``kind``), so it goes to the dead letters alone. Cost per frame: one set lookup,
two integer comparisons.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from upbitpipe.upbit.codec import (
    ErrorFrame,
    MalformedFrameError,
    MarketEvent,
    StatusFrame,
    parse_book_lite,
    parse_data,
    parse_flat_lite,
    trade_problem,
)

AHEAD_TOLERANCE_MS = 10 * 60_000
RESYNC_AFTER = 50
STALE_AFTER_MS = 5_000

KIND_MALFORMED = "malformed"
KIND_UNSUBSCRIBED = "unsubscribed_market"
KIND_IMPLAUSIBLE = "implausible_time"

_BOOK_START: Final = b'{"type":"orderbook",'  # a DEFAULT book as Upbit sends it
_FLAT_START: Final = b'{"type":"t'  # a DEFAULT ticker or trade


class RejectedEventError(MalformedFrameError):
    """A well-formed event this collector must not store; ``kind`` names the dead-letter kind."""

    def __init__(self, kind: str, reason: str, raw: bytes) -> None:
        super().__init__(reason, raw)
        self.kind = kind


class ExchangeClock:
    """The newest exchange time seen (epoch ms), guarded against a single far-future value."""

    def __init__(
        self,
        tolerance_ms: int = AHEAD_TOLERANCE_MS,
        resync_after: int = RESYNC_AFTER,
        stale_after_ms: int = STALE_AFTER_MS,
    ) -> None:
        self.tolerance_ms = tolerance_ms
        self.resync_after = resync_after
        self.stale_after_ms = stale_after_ms
        self.now_ms = 0  # 0: nothing seen yet, the first event sets the clock
        self._ahead = 0
        self._admitted_at = 0  # local time of the last admitted event

    def admit(self, stamp_ms: int, local_ms: int | None = None) -> str | None:
        """Advance the clock with ``stamp_ms``; the reason it is implausible, or None.

        ``local_ms`` is when the event was received: after ``stale_after_ms`` without any
        admitted event (the sockets were down) the next one re-anchors the clock, because
        the exchange's time may have moved on meanwhile (a replay twin's clock jump).
        """
        now = self.now_ms
        if stamp_ms <= now:
            if local_ms is not None:
                self._admitted_at = local_ms
            return None
        if (
            not now
            or stamp_ms <= now + self.tolerance_ms
            or (local_ms is not None and local_ms - self._admitted_at > self.stale_after_ms)
        ):
            self.now_ms = stamp_ms
            self._ahead = 0
            if local_ms is not None:
                self._admitted_at = local_ms
            return None
        self._ahead += 1
        if self._ahead >= self.resync_after:  # the exchange's clock really moved
            self.now_ms = stamp_ms
            self._ahead = 0
            return None
        return (
            f"time {stamp_ms} is {(stamp_ms - now) / 1000:.0f}s ahead of the exchange clock "
            f"({now}; tolerance {self.tolerance_ms // 1000}s)"
        )


class FrameGate:
    """Parses frames for one collector and rejects events it must not store."""

    def __init__(self, markets: Iterable[str], clock: ExchangeClock | None = None) -> None:
        self.markets = frozenset(markets)
        self.clock = clock or ExchangeClock()
        #: DEFAULT market frames the lite read left to the full parse (:meth:`parse_data_lite`):
        #: ~0 while Upbit sends what the scanner reads; a rise means its format changed (the
        #: events are still stored, at the full parse's CPU)
        self.lite_fallbacks = 0

    def parse(
        self, raw: bytes, received_ms: int | None = None
    ) -> MarketEvent | StatusFrame | ErrorFrame:
        """:func:`parse_frame`, then the subscription and clock checks.

        Raises :class:`MalformedFrameError` (``RejectedEventError`` for the checks here).
        """
        parsed = self.parse_data(raw, received_ms)
        if isinstance(parsed, dict):
            return MarketEvent(parsed["type"], parsed["market"], parsed, raw)
        return parsed

    def parse_data(
        self, raw: bytes, received_ms: int | None = None
    ) -> dict[str, Any] | StatusFrame | ErrorFrame:
        """:meth:`parse` without the :class:`MarketEvent` (:func:`parse_data`): a market
        event is its normalised dict, whose ``type`` and ``market`` keys say what it is."""
        parsed = parse_data(raw)
        if type(parsed) is dict:
            self._check(parsed, raw, received_ms)
        return parsed

    def parse_data_lite(
        self, raw: bytes, received_ms: int | None = None
    ) -> dict[str, Any] | StatusFrame | ErrorFrame:
        """:meth:`parse_data`, but a DEFAULT book comes without ``orderbook_units``, and a
        DEFAULT ticker or trade with only the fields the collector reads, when the C
        scanner reads it (:func:`parse_book_lite`, :func:`parse_flat_lite`): for a collector
        whose sinks read no records (its Kafka values are spliced from the frames). Same
        checks, same errors."""
        if raw.startswith(_FLAT_START):
            parsed = parse_flat_lite(raw)
        elif raw.startswith(_BOOK_START):
            parsed = parse_book_lite(raw)
        else:
            return self.parse_data(raw, received_ms)  # SIMPLE, status and error frames
        if parsed is None:
            self.lite_fallbacks += 1
            return self.parse_data(raw, received_ms)
        self._check(parsed, raw, received_ms)
        return parsed

    def _check(self, parsed: dict[str, Any], raw: bytes, received_ms: int | None) -> None:
        """The subscription and clock checks of a parsed event."""
        market = parsed["market"]
        if market not in self.markets and market.partition(".")[0] not in self.markets:
            reason = f"market {market[:40]!r} is not subscribed"
            raise RejectedEventError(KIND_UNSUBSCRIBED, reason, raw)
        ahead = self.clock.admit(parsed["timestamp"], received_ms)
        if ahead is not None:
            raise RejectedEventError(KIND_IMPLAUSIBLE, ahead, raw)

    def trade_problem(self, market: str, trade: dict[str, Any]) -> tuple[str, str] | None:
        """(dead-letter kind, reason) for a REST-backfilled trade that must not be stored."""
        got = trade.get("market")
        if got != market or got not in self.markets:
            return KIND_UNSUBSCRIBED, f"REST returned market {str(got)[:40]!r} for {market}"
        problem = trade_problem(trade)
        if problem is not None:
            return KIND_MALFORMED, problem
        ahead = self.clock.admit(trade["trade_timestamp"])
        if ahead is not None:
            return KIND_IMPLAUSIBLE, ahead
        return None
