"""SimExchange: a synchronous, sans-I/O, one-symbol exchange for backtests and the emulator.

It obeys PLAY-LANGUAGE.md sections 5 and 6. The engine drives it with bar indexes and prices; it
never reads a clock or does I/O. At the close of bar i the engine calls `process_bar(i, ...)`
(fills inside bar i), then `close_bar(i, ...)` (expiry, IOC end of life, trailing stops), then
evaluates the blocks and calls `submit` / `amend` / `cancel` / `set_protection` with bar=i, so an
order sent at the close of bar i can first fill in bar i+1. `drain_events()` hands back every
`Fill` and `OrderEvent` since the last drain, in the order they happened.

Decisions (where the spec leaves room, what this simulator does):

States
- Every order passes through the shared state machine (runtime/order_state.py) and each change is
  an `OrderEvent`, the first one `None -> Submitted`. Accepted orders go Submitted -> New, or
  Submitted -> Untriggered for stop / stop_limit; refused ones Submitted -> Rejected (with the
  reason), are recorded in `orders`, and the run goes on.
- A user `cancel` passes through PendingCancel like live does (New -> PendingCancel -> Cancelled;
  Untriggered -> PendingCancel -> Deactivated). An `amend` passes through PendingAmend and back
  (New -> PendingAmend -> New), so the journal and console read the same in sim and live. Venue-side
  ends are direct: expiry New/Untriggered -> Expired, IOC/FOK New -> Cancelled, and orders cleared
  when the position closes (see Protection).
- Fills are all-or-nothing here, so PartiallyFilled never occurs and IOC behaves exactly like FOK.
  A reduce-only fill capped at the position still ends Filled (its Fill has the capped qty).
- For each fill the `Fill` comes first, then the order's `-> Filled` event, then the consequences
  (protection placed or cleared).
- An invalid amend (bad qty/price, would cross as post_only, margin), or an invalid new value
  for a protection that exists, changes nothing and emits nothing; it returns accepted=False with
  the reason. An amend (or protection move) that changes nothing is accepted without events.
- Ids: an order sent with an empty `order_id` gets `sim-N`; one sent with an id already used is
  refused ("duplicate order id X") and not recorded, since the id is taken. A client id
  (Bybit's orderLinkId) is unique too: one already used by an accepted order is refused the same
  way ("duplicate client id X (110072)"), as Bybit refuses the create.
- Bybit's per-symbol caps hold: a 501st working order is refused ("more than 500 active orders
  (110020)"), and an 11th untriggered stop ("more than 10 active conditional orders"). The
  position's stop_loss / take_profit / trail count toward both, as live places them as orders
  too, but are never refused for them (one of each, and losing one would leave a position bare).

Prices and sizes
- Submitted quantities are rounded down to qty_step and prices/triggers to the nearest tick (the
  IntentProcessor already did; this keeps hand-made orders honest). Fill prices are not rounded:
  slippage is a cost model. Fees = fill notional x rate on every fill (maker for resting limits,
  taker for market and stop fills and for limits marketable when sent). `Fill.realized_pnl` is
  gross; `cash` = equity at start + realized PnL - fees; `equity(p)` = cash + unrealized PnL at p.
- Market: open of the next bar, moved against the trader by slippage_bps.
- Limit buy at P: reached when the path falls to P; fills at min(open, P) (at the open when the bar
  opens at or below P, else at P); maker. Sell mirrored. A limit marketable when sent (buy P >= last
  close) is rejected if post_only; otherwise it fills as a taker at the next open, without slippage,
  wherever that open is (5.3 to the letter: also when it gapped beyond P).
  IOC/FOK limits live for bar i+1 only: they fill by the same limit rule (price and fee) wherever
  the path reaches P in that bar, else Cancelled at its close (the reason carries Bybit's
  EC_NoImmediateQtyToFill / EC_CancelForNoFullFill).
- Stop buy with trigger T: triggers when the path rises to T (Untriggered -> Triggered); a
  stop-market fills at max(open, T) + slippage, taker. Stops are never refused for being already
  through when sent: such a stop triggers at the next open, as in Pine.
- Stop-limit: at the trigger point (the open on a gap, else T) it fills as a taker at that price,
  without slippage, when that price is at or better than its limit (Triggered -> Filled); otherwise
  it rests as a limit at its limit price (Triggered -> New) and fills later as a maker, possibly
  later in the same bar if the path comes back.

Intrabar order
- The bar is walked as a price path; the model and the tie rules are in runtime/sim_fills.py.
  Every fill is applied before the next order is looked at, so a stop-loss placed by an entry's
  fill can fill later on the same path.

Positions
- One-way net. A SCALE fill that grows the position adds a layer (layers = 1 on a fresh entry);
  the average entry is quantity-weighted. partial_close and close (and any reduce_only order) are
  capped at the live position and never flip it; a close fills the whole position as it is when it
  fills, even if the position grew while it rested (its Fill has that qty; the order keeps the qty
  it was sent with); a reduce-only order is refused when flat ("reduce-
  only order with no position") or on the position's own side. A non-reduce order against the
  position nets, and may flip it: a flip is a close followed by a fresh entry at the fill price.
  `reduced` turns true when a partial_close fills. Everything per position (layers, reduced,
  first entry and first stop price, opened bar, filled tags) resets when the position closes.
  A SCALE that fills while flat (it is not refused) opens a fresh position with layers = 1.
- `tag_filled(T)` turns true when the order tagged T fills and opens or adds to a position (so an
  order that only reduces or flattens the other side never reads filled), and false again when that
  position closes.
- Flat means avg_entry, first_entry_price and first_stop_price are NaN and position_opened_bar is
  None (a comparison with NaN is false, which is what the blocks want).

Protection (position-level, one of each)
- stop_loss: reduce-only stop-market (taker, slippage); take_profit: reduce-only limit (maker;
  taker at the next open if it was marketable when set); trail D: reduce-only stop-market whose
  trigger starts at close[i] - D (long; + D short) when set at the close of bar i, and at each later
  bar close moves to max(trigger, highest high since set - D), never loosening. A trail attached to
  an entry starts at fill - D and ratchets with that bar's close, then with the highs of later bars.
  Setting one again moves it (an amend: Untriggered -> PendingAmend -> Untriggered); setting trail
  again restarts the high-water mark at the last close with the new distance but still never
  loosens. The bar-close ratchet itself is silent (no events; `open_orders()` shows the trigger).
- Each fills for the whole current position; its qty follows every fill that changes the size.
  Setting one when flat is refused ("can not set stop_loss for zero position", Bybit's wording).
  Levels on the wrong side of the price are not refused: they fill at the next open (or at once,
  for an attached one), like a Pine exit.
- Attached protection: when an ENTRY/SCALE with `attached` fills at price f and opens or adds to
  the position (a flip's new side counts; a fill that only reduces the other side does not), each
  item sets or moves the position's protection to value(f) (rounded to tick), live from that point
  of the path.
- When the position closes (or flips) the exchange clears what belonged to it, like Bybit does:
  protection stops and other untriggered conditionals end Deactivated (Bybit's status for a
  conditional cancelled before triggering), the take-profit limit and other resting orders end
  Cancelled. "Other" means reduce-only orders (close/partial_close) and pending SCALE orders, which
  were meant for that position; plain entries stay. `first_stop_price` is the first stop_loss set
  for the position (for position.r).

Rejections
- Status Rejected, reason recorded, the run goes on. The checks and their texts are in
  runtime/sim_checks.py. Margin is checked when an order is sent or amended, never at fill time,
  and only for non-reduce orders; protection is never margin-checked.

cancel_all cancels every pending order, protection included (like Bybit's cancel-all and the kill
switch want); a strategy's `cancel all` therefore also drops the stop-loss.
"""

