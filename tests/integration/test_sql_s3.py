"""`upbitpipe sql` on a lake on the real local S3 server (MinIO started by upbitpipe infra)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sql_support import REPEATED, fill_lake
from typer.testing import CliRunner

from conftest import S3Fixture, settings_for
from upbitpipe.cli.main import app
from upbitpipe.lake.read import read_table
from upbitpipe.storage.buckets import init_buckets

pytestmark = pytest.mark.integration
COUNTS = "SELECT market, count() AS n, uniqExact(market, sequential_id) AS keys FROM trade GROUP BY market"


def s3_env(s3: S3Fixture, warehouse: str, **keys: str) -> dict[str, str]:
    return {
        "UPBITPIPE_LAKE__WAREHOUSE": warehouse,
        "UPBITPIPE_S3__ENDPOINT": s3.endpoint,
        "UPBITPIPE_S3__ACCESS_KEY": keys.get("access", s3.access_key),
        "UPBITPIPE_S3__SECRET_KEY": keys.get("secret", s3.secret_key),
    }


def test_sql_on_an_s3_lake_equals_pypaimon(tmp_path: Path, s3_server: S3Fixture) -> None:
    bucket = f"sql-{uuid.uuid4().hex[:8]}"
    warehouse = f"s3://{bucket}/warehouse"
    settings = settings_for(
        tmp_path, s3=s3_server, **{"lake.warehouse": warehouse, "s3.warehouse_bucket": bucket}
    )
    init_buckets(settings.s3, s3_server.access_key, s3_server.secret_key)
    content = fill_lake(settings, int(time.time() * 1000))  # half the BTC trades committed twice

    runner = CliRunner()
    env = s3_env(s3_server, warehouse)
    result = runner.invoke(app, ["sql", COUNTS, "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    assert s3_server.secret_key not in result.output
    got = {r["market"]: (r["n"], r["keys"]) for r in json.loads(result.stdout)}
    merged = Counter(r["market"] for r in read_table(settings, "trade", ["market"]))
    assert {m: n for m, (n, _) in got.items()} == dict(merged) == dict(content.trades_per_market())
    assert all(n == keys for n, keys in got.values())
    assert sum(merged.values()) == len(content.trades) and REPEATED > 0

    moves = runner.invoke(
        app, ["sql", "--preset", "price-move", "--since", "5m", "-f", "jsonl"], env=env
    )
    assert moves.exit_code == 0, moves.output
    assert {json.loads(line)["market"] for line in moves.stdout.splitlines()} == {
        "KRW-BTC",
        "KRW-ETH",
    }


def test_missing_bucket_and_refused_keys_are_one_line(tmp_path: Path, s3_server: S3Fixture) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        app, ["sql", "SELECT 1"], env=s3_env(s3_server, f"s3://nope-{uuid.uuid4().hex[:8]}/w")
    )
    assert missing.exit_code == 1
    assert "bucket 'nope-" in missing.stderr and "does not exist" in missing.stderr
    refused = runner.invoke(
        app, ["sql", "SELECT 1"], env=s3_env(s3_server, "s3://upbit-lake/w", secret="wrong-secret")
    )
    assert refused.exit_code == 1
    assert "refused the credentials" in refused.stderr and "wrong-secret" not in refused.output
