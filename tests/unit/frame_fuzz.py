"""What the C scanners' differential tests (test_bookscan.py, test_flatscan.py) share: the
mutants of a set of frames, and values compared with their types."""

from __future__ import annotations

import random
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