from __future__ import annotations

import math

import attrs

from playdeck.dsl.vocabulary import INTRABAR_MODELS, PROTECTION_KINDS
from playdeck.runtime.execution.order_state import StatusPath
from playdeck.runtime.execution.orders import (
    KEEP,
    AttachedProtection,
    Fill,
    Instrument,
    Order,
    OrderEvent,
    OrderResult,
    OrderRole,
    OrderStatus,
    OrderType,
    ProtectionKind,
    Side,
    TimeInForce,
    order_with,
)
from playdeck.runtime.sim.refusals import amend_refusal, margin_refusal, order_refusal
from playdeck.runtime.sim.matching import (
    KIND_LIMIT,
    KIND_MARKET,
    KIND_STOP,
    SimOrder,
    adverse_is_low,
    cancel_event,
    describe_amend,
    intrabar_path,
    marketable,
    matching_shape,
    next_reached,
    protection_order,
    ratchet_trail,
    slipped,
)

__all__ = ["INTRABAR_MODELS", "PROTECTION_KINDS", "SimExchange"]

_NAN = math.nan
# Enum members as module constants: a global lookup is cheaper than an attribute of the enum class.
_MARKET, _LIMIT, _STOP, _STOP_LIMIT = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT
MAX_ACTIVE_ORDERS, MAX_CONDITIONAL_ORDERS = 500, 10  # Bybit's per-symbol caps (bybit-v5.md)
_ENTRY, _SCALE = OrderRole.ENTRY, OrderRole.SCALE
_CLOSE, _PARTIAL_CLOSE = OrderRole.CLOSE, OrderRole.PARTIAL_CLOSE
_IOC, _FOK = TimeInForce.IOC, TimeInForce.FOK
_REJECTED, _SUBMITTED = OrderStatus.REJECTED, OrderStatus.SUBMITTED
# The answer to an amend names the status the order is back in (see order_state).
_AMEND_ACK = {
    OrderStatus.NEW: "amend_ack",
    OrderStatus.PARTIALLY_FILLED: "amend_ack_partial",
    OrderStatus.UNTRIGGERED: "amend_ack_conditional",
}


