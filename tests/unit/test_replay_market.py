"""Synthetic market, trade store and request parsing: pure logic, no sockets."""

from __future__ import annotations

import orjson
import pytest

from upbitpipe.replay.frames import WireEvent, encode_wire
from upbitpipe.replay.market import SyntheticMarket, snap, tick_size
from upbitpipe.replay.subscription import RequestError, parse_request
from upbitpipe.replay.tradebook import TicksQuery, TradeStore
from upbitpipe.upbit.codec import MarketEvent, parse_frame, to_default_wire

T0 = 1_795_460_000_000


def _market(seed: int = 7) -> SyntheticMarket:
    return SyntheticMarket(["KRW-BTC", "KRW-XRP", "KRW-NEWCOIN"], seed, T0, 0.3)


def test_tick_sizes_follow_the_krw_table() -> None:
    assert tick_size(140_000_000) == 1000
    assert tick_size(1_500_000) == 500
    assert tick_size(3_200) == 1
    assert tick_size(520) == 0.1
    assert snap(520.04) == 520.0
    assert snap(140_000_499) == 140_000_000


def test_same_seed_same_market() -> None:
    def values(events: list[WireEvent]) -> list[object]:
        return [e.wire.get("trade_price") or e.wire.get("total_ask_size") for e in events]

    assert values(_market().generate(300, T0)) == values(_market().generate(300, T0))
    assert values(_market().generate(300, T0)) != values(_market(8).generate(300, T0))


def test_trades_are_consistent_with_book_and_ticker() -> None:
    market = _market()
    events = market.generate(3000, T0)
    shares = {
        kind: sum(e.type == kind for e in events) / len(events) for kind in ("orderbook", "trade")
    }
    assert shares["orderbook"] == pytest.approx(0.3, abs=0.05)
    for i, event in enumerate(events):
        wire = event.wire
        if event.type == "trade":
            ticker = events[i + 1]
            assert ticker.type == "ticker" and ticker.market == event.market
            assert ticker.wire["trade_price"] == wire["trade_price"]
            side_price = (
                wire["best_ask_price"] if wire["ask_bid"] == "BID" else wire["best_bid_price"]
            )
            assert wire["trade_price"] == side_price
            assert wire["trade_price"] == snap(wire["trade_price"])
            assert wire["trade_volume"] > 0
            assert ticker.wire["low_price"] <= wire["trade_price"] <= ticker.wire["high_price"]
        elif event.type == "orderbook":
            units = wire["orderbook_units"]
            assert len(units) == 30
            asks = [u["ask_price"] for u in units]
            bids = [u["bid_price"] for u in units]
            assert asks == sorted(asks) and bids == sorted(bids, reverse=True)
            assert asks[0] > bids[0]


def test_sequential_ids_unique_per_market_but_not_in_order() -> None:
    market = SyntheticMarket(["KRW-BTC"], 1, T0, 0.0)
    trades = [e for e in market.generate(6000, T0) if e.is_trade]  # all in one millisecond
    ids = [e.wire["sequential_id"] for e in trades]
    assert len(set(ids)) == len(ids) == 3000
    assert ids != sorted(ids)


def test_simple_encoding_round_trips_through_the_parser() -> None:
    for event in _market().generate(200, T0):
        default = parse_frame(event.frame("DEFAULT"))
        simple = parse_frame(event.frame("SIMPLE", 15))
        assert isinstance(default, MarketEvent) and isinstance(simple, MarketEvent)
        if event.type == "orderbook":
            assert len(simple.data["orderbook_units"]) == 15
            assert simple.data["best_ask_price"] == default.data["best_ask_price"]
        else:
            assert simple.data == default.data
        assert to_default_wire(default.type, default.data) == event.wire
    book = _market().states["KRW-BTC"].book(T0)
    listed = encode_wire("orderbook", book.wire, "SIMPLE_LIST", 1, True)
    assert orjson.loads(listed)[0]["st"] == "SNAPSHOT"


def test_trade_store_paging_and_bounds() -> None:
    store = TradeStore(keep=100)
    for i in range(250):
        store.add(
            {
                "code": "KRW-BTC",
                "sequential_id": 10_000 + (i * 7) % 250,
                "trade_timestamp": T0 + i * 1000,
                "trade_price": 100.0 + i,
                "trade_volume": 1.0,
                "ask_bid": "BID",
                "prev_closing_price": 100.0,
            }
        )
    assert store.count("KRW-BTC") <= 200
    now = T0 + 250_000
    page = store.ticks("KRW-BTC", TicksQuery(count=3), now)
    assert [row["trade_price"] for row in page] == [349.0, 348.0, 347.0]
    older = store.ticks("KRW-BTC", TicksQuery(count=2, cursor=page[-1]["sequential_id"]), now)
    assert [row["trade_price"] for row in older] == [346.0, 345.0]
    assert store.ticks("KRW-BTC", TicksQuery(cursor=1), now) == []
    assert store.ticks("KRW-NONE", TicksQuery(), now) == []
    with pytest.raises(ValueError, match="to must be"):
        store.ticks("KRW-BTC", TicksQuery(to="25"), now)
    with pytest.raises(ValueError, match="daysAgo"):
        store.ticks("KRW-BTC", TicksQuery(days_ago=9), now)


def test_request_parsing_accepts_both_spellings_and_any_format_position() -> None:
    sub = parse_request(
        b'[{"ticket":"t"},{"format":"SIMPLE"},{"type":"orderbook","codes":["KRW-BTC.15","KRW-ETH.7"],'
        b'"isOnlySnapshot":true},{"type":"trade","codes":["KRW-BTC"],"is_only_realtime":true}]'
    )
    assert sub.format == "SIMPLE"
    assert sub.routes() == {("trade", "KRW-BTC"): 30}
    assert sub.snapshots() == [("orderbook", "KRW-BTC", 15), ("orderbook", "KRW-ETH", 30)]
    with pytest.raises(RequestError) as info:
        parse_request('[{"ticket":"t"},{"type":"trade","codes":["KRW-BTC.5"]}]')
    assert info.value.name == "INVALID_PARAM"


def test_day_statistics_restart_at_utc_midnight() -> None:
    state = SyntheticMarket(["KRW-BTC"], 1, T0, 0.0).states["KRW-BTC"]
    midnight = (T0 // 86_400_000 + 1) * 86_400_000
    for i in range(5):
        state.trade(midnight - 5000 + i)
    _, before = state.trade(midnight - 1)
    last_price = before.wire["trade_price"]
    _, after = state.trade(midnight + 10)
    assert before.wire["acc_trade_volume"] > after.wire["acc_trade_volume"]
    assert after.wire["acc_trade_volume"] == after.wire["trade_volume"]
    assert after.wire["prev_closing_price"] == after.wire["opening_price"] == last_price
    assert after.wire["trade_date"] != before.wire["trade_date"]
