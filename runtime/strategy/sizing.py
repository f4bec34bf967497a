"""From an intent to an order request: size it, round it, check what can be checked before a venue.

`order_request` is a pure function of the intent, the state view of its bar and the instrument:
it returns the `OrderRequest` to send, or the `Refusal` that keeps it from being sent (the intent
is then recorded as refused and the run goes on, PLAY-LANGUAGE.md 5.7). Sizes (`qty`, `usdt`,
`% equity`, `risk`, `% of position`) are computed at the order's own price (limit price, stop
trigger) or the last close for market orders; quantities round down to the step, prices to the
nearest tick. A price or size no market could have (non-finite, not positive, or past 10^10
ticks or steps) is refused here, never rounded into an overflow.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from playdeck.runtime.execution.orders import (
    Instrument,
    OrderRequest,
    OrderRole,
    OrderType,
    Refusal,
    RefusalCode,
    Side,
    below_min_qty,
)
from playdeck.runtime.strategy.intents import Intent

__all__ = ["order_request", "protection_value"]

R = RefusalCode
_ENTRY_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT}
_ROLES = {"scale": OrderRole.SCALE, "partial_close": OrderRole.PARTIAL_CLOSE, "close": OrderRole.CLOSE}
_CLOSING_KINDS = frozenset({"scale", "partial_close", "close"})  # a limit with a price, else market
_ENTRY = OrderRole.ENTRY


def order_request(it: Intent, st: Any, inst: Instrument, client_id: Callable[[int], str]) -> OrderRequest | Refusal:
    """The order for `it` (an order intent: market limit stop scale partial_close close), or why not.
    `client_id(bar)` names it (called only for an order that will be sent)."""
    kind = it.kind
    price = it.price
    trigger = it.trigger
    if price is not None:
        bad = _price_refusal(kind, "price", price, inst)
        if bad is not None:
            return bad
    if trigger is not None:
        bad = _price_refusal(kind, "trigger", trigger, inst)
        if bad is not None:
            return bad
        trigger = inst.round_price(trigger)
        if trigger <= 0.0:
            return Refusal(R.BAD_PRICE, f"{kind} trigger {it.trigger:g} rounds to 0 at tick {inst.tick:g}")
    if price is not None:
        price = inst.round_price(price)
        if price <= 0.0:
            return Refusal(R.BAD_PRICE, f"{kind} price {it.price:g} rounds to 0 at tick {inst.tick:g}")
    reduce_only = kind == "partial_close" or kind == "close"
    role = _ROLES.get(kind, _ENTRY)
    side = it.side
    if reduce_only:
        if st.flat:
            return Refusal(R.NO_POSITION, f"{kind} with no open position")
        side = Side.SELL if st.long else Side.BUY
    if kind == "scale":
        if st.flat or (it.side is Side.BUY) != st.long:
            return Refusal(R.NO_POSITION, "scale needs an open position in the same direction")
    # the price the size is computed at: the order's own price, else the last close
    ref = trigger if trigger is not None else price if price is not None else st.close
    if kind == "close":
        qty = abs(st.pos_size)
    else:
        qty = _qty(it, st, ref, inst)
        if qty.__class__ is Refusal:
            return qty  # type: ignore[return-value]
    qty = inst.round_qty(qty)
    if below_min_qty(qty, inst.min_qty, whole_position=kind == "close"):
        return Refusal(R.BELOW_MIN_QTY, f"qty {qty:g} below min_qty {inst.min_qty:g}")
    if kind == "stop":
        otype = OrderType.STOP_LIMIT if price is not None else OrderType.STOP
    elif kind in _CLOSING_KINDS:
        otype = OrderType.LIMIT if price is not None else OrderType.MARKET
    else:
        otype = _ENTRY_TYPES[kind]
    bar = it.bar
    expire = it.expire
    return OrderRequest(client_id(bar), side, otype, qty, price, trigger, it.tif, reduce_only, role, it.tag, bar,
                        None if expire is None else bar + expire, it.attached, it.where)


def _qty(it: Intent, st: Any, ref: float, inst: Instrument) -> float | Refusal:
    """The unrounded quantity, or why there is none."""
    v = it.size_value
    if v is None or not math.isfinite(v):
        return Refusal(R.BAD_SIZE, f"size is {v:g}")
    k = it.size_kind
    if k == "qty":
        q = v
    elif k == "usdt":
        q = v / ref
    elif k == "equity":
        q = v * st.equity / ref
    elif k == "position":
        if st.flat:
            return Refusal(R.NO_POSITION, "'% of position' with no open position")
        q = v * abs(st.pos_size)
    elif k == "risk":
        stop = next((a for a in it.attached if a.kind == "stop_loss"), None)
        stop_price = stop.resolve(ref) if stop is not None else math.nan
        if math.isfinite(stop_price) and inst.price_in_range(stop_price):
            stop_price = inst.round_price(stop_price)  # where the stop will be placed
        dist = abs(ref - stop_price)
        if not math.isfinite(dist) or dist <= 0:
            return Refusal(R.BAD_SIZE,
                           f"risk sizing: the stop_loss ({stop_price:g}) is no distance from the entry ({ref:g})")
        q = v * st.equity / dist
    else:
        raise ValueError(f"no sizing rule for {k!r}")
    if not math.isfinite(q) or q <= 0:
        return Refusal(R.BAD_SIZE, f"size is {q:g}")
    if not inst.qty_in_range(q):
        return Refusal(R.BAD_SIZE, f"size {q:g} is beyond any market (over 1e10 steps of {inst.qty_step:g})")
    return q


def _price_refusal(kind: str, what: str, value: float, inst: Instrument) -> Refusal | None:
    # `not v > 0` is also true for NaN; +inf, and finite values too large to round, are out of range.
    if not 0.0 < value < math.inf:
        return Refusal(R.BAD_PRICE, f"{kind} {what} is {value:g}")
    if not inst.price_in_range(value):
        return Refusal(R.BAD_PRICE, f"{kind} {what} {value:g} is beyond any market (over 1e10 ticks of {inst.tick:g})")
    return None


def protection_value(it: Intent, st: Any, inst: Instrument) -> float | Refusal:
    """The price (stop_loss, take_profit) or distance (trail; a fraction for a percentage trail) a
    protection intent sets, or why not. A bare percentage (7.1) is a distance from the position's
    average entry at this close: `stop_loss 2%` is entry x (1 - 2%) for a long, x (1 + 2%) short."""
    value = it.value
    if it.percent and it.kind != "trail":
        if not math.isfinite(value) or value <= 0:
            return Refusal(R.BAD_PRICE, f"{it.kind} {value * 100:g}% is no distance")
        below = (it.kind == "stop_loss") == st.long
        value = st.pos_entry * (1.0 - value if below else 1.0 + value)
    if not math.isfinite(value) or value <= 0:
        return Refusal(R.BAD_PRICE, f"{it.kind} {'distance' if it.kind == 'trail' else 'price'} is {value:g}")
    if not inst.price_in_range(value):
        return Refusal(R.BAD_PRICE, f"{it.kind} {value:g} is beyond any market (over 1e10 ticks of {inst.tick:g})")
    return value if it.kind == "trail" else inst.round_price(value)
