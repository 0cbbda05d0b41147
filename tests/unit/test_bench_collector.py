"""benchmarks/bench_collector.py: argument parsing, the table and the verdict (no services)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_collector.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_collector", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_collector"] = module  # dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


def test_defaults_run_every_variant_with_a_latency_phase(bench: ModuleType) -> None:
    args = bench.parse_args([])
    assert args.variants == bench.CPU_VARIANTS
    assert (args.runs, args.latency_rate) == (3, 5000)


def test_variants_keep_the_canonical_order_and_no_latency_turns_it_off(
    bench: ModuleType,
) -> None:
    args = bench.parse_args(["--variants", "kafka,picows", "--no-latency"])
    assert args.variants == ["picows", "kafka"]
    assert args.latency_rate == 0


def test_an_unknown_variant_is_a_usage_error(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--variants", "picows,zeromq"])
    assert exit_info.value.code == 2
    assert "zeromq" in capsys.readouterr().err


def _rows(bench: ModuleType) -> list[object]:
    sample = bench.Sample
    return [
        bench.Row("picows", "floor", [sample(10_000, 10.0, 30), sample(12_000, 14.0, 31)]),
        bench.Row("picows-default", "floor", [sample(10_000, 16.0, 30)]),
        bench.Row("cryptofeed", "cb", [sample(3_000, 100.0, 50)]),
        bench.Row("kafka", "sink", [sample(9_000, 24.0, 150)]),
        bench.Row("kafka-2types", "sink", [sample(9_000, 40.0, 150)]),
        bench.Row("kafka @5,000/s", "sink", [sample(5_000, 30.0, 150, 2.0, 60.0)]),
        bench.Row("lake", "sink", skipped="Kafka did not start: no java"),
        bench.Row("archive", "sink", failures=["exited with 1: boom"]),
    ]


def test_table_gives_medians_ratios_and_reasons(bench: ModuleType) -> None:
    lines = bench.table(_rows(bench))
    assert len(lines) == 2 + 8

    def row(name: str) -> str:
        return next(line for line in lines if line.startswith(f"| {name} |"))

    assert "| 11,000 | 12.0 | 1.00x | 0.75x | 0.12x |" in row("picows")  # medians of 2 runs
    assert "| 24.0 | 2.00x | 1.50x | 0.24x |" in row("kafka")
    assert "| 2.0 | 60.0 |" in row("kafka @5,000/s")
    assert "skipped: Kafka did not start: no java" in row("lake")
    assert "failed: exited with 1: boom" in row("archive")


def test_verdict_checks_each_target(bench: ModuleType) -> None:
    line = bench.verdict(_rows(bench), 5000, "DEFAULT")
    assert "0.40x cryptofeed callback CPU (target <= 0.5): MET" in line
    assert "1.50x picows floor on DEFAULT frames, its format; 2.00x the SIMPLE floor" in line
    simple = bench.verdict(_rows(bench), 5000, "SIMPLE")
    assert "2.00x picows floor on SIMPLE frames, its format; 1.50x the DEFAULT floor" in simple
    assert "(target <= 3x): MET" in line
    no_floor = [r for r in _rows(bench) if r.name != "picows-default"]
    assert "kafka vs picows-default (DEFAULT frames" in bench.verdict(no_floor, 5000, "DEFAULT")
    assert "p99 60.0 ms at 5,000 msgs/s (target < 50): NOT MET" in line
    assert "not measured" in bench.verdict(_rows(bench)[:1], 5000)
    # without a format: the one users get by default
    assert f"on {bench.default_format()} frames, its format" in bench.verdict(_rows(bench), 5000)


def test_client_drivers_are_valid_python(bench: ModuleType) -> None:
    for name in ("WEBSOCKETS_DRIVER", "PICOWS_DRIVER", "CRYPTOFEED_DRIVER"):
        compile(getattr(bench, name), name, "exec")
