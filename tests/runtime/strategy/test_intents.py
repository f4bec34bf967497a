"""IntentProcessor: sizing, rounding, validation and the same-tag rule, over the real SimBackend, read
through the TradingState its events build."""
from __future__ import annotations

import asyncio
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from playdeck.runtime.execution.executor import Executor
from playdeck.runtime.execution.orders import FILL, Instrument, OrderStatus, OrderType, ProtectionSpec, RefusalCode, Side
from playdeck.runtime.execution.trading_state import TradingState
from playdeck.runtime.sim.backend import SimBackend
from playdeck.runtime.sim.exchange import SimExchange
from playdeck.runtime.strategy.intents import Intent
from playdeck.runtime.strategy.processor import IntentProcessor
from playdeck.runtime.strategy.state_view import StateView

INST = Instrument("BTCUSDT", 0.1, 0.001, 0.001)


def setup(equity: float = 10_000.0, leverage: float = 5.0, inst: Instrument = INST, close: float = 100.0):
    ex = SimExchange(inst, maker_fee=0.0002, taker_fee=0.00055, slippage_bps=0, equity=equity, leverage=leverage)
    backend = SimBackend(ex)
    backend.at_close(0, 0, close)
    state = TradingState(inst, equity)
    return state, backend, IntentProcessor(Executor(backend, state), inst)


def send(proc: IntentProcessor, intent: Intent, close: float = 100.0):
    return asyncio.run(proc.process(intent, StateView(proc.state, intent.bar, close)))


def working(state: TradingState):
    return list(state.open.values())


@pytest.mark.parametrize("size_kind,value,price,expected_qty", [
    ("qty", 0.0127, None, 0.012),            # rounded down to qty_step
    ("usdt", 1000.0, None, 10.0),            # 1000 USDT at the last close 100
    ("usdt", 1000.0, 80.0, 12.5),            # ...at the limit price when there is one
    ("equity", 0.25, None, 25.0),            # 25% of 10000 equity at 100
    ("equity", 0.1, 125.0, 8.0),
])
def test_entry_sizes(size_kind, value, price, expected_qty):
    state, _, proc = setup()
    kind = "limit" if price is not None else "market"
    result = send(proc, Intent(0, kind, side=Side.BUY, size_kind=size_kind, size_value=value, price=price))
    assert result.accepted
    assert working(state)[0].qty == pytest.approx(expected_qty)


def test_risk_sizing_uses_the_attached_stop_distance():
    state, _, proc = setup()
    stop = ProtectionSpec("stop_loss", ("-", FILL, 4.0))
    send(proc, Intent(0, "limit", side=Side.BUY, size_kind="risk", size_value=0.01, price=90.0,
                          attached=(stop,)))
    # 1% of 10000 = 100 USDT at risk over a 4.0 distance -> 25 contracts
    assert working(state)[0].qty == pytest.approx(25.0)


def test_risk_sizing_with_a_zero_distance_is_rejected_with_a_reason():
    state, _, proc = setup()
    stop = ProtectionSpec("stop_loss", FILL)
    assert send(proc, Intent(0, "market", side=Side.BUY, size_kind="risk", size_value=0.01,
                                 attached=(stop,))) is None
    assert "no distance" in proc.rejections[0].reason


def test_prices_round_to_tick_and_quantities_below_min_qty_are_rejected():
    state, _, proc = setup()
    send(proc, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1.0, price=95.04))
    assert working(state)[0].price == 95.0
    send(proc, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=0.0009))
    assert proc.rejections[-1].reason == "qty 0 below min_qty 0.001"
    assert dict(proc.rejections_by_reason()) == {"qty below min_qty": 1}
    assert proc.rejections[-1].code is RefusalCode.BELOW_MIN_QTY


def test_margin_rejection_comes_back_as_a_recorded_rejection():
    state, _, proc = setup(equity=1000, leverage=1)
    result = send(proc, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=11.0))
    assert result is not None and not result.accepted
    assert "margin" in proc.rejections[-1].reason
    assert proc.rejections[-1].code is RefusalCode.INSUFFICIENT_MARGIN and RefusalCode.INSUFFICIENT_MARGIN.bybit == 110007
    # the venue's Rejected order is in the mirror too
    assert [r.path[-1] for r in state.orders.values()] == [OrderStatus.REJECTED]


