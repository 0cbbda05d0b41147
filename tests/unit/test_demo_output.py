"""`upbitpipe demo` as a person reads it: a short plain transcript when piped to a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from upbitpipe.cli.demo import ProgressPrinter, progress_line
from upbitpipe.collector.status import CollectorStatus, ConnectionStatus


def _snap(trades: int, disconnects: int = 0) -> CollectorStatus:
    return CollectorStatus(
        instance_id="test",
        pid=1,
        updated_at=0.0,
        started_at=0.0,
        markets=["KRW-BTC"],
        types=["trade", "ticker"],
        events={"trade": trades, "ticker": trades},
        connections=[ConnectionStatus(shard=0, markets=1, connected=True, disconnects=disconnects)],
        backfilled={"KRW-BTC": 2},
        dead_letters={"malformed": 1},
    )


def test_progress_line() -> None:
    assert progress_line(_snap(5, 1)) == (
        "  collected ticker 5, trade 5; disconnects 1; backfilled 2; dead letters 1"
    )


def test_progress_printer_never_repeats_and_throttles_without_a_terminal() -> None:
    now = [0.0]
    printed: list[str] = []
    tick = ProgressPrinter(printed.append, every=5.0, clock=lambda: now[0])
    for second, trades in enumerate([0, 3, 3, 3, 7, 9, 9, 12, 15, 15, 15, 15]):
        now[0] = float(second)
        tick(_snap(trades))
    # second 0 has no data yet; then every 5 s: seconds 1, 6 and 11
    assert printed == [progress_line(_snap(n)) for n in (3, 9, 15)]


def test_progress_printer_on_a_terminal_prints_each_change_once() -> None:
    printed: list[str] = []
    tick = ProgressPrinter(printed.append, every=0.0)
    for trades in [1, 1, 2, 2, 2, 3]:
        tick(_snap(trades))
    assert printed == [progress_line(_snap(n)) for n in (1, 2, 3)]


def test_demo_piped_to_a_file_is_a_short_plain_transcript(tmp_path: Path) -> None:
    """The README's main command with its output in a file: no JSON log line of any
    library, no line twice (outside the stats tables' frames), and it still passes."""
    out = tmp_path / "out.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPBITPIPE_") and k != "COLUMNS"}
    env |= {
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "home" / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / "config"),
        "UPBITPIPE_METRICS__PORT": "0",
    }
    with out.open("wb") as fh:
        done = subprocess.run(
            [sys.executable, "-m", "upbitpipe", "demo", "--duration", "12"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=240,
            check=False,
        )
    text = out.read_text(encoding="utf-8")
    assert done.returncode == 0, text
    lines = text.splitlines()
    assert lines[-1].startswith("demo OK") or any(line.startswith("demo OK") for line in lines)
    json_lines = []
    for line in lines:
        try:
            json_lines.append(json.loads(line))
        except ValueError:
            continue
    assert json_lines == [], text
    assert "pypaimon" not in text and "Successfully commit" not in text
    progress = [line for line in lines if line.startswith("  collected ")]
    assert 1 <= len(progress) <= 3, text  # 12 s piped: a line at most every 5 s
    prose = [line for line in lines if line.strip() and line.lstrip()[0] not in "┏┃┡│└"]
    repeated = {line for line in prose if prose.count(line) > 1}
    assert repeated == set(), text
    assert len(lines) < 60, text
