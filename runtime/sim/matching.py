"""Pieces of the simulator that do not need the exchange: the intrabar price path, which working
order the path reaches next, and the price arithmetic of a fill.

`SimExchange` (runtime/sim/exchange.py) walks `intrabar_path(...)` segment by segment and asks
`next_reached` which working order the path meets next.

Intrabar order
- The bar is walked as a price path (`intrabar_path`). `ohlc_path`: open -> nearer extreme
  -> farther extreme -> close; on a tie, high first when close < open, else low first.
  `worst_case`: open -> adverse -> favourable -> adverse -> close, adverse being the low when the
  position at the bar's start is long, or flat with pending buy entries only; the high when short,
  or flat with pending sell entries only; flat with both or neither it falls back to the ohlc_path
  rule. Whenever a fill changes the position, the rest of the bar is planned again from that
  price the same way for the new position (adverse, favourable, adverse, close): an entry filled
  on the way up is stopped out before its take-profit. `ohlc_path` is one fixed path.
- At the open point market orders fill first, then gapped stops, then gapped limits and limits
  that were marketable when sent (those fill at the open wherever it is, also beyond P); along a
  segment orders fill in the order the path reaches their prices; at one price stops fill before
  limits, then earlier-sent before later-sent. Every fill is applied before the next order is
  looked at, so a stop-loss placed by an entry's fill can fill later on the same path.
- A limit is reached when the path touches its price (buy: falls to P), and fills at the open when
  the bar opened through it, else at P: that is min(open, P) for a buy. A stop is reached the same
  way at its trigger, so a stop-market fills at max(open, T) (+ slippage) for a buy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from playdeck.runtime.execution.orders import OrderType, Side
from playdeck.runtime.sim.book import KIND_LIMIT, KIND_MARKET, KIND_STOP, SimOrder

__all__ = [
    "adverse_is_low",
    "intrabar_path",
    "marketable",
    "matching_shape",
    "next_reached",
    "slipped",
]


def matching_shape(type_: OrderType, side: Side, price: float | None, trigger: float | None
                   ) -> tuple[int, bool, float]:
    """(kind, up, level) of a freshly accepted order."""
    if type_ is OrderType.MARKET:
        return KIND_MARKET, side is Side.BUY, math.nan
    if type_ is OrderType.LIMIT:
        assert price is not None
        # A buy limit waits for the price to fall to it; a sell limit for it to rise.
        return KIND_LIMIT, side is Side.SELL, price
    assert trigger is not None
    # A buy stop waits for the price to rise to its trigger; a sell stop for it to fall.
    return KIND_STOP, side is Side.BUY, trigger


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
    # Equal in ticks is a tie, though the float differences may not be (298.0 - 296.9 is
    # 1.1000000000000227, 296.9 - 295.8 is 1.099999999999966).
    if abs(up - down) <= 1e-9 * abs(o):
        return (h, l, c) if c < o else (l, h, c)
    return (h, l, c) if up < down else (l, h, c)


def adverse_is_low(position_qty: float, book: Iterable[SimOrder], bar: int) -> bool | None:
    """worst_case's adverse extreme: True = the low, False = the high, None = no side to hurt.

    Long hurts on the low, short on the high; flat, it is the side the pending entries would open
    (buys: the low), and None when they would open both sides or there are none.
    """
    if position_qty > 0.0:
        return True
    if position_qty < 0.0:
        return False
    buys = sells = False
    for rec in book:
        if rec.active_from <= bar and not rec.reduce_only:
            if rec.side is Side.BUY:
                buys = True
            else:
                sells = True
    return buys if buys != sells else None


def marketable(side: Side, price: float, reference: float) -> bool:
    """Would a limit at `price` take liquidity against `reference` (the last close, or the path)?"""
    return price >= reference if side is Side.BUY else price <= reference


def slipped(price: float, side: Side, slip: float) -> float:
    """Move a market/stop fill against the trader by `slip` (a fraction: bps / 10_000).

    Not rounded to tick: slippage is a cost model, and rounding would erase it whenever it is
    smaller than half a tick.
    """
    return price * (1.0 + slip) if side is Side.BUY else price * (1.0 - slip)


def next_reached(
    book: Iterable[SimOrder], bar: int, cur: float, end: float
) -> tuple[SimOrder, float] | None:
    """The working order the path meets first going from `cur` to `end`, and the price it is met at.

    An order already through at `cur` (a gap at the open, or one placed through the price by a fill)
    is met at `cur`. Ties at one price: market, then stop, then limit, then earlier-sent first.
    Orders not yet active in `bar` (sent at its close) are skipped.
    """
    best: SimOrder | None = None
    best_key: tuple[float, int, int] | None = None
    best_hit = cur
    for rec in book:
        if rec.active_from > bar:
            continue
        if rec.kind == KIND_MARKET or rec.taker_first:
            hit = cur  # a limit marketable when sent takes the next open, wherever it is (5.3)
        else:
            lvl = rec.level
            if rec.up:
                if lvl <= cur:
                    hit = cur
                elif lvl <= end:
                    hit = lvl  # lvl > cur, so this only happens on a rising segment
                else:
                    continue
            elif lvl >= cur:
                hit = cur
            elif lvl >= end:
                hit = lvl  # lvl < cur: a falling segment
            else:
                continue
        key = (abs(hit - cur), rec.kind, rec.seq)
        if best_key is None or key < best_key:
            best, best_key, best_hit = rec, key, hit
    if best is None:
        return None
    return best, best_hit

