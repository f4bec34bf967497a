"""The trailing stop a live backend keeps itself (PLAY-LANGUAGE.md 6 and 7.1).

Bybit's own trailing stop follows every tick from the price when it is set and knows no
percentage; the language's trail moves at bar closes, from the entry's fill price when attached,
and may trail by a fraction of the best price. So live places the trail as a reduce-only stop for
the whole position (qty "0", closeOnTrigger) and moves it itself, as the simulator's ProtectionDesk
does: the arithmetic here is the simulator's (`trail_level`), applied to the prices the client
sees: inside the bar it was set in, the market's prices after that moment; at each bar close the
bar's close (that bar) or its high / low (later bars).

`TrailPlan` is that state, sans-I/O: the backend sends what it answers (a new trigger to place, or
to amend to).
"""
from __future__ import annotations

import math

import attrs

from playdeck.runtime.execution.orders import Instrument
from playdeck.runtime.sim.protection import trail_level, trail_step

__all__ = ["TrailPlan"]


@attrs.define
class TrailPlan:
    """One trail: which side it protects, its distance or fraction, the best price since set, the
    bar it was set in, and the trigger in force."""

    long: bool
    distance: float  # NaN for a percentage trail
    pct: float  # NaN for a distance trail
    extreme: float
    bar: int  # the bar it was (re)set in
    level: float

    @classmethod
    def start(cls, long: bool, value: float, percent: bool, reference: float, bar: int,
              inst: Instrument) -> TrailPlan:
        """A new trail from `reference` (the last close, or the entry's fill price)."""
        distance, pct = (math.nan, value) if percent else (value, math.nan)
        level = inst.round_price(trail_level(reference, long, distance, pct))
        return cls(long, distance, pct, reference, bar, level)

    def reset(self, value: float, percent: bool, reference: float, bar: int, inst: Instrument) -> float:
        """Set again: a new distance and best price from `reference`, but never looser. The trigger."""
        self.distance, self.pct = (math.nan, value) if percent else (value, math.nan)
        self.extreme = reference
        self.bar = bar
        level = inst.round_price(trail_level(reference, self.long, self.distance, self.pct))
        self.level = max(level, self.level) if self.long else min(level, self.level)
        return self.level

    def follow(self, prices: list[float], bar: int) -> None:
        """Prices the market passed inside the bar the trail was set in, after it was set."""
        if bar != self.bar:
            return
        for p in prices:
            self.extreme = max(self.extreme, p) if self.long else min(self.extreme, p)

    def ratchet(self, bar: int, h: float, l: float, c: float, inst: Instrument) -> float | None:
        """At the close of `bar`: the tighter trigger, or None when it does not move."""
        self.extreme, tighter = trail_step(self.long, self.extreme, self.bar, bar, h, l, c, self.distance, self.pct,
                                           self.level, inst)
        if tighter is not None:
            self.level = tighter
        return tighter
