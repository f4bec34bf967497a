"""The position arithmetic of one fill, written once: the simulator keeps its book with it,
`TradingState` follows the venue with it, and the report's trades come from it.

One-way (net) positions (PLAY-LANGUAGE.md 5.6): a fill against the position first reduces it,
realizing `reduced x (price - average entry)` (mirrored for a short, gross of fees), and whatever is
left opens or adds on the fill's side; an add re-weights the average entry by quantity, a reduction
keeps it. A `scale` fill that adds counts a layer; a fresh position has one.
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["FillEffect", "Position", "apply_fill", "FLAT"]


class Position(NamedTuple):
    qty: float  # signed: > 0 long, < 0 short
    avg_entry: float  # NaN when flat
    layers: int  # 0 when flat


FLAT = Position(0.0, math.nan, 0)


class FillEffect(NamedTuple):
    position: Position  # after the fill
    realized: float  # gross PnL of the part that reduced the position before it
    reduced: float  # qty of the fill that reduced the position before it
    opened: float  # qty of the fill that opened or added on its own side
    closed: bool  # the position before the fill is gone (flat now, or flipped)


def apply_fill(pos: Position, sign: int, qty: float, price: float, scale: bool, qty_decimals: int,
               half_step: float) -> FillEffect:
    """`pos` after a fill of `qty` (> 0) on side `sign` (+1 buy, -1 sell) at `price`.

    Quantities are rounded to the instrument's step decimals after each change, and a remainder
    under half a step is flat, so float dust never keeps a position alive.
    """
    held, avg, layers = pos
    reduced = 0.0
    realized = 0.0
    if held != 0.0 and sign * held < 0.0:
        reduced = qty if qty < -sign * held else -sign * held  # min(qty, |held|)
        realized = reduced * (price - avg) * (1.0 if held > 0.0 else -1.0)
        held = round(held + sign * reduced, qty_decimals)
        if abs(held) < half_step:
            held, avg, layers = 0.0, math.nan, 0
    opened = round(qty - reduced, qty_decimals)
    closed = reduced > 0.0 and held == 0.0
    if opened > 0.0:
        if held == 0.0:
            held, avg, layers = opened * sign, price, 1
        else:
            size = abs(held)
            avg = (avg * size + price * opened) / (size + opened)
            held = round(held + sign * opened, qty_decimals)
            if scale:
                layers += 1
    return FillEffect(Position(held, avg, layers), realized, reduced, opened, closed)
