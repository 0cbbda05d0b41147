"""Every knob of the replay server in one model (the CLI builds it from flags)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass
class ReplayOptions:
    """How the replay server listens, what it plays and which faults it injects.

    Source: ``capture`` (a file or directory written by the archive sink) or, when it is
    None, a seeded synthetic market of ``markets``. Rates are messages per second over all
    markets; ``rate == 0`` means as fast as the clients read. A capture plays at its
    recorded spacing divided by ``speed``; ``speed=None`` plays it at ``rate`` instead; with
    ``wait_for_subscriber`` it starts at the first subscription, not at server start.

    Faults apply to every WebSocket connection: ``drop_after_messages`` /
    ``drop_after_seconds`` cut the TCP connection (no close frame, like a network drop);
    ``malformed_every`` inserts a garbage frame every N data frames; ``duplicate_rate`` and
    ``reorder_rate`` resend or swap trade frames; ``stall_every_seconds`` pauses sending for
    ``stall_seconds`` (frames are held, then delivered late).

    REST faults (all opt-in): ``rest_error_count`` answers the next N ``/v1`` requests with
    ``rest_error_status``; ``rest_refuse_seconds`` answers every ``/v1/trades/ticks``
    request with ``rest_error_status`` for that long after start; ``rest_refuse_before_ms``
    refuses (same status) a ticks page that would hold a trade older than that market time.

    Market clock (synthetic only): ``clock_start_ms`` starts market time there instead of
    now; a clock jump (``ReplayServer.advance_clock`` or ``/_replay/advance``) makes the
    skipped span's trades at ``gap_trade_rate`` per market per second (None: the live
    rate's share of trades).

    Limits mimic Upbit (None disables one): ``connect_per_second`` per client address
    (HTTP 429), ``subscribe_per_second`` / ``subscribe_per_minute`` per connection (error
    frame), ``rest_per_second`` per client address (429 with ``Remaining-Req``).
    """

    host: str = "127.0.0.1"
    port: int = 0
    markets: list[str] = field(default_factory=lambda: ["KRW-BTC", "KRW-ETH"])
    seed: int = 1
    rate: float = 50.0
    speed: float | None = 1.0
    capture: Path | None = None
    loop_capture: bool = False
    wait_for_subscriber: bool = True  # a capture starts playing at the first subscription
    orderbook_share: float = 0.3
    trades_kept: int = 1_000_000
    # faults
    drop_after_messages: int | None = None
    drop_after_seconds: float | None = None
    malformed_every: int | None = None
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    stall_every_seconds: float | None = None
    stall_seconds: float = 0.0
    rest_error_count: int = 0
    rest_error_status: int = 429
    rest_refuse_seconds: float = 0.0
    rest_refuse_before_ms: int | None = None
    # market clock
    clock_start_ms: int | None = None
    gap_trade_rate: float | None = None
    # protocol and limits
    idle_timeout_seconds: float = 60.0  # Upbit documents 120 s; it cuts at about 60 s
    connect_per_second: float | None = 5.0
    subscribe_per_second: float | None = 5.0
    subscribe_per_minute: int | None = 100
    rest_per_second: float | None = 10.0
    max_pending_frames: int = 200_000
    write_buffer_bytes: int = 4 * 1024 * 1024  # per connection, before back-pressure
    compression: bool = True
    tls: bool = False  # wss:// and https:// with a self-signed certificate made at start
    tls_dir: Path | None = None  # where the certificate goes (default: a temporary folder)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option."""
        for item in fields(self):  # nan/inf would leave the server listening with a dead source
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                msg = f"{item.name} must be a finite number, got {value}"
                raise ValueError(msg)
        checks: list[tuple[bool, str]] = [
            (self.rate >= 0, f"rate must be >= 0 (0: as fast as clients read), got {self.rate}"),
            (self.stall_seconds >= 0, f"stall_seconds must be >= 0, got {self.stall_seconds}"),
            (
                self.drop_after_seconds is None or self.drop_after_seconds > 0,
                f"drop_after_seconds must be > 0, got {self.drop_after_seconds}",
            ),
            (0 <= self.port <= 65535, f"port must be 0..65535, got {self.port}"),
            (bool(self.markets) or self.capture is not None, "markets must not be empty"),
            (self.speed is None or self.speed > 0, f"speed must be > 0, got {self.speed}"),
            (0 <= self.orderbook_share <= 1, "orderbook_share must be within 0..1"),
            (0 <= self.duplicate_rate <= 1, "duplicate_rate must be within 0..1"),
            (0 <= self.reorder_rate <= 1, "reorder_rate must be within 0..1"),
            (self.trades_kept > 0, "trades_kept must be > 0"),
            (
                self.gap_trade_rate is None or self.gap_trade_rate > 0,
                "gap_trade_rate must be > 0",
            ),
            (
                400 <= self.rest_error_status <= 599,
                f"rest_error_status must be 400..599, got {self.rest_error_status}",
            ),
            (self.rest_refuse_seconds >= 0, "rest_refuse_seconds must be >= 0"),
            (self.idle_timeout_seconds > 0, "idle_timeout_seconds must be > 0"),
            (
                self.drop_after_messages is None or self.drop_after_messages > 0,
                "drop_after_messages must be > 0",
            ),
            (
                self.malformed_every is None or self.malformed_every > 0,
                "malformed_every must be > 0",
            ),
            (
                self.stall_every_seconds is None or self.stall_every_seconds > 0,
                "stall_every_seconds must be > 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def has_faults(self) -> bool:
        return bool(
            self.drop_after_messages
            or self.malformed_every
            or self.duplicate_rate
            or self.reorder_rate
            or self.stall_every_seconds
        )
