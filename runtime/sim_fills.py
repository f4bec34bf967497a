"""Pieces of the simulator's matching that do not need the exchange: the working-order record,
the intrabar price path, and the price arithmetic of a fill.

`SimExchange` (runtime/sim_exchange.py) walks `intrabar_path(...)` segment by segment and asks each
working order, through its `kind`, `up` and `level`, whether the segment reaches it.
"""

from __future__ import annotations

import math

import attrs

from playdeck.runtime.order_state import StatusPath
from playdeck.runtime.orders import Order, OrderStatus, OrderType, Side

__all__ = [
    "KIND_LIMIT",
    "KIND_MARKET",
    "KIND_STOP",
    "SimOrder",
    "intrabar_path",
    "marketable",
    "matching_shape",
    "slipped",
]

# How a working order is matched right now. The numbers are also the tie-break at one price:
# market orders first, then stops, then limits (PLAY-LANGUAGE.md 5.4 and the decisions in
# sim_exchange). A stop-limit is KIND_STOP until it triggers and KIND_LIMIT after.
KIND_MARKET = 0
KIND_STOP = 1
KIND_LIMIT = 2


@attrs.define(eq=False)
class SimOrder:
    """The simulator's book entry for one order: the current `Order` value plus matching state.

    Mutable and owned by the exchange; callers read it (`SimExchange.orders`) but never write it.
    `order` is replaced (not edited) when an amend or a protection move lands.
    """

    order: Order
    path: StatusPath
    seq: int  # submission order: the last tie-break between orders reached at the same price
    active_from: int  # first bar in which it may fill (bar + 1 when sent at the close of bar)
    kind: int
    up: bool  # reached when the price rises to `level` (buy stop, sell limit); else when it falls
    level: float  # trigger while a stop, limit price while a limit, nan for a market order
    reduce_only: bool
    # A limit marketable when sent fills as taker at the next open; after that open it is a maker.
    taker_first: bool = False
    ioc_bar: int | None = None  # IOC/FOK: cancelled at the close of this bar if still open
    filled_qty: float = 0.0
    avg_price: float | None = None
    reason: str = ""  # the reason given with the latest status change (a reject reason, ...)
    # trail protection only: distance, best price seen since set, bar it was set in
    trail_distance: float = math.nan
    trail_extreme: float = math.nan
    trail_bar: int = -1

    @property
    def status(self) -> OrderStatus:
        return self.path.current

    @property
    def order_id(self) -> str:
        return self.order.order_id


def matching_shape(order: Order) -> tuple[int, bool, float]:
    """(kind, up, level) of a freshly accepted order."""
    if order.type is OrderType.MARKET:
        return KIND_MARKET, order.side is Side.BUY, math.nan
    if order.type is OrderType.LIMIT:
        assert order.price is not None
        # A buy limit waits for the price to fall to it; a sell limit for it to rise.
        return KIND_LIMIT, order.side is Side.SELL, order.price
    assert order.trigger is not None
    # A buy stop waits for the price to rise to its trigger; a sell stop for it to fall.
    return KIND_STOP, order.side is Side.BUY, order.trigger


def intrabar_path(
    worst_case: bool, adverse_low: bool | None, o: float, h: float, l: float, c: float
) -> tuple[float, ...]:
    """The prices a bar visits after its open, in order.

    worst_case with a known adverse side: open -> adverse -> favourable -> adverse -> close (a stop
    on the adverse side is reached before a take-profit, and an entry filled on the way to the
    favourable extreme can still be stopped out on the way back).
    Otherwise (ohlc_path, or worst_case with no side to hurt): open -> nearer extreme -> farther
    extreme -> close; on a tie the bar goes to the high first when it closes below its open (it
    must come back down), else to the low first.
    """
    if worst_case and adverse_low is not None:
        return (l, h, l, c) if adverse_low else (h, l, h, c)
    up = h - o
    down = o - l
    if up < down or (up == down and c < o):
        return (h, l, c)
    return (l, h, c)


def marketable(side: Side, price: float, reference: float) -> bool:
    """Would a limit at `price` take liquidity against `reference` (the last close, or the path)?"""
    return price >= reference if side is Side.BUY else price <= reference


def slipped(price: float, side: Side, slip: float) -> float:
    """Move a market/stop fill against the trader by `slip` (a fraction: bps / 10_000).

    Not rounded to tick: slippage is a cost model, and rounding would erase it whenever it is
    smaller than half a tick.
    """
    return price * (1.0 + slip) if side is Side.BUY else price * (1.0 - slip)
