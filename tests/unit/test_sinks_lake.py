"""The pypaimon lake sink on a local warehouse: dedup on read, bad rows dead-lettered."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from upbitpipe.config import Settings, load_settings
from upbitpipe.lake import fastrows
from upbitpipe.lake.read import read_table, trade_id_counts
from upbitpipe.lake.tables import EVENT_TABLES, LAKE_TABLES, event_to_row, rows_to_arrow
from upbitpipe.sinks.base import SinkEvent
from upbitpipe.sinks.deadletter import DeadLetterBox
from upbitpipe.sinks.lake import LakeCommitError, LakeSink


@pytest.fixture(autouse=True, params=["native", "pure"])
def kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test with the lake's C kernels and without them (their Python twins)."""
    if request.param == "pure":
        monkeypatch.setattr(fastrows, "NATIVE", None)
    elif fastrows.NATIVE is None:
        pytest.skip("the C kernels are not built")
    return str(request.param)


def _settings(tmp_path: Path) -> Settings:
    """A local warehouse with one bucket per table."""
    return load_settings(
        overrides={"lake.warehouse": str(tmp_path / "lake"), "lake.buckets": 1}, env={}
    ).settings


async def _open_sink(tmp_path: Path) -> tuple[Settings, DeadLetterBox, LakeSink]:
    """An open sink on :func:`_settings`, with its dead-letter box."""
    settings = _settings(tmp_path)
    dead = DeadLetterBox(tmp_path / "dead")
    sink = LakeSink(settings, dead)
    await sink.open()
    return settings, dead, sink