def test_reduce_only_actions_need_a_position_and_scale_needs_the_same_side():
    state, _, proc = setup()
    send(proc, Intent(0, "close"))
    send(proc, Intent(0, "partial_close", size_kind="position", size_value=0.5))
    send(proc, Intent(0, "scale", side=Side.BUY, size_kind="position", size_value=0.5))
    send(proc, Intent(0, "stop_loss", value=90.0))
    reasons = [r.reason for r in proc.rejections]
    assert reasons == ["close with no open position", "partial_close with no open position",
                       "scale needs an open position in the same direction", "stop_loss needs an open position"]


def test_close_and_partial_close_size_from_the_position():
    state, backend, proc = setup()
    send(proc, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=0.75))
    backend.bar_closed(1, 60_000, 100.0, 101.0, 99.0, 100.0)
    proc.executor.sync()
    assert state.position.qty == pytest.approx(0.75)
    send(proc, Intent(1, "partial_close", size_kind="position", size_value=0.5))
    order = working(state)[0]
    assert (order.side, order.qty, order.reduce_only) == (Side.SELL, 0.375, True)
    send(proc, Intent(1, "scale", side=Side.BUY, size_kind="position", size_value=0.5))
    assert working(state)[-1].qty == 0.375


def test_same_tag_pending_is_amended_and_a_type_change_cancels_and_resends():
    state, backend, proc = setup()
    send(proc, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=90.0, tag="e"))
    first = state.pending_by_tag["e"].client_id
    send(proc, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=2, price=91.0, tag="e"))
    amended = state.pending_by_tag["e"]
    assert (amended.client_id, amended.qty, amended.price) == (first, 2.0, 91.0)
    assert state.tag_prices["e"] == 91.0
    send(proc, Intent(0, "stop", side=Side.BUY, size_kind="qty", size_value=1, trigger=120.0, tag="e"))
    replaced = state.pending_by_tag["e"]
    assert replaced.client_id != first and replaced.type is OrderType.STOP
    assert state.status(first) is OrderStatus.CANCELLED
    assert state.tag_prices["e"] == 120.0


def test_cancel_by_tag_and_cancel_all():
    state, _, proc = setup()
    send(proc, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=90.0, tag="a"))
    send(proc, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=80.0, tag="b"))
    send(proc, Intent(0, "cancel", tag="a"))
    assert [o.tag for o in working(state)] == ["b"]
    send(proc, Intent(0, "cancel"))
    assert working(state) == []


def test_non_finite_prices_are_rejected_not_sent():
    state, _, proc = setup()
    send(proc, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=math.nan))
    assert working(state) == [] and "price is nan" in proc.rejections[0].reason


def test_client_ids_fit_bybits_order_link_id_even_for_a_long_play_name():
    # orderLinkId: at most 36 characters of [A-Za-z0-9_-]
    processor = IntentProcessor(Executor(SimBackend(SimExchange(INST, maker_fee=0, taker_fee=0, slippage_bps=0,
                                                                equity=1e4, leverage=1)), TradingState(INST, 1e4)),
                                INST, id_prefix="momentum_confluence_breakout_v2")
    state = SimpleNamespace(flat=True, long=False, close=100.0, equity=10_000.0, pos_size=0.0)
    order = processor.order_for(Intent(9_999_999_999, "market", Side.BUY, "qty", 1.0), state)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,36}", order.client_id), order.client_id


@pytest.mark.parametrize(("price", "placed"), [(249.75, 249.8), (249.74, 249.7), (251.85, 251.9), (0.05, 0.1),
                                               (100.04999, 100.0), (100.06, 100.1)])
def test_prices_round_to_the_nearest_tick_a_half_tick_up(price: float, placed: float):
    assert INST.round_price(price) == placed


