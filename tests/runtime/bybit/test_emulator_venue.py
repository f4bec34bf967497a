"""The venue is sans-I/O: driven here with no server and a fake clock, its answers and pushes carry
that clock's times, and its bar clock never shows a bar before it is matched."""
from __future__ import annotations

import itertools

import pytest

from emulator_kit import T0, bars_from, make_config
from playdeck.runtime.bybit.emulator import queries, trading
from playdeck.runtime.bybit.emulator.errors import BybitError
from playdeck.runtime.bybit.emulator.venue import Venue

B = (100.0, 100.5, 99.5, 100.0)
NOW = 1_767_000_000_000


def venue() -> Venue:
    ids = (f"id-{k}" for k in itertools.count(1))
    return Venue(make_config(bars_from([B, (100, 101, 97, 99), B])), NOW, order_ids=lambda: next(ids))


def test_commands_and_bars_carry_the_clock_given_and_push_in_order():
    v = venue()
    created = trading.create_order(v, {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                       "orderType": "Limit", "qty": "1", "price": "98", "orderLinkId": "l"}, NOW + 1)
    assert created == {"orderId": "id-1", "orderLinkId": "l"}
    pushes = v.drain_pushes()
    assert [(p.topic, p.item.get("orderStatus")) for p in pushes] == [("order", "New"), ("position", None)]
    assert pushes[0].item["createdTime"] == str(NOW + 1)
    assert v.advance(NOW + 2) is True and v.bar == 1
    pushes = v.drain_pushes()
    assert [p.topic for p in pushes] == ["execution", "order", "position", "wallet"]
    assert pushes[0].item["execTime"] == str(NOW + 2) and pushes[1].item["updatedTime"] == str(NOW + 2)
    (fill,) = queries.executions(v, {"category": "linear"}, NOW + 3)["list"]
    assert (fill["execPrice"], fill["isMaker"]) == ("98.0", True)
    # the default 7-day window is on the clock given: a week later the fill is out of it
    assert queries.executions(v, {"category": "linear"}, NOW + 8 * 86_400_000)["list"] == []


def test_market_data_is_the_datas_time_and_stops_at_the_current_bar():
    v = venue()
    rows = queries.klines(v, {"symbol": "BTCUSDT", "interval": "1"}, NOW)["list"]
    assert [r[0] for r in rows] == [str(T0)]
    v.advance(NOW)
    v.advance(NOW)
    assert v.advance(NOW) is False and v.at_end  # three bars: 0 .. 2
    rows = queries.klines(v, {"symbol": "BTCUSDT", "interval": "1"}, NOW)["list"]
    assert [r[0] for r in rows] == [str(T0 + 120_000), str(T0 + 60_000), str(T0)]


def test_errors_are_raised_not_answered():
    v = venue()
    with pytest.raises(BybitError) as e:
        trading.cancel_order(v, {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "none"}, NOW)
    assert e.value.code == 110001
    assert v.drain_pushes() == []
