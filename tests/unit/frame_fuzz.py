"""What the C scanners' differential tests (test_bookscan.py, test_flatscan.py) share: the
mutants of a set of frames, and values compared with their types."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

#: one mutation of a frame, drawn from the generator
Mutation = Callable[[bytes, random.Random], bytes]


def mutants(frames: list[bytes], rounds: int, mutate_once: Mutation, seed: int) -> list[bytes]:
    """``rounds`` mutants of every frame, each one to three mutations deep (seeded)."""
    rng = random.Random(seed)
    out = []
    for raw in frames:
        for _ in range(rounds):
            mutated = raw
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                mutated = mutate_once(mutated, rng)
            out.append(mutated)
    return out


def typed(data: dict[str, Any]) -> dict[str, tuple[type, str]]:
    """Type-aware values: 1 and 1.0, 0.0 and -0.0 differ."""
    return {key: (type(value), repr(value)) for key, value in data.items()}


def mutate_common(
    raw: bytes,
    rng: random.Random,
    how: int,
    *,
    flips: bytes,
    spellings: tuple[bytes, ...],
    number: re.Pattern[bytes],
    tails: tuple[bytes, ...],
) -> bytes | None:
    """Mutations 0-5 that both scanners' fuzz draws (``how``): cut short or a byte added
    after the end, a digit or a byte flipped, a number respelled, a key added before the
    closing brace. None when ``how`` is another one, or this one does not apply."""
    if how == 0 and raw:
        if rng.random() < 0.5:
            return raw[: rng.randrange(len(raw))]
        return raw + rng.choice((b"}", b" ", b"\n", b",", b"x", b"\x00"))
    if how == 1:
        digits = [i for i, c in enumerate(raw) if 0x30 <= c <= 0x39]
        if digits:
            i = rng.choice(digits)
            return raw[:i] + bytes([rng.randrange(0x30, 0x3A)]) + raw[i + 1 :]
    if how == 2 and raw:
        i = rng.randrange(len(raw))
        return raw[:i] + bytes([rng.choice(flips)]) + raw[i + 1 :]
    if how in (3, 4):
        numbers = list(number.finditer(raw))
        if numbers:
            m = rng.choice(numbers)
            return raw[: m.start()] + rng.choice(spellings) + raw[m.end() :]
    if how == 5 and raw.endswith(b"}"):
        return raw[:-1] + rng.choice(tails) + b"}"
    return None
