"""The compiled hot modules behave exactly as their Python source, on good and broken frames.

mypyc compiles ``upbit/codec.py``, ``upbit/gate.py`` and ``collector/dedup.py`` (setup.py)
and enforces their annotations at run time: a value of the wrong type where a function
declares ``float`` raises ``TypeError`` in C where Python would go on. A frame from the
network must still only ever give an event or :class:`MalformedFrameError` (dead-lettered),
never another exception that stops the collector, and the same event or the same reason as
the ``.py``.

So: real frames (tests/data) and the replay twin's synthetic frames, DEFAULT and SIMPLE,
plus REST trades, mutated (types swapped, keys dropped, huge and non-finite numbers, floats
as integers, truncated bytes, units broken), go through the compiled modules and through the
same ``.py`` files loaded from source under other names; both must agree on every outcome,
and every outcome must be an event or a ``MalformedFrameError``. The events go on through
the gate (subscription, exchange clock) and dedup's key, as in ``CollectorService.on_frames``.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

import upbitpipe.collector.dedup as compiled_dedup
import upbitpipe.upbit.codec as compiled_codec
import upbitpipe.upbit.gate as compiled_gate

DATA = Path(__file__).parent.parent / "data"
MARKETS = ("KRW-BTC", "BTC-ETH", "KRW-ETH")
ROUNDS = 20  # mutated copies of every frame (seeded): ~5,000 frames

# values a field is swapped for: every JSON type, edges of the ranges the codec checks
SWAPS: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    7,
    1.5,
    -0.0,
    0.0,
    1e308,
    2**63,
    2**63 - 1,
    -(2**63),
    1_483_228_799_999,
    4_102_444_800_000,
    "",
    "x",
    "12",
    "KRW-BTC",
    [],
    [1],
    {},
    {"a": 1},
    [{"ap": 1}],
)
# tokens put in place of a number in the frame's text: beyond 64 bits, beyond a double, or
# not JSON at all (orjson refuses NaN and Infinity: those are malformed frames)
TOKENS = (
    b"123456789012345678901234567890",
    b"-99999999999999999999",
    b"1e999",
    b"-1e999",
    b"NaN",
    b"Infinity",
    b"18446744073709551616",
)


def _load_from_source(name: str, module: ModuleType, imports: dict[str, ModuleType]) -> ModuleType:
    """``module``'s ``.py`` executed as a new module ``name`` (pure Python, whatever is
    installed), with ``imports`` standing in for the modules it imports while it loads."""
    file = Path(str(module.__file__))
    source = file.with_name(file.name.split(".", 1)[0] + ".py")
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None and spec.loader is not None
    pure = importlib.util.module_from_spec(spec)
    saved = {key: sys.modules.get(key) for key in (*imports, name)}
    sys.modules.update(imports)
    sys.modules[name] = pure  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(pure)
    finally:
        for key, old in saved.items():
            if old is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = old
    return pure


@pytest.fixture(scope="module")
def pure() -> tuple[ModuleType, ModuleType, ModuleType]:
    """codec, gate (importing the pure codec) and dedup, from their ``.py`` files."""
    codec = _load_from_source("_pure_codec", compiled_codec, {})
    gate = _load_from_source("_pure_gate", compiled_gate, {"upbitpipe.upbit.codec": codec})
    dedup = _load_from_source("_pure_dedup", compiled_dedup, {})
    return codec, gate, dedup


def _compiled(module: ModuleType) -> bool:
    return not str(module.__file__).endswith(".py")


def test_the_twins_are_what_they_claim(pure: tuple[ModuleType, ModuleType, ModuleType]) -> None:
    for module in pure:
        assert str(module.__file__).endswith(".py")
    codec, gate, _ = pure
    assert gate.parse_data is codec.parse_data  # the pure gate runs the pure codec


# -- frames ----------------------------------------------------------------------------------


def _lines(name: str) -> list[bytes]:
    return [line for line in (DATA / name).read_bytes().splitlines() if line.strip()]


def _synthetic(fmt: str) -> list[bytes]:
    from upbitpipe.replay.market import SyntheticMarket

    market = SyntheticMarket(list(MARKETS[:2]), 11, 1_795_460_000_000, 0.5)
    return [event.frame(fmt) for event in market.generate(120, 1_795_460_000_000)]


def _base_frames() -> list[bytes]:
    return (
        _lines("upbit_default_frames.jsonl")
        + _lines("upbit_simple_frames.jsonl")
        + _lines("upbit_control_frames.jsonl")
        + _synthetic("DEFAULT")
        + _synthetic("SIMPLE")
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path into a decoded frame (objects and arrays, at every depth)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _parent(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        obj = obj[key]
    return obj


def _integers(value: Any) -> Any:
    """Every whole float as an integer (Upbit writes ``32287000`` as often as ``32287000.0``)."""
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**62:
        return int(value)
    return value


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    """One seeded mutation of a frame."""
    how = rng.randrange(8)
    if how == 0:  # cut short
        return raw[: rng.randrange(len(raw))]
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:  # cut short by an earlier mutation: cut it again
        return raw[: rng.randrange(len(raw) + 1)]
    paths = list(_paths(obj))
    if how == 1:
        return orjson.dumps(_integers(obj))
    if how == 2 or not paths:  # the whole frame another JSON value
        return orjson.dumps(rng.choice(SWAPS))
    path = rng.choice(paths)
    parent = _parent(obj, path)
    if how in (3, 4):  # a value of another type (twice as likely: the widest net)
        parent[path[-1]] = rng.choice(SWAPS)
    elif how == 5:  # a key or array item gone
        del parent[path[-1]]
    elif how == 6:  # a number (or anything) spelled as a token orjson reads oddly or refuses
        marker = "\x00token\x00"
        parent[path[-1]] = marker
        text = orjson.dumps(obj)
        return text.replace(orjson.dumps(marker), rng.choice(TOKENS))
    else:  # two mutations on top of each other, integers first half the time
        if rng.random() < 0.5:
            obj = _integers(obj)
        return _mutate(_mutate(orjson.dumps(obj), rng), rng)
    return orjson.dumps(obj)


def _corpus() -> list[bytes]:
    rng = random.Random(20261128)
    base = _base_frames()
    frames = list(base)
    for _ in range(ROUNDS):
        frames += [_mutate(raw, rng) for raw in base]
    return frames


# -- outcomes --------------------------------------------------------------------------------


def _outcome(
    malformed: type[BaseException], call: Callable[..., Any], *args: Any
) -> tuple[Any, ...]:
    """What a call gave, comparable across the twins: a value's ``repr`` (types and key
    order included), or a MalformedFrameError's class name, reason and dead-letter kind.
    Any other exception is returned as ``("crash", ...)``."""
    try:
        value = call(*args)
    except malformed as exc:
        return ("malformed", type(exc).__name__, str(exc), getattr(exc, "kind", None))
    except Exception as exc:  # noqa: BLE001 - a crash is what the test looks for
        return ("crash", type(exc).__name__, str(exc))
    if isinstance(value, dict | str | bytes | bool | tuple) or value is None:
        return ("value", repr(value))
    fields = getattr(type(value), "__dataclass_fields__", None)
    assert fields is not None, value
    return ("value", type(value).__name__, *(repr(getattr(value, name)) for name in fields))


def _event_path(
    codec: ModuleType, gate: ModuleType, dedup: ModuleType, frames: list[bytes]
) -> list[tuple[Any, ...]]:
    """The collector's per-frame steps with one set of modules (``on_frames``): parse, the
    gate (subscription, exchange clock), dedup's key, the record's JSON; every outcome."""
    malformed = codec.MalformedFrameError
    frame_gate = gate.FrameGate(MARKETS)
    seen = dedup.Deduplicator(100_000)
    out: list[tuple[Any, ...]] = []
    for raw in frames:
        out.append(_outcome(malformed, codec.parse_data, raw))
        out.append(_outcome(malformed, _event_view, codec, raw))
        try:
            data = frame_gate.parse_data(raw, 0)
        except malformed as exc:
            out.append(("malformed", type(exc).__name__, str(exc), getattr(exc, "kind", None)))
            continue
        except Exception as exc:  # noqa: BLE001 - the outcome is compared, then judged
            out.append(("crash", type(exc).__name__, str(exc)))
            continue
        out.append(_outcome(malformed, lambda value: value, data))
        if type(data) is dict:
            out.append(_outcome(malformed, _dedup_key, dedup, seen, data))
            out.append(_outcome(malformed, orjson.dumps, data))
    return out


def _event_view(codec: ModuleType, raw: bytes) -> Any:
    """:func:`parse_frame` and what a :class:`MarketEvent`'s properties read (the replay
    twin and the tests use these)."""
    event = codec.parse_frame(raw)
    if not isinstance(event, codec.MarketEvent):
        return event
    return (
        event.type,
        event.market,
        event.raw == raw,
        event.timestamp,
        event.sequential_id,
        event.trade_timestamp,
        event.stream_type,
    )


def _dedup_key(dedup: ModuleType, seen: Any, data: dict[str, Any]) -> tuple[Any, bool]:
    """The event's dedup key and whether it is new, as ``on_frames`` asks."""
    key = dedup.event_key(data["type"], data["market"], data)
    return key, seen.add(key)