def _failing_once(real: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    """``real``, except that its first call raises ``error``."""
    calls = 0

    def wrapper(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error
        return real(*args)

    return wrapper


def trade(sid: int | None, ts: int = 1_763_900_000_000, market: str = "KRW-BTC") -> SinkEvent:
    record = {
        "market": market,
        "trade_price": 100.0,
        "trade_volume": 1,  # an int where the lake has DOUBLE: converted
        "ask_bid": "BID",
        "trade_timestamp": ts,
        "timestamp": ts + 3,
        "sequential_id": sid,
        "_ingested_at": ts + 10,
        "_source": "upbit_websocket",
        "_collector": "test",
    }
    return SinkEvent("trade", market, record, json.dumps(record).encode())


async def test_trades_dedup_on_read_and_bad_rows_are_dead_lettered(tmp_path: Path) -> None:
    settings, dead, sink = await _open_sink(tmp_path)
    await sink.write([trade(1), trade(2), trade(None), trade(3, ts=1_763_990_000_000)])
    await sink.flush()
    await sink.write([trade(2), trade(4)])  # a re-delivery of 2 in a later commit
    await sink.flush()
    await sink.close()

    assert trade_id_counts(settings) == {("KRW-BTC", s): 1 for s in (1, 2, 3, 4)}
    assert dead.counts["lake_row"] == 1
    lines = (tmp_path / "dead").glob("*.jsonl")
    assert any("sequential_id" in line for f in lines for line in f.read_text().splitlines())
    assert sink.stats()["commit_failures"] == 0


async def test_a_value_beyond_bigint_is_dead_lettered_not_the_batch_lost(tmp_path: Path) -> None:
    """An integer no BIGINT holds (2**64) made the checked path's ``rows_to_arrow`` raise
    OverflowError: the write failed and the events staged before it were gone (neither
    stored, pending nor dead-lettered). Now that one row is rejected with a reason."""
    settings, dead, sink = await _open_sink(tmp_path)
    await sink.write([trade(sid) for sid in range(1, 200)])  # staged, not converted yet
    await sink.write([trade(2**64), trade(200)])
    await sink.flush()
    await sink.close()

    assert trade_id_counts(settings) == {("KRW-BTC", s): 1 for s in range(1, 201)}
    assert dead.counts["lake_row"] == 1
    lines = [ln for f in (tmp_path / "dead").glob("*.jsonl") for ln in f.read_text().splitlines()]
    assert any("does not fit a BIGINT" in line for line in lines)


async def test_a_failed_conversion_keeps_the_staged_events_and_stages_a_retry_once(
    tmp_path: Path,
) -> None:
    """An unforeseen error while converting: the write fails, the events staged by earlier
    writes stay staged (they were lost before), and the failed batch, which the runner
    writes again, is staged once, not twice."""
    settings, _, sink = await _open_sink(tmp_path)
    sink._to_arrow = _failing_once(sink._to_arrow, RuntimeError("unforeseen"))  # type: ignore[method-assign]
    await sink.write([trade(sid) for sid in range(1, 200)])  # staged, not converted yet
    retried = [trade(sid) for sid in range(200, 300)]
    with pytest.raises(RuntimeError, match="unforeseen"):
        await sink.write(retried)
    assert sink.pending_rows == 199
    await sink.write(retried)  # the runner's retry
    await sink.flush()
    await sink.close()

    assert trade_id_counts(settings) == {("KRW-BTC", s): 1 for s in range(1, 300)}
    assert sink.stats()["events_committed"] == 299


async def test_a_failed_commit_raises_and_keeps_the_rows(tmp_path: Path) -> None:
    settings, _, sink = await _open_sink(tmp_path)
    sink._commit_table = _failing_once(sink._commit_table, OSError("disk full"))  # type: ignore[method-assign]
    await sink.write([trade(1), trade(2)])
    with pytest.raises(LakeCommitError, match="disk full"):
        await sink.flush()
    assert sink.pending_rows == 2
    await sink.write([trade(3)])
    await sink.flush()
    assert trade_id_counts(settings) == {("KRW-BTC", s): 1 for s in (1, 2, 3)}
    assert sink.take_unflushed() == []


async def test_a_commit_cut_short_hands_its_events_back(tmp_path: Path) -> None:
    settings, _, sink = await _open_sink(tmp_path)
    release = threading.Event()
    real = sink._commit_table

    def slow(name: str, arrow: Any) -> None:
        release.wait(10)
        real(name, arrow)

    sink._commit_table = slow  # type: ignore[method-assign]
    await sink.write([trade(1), trade(2)])
    flush = asyncio.create_task(sink.flush())
    await asyncio.sleep(0.2)
    flush.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flush
    await sink.write([trade(3)])
    taken = sink.take_unflushed()
    assert [e.record["sequential_id"] for e in taken] == [1, 2, 3]
    assert sink.pending_rows == 0
    release.set()


async def test_a_cancel_while_dead_lettering_keeps_the_converted_rows(tmp_path: Path) -> None:
    """Shutdown cancels the writer: if that lands while a rejected row is being
    dead-lettered, the batch's good rows must still be handed back."""
    settings, dead, sink = await _open_sink(tmp_path)
    entered, never = asyncio.Event(), asyncio.Event()

    async def stuck_put(kind: str, reason: str, raw: bytes) -> None:
        entered.set()
        await never.wait()

    dead.put = stuck_put  # type: ignore[method-assign]
    await sink.write([trade(1), trade(2)])
    writing = asyncio.create_task(sink.write([trade(None), trade(3)]))
    flushing = asyncio.create_task(sink.flush())  # converts the staged batch
    await asyncio.wait_for(entered.wait(), 10)
    for task in (writing, flushing):
        task.cancel()
    await asyncio.gather(writing, flushing, return_exceptions=True)
    taken = sink.take_unflushed()
    assert sorted(e.record["sequential_id"] for e in taken) == [1, 2, 3]
    await sink.close()


async def test_small_writes_become_one_arrow_batch_per_table(tmp_path: Path) -> None:
    """A slow market hands the sink a few events per write: they are converted together and
    pypaimon gets one record batch per table and commit (its work is per batch)."""
    settings, _, sink = await _open_sink(tmp_path)
    real = sink._commit_table
    chunks: list[int] = []

    def spy(name: str, arrow: Any) -> None:
        chunks.append(arrow.column(0).num_chunks)
        real(name, arrow)

    sink._commit_table = spy  # type: ignore[method-assign]
    for sid in range(1, 41):
        await sink.write([trade(sid)])
    assert sink.pending_rows == 40
    await sink.flush()
    assert chunks == [1]
    assert sink.pending_rows == 0
    for sid in range(30, 46):  # staged, not converted yet: handed back as they came
        await sink.write([trade(sid)])
    taken = sink.take_unflushed()
    assert [e.record["sequential_id"] for e in taken] == list(range(30, 46))
    assert sink.pending_rows == 0
    await sink.write(taken)  # as the next start delivers a spool: 30..40 again, kept once
    await sink.flush()
    assert trade_id_counts(settings) == {("KRW-BTC", s): 1 for s in range(1, 46)}


def ticker(ts: int, volume: float, market: str = "KRW-BTC") -> SinkEvent:
    record = {
        "market": market,
        "trade_price": volume * 10,
        "acc_trade_volume": volume,
        "timestamp": ts,
        "_ingested_at": ts + 10,
        "_source": "upbit_websocket",
        "_collector": "test",
    }
    return SinkEvent("ticker", market, record, json.dumps(record).encode())


async def test_commits_through_one_kept_writer_and_after_a_restart(tmp_path: Path) -> None:
    """Several snapshots through the sink's kept writers, then a new sink (a restart):
    ``ticker_latest`` holds the newest ticker by exchange time whatever the arrival order,
    the history keeps every ticker once, a re-delivered trade is stored once."""
    settings = _settings(tmp_path)
    base = 1_763_900_000_000
    arrivals = [
        [ticker(base + 3000, 3.0), trade(1)],
        [ticker(base + 1000, 1.0), ticker(base + 5000, 5.0, "KRW-ETH")],
        [ticker(base + 2000, 2.0), trade(1), trade(2)],
    ]
    for run in range(2):  # the second run is a restart: new writers on the same tables
        sink = LakeSink(settings, DeadLetterBox(tmp_path / "dead"))
        await sink.open()
        for events in arrivals if run == 0 else [[ticker(base + 2500, 2.5), trade(2)]]:
            await sink.write(events)
            await sink.flush()
        await sink.close()
        assert sink.stats()["commits"] == (3 if run == 0 else 1)

    latest = {r["market"]: r["timestamp"] for r in read_table(settings, "ticker_latest")}
    assert latest == {"KRW-BTC": base + 3000, "KRW-ETH": base + 5000}
    history = sorted(r["acc_trade_volume"] for r in read_table(settings, "ticker"))
    assert history == [1.0, 2.0, 2.5, 3.0, 5.0]
    assert trade_id_counts(settings) == {("KRW-BTC", 1): 1, ("KRW-BTC", 2): 1}


async def test_one_commit_of_many_tickers_keeps_the_newest_per_market(tmp_path: Path) -> None:
    """``ticker_latest`` rows are folded before pypaimon writes them: within one commit the
    newest by exchange time wins, of equal times the last to arrive; the history keeps all.
    Written files keep parquet dictionaries for strings only."""
    settings = _settings(tmp_path)
    base = 1_763_900_000_000
    sink = LakeSink(settings, DeadLetterBox(tmp_path / "dead"))
    await sink.open()
    events = [ticker(base + (i * 7919) % 1000, float(i), f"KRW-M{i % 9}") for i in range(2000)]
    events += [ticker(base + 5000, 1e6 + 1, "KRW-M0"), ticker(base + 5000, 1e6, "KRW-M0")]
    for start in range(0, len(events), 300):
        await sink.write(events[start : start + 300])
    await sink.flush()
    await sink.close()

    expected: dict[str, tuple[int, float]] = {}
    for event in events:  # newest timestamp, of equals the later arrival
        stamp, volume = event.record["timestamp"], event.record["acc_trade_volume"]
        if event.market not in expected or stamp >= expected[event.market][0]:
            expected[event.market] = (stamp, volume)
    latest = {
        r["market"]: (r["timestamp"], r["acc_trade_volume"])
        for r in read_table(settings, "ticker_latest")
    }
    assert latest == expected and latest["KRW-M0"] == (base + 5000, 1e6)
    assert len(read_table(settings, "ticker")) == len(events)
    # one commit: every ticker in its history table, one row per market in ticker_latest
    assert sink.stats()["events_committed"] == len(events)
    assert sink.stats()["rows_committed"] == len(events) + len(latest)

    (file,) = (tmp_path / "lake").glob(
        f"{settings.lake.database}.db/ticker/dt=*/bucket-0/*.parquet"
    )
    meta = pq.ParquetFile(file).metadata
    names = meta.schema.to_arrow_schema().names
    encodings = {
        name: meta.row_group(0).column(index).encodings for index, name in enumerate(names)
    }
    assert "RLE_DICTIONARY" in encodings["market"]
    assert "RLE_DICTIONARY" not in encodings["acc_trade_volume"]


def orderbook(ts: int, market: str = "KRW-BTC", units: Any = None) -> SinkEvent:
    record = {
        "market": market,
        "timestamp": ts,
        "total_ask_size": 1.5,
        "total_bid_size": 2,  # an int where the lake has DOUBLE
        "orderbook_units": units
        if units is not None
        else [
            {"ask_price": 101.0, "bid_price": 100.0, "ask_size": 0.5, "bid_size": 1},
            {"ask_price": 102.0, "bid_price": 99.0, "ask_size": None},  # a size missing
        ],
        "level": 0,
        "_ingested_at": ts + 10,
        "_source": "upbit_websocket",
        "_collector": "test",
    }
    return SinkEvent("orderbook", market, record, json.dumps(record).encode())


def test_fast_conversion_equals_the_checked_rows(tmp_path: Path) -> None:
    """The records as one struct array, ``dt`` once per batch, give the rows the checked
    path (``event_to_row``) gives - ints where doubles are, missing fields, a batch across
    midnight in ``lake.timezone``; an unusable time or key sends the batch down the checked
    path, which rejects only that event, with a reason (pyarrow alone would truncate a
    float time to an integer)."""
    settings = load_settings(
        overrides={"lake.warehouse": str(tmp_path / "lake"), "lake.timezone": "Asia/Seoul"},
        env={},
    ).settings
    sink = LakeSink(settings, DeadLetterBox(tmp_path / "dead"))
    midnight = 1_764_255_600_000  # 2025-11-28 00:00 in Seoul
    batches: dict[str, list[SinkEvent]] = {
        "trade": [trade(1, midnight - 5), trade(2, midnight + 5), trade(3, midnight + 9)],
        "ticker": [ticker(midnight + 1, 1.0), ticker(midnight + 2, 2.0, "KRW-ETH")],
        "orderbook": [orderbook(midnight + 1), orderbook(midnight + 2, "KRW-ETH", units=[])],
    }
    batches["trade"][2].record["trade_timestamp"] = float(midnight + 9)  # a whole number
    for kind, events in batches.items():
        table = LAKE_TABLES[EVENT_TABLES[kind][0]]
        arrow, bad = sink._to_arrow(table, events)
        assert bad == []
        expected = rows_to_arrow(table, [event_to_row(table, e.record, sink.tz) for e in events])
        assert arrow.equals(expected), kind
        assert arrow.schema.equals(table.arrow_schema())
    assert sink._to_arrow(LAKE_TABLES["trade"], batches["trade"])[0].column("dt").to_pylist() == [
        "2025-11-27",
        "2025-11-28",
        "2025-11-28",
    ]

    poisoned = [trade(4, midnight), trade(5, midnight)]
    poisoned[1].record["trade_timestamp"] = midnight + 0.5  # not an integer
    poisoned.append(trade(None, midnight))  # no key
    arrow, bad = sink._to_arrow(LAKE_TABLES["trade"], poisoned)
    assert arrow.column("sequential_id").to_pylist() == [4]
    assert [(e.record["sequential_id"], "trade_timestamp" in r) for e, r in bad] == [
        (5, True),
        (None, False),
    ]
    # any other integer the exchange fills is checked as well, not truncated
    half = [trade(6, midnight), trade(7, midnight), ticker(midnight + 3, 3.0)]
    half[1].record["timestamp"] = midnight + 2.5
    half[2].record["trade_timestamp"] = midnight + 0.25
    arrow, bad = sink._to_arrow(LAKE_TABLES["trade"], half[:2])
    assert arrow.column("sequential_id").to_pylist() == [6]
    assert [(e.record["sequential_id"], "timestamp" in r) for e, r in bad] == [(7, True)]
    arrow, bad = sink._to_arrow(LAKE_TABLES["ticker"], half[2:])
    assert arrow.num_rows == 0 and len(bad) == 1 and "trade_timestamp" in bad[0][1]


def test_whole_books_and_upbit_sized_trade_ids_take_the_fast_path(
    tmp_path: Path, kernels: str
) -> None:
    """Books with every unit field (as the codec makes them) get their units from the C
    kernel when it is built, and a trade's 17-digit ``sequential_id`` (more digits than a
    double holds) no longer sends its batch down the checked path; the rows are the
    checked path's either way."""
    settings = load_settings(overrides={"lake.warehouse": str(tmp_path / "lake")}, env={}).settings
    sink = LakeSink(settings, DeadLetterBox(tmp_path / "dead"))
    ts = 1_764_255_600_000
    unit = {"ask_price": 101.5, "bid_price": 100, "ask_size": None, "bid_size": 2**53}
    batches = {
        "orderbook": [orderbook(ts + i, units=[dict(unit, ask_price=i)] * i) for i in range(4)],
        "trade": [trade(17_642_880_000_000_000 + i, ts) for i in range(3)],
    }
    for kind, events in batches.items():
        table = LAKE_TABLES[kind]
        records = [event.record for event in events]
        fast = sink._records_to_arrow(table, records)
        assert fast is not None, kind
        expected = rows_to_arrow(table, [event_to_row(table, r, sink.tz) for r in records])
        assert fast.equals(expected), kind
    built = sink._fast.book_units([event.record for event in batches["orderbook"]])
    assert (built is not None) == (kernels == "native")
    # a value the kernel leaves to pyarrow (a bool where a double goes: pyarrow and the
    # checked path both make it 1.0) converts the batch with pyarrow, the same rows
    records = [event.record for event in batches["trade"]]
    records[1]["trade_volume"] = True
    assert sink._fast.flat_rows(records, sink._bodies["trade"].flat) is None  # type: ignore[arg-type]
    fast = sink._records_to_arrow(LAKE_TABLES["trade"], records)
    assert fast is not None and fast.column("trade_volume").to_pylist() == [1.0] * 3


async def test_every_commit_runs_on_one_kept_thread(tmp_path: Path) -> None:
    """One commit thread for the sink's life (not one per commit), ended by close()."""
    settings, _, sink = await _open_sink(tmp_path)
    real = sink._commit_table
    threads: list[threading.Thread] = []

    def spy(name: str, arrow: Any) -> None:
        threads.append(threading.current_thread())
        real(name, arrow)

    sink._commit_table = spy  # type: ignore[method-assign]
    for sid in range(1, 6):
        await sink.write([trade(sid)])
        await sink.flush()
    assert len(threads) == 5
    assert len(set(threads)) == 1
    assert threads[0] is not threading.current_thread() and threads[0].daemon
    await sink.close()
    threads[0].join(10)
    assert not threads[0].is_alive()
    assert trade_id_counts(settings) == {("KRW-BTC", s): 1 for s in range(1, 6)}
