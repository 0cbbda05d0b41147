"""`upbitpipe collect` as its own process against a replay twin: start, wait for a state,
signal, and account the lake against the twin's ground truth (the restart and backfill
tests share these)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from collect_support import collector_process_env

from upbitpipe.collector.status import CollectorStatus, read_status
from upbitpipe.config import Settings
from upbitpipe.lake.read import read_table
from upbitpipe.replay.server import ReplayServer

IN_FLIGHT_MS = 2_000


class Collector:
    """One `upbitpipe collect` process with the state dir and lake of ``tmp_path``."""

    def __init__(self, tmp_path: Path, server: ReplayServer, args: list[str], **env: str) -> None:
        self.status_path = tmp_path / "state" / "status.json"
        self.log_path = tmp_path / "collector.log"
        self.env = collector_process_env(tmp_path, server, **env)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "upbitpipe", "collect", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def status(self) -> CollectorStatus | None:
        try:
            status = read_status(self.status_path)
        except Exception:  # a status from an earlier process half-replaced: read again
            return None
        if status is None or self.proc is None or status.pid != self.proc.pid:
            return None
        return status

    def wait_for(
        self, what: str, ok: Callable[[CollectorStatus], bool], timeout: float = 120.0
    ) -> CollectorStatus:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and ok(status):
                return status
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.25)
        self.kill()
        pytest.fail(f"collector never reached: {what}; log tail:\n{self.log_tail()}")

    def signal(self, sig: signal.Signals, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"collector did not exit after {sig.name}; log:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def lake_trades(settings: Settings) -> dict[tuple[str, int], list[int]]:
    """Every stored trade: (market, sequential_id) -> its trade times (one per stored row)."""
    rows = read_table(settings, "trade", ["market", "sequential_id", "trade_timestamp"])
    out: dict[tuple[str, int], list[int]] = {}
    for row in rows:
        out.setdefault((row["market"], row["sequential_id"]), []).append(row["trade_timestamp"])
    return out


def account(
    server: ReplayServer, stored: dict[tuple[str, int], list[int]], markets: list[str]
) -> tuple[set[tuple[str, int]], set[tuple[str, int]], int]:
    """(expected, missing, duplicated): every trade the twin made between the first and
    the last trade stored per market (less the last ``IN_FLIGHT_MS``: still on the wire at
    the last stop), those of it not stored, and how many trades are stored twice."""
    expected: set[tuple[str, int]] = set()
    for market in markets:
        times = [ts[0] for (m, _), ts in stored.items() if m == market]
        assert times, f"nothing of {market} stored"
        lo, hi = min(times), max(times) - IN_FLIGHT_MS
        expected |= {(market, sid) for sid in server.trade_ids(market, lo, hi + 1)}
    duplicated = sum(1 for ts in stored.values() if len(ts) > 1)
    return expected, expected - set(stored), duplicated
