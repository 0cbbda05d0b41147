"""Turn ``--markets`` into concrete codes, checked against the exchange's list."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from upbitpipe.errors import UnknownMarketError

SELECTOR_QUOTES = {"all": None, "all-krw": "KRW", "all-btc": "BTC", "all-usdt": "USDT"}


def resolve_markets(requested: Sequence[str], listed: Sequence[str]) -> list[str]:
    """Expand selectors (all, all-krw, ...) and reject codes the exchange does not list.

    Raises UnknownMarketError naming every unknown code with its closest listed matches.
    """
    listed_set = set(listed)
    out: list[str] = []
    unknown: list[str] = []
    for code in requested:
        if code in SELECTOR_QUOTES:
            quote = SELECTOR_QUOTES[code]
            out.extend(m for m in listed if quote is None or m.startswith(f"{quote}-"))
        elif code in listed_set:
            out.append(code)
        else:
            unknown.append(code)
    if unknown:
        parts = []
        for code in unknown:
            close = difflib.get_close_matches(code, listed, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            parts.append(f"{code}{hint}")
        msg = f"unknown market{'s' if len(unknown) > 1 else ''}: {'; '.join(parts)}"
        raise UnknownMarketError(msg)
    resolved = list(dict.fromkeys(out))
    if not resolved:
        msg = f"{', '.join(requested)} matched no listed market"
        raise UnknownMarketError(msg)
    return resolved


def shard(markets: Sequence[str], per_connection: int) -> list[list[str]]:
    """Split markets over connections, at most ``per_connection`` codes each, evenly."""
    if not markets:
        return []
    count = -(-len(markets) // per_connection)
    return [list(markets[i::count]) for i in range(count)]
