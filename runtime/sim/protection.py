"""The position's protection in the simulator: stop_loss, take_profit and trail, one of each.

`ProtectionDesk` is the part of `SimExchange` that places, moves and ratchets them (see the
exchange's docstring, "Protection", for the rules); it works on the exchange's own book and events.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from playdeck.dsl.vocabulary import PROTECTION_KINDS
from playdeck.runtime.execution.order_state import Ev
from playdeck.runtime.execution.orders import (
    Instrument,
    OrderRequest,
    OrderResult,
    OrderRole,
    OrderStatus,
    OrderType,
    Refusal,
    RefusalCode,
    Side,
    TimeInForce,
)

if TYPE_CHECKING:
    from playdeck.runtime.sim.book import SimOrder

__all__ = ["ProtectionDesk", "protection_request", "ratchet_trail", "trail_level", "trail_step", "wrong_side"]

_ROLE = {"stop_loss": OrderRole.STOP_LOSS, "take_profit": OrderRole.TAKE_PROFIT, "trail": OrderRole.TRAIL}


def protection_request(kind: str, side: Side, level: float, qty: float, client_id: str, bar: int,
                       origin: str = "") -> OrderRequest:
    """The reduce-only order behind a protection: a limit for take_profit, else a stop-market."""
    tp = kind == "take_profit"
    return OrderRequest(client_id, side, OrderType.LIMIT if tp else OrderType.STOP, qty, level if tp else None,
                        None if tp else level, TimeInForce.GTC, True, _ROLE[kind], None, bar, None, (), origin)


def wrong_side(kind: str, long: bool, level: float, now: float) -> Refusal | None:
    """PLAY-LANGUAGE.md 7.2: a stop (stop_loss, trail) on the losing side of the last price `now`, a
    take_profit on the winning side, as Bybit refuses a trigger on the wrong side of the market: a
    level that must fall to be reached and does not lie below is 110093, one that must rise 110092."""
    stop = kind != "take_profit"
    must_fall = stop == long  # a long's stop and a short's take-profit are reached on the way down
    if must_fall and not level < now:
        return Refusal(RefusalCode.TRIGGER_MUST_FALL,
                       f"{kind} {level:g} is not below the last price {now:g} (110093)")
    if not must_fall and not level > now:
        return Refusal(RefusalCode.TRIGGER_MUST_RISE,
                       f"{kind} {level:g} is not above the last price {now:g} (110092)")
    return None


def ratchet_trail(rec: SimOrder, bar: int, h: float, l: float, c: float, instrument: Instrument) -> float | None:
    """Update a trail's best price at the close of `bar`; the tighter trigger, or None if not tighter.

    Highs (lows, for a short) count from the bar after the trail was set; in the bar it was set in
    (an attached trail, set mid-bar) the exchange has kept `trail_extreme` up to date with the
    path's prices after the set point, and the close is the last of them.
    """
    rec.trail_extreme, tighter = trail_step(rec.side is Side.SELL, rec.trail_extreme, rec.trail_bar, bar, h, l, c,
                                            rec.trail_distance, rec.trail_pct, rec.level, instrument)
    return tighter


def trail_step(long: bool, extreme: float, set_bar: int, bar: int, h: float, l: float, c: float, distance: float,
               pct: float, level: float, instrument: Instrument) -> tuple[float, float | None]:
    """A trail at the close of `bar`: its new best price, and its tighter trigger (None when it does
    not move past `level`). Highs (lows, for one protecting a short) count from the bar after it was
    set in `set_bar`; in that bar the close is the last of the prices it has seen. The simulator's
    trail and the one the Bybit backend keeps itself both move by this."""
    if long:
        extreme = max(extreme, h if bar > set_bar else c)
    else:
        extreme = min(extreme, l if bar > set_bar else c)
    new = instrument.round_price(trail_level(extreme, long, distance, pct))
    return extreme, (new if (new > level if long else new < level) else None)


def trail_level(extreme: float, long: bool, distance: float, pct: float) -> float:
    """A trail's stop from the best price since it was set: `distance` below it for a long (above for
    a short), or, for a percentage trail (7.1: `trail 1.5%`), that fraction of it."""
    if pct == pct:
        return extreme * (1.0 - pct) if long else extreme * (1.0 + pct)
    return extreme - distance if long else extreme + distance


class ProtectionDesk:
    """Mixed into SimExchange; every attribute it uses is the exchange's."""

    def set_protection(self, kind: str, value: float, bar: int, last_close: float, percent: bool = False,
                       at: float | None = None) -> OrderResult:
        """Set or move the position's stop_loss / take_profit (value = price) or trail (distance; with
        `percent`, the fraction of the best price it trails by). With `at`: while bar `bar` is walked,
        at that price (see SimExchange.submit)."""
        self._bar = bar
        if at is None:
            self.last_close = last_close
            return self._place_protection(kind, value, last_close, bar + 1, percent=percent)
        return self._place_protection(kind, value, at, bar, now=at, percent=percent)

    def _place_protection(self, kind: str, value: float, reference: float, active_from: int,
                          now: float | None = None, origin: str = "", percent: bool = False) -> OrderResult:
        """Set or move one protection.

        `reference` is the price a trail starts from (the last close, or the entry's fill price);
        `now` the market price that decides whether a take-profit is marketable (defaults to
        `reference`; for attached protection it is the path point, before slippage). `origin` is
        the attached action's file:line:col, kept with the order it makes.
        """
        if now is None:
            now = reference
        if kind not in PROTECTION_KINDS:
            raise ValueError(f"unknown protection kind {kind!r}; expected one of {PROTECTION_KINDS}")
        pos = self.position.qty
        inst = self.instrument
        long = pos > 0.0
        side = Side.SELL if long else Side.BUY
        refusal = None
        R = RefusalCode
        if kind == "trail":
            distance, pct = (math.nan, value) if percent else (value, math.nan)
            level = inst.round_price(trail_level(reference, long, distance, pct))
            if not value > 0:
                refusal = Refusal(R.BAD_PRICE, f"non-positive trail distance {value}")
            elif not level > 0:  # a distance as large as the price: a stop no price can reach
                what = f"{value * 100:g}%" if percent else f"{value:g}"
                refusal = Refusal(R.BAD_PRICE, f"trail stop at {level:g}: distance {what} from {reference:g}")
        else:
            distance = pct = math.nan
            level = inst.round_price(value)
            if not level > 0:
                refusal = Refusal(R.BAD_PRICE, f"non-positive price {level}")
        if refusal is None and not inst.price_in_range(level):
            refusal = Refusal(R.BAD_PRICE, f"{kind} at {level:g} is out of any price range")
        if refusal is None and pos != 0.0:
            refusal = wrong_side(kind, long, level, now)
        if pos == 0.0:
            refusal = Refusal(R.NO_POSITION, f"can not set {kind} for zero position")
        existing = self._protection.get(kind)
        if refusal is not None and existing is None:
            order_id = self.book.next_order_id()
            request = protection_request(kind, side, level, abs(pos), f"{kind}-{order_id}", self._bar, origin)
            rec = self._record(request, order_id, active_from, True, matched=False)
            self._change(rec, Ev.REJECT, refusal.text, code=refusal.code)
            return OrderResult(False, rec.client_id, OrderStatus.REJECTED, order_id, refusal)
        if refusal is not None:
            assert existing is not None
            return OrderResult(False, existing.client_id, existing.path[-1], existing.order_id, refusal)

        if existing is not None:
            rec = existing
            if kind == "trail":
                # A new distance restarts the high-water mark here, but a trail never loosens.
                level = max(level, rec.level) if long else min(level, rec.level)
                rec.trail_distance = distance
                rec.trail_pct = pct
                rec.trail_extreme = reference
                rec.trail_bar = self._bar
            if kind == "take_profit":
                if rec.price != level:  # the same level again is not a move
                    self._amend_in_place(rec, rec.qty, level, rec.trigger, now, active_from)
            elif rec.trigger != level:
                self._amend_in_place(rec, rec.qty, rec.price, level, now, active_from)
            return OrderResult(True, rec.client_id, rec.path[-1], rec.order_id)

        order_id = self.book.next_order_id()
        request = protection_request(kind, side, level, abs(pos), f"{kind}-{order_id}", self._bar, origin)
        rec = self._record(request, order_id, active_from, True)
        if kind == "trail":
            rec.trail_distance = distance
            rec.trail_pct = pct
            rec.trail_extreme = reference
            rec.trail_bar = self._bar
        self._change(rec, Ev.ACCEPT if kind == "take_profit" else Ev.ACCEPT_CONDITIONAL)
        self.book.go_live(rec)
        self._protection[kind] = rec
        return OrderResult(True, rec.client_id, rec.path[-1], order_id)

    def _trail_follows_path(self, point: float) -> None:
        # A trail set inside this bar (attached to an entry) has seen the path since it was set: the
        # best of those prices is its high-water mark at the close (the ratchet itself waits for it).
        rec = self._protection.get("trail")
        if rec is not None and rec.trail_bar == self._bar:
            if rec.side is Side.SELL:
                rec.trail_extreme = max(rec.trail_extreme, point)
            else:
                rec.trail_extreme = min(rec.trail_extreme, point)

    def _ratchet(self, rec: SimOrder, bar: int, h: float, l: float, c: float) -> None:
        level = ratchet_trail(rec, bar, h, l, c, self.instrument)
        if level is not None:
            self._amend_in_place(rec, rec.qty, rec.price, level, c, bar + 1)
