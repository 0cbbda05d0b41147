"""Upbit field names, declared as data: SIMPLE abbreviation -> DEFAULT name, per type.

Sources: docs.upbit.com websocket-ticker / websocket-trade / websocket-orderbook, checked
against the recorded frames in ``tests/data/`` (which the codec tests replay). ``code``/``cd``
is mapped straight to ``market`` because that is the name the rest of upbitpipe uses (the
data contract in the README). Keys not listed pass through unchanged, so a field Upbit adds
tomorrow is kept, not dropped.
"""

from __future__ import annotations

from typing import Final

EVENT_TYPES: Final = ("ticker", "trade", "orderbook")

TICKER_SIMPLE: Final[dict[str, str]] = {
    "ty": "type",
    "cd": "code",
    "op": "opening_price",
    "hp": "high_price",
    "lp": "low_price",
    "tp": "trade_price",
    "pcp": "prev_closing_price",
    "c": "change",
    "cp": "change_price",
    "scp": "signed_change_price",
    "cr": "change_rate",
    "scr": "signed_change_rate",
    "tv": "trade_volume",
    "atv": "acc_trade_volume",
    "atv24h": "acc_trade_volume_24h",
    "atp": "acc_trade_price",
    "atp24h": "acc_trade_price_24h",
    "tdt": "trade_date",
    "ttm": "trade_time",
    "ttms": "trade_timestamp",
    "ab": "ask_bid",
    "aav": "acc_ask_volume",
    "abv": "acc_bid_volume",
    "h52wp": "highest_52_week_price",
    "h52wdt": "highest_52_week_date",
    "l52wp": "lowest_52_week_price",
    "l52wdt": "lowest_52_week_date",
    "ts": "trade_status",
    "ms": "market_state",
    "msfi": "market_state_for_ios",
    "its": "is_trading_suspended",
    "dd": "delisting_date",
    "mw": "market_warning",
    "tms": "timestamp",
    "st": "stream_type",
}

TRADE_SIMPLE: Final[dict[str, str]] = {
    "ty": "type",
    "cd": "code",
    "tp": "trade_price",
    "tv": "trade_volume",
    "ab": "ask_bid",
    "pcp": "prev_closing_price",
    "c": "change",
    "cp": "change_price",
    "td": "trade_date",
    "ttm": "trade_time",
    "ttms": "trade_timestamp",
    "tms": "timestamp",
    "sid": "sequential_id",
    "bap": "best_ask_price",
    "bas": "best_ask_size",
    "bbp": "best_bid_price",
    "bbs": "best_bid_size",
    "st": "stream_type",
}

ORDERBOOK_SIMPLE: Final[dict[str, str]] = {
    "ty": "type",
    "cd": "code",
    "tas": "total_ask_size",
    "tbs": "total_bid_size",
    "obu": "orderbook_units",
    "tms": "timestamp",
    "lv": "level",
    "st": "stream_type",
}

UNIT_SIMPLE: Final[dict[str, str]] = {
    "ap": "ask_price",
    "bp": "bid_price",
    "as": "ask_size",
    "bs": "bid_size",
}

SIMPLE_TO_DEFAULT: Final[dict[str, dict[str, str]]] = {
    "ticker": TICKER_SIMPLE,
    "trade": TRADE_SIMPLE,
    "orderbook": ORDERBOOK_SIMPLE,
}

# Parsing maps: as above but ``cd`` lands directly on ``market`` (one pass, no rename).
SIMPLE_TO_NORMAL: Final[dict[str, dict[str, str]]] = {
    kind: {short: ("market" if long == "code" else long) for short, long in table.items()}
    for kind, table in SIMPLE_TO_DEFAULT.items()
}

# Encoding maps (the replay server speaks SIMPLE too).
DEFAULT_TO_SIMPLE: Final[dict[str, dict[str, str]]] = {
    kind: {long: short for short, long in table.items()}
    for kind, table in SIMPLE_TO_DEFAULT.items()
}
UNIT_TO_SIMPLE: Final[dict[str, str]] = {long: short for short, long in UNIT_SIMPLE.items()}

ORDERBOOK_DEPTHS: Final = (1, 5, 15, 30)
DEFAULT_ORDERBOOK_DEPTH: Final = 30
FORMATS: Final = ("DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST")

# Optional trade fields that, when present, must be JSON numbers (lake/ClickHouse DOUBLEs).
TRADE_OPTIONAL_NUMBERS: Final = (
    "prev_closing_price",
    "change_price",
    "best_ask_price",
    "best_ask_size",
    "best_bid_price",
    "best_bid_size",
)

# Plausibility bounds of the fields the sinks key on (checked where a frame is parsed).
MIN_EPOCH_MS: Final = 1_483_228_800_000  # 2017-01-01 UTC; Upbit opened in October 2017
MAX_EPOCH_MS: Final = 4_102_444_800_000  # 2100-01-01 UTC
MAX_BIGINT: Final = 2**63  # sequential_id is a BIGINT in the lake and ClickHouse
# A trade may not be later than the exchange time of the frame that carries it by more than
# this (Upbit stamps the frame after the trade; a few ms in practice).
TRADE_AHEAD_TOLERANCE_MS: Final = 60_000
