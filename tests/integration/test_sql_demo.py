"""The issue's "done when", as a test: after `upbitpipe demo`, `upbitpipe sql` counts what
pypaimon reads, and each preset and a chart run on that lake."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.config import load_settings
from upbitpipe.lake.read import read_table

pytestmark = pytest.mark.integration


def test_sql_after_demo_counts_what_pypaimon_reads(tmp_path: Path) -> None:
    runner = CliRunner()
    warehouse = str(tmp_path / "lake")
    env = {
        "UPBITPIPE_LAKE__WAREHOUSE": warehouse,
        "UPBITPIPE_COLLECTOR__STATE_DIR": str(tmp_path / "state"),
        "UPBITPIPE_METRICS__PORT": "0",
    }
    demo = subprocess.run(  # the README's command, as a user runs it
        [sys.executable, "-m", "upbitpipe", "demo", "--duration", "5"],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr

    out = runner.invoke(app, ["sql", "SELECT market, count() FROM trade GROUP BY market"], env=env)
    assert out.exit_code == 0, out.output
    got = {row["market"]: int(row["count()"]) for row in csv.DictReader(io.StringIO(out.stdout))}
    settings = load_settings(overrides={"lake.warehouse": warehouse}, env={}).settings
    expected = Counter(r["market"] for r in read_table(settings, "trade", ["market"]))
    assert got == dict(expected) and sum(got.values()) > 0

    for args in (
        ["--preset", "candles", "--market", "KRW-BTC", "--since", "1h"],
        ["--preset", "spread", "--since", "1h"],
        ["--preset", "volume-by-market", "--since", "1h"],
        ["--preset", "price-move", "--since", "1h"],
    ):
        result = runner.invoke(app, ["sql", *args, "-f", "csv"], env=env)
        assert result.exit_code == 0, (args, result.output)
        assert len(result.stdout.splitlines()) >= 2, (args, result.stdout)  # header + rows

    chart = tmp_path / "candles.png"
    drawn = runner.invoke(
        app, ["sql", "--preset", "candles", "-m", "KRW-BTC", "--chart", str(chart)], env=env
    )
    assert drawn.exit_code == 0, drawn.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
