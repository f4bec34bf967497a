"""IntentProcessor: sizing, rounding, validation and the same-tag rule, over the real SimBackend."""
from __future__ import annotations

import asyncio
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from playdeck.runtime.strategy.intents import Intent, IntentProcessor, TransientBackendError
from playdeck.runtime.execution.orders import AttachedProtection, Instrument, OrderStatus, OrderType, Side
from playdeck.runtime.sim.backend import SimBackend
from playdeck.runtime.sim.exchange import SimExchange
from playdeck.runtime.strategy.state_view import StateView

INST = Instrument("BTCUSDT", 0.1, 0.001, 0.001)


def setup(equity: float = 10_000.0, leverage: float = 5.0):
    ex = SimExchange(INST, maker_fee=0.0002, taker_fee=0.00055, slippage_bps=0, equity=equity, leverage=leverage)
    backend = SimBackend(ex)
    backend.at_close(0, 0, 100.0)
    return ex, backend, IntentProcessor(backend, INST, attempts=1)


def send(proc: IntentProcessor, ex: SimExchange, intent: Intent, close: float = 100.0):
    return asyncio.run(proc.process(intent, StateView(ex, intent.bar, close, {})))


@pytest.mark.parametrize("size_kind,value,price,expected_qty", [
    ("qty", 0.0127, None, 0.012),            # rounded down to qty_step
    ("usdt", 1000.0, None, 10.0),            # 1000 USDT at the last close 100
    ("usdt", 1000.0, 80.0, 12.5),            # ...at the limit price when there is one
    ("equity", 0.25, None, 25.0),            # 25% of 10000 equity at 100
    ("equity", 0.1, 125.0, 8.0),
])
def test_entry_sizes(size_kind, value, price, expected_qty):
    ex, _, proc = setup()
    kind = "limit" if price is not None else "market"
    result = send(proc, ex, Intent(0, kind, side=Side.BUY, size_kind=size_kind, size_value=value, price=price))
    assert result.accepted
    assert ex.open_orders()[0].qty == pytest.approx(expected_qty)


def test_risk_sizing_uses_the_attached_stop_distance():
    ex, _, proc = setup()
    stop = AttachedProtection("stop_loss", lambda fill: fill - 4.0)
    send(proc, ex, Intent(0, "limit", side=Side.BUY, size_kind="risk", size_value=0.01, price=90.0,
                          attached=(stop,)))
    # 1% of 10000 = 100 USDT at risk over a 4.0 distance -> 25 contracts
    assert ex.open_orders()[0].qty == pytest.approx(25.0)


def test_risk_sizing_with_a_zero_distance_is_rejected_with_a_reason():
    ex, _, proc = setup()
    stop = AttachedProtection("stop_loss", lambda fill: fill)
    assert send(proc, ex, Intent(0, "market", side=Side.BUY, size_kind="risk", size_value=0.01,
                                 attached=(stop,))) is None
    assert "no distance" in proc.rejections[0].reason


def test_prices_round_to_tick_and_quantities_below_min_qty_are_rejected():
    ex, _, proc = setup()
    send(proc, ex, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1.0, price=95.04))
    assert ex.open_orders()[0].price == 95.0
    send(proc, ex, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=0.0009))
    assert proc.rejections[-1].reason == "qty 0 below min_qty 0.001"
    assert dict(proc.rejections_by_reason()) == {"qty below min_qty": 1}


def test_margin_rejection_comes_back_as_a_recorded_rejection():
    ex, _, proc = setup(equity=1000, leverage=1)
    result = send(proc, ex, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=11.0))
    assert result is not None and not result.accepted
    assert "margin" in proc.rejections[-1].reason


def test_reduce_only_actions_need_a_position_and_scale_needs_the_same_side():
    ex, _, proc = setup()
    send(proc, ex, Intent(0, "close"))
    send(proc, ex, Intent(0, "partial_close", size_kind="position", size_value=0.5))
    send(proc, ex, Intent(0, "scale", side=Side.BUY, size_kind="position", size_value=0.5))
    send(proc, ex, Intent(0, "stop_loss", value=90.0))
    reasons = [r.reason for r in proc.rejections]
    assert reasons == ["close with no open position", "partial_close with no open position",
                       "scale needs an open position in the same direction", "stop_loss needs an open position"]


