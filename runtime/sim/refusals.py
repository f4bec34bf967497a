"""Why the simulator refuses an order: the checks of PLAY-LANGUAGE.md 5.7, as pure functions.

A refusal is not an error: the order is recorded with status Rejected and this reason, and the run
goes on. The checks run in this order, and the first that fails is the reason:

- "protection orders are placed with set_protection" (a STOP_LOSS/TAKE_PROFIT/TRAIL role sent
  through `submit`);
- "a limit order needs a price", "a stop order needs a trigger" (the type's missing field);
- "non-positive price X", "non-positive trigger X" (after rounding to tick);
- "reduce-only order with no position", "reduce-only buy would not reduce a long position";
- "qty Q below min_qty M" (Q as asked, before rounding down to qty_step);
- "post_only limit would take liquidity (EC_PostOnlyWillTakeLiquidity)" (Bybit cancels such an
  order with that rejectReason; playdeck records it as Rejected);
- "insufficient margin: needs X, has Y" (non-reduce orders only; see `margin_refusal`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from playdeck.runtime.execution.orders import (
    OrderRequest,
    OrderRole,
    OrderType,
    Refusal,
    RefusalCode,
    Side,
    TimeInForce,
    below_min_qty,
)
from playdeck.runtime.sim.book import SimOrder
from playdeck.runtime.sim.matching import marketable

R = RefusalCode

__all__ = ["amend_refusal", "margin_refusal", "order_refusal", "reference_price"]


def order_refusal(
    order: OrderRequest,
    qty: float,
    price: float | None,
    trigger: float | None,
    *,
    reduce_only: bool,
    position_qty: float,
    min_qty: float,
    last_close: float,
) -> Refusal | None:
    """Why `order` (with qty/price/trigger already rounded) is refused, margin aside; or None."""
    kind = order.type
    if order.role.is_protection:
        return Refusal(R.BAD_REQUEST, "protection orders are placed with set_protection")
    if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) and price is None:
        return Refusal(R.BAD_PRICE, f"a {kind.value} order needs a price")
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and trigger is None:
        return Refusal(R.BAD_PRICE, f"a {kind.value} order needs a trigger")
    if price is not None and price <= 0:
        return Refusal(R.BAD_PRICE, f"non-positive price {price}")
    if trigger is not None and trigger <= 0:
        return Refusal(R.BAD_PRICE, f"non-positive trigger {trigger}")
    if reduce_only:
        if position_qty == 0.0:
            return Refusal(R.REDUCE_ONLY_NOTHING, "reduce-only order with no position")
        if order.side.sign * position_qty > 0.0:
            held = "long" if position_qty > 0.0 else "short"
            return Refusal(R.REDUCE_ONLY_WRONG_SIDE, f"reduce-only {order.side.value} would not reduce a {held} position")
    if below_min_qty(qty, min_qty, whole_position=order.role is OrderRole.CLOSE):
        return Refusal(R.BELOW_MIN_QTY, f"qty {order.qty} below min_qty {min_qty}")
    if (
        kind is OrderType.LIMIT
        and order.tif is TimeInForce.POST_ONLY
        and price is not None
        and marketable(order.side, price, last_close)
    ):
        return Refusal(R.POST_ONLY_WOULD_TAKE, "post_only limit would take liquidity (EC_PostOnlyWillTakeLiquidity)")
    return None


def amend_refusal(
    old: SimOrder,
    qty: float | None,
    price: float | None,
    trigger: float | None,
    rounded: tuple[float, float | None, float | None],
    *,
    triggered: bool,
    resting_limit: bool,
    min_qty: float,
    last_close: float,
) -> Refusal | None:
    """Why an amend of `old` (asked: qty/price/trigger; `rounded`: the new values) is refused, margin
    aside; or None. A refused amend leaves the order as it was."""
    new_qty, new_price, new_trigger = rounded
    if qty is not None and old.role.is_protection:
        return Refusal(R.BAD_AMEND, "protection qty follows the position")
    if price is not None and old.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return Refusal(R.BAD_AMEND, f"a {old.type.value} order has no limit price")
    if trigger is not None and triggered:
        return Refusal(R.BAD_AMEND, "only an untriggered stop has a trigger to amend")
    if new_price is not None and new_price <= 0:
        return Refusal(R.BAD_PRICE, f"non-positive price {new_price}")
    if new_trigger is not None and new_trigger <= 0:
        return Refusal(R.BAD_PRICE, f"non-positive trigger {new_trigger}")
    if below_min_qty(new_qty, min_qty, whole_position=old.role is OrderRole.CLOSE):
        return Refusal(R.BELOW_MIN_QTY, f"qty {new_qty:g} below min_qty {min_qty:g}")
    if (
        resting_limit
        and new_price is not None
        and old.request.tif is TimeInForce.POST_ONLY
        and marketable(old.side, new_price, last_close)
    ):
        return Refusal(R.POST_ONLY_WOULD_TAKE, "post_only limit would take liquidity (EC_PostOnlyWillTakeLiquidity)")
    return None


def margin_refusal(
    order: OrderRequest,
    book: Iterable[SimOrder],
    *,
    exclude: SimOrder | None,
    position_qty: float,
    last_close: float,
    buying_power: float,
) -> Refusal | None:
    """Refuse `order` when the position it could lead to is larger than `buying_power`.

    Both sides of the comparison are notionals: `buying_power` is equity x leverage (5.7 and 6:
    "total position notional <= equity x leverage"). "Could lead to" takes every pending order on
    the order's side as filled, this one included: for a buy, the signed position notional plus
    pending buys (a long, possibly after covering a short); for a sell, pending sells minus it.
    Pending reduce-only buys (close, partial_close: every reduce-only order but the position's
    protection) count too, but only up to the short they can close, a `close` for all of it (it
    fills the whole position, however it grew since it was sent): a `close` resting beside a
    `market sell 12` on a long of 9 leaves room for a short of 12, not 3. The position's
    protection does not count (it is cleared with the position it guards, and it would refuse an
    ordinary flip). Opposite-side orders are not netted, since
    either side may fill alone. An order that reduces the position is therefore never refused,
    even when the position is over its margin after a loss (as on a venue). `exclude` is the
    order being amended: an amend is refused only when it raises the figure its old values gave.
    """
    buy = order.side is Side.BUY
    same_side = 0.0
    closing = 0.0  # qty of pending reduce-only orders on the order's side
    for rec in book:
        if rec is exclude or (rec.side is Side.BUY) != buy:
            continue
        if rec.reduce_only:
            role = rec.role
            if role is OrderRole.CLOSE:
                closing = math.inf
            elif not role.is_protection:
                closing += rec.qty - rec.filled_qty
            continue
        same_side += rec.qty * reference_price(rec, last_close)
    # the signed position on the order's side, what reduce-only orders can close of it, and the
    # pending orders there
    held = position_qty if buy else -position_qty  # < 0: a position the other way
    if held < 0.0 and closing > 0.0:
        held += min(closing, -held)
    base = held * last_close + same_side
    needs = base + order.qty * reference_price(order, last_close)
    # A hair of tolerance so an order sized to exactly equity x leverage is not refused by float noise.
    if needs <= buying_power * (1.0 + 1e-12):
        return None
    if exclude is not None and needs <= base + exclude.qty * reference_price(exclude, last_close):
        return None
    return Refusal(R.INSUFFICIENT_MARGIN, f"insufficient margin: needs {needs:.2f}, has {buying_power:.2f}")


def reference_price(order: OrderRequest | SimOrder, last_close: float) -> float:
    """The price an order is valued at for margin: limit price, else trigger, else the last close."""
    if order.type is OrderType.MARKET:
        return last_close
    if order.price is not None:
        return order.price
    return order.trigger if order.trigger is not None else last_close
