"""`upbitpipe sql` end to end in-process: a filled local lake, the CLI, its outputs and errors."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sql_support import LakeContent, fill_lake
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.cli.sql import chart_value_filled
from upbitpipe.config import Settings, load_settings
from upbitpipe.lake.read import read_table

pytest.importorskip("chdb")
runner = CliRunner()
COUNTS = "SELECT market, count() AS n FROM trade GROUP BY market ORDER BY market"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, LakeContent]:
    path = tmp_path_factory.mktemp("sql-cli") / "lake"
    settings = load_settings(overrides={"lake.warehouse": str(path)}, env={}).settings
    return settings, fill_lake(settings, int(time.time() * 1000))


def sql(
    lake: tuple[Settings, LakeContent], *args: str, stdin: str | None = None
) -> tuple[int, str, str]:
    env = {"UPBITPIPE_LAKE__WAREHOUSE": lake[0].lake.warehouse}
    result = runner.invoke(app, ["sql", *args], env=env, input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_counts_equal_pypaimon(lake: tuple[Settings, LakeContent]) -> None:
    code, out, err = sql(lake, COUNTS)
    assert code == 0, err
    got = {row["market"]: int(row["n"]) for row in csv.DictReader(io.StringIO(out))}
    assert got == dict(Counter(r["market"] for r in read_table(lake[0], "trade", ["market"])))


def test_the_issue_example_query(lake: tuple[Settings, LakeContent]) -> None:
    code, out, err = sql(
        lake,
        "SELECT * FROM trade WHERE market = 'KRW-BTC' ORDER BY trade_timestamp DESC LIMIT 10",
        "--format",
        "jsonl",
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    newest = sorted(
        (t for t in lake[1].trades if t["market"] == "KRW-BTC"), key=lambda t: -t["trade_timestamp"]
    )
    assert [r["sequential_id"] for r in rows] == [t["sequential_id"] for t in newest[:10]]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "markdown", "table"])
def test_text_formats_carry_every_row(lake: tuple[Settings, LakeContent], fmt: str) -> None:
    code, out, err = sql(lake, COUNTS, "--format", fmt)
    assert code == 0, err
    expected = lake[1].trades_per_market()
    if fmt == "json":
        assert {r["market"]: r["n"] for r in json.loads(out)} == dict(expected)
    elif fmt == "jsonl":
        assert {r["market"]: r["n"] for r in map(json.loads, out.splitlines())} == dict(expected)
    else:  # csv, markdown and the rich table: each market with its count on one line
        for market, n in expected.items():
            assert any(market in line and str(n) in line for line in out.splitlines()), out
    if fmt == "markdown":
        assert out.splitlines()[0].startswith("| market | n |")


def test_parquet_output_file(lake: tuple[Settings, LakeContent], tmp_path: Path) -> None:
    target = tmp_path / "trades.parquet"
    code, out, err = sql(lake, "SELECT market, trade_ts, trade_price FROM trade", "-o", str(target))
    assert code == 0, err
    table = pq.read_table(target)
    assert table.num_rows == len(lake[1].trades)
    assert str(table.schema.field("trade_ts").type) == "timestamp[ms, tz=UTC]"


def test_parquet_needs_an_output_file(lake: tuple[Settings, LakeContent]) -> None:
    code, _, err = sql(lake, COUNTS, "--format", "parquet")
    assert code == 2 and "--output" in err


def test_preset_candles_to_csv(lake: tuple[Settings, LakeContent]) -> None:
    code, out, err = sql(
        lake, "--preset", "candles", "--market", "KRW-BTC", "--since", "1h", "-f", "csv"
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    minutes = {t["trade_timestamp"] // 60_000 for t in lake[1].trades if t["market"] == "KRW-BTC"}
    assert len(rows) == len(minutes) and list(rows[0]) == [
        "time",
        "open",
        "high",
        "low",
        "close",
        "volume",
    ]


def test_preset_candles_chart_in_the_terminal(lake: tuple[Settings, LakeContent]) -> None:
    code, out, err = sql(lake, "--preset", "candles", "--market", "KRW-BTC", "--chart")
    assert code == 0, err
    assert "candles: KRW-BTC, last 1h (UTC)" in out and "\x1b[" not in out  # no colours into a pipe
    assert "┤" in out  # the y axis ticks


def test_candles_without_market_take_the_first_collected_one(
    lake: tuple[Settings, LakeContent],
) -> None:
    env = {
        "UPBITPIPE_LAKE__WAREHOUSE": lake[0].lake.warehouse,
        "UPBITPIPE_COLLECTOR__MARKETS": "KRW-BTC,KRW-ETH",
    }
    result = runner.invoke(app, ["sql", "--preset", "candles", "--chart"], env=env)
    assert result.exit_code == 0, result.output
    assert "candles: KRW-BTC, last 1h (UTC)" in result.stdout
    env["UPBITPIPE_COLLECTOR__MARKETS"] = "all-krw"
    result = runner.invoke(app, ["sql", "--preset", "candles"], env=env)
    assert result.exit_code == 2 and "needs one --market" in result.stderr


@pytest.mark.parametrize("name", ["candles.png", "candles.html"])
def test_preset_candles_chart_file(
    lake: tuple[Settings, LakeContent], tmp_path: Path, name: str
) -> None:
    target = tmp_path / name
    code, out, err = sql(lake, "--preset", "candles", "-m", "KRW-BTC", "--chart", str(target))
    assert code == 0, err
    assert target.stat().st_size > 1000 and out == ""  # the chart replaces the rows
    assert f"chart: {target}" in err


def test_chart_file_and_rows_together(lake: tuple[Settings, LakeContent], tmp_path: Path) -> None:
    target = tmp_path / "moves.png"
    code, out, err = sql(
        lake, "--preset", "price-move", "--since", "5m", "--chart", str(target), "-f", "csv"
    )
    assert code == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {r["market"] for r in csv.DictReader(io.StringIO(out))} == {"KRW-BTC", "KRW-ETH"}


def test_statements_from_stdin_do_not_wait_for_a_terminal(
    lake: tuple[Settings, LakeContent],
) -> None:
    code, out, err = sql(
        lake, "-f", "csv", stdin="SELECT count() AS a FROM trade;\n-- two\nSELECT 'x;y' AS b;\n"
    )
    assert code == 0, err
    assert out.splitlines() == ['"a"', str(len(lake[1].trades)), '"b"', '"x;y"']


def test_empty_stdin_runs_nothing(lake: tuple[Settings, LakeContent]) -> None:
    code, out, err = sql(lake, stdin="")
    assert code == 0, err
    assert out == ""


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["SELECT * FROM trades"], 1, "unknown table 'trades'; the lake at"),
        (["SELECT market FROM trade WHERE"], 1, "bad SQL: Syntax error: failed at position 31"),
        (["SELECT 1", "--preset", "spread"], 2, "either SQL or --preset"),
        (["--preset", "nope"], 2, "unknown preset 'nope'"),
        (["--preset", "spread", "--since", "soon"], 2, "not a duration"),
        (["SELECT 1", "--format", "xml"], 2, "--format: use one of"),
        (["SELECT 1", "--chart", "x.txt"], 2, "--chart: write a .png or .html file"),
        (["SELECT 1", "--market", "KRW-BTC"], 2, "--market goes with --preset"),
        (["SELECT 1 AS a", "--chart"], 1, "nothing to draw"),
    ],
)
def test_errors_are_one_line(
    lake: tuple[Settings, LakeContent], args: list[str], code: int, needle: str
) -> None:
    got, out, err = sql(lake, *args)
    assert got == code, (out, err)
    assert needle in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


def test_missing_lake_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sql", "SELECT 1", "--warehouse", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert f"no lake at {tmp_path / 'none'}" in result.stderr


def test_unreachable_s3_fails_fast_in_one_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "UPBITPIPE_LAKE__WAREHOUSE": "s3://upbit-lake/warehouse",
        "UPBITPIPE_S3__ENDPOINT": f"http://127.0.0.1:{port}",
    }
    started = time.monotonic()
    result = runner.invoke(app, ["sql", "SELECT count() FROM trade"], env=env)
    assert result.exit_code == 1
    assert f"s3 at http://127.0.0.1:{port} is not reachable" in result.stderr
    assert time.monotonic() - started < 30, "must not hang on a dead endpoint"  # a hang guard


def test_bare_chart_gets_the_terminal_value() -> None:
    assert chart_value_filled(["SELECT 1", "--chart"]) == ["SELECT 1", "--chart", "terminal"]
    assert chart_value_filled(["--chart", "SELECT 1"]) == ["--chart", "terminal", "SELECT 1"]
    assert chart_value_filled(["--chart", "-f", "csv"]) == ["--chart", "terminal", "-f", "csv"]
    assert chart_value_filled(["--chart", "a.png", "SELECT 1"]) == ["--chart", "a.png", "SELECT 1"]


def test_help_has_examples() -> None:
    result = runner.invoke(app, ["sql", "--help"])
    assert result.exit_code == 0
    assert 'upbitpipe sql "SELECT market, count() FROM trade GROUP BY market"' in result.stdout
    assert "--preset candles" in result.stdout


def test_no_output_file_is_left_when_the_lake_is_missing(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    result = runner.invoke(
        app, ["sql", "SELECT 1", "--warehouse", str(tmp_path / "none"), "-o", str(target)]
    )
    assert result.exit_code == 1 and not target.exists()


def test_interactive_prompt_on_a_real_terminal(
    lake: tuple[Settings, LakeContent], tmp_path: Path
) -> None:
    """`upbitpipe sql` on a pseudo-terminal: a statement, an error that does not end the
    prompt, the history file, and `exit`."""
    import os
    import pty
    import select
    import subprocess
    import sys

    controller, terminal = pty.openpty()
    env = {
        **os.environ,
        "UPBITPIPE_LAKE__WAREHOUSE": lake[0].lake.warehouse,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "TERM": "xterm",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "upbitpipe", "sql"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    seen = b""

    def wait_for(needle: bytes, timeout: float = 120.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while needle not in seen:
            left = deadline - time.monotonic()
            assert left > 0, (
                f"no {needle!r} on the terminal within {timeout:.0f}s: {seen[-2000:]!r}"
            )
            ready, _, _ = select.select([controller], [], [], min(left, 1.0))
            if ready:
                try:
                    seen += os.read(controller, 65536)
                except OSError:  # the process closed the terminal
                    break

    try:
        wait_for(b"sql>")
        os.write(controller, b"SELECT count() * 7 AS n FROM trade\r")
        wait_for(str(len(lake[1].trades) * 7).encode())
        os.write(controller, b"SELECT nope FROM trade\r")
        wait_for(b"Unknown expression identifier")
        os.write(controller, b"exit\r")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    history = (tmp_path / "data" / "upbitpipe" / "sql_history").read_text()
    assert "SELECT count() * 7 AS n FROM trade" in history