def _rest_path(gate: ModuleType, trades: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    frame_gate = gate.FrameGate(MARKETS)
    return [_outcome(ValueError, frame_gate.trade_problem, "KRW-BTC", trade) for trade in trades]


def _rest_corpus() -> list[dict[str, Any]]:
    rng = random.Random(7)
    base = orjson.loads((DATA / "upbit_rest_trades_ticks.json").read_bytes())
    trades = []
    for trade in base:  # as the backfill passes them on: with the frame's names
        trade = {**trade, "trade_timestamp": trade["timestamp"]}
        trades.append(trade)
        for _ in range(150):
            mutated: Any = dict(trade)
            if rng.random() < 0.5:
                try:
                    mutated = orjson.loads(_mutate(orjson.dumps(trade), rng))
                except orjson.JSONDecodeError:
                    continue
            if type(mutated) is not dict:
                continue
            key = rng.choice(list(trade))
            mutated[key] = rng.choice(SWAPS)
            trades.append(mutated)
    return trades


def _crashes(outcomes: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [outcome for outcome in outcomes if outcome[0] == "crash"]


# -- tests -----------------------------------------------------------------------------------


def test_no_frame_crashes_the_collectors_event_path() -> None:
    """On the installed modules (compiled or not): every frame gives an event, a control
    frame or a MalformedFrameError - and the corpus holds plenty of each."""
    frames = _corpus()
    outcomes = _event_path(compiled_codec, compiled_gate, compiled_dedup, frames)
    assert _crashes(outcomes) == []
    kinds = [outcome[0] for outcome in outcomes]
    assert kinds.count("malformed") > len(frames) // 2
    assert kinds.count("value") > len(frames)
    assert _crashes(_rest_path(compiled_gate, _rest_corpus())) == []


def test_the_compiled_modules_agree_with_their_source(
    pure: tuple[ModuleType, ModuleType, ModuleType],
) -> None:
    installed = (compiled_codec, compiled_gate, compiled_dedup)
    if not all(_compiled(module) for module in installed):
        pytest.skip("pure Python install: nothing compiled to compare")
    frames = _corpus()
    got = _event_path(*installed, frames)
    want = _event_path(*pure, frames)
    assert len(got) == len(want)
    differ = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
    assert not differ, (
        f"{len(differ)} of {len(got)} outcomes differ; the first, compiled then pure: "
        + " | ".join(repr(outcome)[-300:] for outcome in differ[0])
    )
    trades = _rest_corpus()
    assert _rest_path(compiled_gate, trades) == _rest_path(pure[1], trades)