@pytest.mark.parametrize(("tick", "step"), [(0.1, 0.001), (0.01, 0.0001), (0.5, 1.0), (0.0001, 0.1)])
def test_rounding_keeps_values_on_their_step_and_halves_go_up_also_at_many_steps(tick: float, step: float):
    # 26522.671 / 0.001 = 26522670.999999996: a floor of it lost a step; so did half ticks past
    # a million ticks. Expected values in exact decimals, sampled from 1 to 10^9 steps or ticks.
    from decimal import ROUND_HALF_UP, Decimal

    inst = Instrument("X", tick, step, step)
    rng = np.random.default_rng(4)
    for n in (10 ** rng.uniform(0, 9, 4000)).astype(np.int64).tolist():
        on_step = float(Decimal(n) * Decimal(repr(step)))
        assert inst.round_qty(on_step) == on_step, (n, on_step)
        assert inst.round_qty(float(Decimal(n) * Decimal(repr(step)) + Decimal(repr(step)) * Decimal("0.7"))) == on_step
        half = Decimal(n) * Decimal(repr(tick)) + Decimal(repr(tick)) / 2
        up = (half / Decimal(repr(tick))).to_integral_value(ROUND_HALF_UP) * Decimal(repr(tick))
        assert inst.round_price(float(half)) == float(up), (n, half)


def test_a_large_size_on_its_step_is_sent_as_written():
    big = Instrument("BTCUSDT", 0.01, 0.001, 0.001)
    state, _, proc = setup(equity=1e10, leverage=1, inst=big, close=80_000.0)
    send(proc, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=26522.671, price=73106.165),
         close=80_000.0)
    (order,) = working(state)
    assert (order.qty, order.price) == (26522.671, 73106.17)  # a half cent up, not a step lost


@pytest.mark.parametrize("intent, text", [
    (Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=0.001, price=1e308), "beyond any market"),
    (Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=0.001, price=math.inf), "price is inf"),
    (Intent(0, "stop", side=Side.BUY, size_kind="qty", size_value=0.001, trigger=1e300), "beyond any market"),
    (Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=1e306), "beyond any market"),
    (Intent(0, "market", side=Side.BUY, size_kind="usdt", size_value=1e308), "beyond any market"),
    (Intent(0, "market", side=Side.BUY, size_kind="risk", size_value=0.01,
            attached=(ProtectionSpec("stop_loss", ("*", FILL, 1e306)),)), "qty 0 below min_qty"),
])
def test_huge_but_finite_prices_and_sizes_are_refused_with_a_reason_not_an_overflow(intent: Intent, text: str):
    # found by fuzzing: these overflowed in round_price / round_qty (an internal error)
    state, _, proc = setup()
    assert send(proc, intent) is None
    (refused,) = proc.rejections
    assert text in refused.reason
    assert refused.code in (RefusalCode.BAD_PRICE, RefusalCode.BAD_SIZE, RefusalCode.BELOW_MIN_QTY)
    assert state.orders == {}


@pytest.mark.parametrize("value, text", [(("*", FILL, 1e304), "out of any price range"),
                                         (("/", FILL, 0.0), "non-positive price nan"),
                                         (("-", FILL, 1e308), "non-positive price")])
def test_attached_protection_that_cannot_be_a_price_is_refused_at_the_fill(value, text: str):
    # `take_profit fill * 1e304`, `stop_loss fill / 0`: refused when the entry fills, the position stays
    state, backend, proc = setup()
    spec = ProtectionSpec("take_profit", value, where="plays/x.yml:9:9")
    send(proc, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=1, attached=(spec,), where="x:1:1"))
    backend.bar_closed(1, 60_000, 100.0, 101.0, 99.0, 100.0)
    proc.executor.sync()
    assert state.position.qty == 1.0 and state.protection == {}
    (refused,) = proc.rejections
    assert (refused.bar, refused.kind, refused.where) == (1, "take_profit", "plays/x.yml:9:9")
    assert text in refused.reason and refused.code is RefusalCode.BAD_PRICE


def test_a_protection_command_with_a_huge_value_is_refused():
    state, backend, proc = setup()
    send(proc, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=1))
    backend.bar_closed(1, 60_000, 100.0, 101.0, 99.0, 100.0)
    proc.executor.sync()
    send(proc, Intent(1, "take_profit", value=1e305))
    send(proc, Intent(1, "trail", value=1e305))
    assert [r.code for r in proc.rejections] == [RefusalCode.BAD_PRICE, RefusalCode.BAD_PRICE]
    assert state.protection == {}