class SimExchange:
    """One symbol, any number of pending orders, one net position. See the module docstring."""

    def __init__(
        self,
        instrument: Instrument,
        *,
        maker_fee: float,
        taker_fee: float,
        slippage_bps: float,
        intrabar: str = "worst_case",
        equity: float,
        leverage: float,
    ) -> None:
        if intrabar not in INTRABAR_MODELS:
            raise ValueError(f"intrabar must be one of {INTRABAR_MODELS}, was {intrabar!r}")
        self.instrument = instrument
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.slippage_bps = slippage_bps
        self.intrabar = intrabar
        self.initial_equity = equity
        self.leverage = leverage
        self._slip = slippage_bps / 10_000.0
        self._worst = intrabar == "worst_case"
        self._qty_dp = instrument.qty_decimals
        self._half_step = instrument.qty_step / 2.0

        # Position and account: plain attributes, read by the engine every bar.
        self.position_qty = 0.0  # signed
        self.avg_entry = _NAN
        self.layers = 0
        self.realized_pnl = 0.0
        self.fees_paid = 0.0
        self.cash = equity
        self.position_opened_bar: int | None = None
        self.first_entry_price = _NAN
        self.first_entry_qty = 0.0  # the size the position opened with (position.r's initial risk)
        self.first_stop_price = _NAN
        self.reduced = False
        self.last_close = _NAN

        # Book: every order ever (insertion order = submission order), and the working ones.
        self.orders: dict[str, SimOrder] = {}
        self._live: dict[str, SimOrder] = {}
        self._protection: dict[str, SimOrder] = {}
        self._pending_by_tag: dict[str, SimOrder] = {}
        self._filled_tags: set[str] = set()
        self._client_ids: set[str] = set()  # of accepted orders: Bybit refuses a second create
        self._events: list[Fill | OrderEvent] = []
        self._bar = -1
        self._ts = 0
        self._taker_first = 0  # how many working limits still hold taker_first
        # Attached protection refused when its entry filled: (bar, item, reason), for the caller
        # to report like a refused intent (the refused order itself is in `orders` as Rejected).
        self.refused_attached: list[tuple[int, AttachedProtection, str]] = []

    # ------------------------------------------------------------------ reads for the engine
    @property
    def has_pending(self) -> bool:
        return bool(self._live)

    @property
    def working(self) -> dict[str, SimOrder]:
        """The working orders by id: the same dict for the exchange's life (never replaced), so a
        bar loop can hold it and test it for emptiness without a call per bar. Read, never write."""
        return self._live

    def upnl(self, price: float | None = None) -> float:
        if self.position_qty == 0.0:
            return 0.0
        p = self.last_close if price is None else price
        return self.position_qty * (p - self.avg_entry)

    def equity(self, last_close: float | None = None) -> float:
        return self.cash + self.upnl(last_close)

    def open_orders(self) -> list[Order]:
        return [rec.order for rec in self._live.values()]

    def status(self, order_id: str) -> OrderStatus:
        """Current status of any order ever sent here (KeyError for an unknown id)."""
        return self.orders[order_id].path.current

    def status_path(self, order_id: str) -> tuple[OrderStatus, ...]:
        return self.orders[order_id].path.as_tuple()

    def tag_filled(self, tag: str) -> bool:
        """True once the order tagged `tag` filled completely, until the position it opened closes."""
        return tag in self._filled_tags

    def order_by_tag(self, tag: str) -> Order | None:
        """The pending order carrying `tag` (the latest sent), or None."""
        rec = self._pending_by_tag.get(tag)
        return None if rec is None else rec.order

    def protection(self, kind: ProtectionKind) -> Order | None:
        rec = self._protection.get(kind)
        return None if rec is None else rec.order

    def drain_events(self) -> list[Fill | OrderEvent]:
        events = self._events
        self._events = []
        return events

    # ------------------------------------------------------------------ commands
    def submit(self, order: Order, bar: int, last_close: float) -> OrderResult:
        """Send `order` at the close of `bar`; it can first fill in bar + 1."""
        self._bar = bar
        self.last_close = last_close
        order_id = order.order_id or self._next_id()
        if order_id in self.orders:
            # Cannot be recorded under an id that is taken; nothing else changes.
            return OrderResult(
                False, order_id, OrderStatus.REJECTED, reject_reason=f"duplicate order id {order_id}"
            )
        client_id = order.client_id
        if client_id and client_id in self._client_ids:
            return OrderResult(False, order_id, OrderStatus.REJECTED,
                               reject_reason=f"duplicate client id {client_id} (110072)")
        inst = self.instrument
        qty = inst.round_qty(order.qty)
        price = None if order.price is None else inst.round_price(order.price)
        trigger = None if order.trigger is None else inst.round_price(order.trigger)
        otype = order.type
        if otype is _MARKET:
            price = trigger = None
        elif otype is _LIMIT:
            trigger = None
        elif otype is _STOP:
            price = None
        role = order.role
        reduce_only = order.reduce_only or role is _CLOSE or role is _PARTIAL_CLOSE
        reason = order_refusal(
            order,
            qty,
            price,
            trigger,
            reduce_only=reduce_only,
            position_qty=self.position_qty,
            min_qty=inst.min_qty,
            last_close=last_close,
        )
        accepted_order = order_with(order, order_id, qty, price, trigger, reduce_only)
        if reason is None:
            reason = self._count_refusal(otype)
        if reason is None and not reduce_only:
            # Margin reads side, type, qty, price and trigger: the accepted values.
            reason = self._margin_refusal(accepted_order, exclude=None)
        if reason is not None:
            # Record what was asked (unrounded), so the journal shows the intent that failed.
            asked = order_with(order, order_id, order.qty, order.price, order.trigger, order.reduce_only)
            rec = self._new_record(asked, bar + 1, reduce_only, matched=False)
            self._change(rec, "reject", reason)
            return OrderResult(False, order_id, _REJECTED, reject_reason=reason)

        rec = self._new_record(accepted_order, bar + 1, reduce_only)
        if client_id:
            self._client_ids.add(client_id)
        kind = rec.kind
        if kind == KIND_LIMIT and marketable(order.side, rec.level, last_close):
            rec.taker_first = True
            self._taker_first += 1
        tif = order.tif
        if tif is _IOC or tif is _FOK:
            rec.ioc_bar = bar + 1
        self._change(rec, "accept_conditional" if kind == KIND_STOP else "accept")
        self._go_live(rec)
        return OrderResult(True, order_id, rec.path.statuses[-1])

    def _count_refusal(self, otype: OrderType) -> str | None:
        live = self._live
        if len(live) >= MAX_ACTIVE_ORDERS:
            return f"more than {MAX_ACTIVE_ORDERS} active orders (110020)"
        if otype is _STOP or otype is _STOP_LIMIT:
            # Untriggered stops only: a triggered stop-limit rests as an ordinary limit.
            if sum(1 for r in live.values() if r.kind == KIND_STOP) >= MAX_CONDITIONAL_ORDERS:
                return f"more than {MAX_CONDITIONAL_ORDERS} active conditional orders"
        return None

    def amend(
        self,
        order_id: str,
        bar: int,
        *,
        qty: float | None = None,
        price: float | None = None,
        trigger: float | None = None,
        expire_bar: int | None | object = KEEP,
        attached: tuple[AttachedProtection, ...] | object = KEEP,
    ) -> OrderResult:
        """Change qty (new total), limit price or trigger of a pending order, at the close of `bar`.

        `expire_bar` / `attached` (default: keep) replace playdeck's own attributes of the order, as a
        same-tag replacement does; they are taken along with an accepted amend, and alone they change
        the order silently (no venue request, so no status change)."""
        self._bar = bar
        rec = self._live.get(order_id)
        if rec is None:
            known = self.orders.get(order_id)
            status = OrderStatus.REJECTED if known is None else known.path.current
            return OrderResult(False, order_id, status, reject_reason=f"order {order_id} is not open")
        old = rec.order
        inst = self.instrument
        new_qty = old.qty if qty is None else inst.round_qty(qty)
        new_price = old.price if price is None else inst.round_price(price)
        new_trigger = old.trigger if trigger is None else inst.round_price(trigger)
        # Re-stating a field's current value is not a change (a triggered stop-limit keeps its
        # trigger, a protection its qty), so only real changes are checked.
        qty = None if new_qty == old.qty else qty
        price = None if new_price == old.price else price
        trigger = None if new_trigger == old.trigger else trigger
        reason = amend_refusal(
            old,
            qty,
            price,
            trigger,
            (new_qty, new_price, new_trigger),
            triggered=rec.kind != KIND_STOP,
            resting_limit=rec.kind == KIND_LIMIT,
            min_qty=inst.min_qty,
            last_close=self.last_close,
        )
        candidate = order_with(old, old.order_id, new_qty, new_price, new_trigger, old.reduce_only)
        if expire_bar is not KEEP or attached is not KEEP:
            candidate = attrs.evolve(
                candidate,
                expire_bar=old.expire_bar if expire_bar is KEEP else expire_bar,
                attached=old.attached if attached is KEEP else attached,
            )
        if (new_qty, new_price, new_trigger) == (old.qty, old.price, old.trigger):
            # Nothing the venue holds changes (e.g. a same-tag re-send of the same order): no
            # request, no events; playdeck's own attributes are still replaced.
            rec.order = candidate
            return OrderResult(True, order_id, rec.path.current)
        if reason is None and not rec.reduce_only:
            reason = self._margin_refusal(candidate, exclude=rec)
        if reason is not None:
            return OrderResult(False, order_id, rec.path.current, reject_reason=reason)

        self._amend_in_place(rec, candidate, self.last_close, bar + 1)
        return OrderResult(True, order_id, rec.path.current)

    def cancel(self, order_id: str, bar: int, reason: str = "") -> bool:
        """Cancel a pending order (protection too). False when it is not pending."""
        self._bar = bar
        rec = self._live.get(order_id)
        if rec is None:
            return False
        before = rec.path.current
        self._change(rec, "cancel_request", reason)
        self._finish(rec, cancel_event(before, rec.filled_qty), reason)
        return True

    def cancel_all(self, bar: int, reason: str = "cancel all") -> int:
        """Cancel every pending order, protection included; returns how many."""
        ids = list(self._live)
        for order_id in ids:
            self.cancel(order_id, bar, reason)
        return len(ids)

    def set_protection(
        self, kind: ProtectionKind, value: float, bar: int, last_close: float
    ) -> OrderResult:
        """Set or move the position's stop_loss / take_profit (value = price) or trail (distance)."""
        self._bar = bar
        self.last_close = last_close
        return self._place_protection(kind, value, last_close, bar + 1)

    # ------------------------------------------------------------------ the bar
    def process_bar(self, bar: int, ts: int, o: float, h: float, l: float, c: float) -> None:
        """Match every pending order against bar `bar` (call before close_bar for the same bar)."""
        live = self._live
        if not live:
            return
        # Cheap pre-scan: most bars reach no order, and then no path or object is built.
        for rec in live.values():
            if rec.active_from > bar:
                continue
            if rec.kind == KIND_MARKET or rec.taker_first or (rec.level <= h if rec.up else rec.level >= l):
                break
        else:
            if self._taker_first:
                self._end_taker_first(bar)
            return
        self._bar = bar
        self._ts = ts
        self._sweep(o, o, replan=False)  # the open point: everything through it fills first
        if self._taker_first:
            self._end_taker_first(bar)
        prev = o
        path = self._path(o, h, l, c)
        k = 0
        while k < len(path) and live:  # empty: the rest of the path is moot
            point = path[k]
            if point == prev:
                k += 1
                continue
            at = self._sweep(prev, point, replan=self._worst)
            if at is None:
                prev = point
                k += 1
            else:
                # worst_case: the position changed at `at`; the rest of the bar is planned again
                # to hurt the new position (an entry's take-profit cannot beat its stop).
                prev = at
                path = self._path(at, h, l, c)
                k = 0
            if self._protection:
                self._trail_follows_path(prev)

    def close_bar(self, bar: int, h: float, l: float, c: float) -> None:
        """At the close of `bar`, after process_bar: expiry, IOC/FOK end of life, trailing stops."""
        self.last_close = c
        live = self._live
        if not live:
            return
        self._bar = bar
        ending: list[tuple[SimOrder, str, str]] = []
        for rec in live.values():
            if rec.ioc_bar is not None and bar >= rec.ioc_bar:
                code = "EC_NoImmediateQtyToFill" if rec.order.tif is TimeInForce.IOC else (
                    "EC_CancelForNoFullFill"
                )
                why = f"{rec.order.tif.value} limit not filled in bar {bar} ({code})"
                ending.append((rec, cancel_event(rec.path.current, rec.filled_qty), why))
            elif rec.order.expire_bar is not None and bar >= rec.order.expire_bar:
                ending.append((rec, "expire", f"expired at the close of bar {bar}"))
        for rec, event, why in ending:
            self._finish(rec, event, why)
        trail = self._protection.get("trail")
        if trail is not None:
            self._ratchet(trail, bar, h, l, c)

    # ------------------------------------------------------------------ matching
    def _path(self, start: float, h: float, l: float, c: float) -> tuple[float, ...]:
        """The rest of the bar from `start` (the open, or where a worst_case fill moved the position)."""
        adverse_low = adverse_is_low(self.position_qty, self._live.values(), self._bar) if self._worst else None
        return intrabar_path(self._worst, adverse_low, start, h, l, c)

    def _sweep(self, cur: float, end: float, replan: bool) -> float | None:
        """Walk the path from `cur` to `end` (cur == end: the open point), filling as reached.

        The book is searched again after each fill, because a fill may place orders (attached
        protection) or remove them (position closed). With `replan`, the walk stops at the first
        fill that changes the position and returns that price (else None: `end` was reached).
        """
        bar = self._bar
        live = self._live
        while live:
            found = next_reached(live.values(), bar, cur, end)
            if found is None:
                return None
            rec, cur = found
            before = self.position_qty
            self._reach(rec, cur)
            if replan and self.position_qty != before:
                return cur
        return None

    def _trail_follows_path(self, point: float) -> None:
        # A trail set inside this bar (attached to an entry) has seen the path since it was set: the
        # best of those prices is its high-water mark at the close (the ratchet itself waits for it).
        rec = self._protection.get("trail")
        if rec is not None and rec.trail_bar == self._bar:
            if rec.order.side is Side.SELL:
                rec.trail_extreme = max(rec.trail_extreme, point)
            else:
                rec.trail_extreme = min(rec.trail_extreme, point)

    def _reach(self, rec: SimOrder, at: float) -> None:
        """The path reached `rec` at price `at`: trigger it and/or fill it."""
        order = rec.order
        if rec.kind == KIND_MARKET:
            self._fill(rec, slipped(at, order.side, self._slip), "taker", at)
        elif rec.kind == KIND_STOP:
            self._change(rec, "trigger", f"triggered at {at}")
            if order.type is OrderType.STOP_LIMIT:
                limit = order.price
                assert limit is not None
                if marketable(order.side, limit, at):
                    # Filling at the trigger point is at or better than the limit: a limit fill.
                    self._fill(rec, at, "taker", at)
                else:
                    rec.kind = KIND_LIMIT
                    rec.level = limit
                    rec.up = order.side is Side.SELL
                    self._change(rec, "accept", f"rests as a limit at {limit}")
            else:
                self._fill(rec, slipped(at, order.side, self._slip), "taker", at)
        else:
            # IOC/FOK too: rule 5.3 gives limits the maker fee unless marketable when sent.
            self._fill(rec, at, "taker" if rec.taker_first else "maker", at)

    def _end_taker_first(self, bar: int) -> None:
        # The open of an order's first bar has passed. A taker_first limit active there filled at it
        # (or ended, e.g. reduce-only with nothing to reduce); this keeps the count honest.
        for rec in self._live.values():
            if rec.taker_first and rec.active_from <= bar:
                self._set_taker_first(rec, False)

    def _set_taker_first(self, rec: SimOrder, value: bool) -> None:
        if rec.taker_first != value:
            self._taker_first += 1 if value else -1
            rec.taker_first = value

    # ------------------------------------------------------------------ fills and the position
    def _fill(self, rec: SimOrder, price: float, liquidity: str, at: float) -> None:
        """Execute `rec` at `price` (the path was at `at`; they differ by slippage)."""
        order = rec.order
        side = order.side
        sign = side.sign
        role = order.role
        dp = self._qty_dp
        pos = self.position_qty
        if rec.reduce_only:
            if pos == 0.0 or sign * pos > 0.0:
                self._finish(rec, cancel_event(rec.path.current, rec.filled_qty),
                             "reduce-only order with no position to reduce")
                return
            # Protection and `close` are for the whole position as it is when they fill (it may have
            # grown since they were sent); partial_close is capped at it.
            qty = abs(pos) if role.is_protection or role is _CLOSE else min(order.qty - rec.filled_qty, abs(pos))
        else:
            qty = order.qty - rec.filled_qty
        qty = round(qty, dp)
        fee = qty * price * (self.taker_fee if liquidity == "taker" else self.maker_fee)

        # Split the fill into the part that reduces the position and the part that opens/adds.
        reducing = 0.0
        if pos != 0.0 and sign * pos < 0.0:
            reducing = min(qty, abs(pos))
        realized = 0.0
        if reducing > 0.0:
            realized = reducing * (price - self.avg_entry) * (1.0 if pos > 0.0 else -1.0)
        opening = round(qty - reducing, dp)

        bar = self._bar
        self._events.append(
            Fill(bar, self._ts, order.order_id, order.tag, side, qty, price, fee,
                 liquidity, role, realized)  # type: ignore[arg-type]
        )
        rec.filled_qty = round(rec.filled_qty + qty, dp)
        rec.avg_price = price
        self._finish(rec, "fill", "")

        self.fees_paid += fee
        self.realized_pnl += realized
        self.cash += realized - fee
        if reducing > 0.0:
            pos = round(pos + sign * reducing, dp)
            if abs(pos) < self._half_step:
                self.position_qty = 0.0
                self._position_closed()
            else:
                self.position_qty = pos
                if role is _PARTIAL_CLOSE:
                    self.reduced = True
        if opening > 0.0:
            self._open_or_add(order, opening, price)
            # Only a fill that opened or added to a position (on its own side) is "filled" into one
            # and has one to protect: an entry that merely reduced the other side sets neither.
            if order.tag is not None:
                self._filled_tags.add(order.tag)
            if order.attached and (role is _ENTRY or role is _SCALE):
                # Attached protection is live from this point of the path on (active this bar).
                for item in order.attached:
                    placed = self._place_protection(item.kind, item.value(price), price, bar, now=at)
                    if not placed.accepted:
                        self.refused_attached.append((bar, item, placed.reject_reason or "refused"))
        if self._protection and self.position_qty != 0.0:
            self._follow_size()

    def _open_or_add(self, order: Order, qty: float, price: float) -> None:
        pos = self.position_qty
        if pos == 0.0:
            self.position_qty = qty * order.side.sign
            self.avg_entry = price
            self.layers = 1
            self.position_opened_bar = self._bar
            self.first_entry_price = price
            self.first_entry_qty = qty
            self.first_stop_price = _NAN
            self.reduced = False
            return
        size = abs(pos)
        self.avg_entry = (self.avg_entry * size + price * qty) / (size + qty)
        self.position_qty = round(pos + order.side.sign * qty, self._qty_dp)
        if order.role is _SCALE:
            self.layers += 1

    def _position_closed(self) -> None:
        # Clear what belonged to the position that just closed (see "Protection" above).
        for rec in list(self._live.values()):
            if rec.reduce_only or rec.order.role is _SCALE:
                self._finish(rec, cancel_event(rec.path.current, rec.filled_qty), "position closed")
        self._protection.clear()
        self._filled_tags.clear()
        self.avg_entry = _NAN
        self.layers = 0
        self.position_opened_bar = None
        self.first_entry_price = _NAN
        self.first_entry_qty = 0.0
        self.first_stop_price = _NAN
        self.reduced = False

    def _follow_size(self) -> None:
        size = abs(self.position_qty)
        for rec in self._protection.values():
            o = rec.order
            if o.qty != size:
                rec.order = order_with(o, o.order_id, size, o.price, o.trigger, o.reduce_only)

    # ------------------------------------------------------------------ protection
    def _place_protection(
        self,
        kind: ProtectionKind,
        value: float,
        reference: float,
        active_from: int,
        now: float | None = None,
    ) -> OrderResult:
        """Set or move one protection.

        `reference` is the price a trail starts from (the last close, or the entry's fill price);
        `now` the market price that decides whether a take-profit is marketable (defaults to
        `reference`; for attached protection it is the path point, before slippage).
        """
        if now is None:
            now = reference
        if kind not in PROTECTION_KINDS:
            raise ValueError(f"unknown protection kind {kind!r}; expected one of {PROTECTION_KINDS}")
        pos = self.position_qty
        inst = self.instrument
        long = pos > 0.0
        side = Side.SELL if long else Side.BUY
        reason = None
        if kind == "trail":
            distance = value
            level = inst.round_price(reference - distance if long else reference + distance)
            if not distance > 0:
                reason = f"non-positive trail distance {value}"
            elif not level > 0:  # a distance as large as the price: a stop no price can reach
                reason = f"trail stop at {level:g}: distance {value:g} from {reference:g}"
        else:
            distance = _NAN
            level = inst.round_price(value)
            if not level > 0:
                reason = f"non-positive price {level}"
        if pos == 0.0:
            reason = f"can not set {kind} for zero position"
        existing = self._protection.get(kind)
        if reason is not None and existing is None:
            order = protection_order(kind, side, level, abs(pos), self._next_id(), self._bar)
            rec = self._new_record(order, active_from, True, matched=False)
            self._change(rec, "reject", reason)
            return OrderResult(False, order.order_id, OrderStatus.REJECTED, reject_reason=reason)
        if reason is not None:
            assert existing is not None
            return OrderResult(False, existing.order_id, existing.path.current, reject_reason=reason)

        if existing is not None:
            rec = existing
            if kind == "trail":
                # A new distance restarts the high-water mark here, but a trail never loosens.
                level = max(level, rec.level) if long else min(level, rec.level)
                rec.trail_distance = distance
                rec.trail_extreme = reference
                rec.trail_bar = self._bar
            o = rec.order
            if kind == "take_profit":
                if o.price != level:  # the same level again is not a move
                    new = order_with(o, o.order_id, o.qty, level, o.trigger, o.reduce_only)
                    self._amend_in_place(rec, new, now, active_from)
            elif o.trigger != level:
                new = order_with(o, o.order_id, o.qty, o.price, level, o.reduce_only)
                self._amend_in_place(rec, new, now, active_from)
            return OrderResult(True, rec.order_id, rec.path.current)

        order = protection_order(kind, side, level, abs(pos), self._next_id(), self._bar)
        rec = self._new_record(order, active_from, True)
        if kind == "trail":
            rec.trail_distance = distance
            rec.trail_extreme = reference
            rec.trail_bar = self._bar
        if kind == "take_profit" and marketable(side, level, now):
            rec.taker_first = True
            self._taker_first += 1
        if kind == "stop_loss" and math.isnan(self.first_stop_price):
            self.first_stop_price = level
        self._change(rec, "accept" if kind == "take_profit" else "accept_conditional")
        self._go_live(rec)
        self._protection[kind] = rec
        return OrderResult(True, order.order_id, rec.path.current)

    def _amend_in_place(self, rec: SimOrder, new: Order, now: float, active_from: int) -> None:
        """Replace a working order's values through PendingAmend and back, as live would.

        `now` decides whether a limit is now marketable (taker at the next point it is checked);
        `active_from` is the first bar the new values may fill in.
        """
        before = rec.path.current
        what = describe_amend(rec.order, new)
        self._change(rec, "amend", what)
        rec.order = new
        if rec.kind == KIND_STOP:
            rec.level = new.trigger  # type: ignore[assignment]
        elif rec.kind == KIND_LIMIT:
            rec.level = new.price  # type: ignore[assignment]
            self._set_taker_first(rec, marketable(new.side, rec.level, now))
        rec.active_from = max(rec.active_from, active_from)
        self._change(rec, _AMEND_ACK[before], what)

    def _ratchet(self, rec: SimOrder, bar: int, h: float, l: float, c: float) -> None:
        level = ratchet_trail(rec, bar, h, l, c, self.instrument)
        if level is not None:
            rec.level = level
            o = rec.order
            rec.order = order_with(o, o.order_id, o.qty, o.price, level, o.reduce_only)

    def _margin_refusal(self, order: Order, exclude: SimOrder | None) -> str | None:
        return margin_refusal(
            order,
            self._live.values(),
            exclude=exclude,
            position_qty=self.position_qty,
            last_close=self.last_close,
            buying_power=self.equity(self.last_close) * self.leverage,
        )

    # ------------------------------------------------------------------ book keeping
    def _next_id(self) -> str:
        # Skip ids a caller already used for its own orders.
        order_id = f"sim-{len(self.orders) + 1}"
        while order_id in self.orders:
            order_id += "x"
        return order_id

    def _new_record(
        self, order: Order, active_from: int, reduce_only: bool, matched: bool = True
    ) -> SimOrder:
        if matched:
            kind, up, level = matching_shape(order)
        else:
            kind, up, level = KIND_MARKET, True, _NAN  # a refused order never reaches the book
        order_id = order.order_id
        orders = self.orders
        rec = SimOrder(order, StatusPath(order_id), len(orders), active_from, kind, up, level, reduce_only)
        orders[order_id] = rec
        self._events.append(OrderEvent(order_id, None, _SUBMITTED, self._bar))
        return rec

    def _go_live(self, rec: SimOrder) -> None:
        order = rec.order
        self._live[order.order_id] = rec
        if order.tag is not None:
            self._pending_by_tag[order.tag] = rec

    def _change(self, rec: SimOrder, event: str, reason: str = "") -> None:
        old, new = rec.path.apply(event)
        rec.reason = reason
        self._events.append(OrderEvent(rec.order.order_id, old, new, self._bar, reason))

    def _finish(self, rec: SimOrder, event: str, reason: str) -> None:
        """Move `rec` to a final status and take it out of the book."""
        self._change(rec, event, reason)
        order = rec.order
        self._live.pop(order.order_id, None)
        if rec.taker_first:
            self._set_taker_first(rec, False)
        tag = order.tag
        if tag is not None and self._pending_by_tag.get(tag) is rec:
            del self._pending_by_tag[tag]
        if order.role.is_protection:
            for kind, held in list(self._protection.items()):
                if held is rec:
                    del self._protection[kind]