def test_close_and_partial_close_size_from_the_position():
    ex, backend, proc = setup()
    send(proc, ex, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=0.75))
    backend.advance(1, 60_000, 100.0, 101.0, 99.0, 100.0)
    assert ex.position_qty == pytest.approx(0.75)
    send(proc, ex, Intent(1, "partial_close", size_kind="position", size_value=0.5))
    order = ex.open_orders()[0]
    assert (order.side, order.qty, order.reduce_only) == (Side.SELL, 0.375, True)
    send(proc, ex, Intent(1, "scale", side=Side.BUY, size_kind="position", size_value=0.5))
    assert ex.open_orders()[-1].qty == 0.375


def test_same_tag_pending_is_amended_and_a_type_change_cancels_and_resends():
    ex, backend, proc = setup()
    send(proc, ex, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=90.0, tag="e"))
    first = ex.order_by_tag("e").order_id
    send(proc, ex, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=2, price=91.0, tag="e"))
    amended = ex.order_by_tag("e")
    assert (amended.order_id, amended.qty, amended.price) == (first, 2.0, 91.0)
    send(proc, ex, Intent(0, "stop", side=Side.BUY, size_kind="qty", size_value=1, trigger=120.0, tag="e"))
    replaced = ex.order_by_tag("e")
    assert replaced.order_id != first and replaced.type is OrderType.STOP
    assert ex.status(first) is OrderStatus.CANCELLED


def test_cancel_by_tag_and_cancel_all():
    ex, _, proc = setup()
    send(proc, ex, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=90.0, tag="a"))
    send(proc, ex, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=80.0, tag="b"))
    send(proc, ex, Intent(0, "cancel", tag="a"))
    assert [o.tag for o in ex.open_orders()] == ["b"]
    send(proc, ex, Intent(0, "cancel"))
    assert ex.open_orders() == []


class FlakyBackend:
    """A backend whose first calls fail the way a rate limit does; the processor retries those only."""

    def __init__(self, inner, failures: int):
        self.inner, self.failures, self.calls = inner, failures, 0

    async def submit_order(self, order):
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientBackendError("10006 too many visits")
        return await self.inner.submit_order(order)


def test_transient_failures_are_retried_and_then_succeed():
    ex, backend, _ = setup()
    flaky = FlakyBackend(backend, failures=2)
    proc = IntentProcessor(flaky, INST, attempts=4)
    result = send(proc, ex, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=1))
    assert result.accepted and flaky.calls == 3


class BrokenBackend:
    """A backend failing with an error that is not transient (a bug, a refused request)."""

    def __init__(self):
        self.calls = 0

    async def submit_order(self, order):
        self.calls += 1
        raise ValueError("not a transient failure")


def test_only_transient_failures_are_retried():
    ex, _, _ = setup()
    broken = BrokenBackend()
    proc = IntentProcessor(broken, INST, attempts=4)
    with pytest.raises(ValueError, match="not a transient failure"):
        send(proc, ex, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=1))
    assert broken.calls == 1


def test_transient_failures_give_up_after_the_attempts(monkeypatch):
    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(asyncio, "sleep", no_wait)  # tenacity's waits; the count is what matters
    ex, backend, _ = setup()
    flaky = FlakyBackend(backend, failures=10)
    proc = IntentProcessor(flaky, INST, attempts=3)
    with pytest.raises(TransientBackendError):
        send(proc, ex, Intent(0, "market", side=Side.BUY, size_kind="qty", size_value=1))
    assert flaky.calls == 3 and ex.open_orders() == []


def test_non_finite_prices_are_rejected_not_sent():
    ex, _, proc = setup()
    send(proc, ex, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=math.nan))
    assert ex.open_orders() == [] and "price is nan" in proc.rejections[0].reason


def test_client_ids_fit_bybits_order_link_id_even_for_a_long_play_name():
    # orderLinkId: at most 36 characters of [A-Za-z0-9_-]
    processor = IntentProcessor(None, Instrument("BTCUSDT", 0.1, 0.001, 0.001), attempts=1,
                                id_prefix="momentum_confluence_breakout_v2")
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
    ex = SimExchange(big, maker_fee=0.0002, taker_fee=0.00055, slippage_bps=0, equity=1e10, leverage=1)
    backend = SimBackend(ex)
    backend.at_close(0, 0, 80_000.0)
    proc = IntentProcessor(backend, big, attempts=1)
    send(proc, ex, Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=26522.671, price=73106.165),
         close=80_000.0)
    (order,) = ex.open_orders()
    assert (order.qty, order.price) == (26522.671, 73106.17)  # a half cent up, not a step lost
