"""PLAY-LANGUAGE.md section 7 as tables: liquidation (7.4) and funding (7.3), each row worked out by
hand (the README shows the same numbers), driven through the backend protocols (tests/venue.py).

Unless a row says otherwise: taker 0.05%, maker 0.02%, no slippage, equity 1,000, leverage 20, mmr
0.5%, tick 0.1, funding 0.01% per 8 h, bars of one minute from 1970-01-01 (a funding instant).
"""
from __future__ import annotations

import math
from typing import Any

import pytest

from playdeck.runtime.execution.orders import (
    CashFlow,
    Fill,
    Instrument,
    OrderEvent,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from playdeck.runtime.sim.backend import DetailBars
from venue import Venue, path_text

INST = Instrument("BTCUSDT", tick=0.1, qty_step=0.001, min_qty=0.001)
BUY, SELL = Side.BUY, Side.SELL
QUIET = (100.0, 100.5, 99.5, 100.0)
HOUR, DAY = 3_600_000, 86_400_000


def venue(**kw: Any) -> Venue:
    config: dict[str, Any] = dict(maker_fee=0.0002, taker_fee=0.0005, slippage_bps=0.0, intrabar="worst_case",
                                  equity=1_000.0, leverage=20.0)
    config.update(kw)
    return Venue(INST, **config)


def order(side: Side, qty: float, bar: int, n: int, type_: OrderType = OrderType.MARKET, **kw: Any) -> OrderRequest:
    role = kw.pop("role", OrderRole.ENTRY)
    return OrderRequest(f"o-{bar}-{n}", side, type_, qty, kw.pop("price", None), kw.pop("trigger", None),
                        TimeInForce.GTC, role is not OrderRole.ENTRY, role, kw.pop("tag", None), bar, None)


def enter(v: Venue, side: Side, qty: float = 190.0) -> None:
    """Bar 0 quiet, the entry sent at its close, filled at the open of bar 1 (100)."""
    v.bar_closed(0, *QUIET)
    assert v.submit(order(side, qty, 0, 0), 0, 100.0).accepted
    v.bar_closed(1, *QUIET)
    assert v.position_qty == (qty if side is BUY else -qty)


# ---------------------------------------------------------------------------------------- 7.4 liquidation
# Long 190 at 100 (fee 9.5): wallet 990.5; 990.5 + 190 (P - 100) = 190 P 0.005 gives P = 95.2631...,
# on the tick up: 95.3. Short 190 at 100: 990.5 - 190 (P - 100) = 0.95 P gives 104.6897..., down: 104.6.
@pytest.mark.parametrize(
    ("side", "bar", "price", "realized", "fee", "wallet", "insurance"),
    [
        pytest.param(BUY, (99, 99.5, 94, 96), 95.3, 190 * (95.3 - 100), 190 * 95.3 * 0.0005,
                     990.5 - 893 - 9.0535, 0.0, id="long liquidated inside the bar at 95.3"),
        pytest.param(BUY, (90, 91, 89, 90), 90.0, -1900.0, 190 * 90 * 0.0005, 0.0, 918.05,
                     id="long gapped through: at the open 90, the insurance fund covers 918.05"),
        pytest.param(SELL, (101, 105, 100.5, 104), 104.6, -190 * 4.6, 190 * 104.6 * 0.0005,
                     990.5 - 874 - 9.937, 0.0, id="short liquidated inside the bar at 104.6"),
        pytest.param(SELL, (110, 111, 109, 110), 110.0, -1900.0, 190 * 110 * 0.0005, 0.0, 919.95,
                     id="short gapped through: at the open 110"),
    ],
)
def test_liquidation(side: Side, bar: tuple, price: float, realized: float, fee: float, wallet: float,
                     insurance: float) -> None:
    v = venue()
    enter(v, side)
    liq = v.exchange.liquidation_price()
    assert liq == (95.3 if side is BUY else 104.6)
    v.bar_closed(2, *bar)
    (fill,) = [e for e in v.drain_events() if isinstance(e, Fill) and e.bar == 2]
    assert (fill.role, fill.liquidity, fill.price) == (OrderRole.LIQUIDATION, "taker", price)
    assert fill.realized_pnl == pytest.approx(realized) and fill.fee == pytest.approx(fee)
    assert v.position_qty == 0.0
    assert v.cash == pytest.approx(wallet) and v.cash >= 0.0
    assert v.state.insurance == pytest.approx(insurance)
    assert [f.bar for f in v.state.liquidations] == [2]


def test_liquidation_cancels_every_other_working_order_first() -> None:
    v = venue()
    enter(v, BUY)
    v.set_protection("take_profit", 110.0, 1, 100.0)
    v.submit(order(BUY, 1, 1, 1, OrderType.LIMIT, price=80.0, tag="deep"), 1, 100.0)
    v.bar_closed(2, 99, 99.5, 94, 96)
    events = [e for e in v.drain_events() if isinstance(e, OrderEvent) and e.bar == 2]
    cancelled = [(e.client_id.split("-")[0], e.new, e.reason) for e in events if e.reason == "CancelAllBeforeLiq"]
    assert sorted(cancelled) == [("o", OrderStatus.CANCELLED, "CancelAllBeforeLiq"),
                                 ("take_profit", OrderStatus.CANCELLED, "CancelAllBeforeLiq")]
    liq = next(r for r in v.orders.values() if r.role is OrderRole.LIQUIDATION)
    assert path_text(liq) == "New>Filled" and liq.qty == 190.0
    assert v.open_orders() == []


def test_a_stop_loss_between_the_price_and_the_liquidation_level_fills_first() -> None:
    v = venue()
    enter(v, BUY)
    v.set_protection("stop_loss", 96.0, 1, 100.0)
    v.bar_closed(2, 99, 99.5, 94, 96)  # falls through 96 (stop) then 95.3 (liquidation)
    (fill,) = [f for f in v.state.fills if f.bar == 2]
    assert (fill.role, fill.price) == (OrderRole.STOP_LOSS, 96.0)
    assert v.state.liquidations == [] and v.cash == pytest.approx(990.5 - 760 - 9.12)


@pytest.mark.parametrize(("intrabar", "role", "price"), [
    ("worst_case", OrderRole.LIQUIDATION, 95.3),  # the adverse extreme first: liquidated
    ("ohlc_path", OrderRole.TAKE_PROFIT, 101.0),  # the nearer extreme (the high) first: out at the TP
])
def test_liquidation_and_take_profit_in_one_bar(intrabar: str, role: OrderRole, price: float) -> None:
    v = venue(intrabar=intrabar)
    enter(v, BUY)
    v.set_protection("take_profit", 101.0, 1, 100.0)
    v.bar_closed(2, 100, 102, 94, 100)
    (fill,) = [f for f in v.state.fills if f.bar == 2]
    assert (fill.role, fill.price) == (role, price)


def test_no_liquidation_price_while_the_wallet_covers_any_price() -> None:
    v = venue(leverage=1.0)
    enter(v, BUY, qty=9.0)  # 900 of notional on a 1,000 wallet: it can lose all of it
    assert v.exchange.liquidation_price() is None
    v.bar_closed(2, 100, 100, 1, 1)
    assert v.position_qty == 9.0


def test_after_a_liquidation_the_run_goes_on_with_what_is_left() -> None:
    v = venue()
    enter(v, BUY)
    v.bar_closed(2, 90, 91, 89, 90)  # wiped out: the wallet is 0
    assert v.cash == 0.0 and v.equity() == 0.0
    refused = v.submit(order(BUY, 1, 2, 1), 2, 90.0)
    assert not refused.accepted and "insufficient margin" in refused.reject_reason


# ---------------------------------------------------------------------------------------- 7.3 funding
def test_funding_is_paid_by_a_long_and_received_by_a_short_at_each_instant_with_1h_bars() -> None:
    for side, sign in ((BUY, -1.0), (SELL, 1.0)):
        v = venue(leverage=3.0)
        v.step_ms = HOUR
        v.bar_closed(0, *QUIET)  # 00:00: an instant, flat
        v.submit(order(side, 2, 0, 0), 0, 100.0)
        for k in range(1, 18):
            v.bar_closed(k, 100 + k, 101 + k, 99 + k, 100 + k)  # bar k opens at 100 + k
        flows = [e for e in v.state.events if isinstance(e, CashFlow)]
        # 08:00 and 16:00: the bars that start there pay at their opens, 108 and 116
        assert [(e.ts // HOUR, e.bar, e.price, e.rate, e.qty) for e in flows] == \
            [(8, 8, 108.0, 0.0001, 2.0 * -sign), (16, 16, 116.0, 0.0001, 2.0 * -sign)]
        assert [e.amount for e in flows] == pytest.approx([sign * 2 * 108 * 0.0001, sign * 2 * 116 * 0.0001])
        paid, received = v.state.funding_paid, v.state.funding_received
        assert (paid, received) == ((pytest.approx(0.0448), 0.0) if sign < 0 else (0.0, pytest.approx(0.0448)))
        fee = 2 * 101 * 0.0005
        assert v.cash == pytest.approx(1_000.0 - fee + sign * 0.0448)


def test_with_daily_bars_three_instants_settle_at_one_open() -> None:
    v = venue(leverage=3.0)
    v.step_ms = DAY
    v.bar_closed(0, *QUIET)
    v.submit(order(BUY, 1, 0, 0), 0, 100.0)
    v.bar_closed(1, 100, 101, 99, 100)  # the entry fills at the open of day 1 (00:00: before the fill)
    v.bar_closed(2, 120, 121, 119, 120)  # 08:00 and 16:00 of day 1, 00:00 of day 2: all at 120
    flows = [e for e in v.state.events if isinstance(e, CashFlow)]
    assert [((e.ts - DAY) // HOUR, e.bar, e.price) for e in flows] == [(8, 2, 120.0), (16, 2, 120.0), (24, 2, 120.0)]
    assert v.state.funding_paid == pytest.approx(3 * 120 * 0.0001)


def test_funding_rates_from_the_data_on_the_bar_at_the_instant_or_the_last_before() -> None:
    import numpy as np

    times = np.array([0, 7 * HOUR, 16 * HOUR], dtype=np.int64)  # no row at 08:00: 07:00's rate counts
    rates = np.array([0.001, -0.0005, 0.0002])
    v = venue(leverage=3.0, funding_rates=(times, rates))
    v.step_ms = HOUR
    v.bar_closed(0, *QUIET)
    v.submit(order(BUY, 1, 0, 0), 0, 100.0)
    for k in range(1, 17):
        v.bar_closed(k, *QUIET)
    flows = [e for e in v.state.events if isinstance(e, CashFlow)]
    assert [(e.ts // HOUR, e.rate) for e in flows] == [(8, -0.0005), (16, 0.0002)]
    assert [e.amount for e in flows] == pytest.approx([0.05, -0.02])  # a long receives a negative rate


def test_funding_moves_the_liquidation_price() -> None:
    v = venue(funding=0.01)  # an absurd 1% per 8 h, to see it
    v.bar_closed(0, *QUIET)
    v.submit(order(BUY, 190, 0, 0), 0, 100.0)
    v.bar_closed(1, *QUIET)
    before = v.exchange.liquidation_price()
    for k in range(2, 482):
        v.bar_closed(k, *QUIET)  # bar 480 opens at 08:00: 190 x 100 x 1% = 190 paid
    assert v.state.funding_paid == pytest.approx(190.0)
    assert v.exchange.liquidation_price() > before
    assert math.isclose(v.cash, 990.5 - 190.0)


# ---------------------------------------------------------------------------------------- 7.5 magnifier
def magnified(detail_rows: dict[int, list[tuple[float, float, float, float]]], n_exec: int) -> Venue:
    """15-minute exec bars whose detail bars (5 minutes each) are given per exec bar."""
    import numpy as np

    rows = [(k * 15 + j * 5, *bar) for k in range(n_exec) for j, bar in enumerate(detail_rows.get(k, [QUIET] * 3))]
    ts = np.array([r[0] * 60_000 for r in rows], dtype=np.int64)
    cols = [np.array([r[i] for r in rows]) for i in range(1, 5)]
    detail = DetailBars(ts, *cols, np.arange(n_exec, dtype=np.int64) * 15 * 60_000, 15 * 60_000)
    v = venue(intrabar="ohlc_path", leverage=3.0, detail=detail)
    v.step_ms = 15 * 60_000
    return v


@pytest.mark.parametrize(("details", "role", "price"), [
    # up to 104 in the first 5 minutes (the take-profit at 103), down to 96 after (the stop at 97)
    ([(100, 104, 99.5, 103.5), (103.5, 103.5, 98, 98), (98, 98.5, 96, 97)], OrderRole.TAKE_PROFIT, 103.0),
    # down first: the stop, as worst_case would have it too
    ([(100, 100.5, 96, 97), (97, 103, 96.5, 102), (102, 104, 101, 103)], OrderRole.STOP_LOSS, 97.0),
])
def test_the_magnifier_finds_which_level_the_bar_reached_first(details: list, role: OrderRole, price: float) -> None:
    exec_bar = (100, 104, 96, 100)  # under worst_case a long's stop always comes first in this bar
    v = magnified({2: details}, 3)
    v.bar_closed(0, *QUIET)
    v.submit(order(BUY, 1, 0, 0), 0, 100.0)
    v.bar_closed(1, *QUIET)
    v.set_protection("stop_loss", 97.0, 1, 100.0)
    v.set_protection("take_profit", 103.0, 1, 100.0)
    v.bar_closed(2, *exec_bar)
    (fill,) = [f for f in v.state.fills if f.bar == 2]
    assert (fill.role, fill.price) == (role, price)
    # the fill names the detail bar it happened in: the first of the exec bar opened at 00:30
    assert fill.detail_ts == 30 * 60_000
    worst = venue(leverage=3.0)
    worst.step_ms = 15 * 60_000
    worst.bar_closed(0, *QUIET)
    worst.submit(order(BUY, 1, 0, 0), 0, 100.0)
    worst.bar_closed(1, *QUIET)
    worst.set_protection("stop_loss", 97.0, 1, 100.0)
    worst.set_protection("take_profit", 103.0, 1, 100.0)
    worst.bar_closed(2, *exec_bar)
    assert [(f.role, f.detail_ts) for f in worst.state.fills if f.bar == 2] == [(OrderRole.STOP_LOSS, None)]


def test_the_magnifier_checks_liquidation_on_the_detail_bars() -> None:
    v = magnified({2: [(100, 100.5, 99, 99.5), (99.5, 99.6, 94, 95), (95, 97, 94.5, 96)]}, 3)
    v.exchange.leverage = 20.0
    v.bar_closed(0, *QUIET)
    v.submit(order(BUY, 190, 0, 0), 0, 100.0)
    v.bar_closed(1, *QUIET)
    v.bar_closed(2, 100, 100.5, 94, 96)
    (liq,) = v.state.liquidations
    assert (liq.price, liq.detail_ts) == (95.3, 35 * 60_000)  # in the second detail bar


# ---------------------------------------------------------------------------------------- 7.1 percent trail
@pytest.mark.parametrize(("side", "bars", "levels", "exit_price"), [
    # long: set at the close 100 -> 98.5; a high of 104 -> 104 x 0.985 = 102.44 -> 102.4; out at 102.4
    (BUY, [(100, 104, 99.5, 103), (103, 103.5, 102, 102.5)], [98.5, 102.4], 102.4),
    # short: 100 x 1.015 = 101.5; a low of 96 -> 97.44 -> 97.4; out at 97.4
    (SELL, [(100, 100.5, 96, 97), (97, 98, 96.5, 97.5)], [101.5, 97.4], 97.4),
])
def test_a_percentage_trail_follows_the_best_price_by_its_fraction(side: Side, bars: list, levels: list,
                                                                    exit_price: float) -> None:
    v = venue(leverage=3.0)
    enter(v, side, qty=1.0)
    assert v.set_protection("trail", 0.015, 1, 100.0, percent=True).accepted
    seen = [v.protection("trail").trigger]
    v.bar_closed(2, *bars[0])
    seen.append(v.protection("trail").trigger)
    v.bar_closed(3, *bars[1])
    assert seen == levels
    (out,) = [f for f in v.state.fills if f.bar == 3]
    assert (out.role, out.price) == (OrderRole.TRAIL, exit_price)


def test_an_attached_percentage_trail_starts_from_the_fill() -> None:
    from playdeck.runtime.execution.orders import ProtectionSpec

    v = venue(leverage=3.0)
    v.bar_closed(0, *QUIET)
    spec = ProtectionSpec("trail", 0.02, percent=True)
    request = order(BUY, 1.0, 0, 0)
    import attrs

    v.submit(attrs.evolve(request, attached=(spec,)), 0, 100.0)
    v.bar_closed(1, 100, 100, 100, 100)  # filled at 100: the trail at 98 (and the bar went nowhere)
    assert v.protection("trail").trigger == 98.0
