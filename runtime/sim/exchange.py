"""SimExchange: a synchronous, sans-I/O, one-symbol exchange for backtests and the emulator.

It obeys PLAY-LANGUAGE.md sections 5 and 6. The engine drives it with bar indexes and prices; it
never reads a clock or does I/O. At the close of bar i the engine calls `process_bar(i, ...)`
(fills inside bar i), then `close_bar(i, ...)` (expiry, IOC end of life, trailing stops), then
evaluates the blocks and calls `submit` / `amend` / `cancel` / `set_protection` with bar=i, so an
order sent at the close of bar i can first fill in bar i+1. `drain_events()` hands back every
`Fill` and `OrderEvent` since the last drain, in the order they happened: all a `TradingState`
needs to follow the exchange (the Submitted event and every change of an order's values carry
them). Orders are known by their client id (Bybit's orderLinkId); the exchange names them `sim-N`.

Decisions (where the spec leaves room, what this simulator does):

States
- Every order passes through the shared state machine (runtime/execution/order_state.py) and each change is
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
- Ids: every order recorded gets `sim-N`. A client id (Bybit's orderLinkId) is unique: one already
  used by an accepted order is refused ("duplicate client id X (110072)") and not recorded, as
  Bybit refuses the create. A refused create does not take its id: sent again, the refused record
  is renamed `<client id>~<its sim-N>` (in TradingState too) and the new order has the id.
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
- The bar is walked as a price path; the model and the tie rules are in runtime/sim/matching.py.
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
  The arithmetic is `execution.ledger.apply_fill`. A SCALE that fills while flat (it is not
  refused) opens a fresh position with layers = 1. What the language reads per position (when it
  opened, first entry and stop, reduced, filled tags) is kept by `TradingState` from the events.

Protection (position-level, one of each)
- stop_loss: reduce-only stop-market (taker, slippage); take_profit: reduce-only limit (maker);
  trail D: reduce-only stop-market whose
  trigger starts at close[i] - D (long; + D short) when set at the close of bar i, and at each later
  bar close moves to max(trigger, highest high since set - D), never loosening. A trail attached to
  an entry starts at fill - D and ratchets with that bar's close, then with the highs of later bars.
  Setting one again moves it (an amend: Untriggered -> PendingAmend -> Untriggered); setting trail
  again restarts the high-water mark at the last close with the new distance but still never
  loosens. The bar-close ratchet is an amend of the trail's trigger too (PendingAmend and back).
- Each fills for the whole current position; its qty follows every fill that changes the size.
  Setting one when flat is refused ("can not set stop_loss for zero position", Bybit's wording).
  A level on the wrong side of the last price (the path point at an entry's fill, the close when a
  block sets it) is refused as Bybit refuses it (7.2): a stop_loss or trail of a long not below
  it, or a take_profit of a short not below it, with 110093; the mirror cases with 110092. The
  position keeps what it had (a refused move leaves the old level working).
- Attached protection: when an ENTRY/SCALE with `attached` fills at price f and opens or adds to
  the position (a flip's new side counts; a fill that only reduces the other side does not), each
  item sets or moves the position's protection to its price at f (rounded to tick), live from that
  point of the path. A refused one is Rejected with its `origin` (the attached line), which
  `TradingState` records as a refused part of the entry's intent.
- When the position closes (or flips) the exchange clears what belonged to it, like Bybit does:
  protection stops and other untriggered conditionals end Deactivated (Bybit's status for a
  conditional cancelled before triggering), the take-profit limit and other resting orders end
  Cancelled. "Other" means reduce-only orders (close/partial_close) and pending SCALE orders, which
  were meant for that position; plain entries stay.

Rejections
- Status Rejected, reason recorded, the run goes on. The checks and their texts are in
  runtime/sim/refusals.py. Margin is checked when an order is sent or amended, never at fill time,
  and only for non-reduce orders; protection is never margin-checked.

cancel_all cancels every pending order, protection included (like Bybit's cancel-all and the kill
switch want); a strategy's `cancel all` therefore also drops the stop-loss.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from typing import NamedTuple

import numpy as np

from playdeck.dsl.vocabulary import INTRABAR_MODELS
from playdeck.runtime.execution.ledger import FLAT, Position, apply_fill
from playdeck.runtime.execution.order_state import TRANSITIONS, Ev, IllegalTransition, amend_ack_event, end_event
from playdeck.runtime.execution.orders import (
    KEEP,
    CashFlow,
    Fill,
    Instrument,
    OrderEvent,
    OrderRequest,
    OrderResult,
    OrderRole,
    OrderSnapshot,
    OrderStatus,
    OrderType,
    ProtectionSpec,
    Refusal,
    RefusalCode,
    Refused,
    Side,
    TimeInForce,
    rekey_refused,
)
from playdeck.runtime.sim.book import KIND_LIMIT, KIND_MARKET, KIND_STOP, MAX_CONDITIONAL_ORDERS, Book, SimOrder
from playdeck.runtime.sim.matching import (
    adverse_is_low,
    intrabar_path,
    marketable,
    matching_shape,
    next_reached,
    slipped,
)
from playdeck.runtime.sim.protection import ProtectionDesk
from playdeck.runtime.sim.refusals import amend_refusal, margin_refusal, order_refusal

__all__ = ["INTRABAR_MODELS", "SimExchange"]

_NAN = math.nan
# Enum members as module constants: a global lookup is cheaper than an attribute of the enum class.
_MARKET, _LIMIT, _STOP, _STOP_LIMIT = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT
_ENTRY, _SCALE = OrderRole.ENTRY, OrderRole.SCALE
_CLOSE, _PARTIAL_CLOSE = OrderRole.CLOSE, OrderRole.PARTIAL_CLOSE
_IOC, _FOK = TimeInForce.IOC, TimeInForce.FOK
_REJECTED, _SUBMITTED, _UNTRIGGERED = OrderStatus.REJECTED, OrderStatus.SUBMITTED, OrderStatus.UNTRIGGERED
_FILL = Ev.FILL
FUNDING_MS = 8 * 3_600_000  # funding instants: 00:00, 08:00 and 16:00 UTC


class _Values(NamedTuple):
    """What margin reads of an order being amended: its side, type and the new values."""

    side: Side
    type: OrderType
    qty: float
    price: float | None
    trigger: float | None


class SimExchange(ProtectionDesk):
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
        mmr: float = 0.005,
        funding: float = 0.0001,
        funding_rates: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """`mmr` is the maintenance margin rate, `funding` the rate per 8 h used when the data has no
        `funding_rates` (epoch-ms times of bars and each bar's rate, NaN where unknown)."""
        if intrabar not in INTRABAR_MODELS:
            raise ValueError(f"intrabar must be one of {INTRABAR_MODELS}, was {intrabar!r}")
        self.instrument = instrument
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.slippage_bps = slippage_bps
        self.intrabar = intrabar
        self.initial_equity = equity
        self.leverage = leverage
        self.mmr = mmr
        self.funding = funding
        self._funding_rates = funding_rates
        self.next_funding: int | None = None  # epoch ms of the next funding instant to settle
        self._slip = slippage_bps / 10_000.0
        self._worst = intrabar == "worst_case"
        self._qty_dp = instrument.qty_decimals
        self._half_step = instrument.qty_step / 2.0

        # Position and account (ledger values; read by margin and the reduce-only caps).
        self.position: Position = FLAT
        self.realized_pnl = 0.0
        self.fees_paid = 0.0
        self.cash = equity
        self.last_close = _NAN
        self._wallet_moves = 0  # bumped whenever the position or the wallet changes
        self._liq_at = -1  # the `_wallet_moves` the remembered liquidation price is for
        self._liq: float | None = None

        self.book = Book()
        self.orders = self.book.orders  # every order ever, by client id, in submission order
        self._live = self.book.live
        self._protection: dict[str, SimOrder] = {}
        self._events: list[Fill | OrderEvent | Refused] = []
        self._bar = -1
        self._ts = 0
        self._detail_ts: int | None = None  # the open of the detail bar being walked (bar magnifier)
        self._at = _NAN  # the path's price at the last fill of the bar being walked
        self._taker_first = 0  # how many working limits still hold taker_first
        self._split_next = 0  # split_next_fill: the parts the next limit fill comes in

    # ------------------------------------------------------------------ reads
    @property
    def position_qty(self) -> float:
        return self.position.qty

    @property
    def has_pending(self) -> bool:
        return bool(self._live)

    @property
    def working(self) -> dict[str, SimOrder]:
        """The working orders by client id (the same dict for the exchange's life). Read, never write."""
        return self._live

    def upnl(self, price: float | None = None) -> float:
        q = self.position.qty
        if q == 0.0:
            return 0.0
        p = self.last_close if price is None else price
        return q * (p - self.position.avg_entry)

    def equity(self, last_close: float | None = None) -> float:
        return self.cash + self.upnl(last_close)

    def open_orders(self) -> list[OrderSnapshot]:
        return [rec.snapshot() for rec in self._live.values()]

    def status(self, client_id: str) -> OrderStatus:
        """Current status of any order ever sent here (KeyError for an unknown client id)."""
        return self.orders[client_id].path[-1]

    def order_by_tag(self, tag: str) -> SimOrder | None:
        """The pending order carrying `tag` (the latest sent), or None."""
        return self.book.by_tag.get(tag)

    def protection(self, kind: str) -> SimOrder | None:
        return self._protection.get(kind)

    def drain_events(self) -> list[Fill | OrderEvent | Refused]:
        events = self._events
        self._events = []
        return events

    # ------------------------------------------------------------------ commands
    def submit(self, order: OrderRequest, bar: int, last_close: float, at: float | None = None) -> OrderResult:
        """Send `order` at the close of `bar`; it can first fill in bar + 1. With `at`, it is sent
        while bar `bar` is being walked (`walk_bar` waits after a fill at price `at`): it works from
        that point of the path on, and `at` is the price it is judged against."""
        self._bar = bar
        if at is not None:
            last_close = at
        else:
            self.last_close = last_close
        start = bar + 1 if at is None else bar
        client_id = order.client_id
        known = self.orders.get(client_id)
        if not client_id or (known is not None and known.path[-1] is not _REJECTED):
            text = f"duplicate client id {client_id} (110072)" if client_id else "an order needs a client id"
            code = RefusalCode.DUPLICATE_CLIENT_ID if client_id else RefusalCode.BAD_REQUEST
            return OrderResult(False, client_id, _REJECTED, None, Refusal(code, text))
        if known is not None:
            # A refused create does not take the id (Bybit never made that order): the new one may
            # have it, and the refused record stays in the book under a name of its own.
            rekey_refused(self.orders, known)
        inst = self.instrument
        otype = order.type
        qty = inst.round_qty(order.qty) if inst.qty_in_range(order.qty) else order.qty
        price = order.price
        trigger = order.trigger
        if otype is _MARKET:
            price = trigger = None
        elif otype is _LIMIT:
            trigger = None
        elif otype is _STOP:
            price = None
        if price is not None:
            price = inst.round_price(price)
        if trigger is not None:
            trigger = inst.round_price(trigger)
        role = order.role
        reduce_only = order.reduce_only or role is _CLOSE or role is _PARTIAL_CLOSE
        refusal = order_refusal(order, qty, price, trigger, reduce_only=reduce_only,
                                position_qty=self.position.qty, min_qty=inst.min_qty, last_close=last_close)
        if (qty, price, trigger, reduce_only) == (order.qty, order.price, order.trigger, order.reduce_only):
            accepted = order  # as sent (the IntentProcessor already rounded): no second value
        else:
            accepted = OrderRequest(client_id, order.side, otype, qty, price, trigger, order.tif, reduce_only,
                                    role, order.tag, order.created_bar, order.expire_bar, order.attached,
                                    order.origin)
        if refusal is None and len(self._live) >= MAX_CONDITIONAL_ORDERS:  # (cheap test first)
            refusal = self.book.cap_refusal(otype is _STOP or otype is _STOP_LIMIT)
        if refusal is None and not reduce_only:
            refusal = self._margin_refusal(accepted, exclude=None, price=last_close)
        order_id = self.book.next_order_id()
        if refusal is not None:
            # The record keeps what was asked (unrounded), so the journal shows the intent that failed.
            rec = self._record(order, order_id, start, reduce_only, matched=False)
            self._change(rec, Ev.REJECT, refusal.text, code=refusal.code)
            return OrderResult(False, client_id, _REJECTED, order_id, refusal)

        rec = self._record(accepted, order_id, start, reduce_only)
        kind = rec.kind
        if kind == KIND_LIMIT and marketable(order.side, rec.level, last_close):
            rec.taker_first = True
            self._taker_first += 1
        tif = order.tif
        if tif is _IOC or tif is _FOK:
            rec.ioc_bar = start
        self._change(rec, Ev.ACCEPT_CONDITIONAL if kind == KIND_STOP else Ev.ACCEPT)
        self.book.go_live(rec)
        return OrderResult(True, client_id, rec.path[-1], order_id)

    def amend(
        self,
        client_id: str,
        bar: int,
        *,
        qty: float | None = None,
        price: float | None = None,
        trigger: float | None = None,
        expire_bar: int | None | object = KEEP,
        attached: tuple[ProtectionSpec, ...] | object = KEEP,
        at: float | None = None,
    ) -> OrderResult:
        """Change qty (new total), limit price or trigger of a pending order, at the close of `bar`
        (with `at`, while the bar is walked, at that price: see `submit`).

        `expire_bar` / `attached` (default: keep) replace playdeck's own attributes of the order, as a
        same-tag replacement does; they are taken along with an accepted amend, and alone they change
        the order silently (no venue request, so no status change)."""
        self._bar = bar
        rec = self._live.get(client_id)
        if rec is None:
            known = self.orders.get(client_id)
            status = _REJECTED if known is None else known.path[-1]
            return OrderResult(False, client_id, status, None if known is None else known.order_id,
                               Refusal(RefusalCode.NOT_OPEN, f"order {client_id} is not open"))
        inst = self.instrument
        for value in (price, trigger):
            if value is not None and not inst.price_in_range(value):
                return OrderResult(False, client_id, rec.path[-1], rec.order_id,
                                   Refusal(RefusalCode.BAD_PRICE, f"price {value:g} is out of range"))
        if qty is not None and not inst.qty_in_range(qty):
            return OrderResult(False, client_id, rec.path[-1], rec.order_id,
                               Refusal(RefusalCode.BAD_SIZE, f"qty {qty:g} is out of range"))
        new_qty = rec.qty if qty is None else inst.round_qty(qty)
        new_price = rec.price if price is None else inst.round_price(price)
        new_trigger = rec.trigger if trigger is None else inst.round_price(trigger)
        # Re-stating a field's current value is not a change (a triggered stop-limit keeps its
        # trigger, a protection its qty), so only real changes are checked.
        qty = None if new_qty == rec.qty else qty
        price = None if new_price == rec.price else price
        trigger = None if new_trigger == rec.trigger else trigger
        refusal = amend_refusal(rec, qty, price, trigger, (new_qty, new_price, new_trigger),
                                triggered=rec.kind != KIND_STOP, resting_limit=rec.kind == KIND_LIMIT,
                                min_qty=inst.min_qty, last_close=self.last_close)
        new_expire = rec.expire_bar if expire_bar is KEEP else expire_bar
        new_attached = rec.attached if attached is KEEP else attached
        if (new_qty, new_price, new_trigger) == (rec.qty, rec.price, rec.trigger):
            # Nothing the venue holds changes (e.g. a same-tag re-send of the same order): no
            # request, no events; playdeck's own attributes are still replaced.
            rec.expire_bar, rec.attached = new_expire, new_attached  # type: ignore[assignment]
            return OrderResult(True, client_id, rec.path[-1], rec.order_id)
        if refusal is None and not rec.reduce_only:
            refusal = self._margin_refusal(_Values(rec.side, rec.type, new_qty, new_price, new_trigger), exclude=rec)
        if refusal is not None:
            return OrderResult(False, client_id, rec.path[-1], rec.order_id, refusal)
        rec.expire_bar, rec.attached = new_expire, new_attached  # type: ignore[assignment]
        self._amend_in_place(rec, new_qty, new_price, new_trigger, self.last_close if at is None else at,
                             bar + 1 if at is None else bar)
        return OrderResult(True, client_id, rec.path[-1], rec.order_id)

    def cancel(self, client_id: str, bar: int, reason: str = "") -> bool:
        """Cancel a pending order (protection too). False when it is not pending."""
        self._bar = bar
        rec = self._live.get(client_id)
        if rec is None:
            return False
        before = rec.path[-1]
        self._change(rec, Ev.CANCEL_REQUEST, reason)
        self._finish(rec, end_event(before, rec.filled_qty), reason)
        return True

    def cancel_all(self, bar: int, reason: str = "cancel all") -> int:
        """Cancel every pending order, protection included; returns how many."""
        ids = list(self._live)
        for client_id in ids:
            self.cancel(client_id, bar, reason)
        return len(ids)

    # ------------------------------------------------------------------ the bar
    def process_bar(self, bar: int, ts: int, o: float, h: float, l: float, c: float) -> None:
        """Bar `bar`: funding due at its open, then every pending order and the liquidation level
        matched against it (call before close_bar for the same bar)."""
        self.open_bar(bar, ts, o)
        self.match_bar(bar, ts, o, h, l, c)

    def open_bar(self, bar: int, ts: int, o: float) -> None:
        """The open of exec bar `bar`: funding instants up to it are settled (7.3)."""
        if self.next_funding is None:
            self.next_funding = -(-ts // FUNDING_MS) * FUNDING_MS  # the first instant at or after the data
        if ts >= self.next_funding:
            self._settle_funding(bar, ts, o)

    def reachable(self, bar: int, h: float, l: float) -> bool:
        """Could a price range [l, h] in bar `bar` reach a working order or the liquidation level?"""
        qty = self.position.qty
        if qty != 0.0:
            liq = self.liquidation_price()
            if liq is not None and (l <= liq if qty > 0.0 else h >= liq):
                return True
        for rec in self._live.values():
            if rec.active_from > bar:
                continue
            if rec.kind == KIND_MARKET or rec.taker_first or (rec.level <= h if rec.up else rec.level >= l):
                return True
        return False

    def match_bar(self, bar: int, ts: int, o: float, h: float, l: float, c: float,
                  detail_ts: int | None = None) -> None:
        """Walk one price bar of exec bar `bar` (opened at `ts`): the exec bar itself, or one of its
        detail bars (opened at `detail_ts`) under the bar magnifier, in order."""
        for _ in self.walk_bar(bar, ts, o, h, l, c, detail_ts):
            pass

    def walk_bar(self, bar: int, ts: int, o: float, h: float, l: float, c: float,
                 detail_ts: int | None = None, points: list[float] | None = None) -> Iterator[float]:
        """`match_bar`, stopping after every fill at the path's price there (a generator): a venue
        with clients on the other side of a wire (the emulator) lets them act on a fill before
        the bar goes on, as their answers would reach Bybit within the bar. An order sent while
        the walk waits (`submit(..., at=price)`) works from that point of the path.

        `points` collects the path's prices as the walk passes them (each segment's end, and where
        a fill re-planned the path): the prices a trail set inside the bar has seen by its close,
        which a client that keeps its trail itself (the live backend) follows as market data."""
        live = self._live
        if not live and self.position.qty == 0.0:
            return
        # Cheap pre-scan: most bars reach nothing, and then no path or object is built.
        if not self.reachable(bar, h, l):
            if self._taker_first:
                self._end_taker_first(bar)
            return
        self._detail_ts = detail_ts
        self._bar = bar
        self._ts = ts
        yield from self._sweep(o, o, False)  # the open point: everything through it fills first
        if self._taker_first:
            self._end_taker_first(bar)
        prev = o
        path = self._path(o, h, l, c)
        k = 0
        while k < len(path) and (live or self.position.qty != 0.0):  # nothing left: the rest is moot
            point = path[k]
            if point == prev:
                k += 1
                continue
            at = yield from self._sweep(prev, point, self._worst)
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
            if points is not None:
                points.append(prev)

    def close_bar(self, bar: int, h: float, l: float, c: float) -> None:
        """At the close of `bar`, after process_bar: expiry, IOC/FOK end of life, trailing stops."""
        self.last_close = c
        live = self._live
        if not live:
            return
        self._bar = bar
        ending: list[tuple[SimOrder, Ev, str]] = []
        for rec in live.values():
            if rec.ioc_bar is not None and bar >= rec.ioc_bar:
                tif = rec.request.tif
                code = "EC_NoImmediateQtyToFill" if tif is TimeInForce.IOC else "EC_CancelForNoFullFill"
                why = f"{tif.value} limit not filled in bar {bar} ({code})"
                ending.append((rec, end_event(rec.path[-1], rec.filled_qty), why))
            elif rec.expire_bar is not None and bar >= rec.expire_bar:
                ending.append((rec, Ev.EXPIRE, f"expired at the close of bar {bar}"))
        for rec, event, why in ending:
            self._finish(rec, event, why)
        trail = self._protection.get("trail")
        if trail is not None:
            self._ratchet(trail, bar, h, l, c)

    # ------------------------------------------------------------------ matching
    def _path(self, start: float, h: float, l: float, c: float) -> tuple[float, ...]:
        """The rest of the bar from `start` (the open, or where a worst_case fill moved the position)."""
        adverse_low = adverse_is_low(self.position.qty, self._live.values(), self._bar) if self._worst else None
        return intrabar_path(self._worst, adverse_low, start, h, l, c)

    def _sweep(self, cur: float, end: float, replan: bool) -> Generator[float, None, float | None]:
        """Walk the path from `cur` to `end` (cur == end: the open point), filling as reached, and
        yield the price after each fill (see `walk_bar`).

        The book is searched again after each fill, because a fill (or a client's answer to it) may
        place orders (attached protection) or remove them (position closed), and it moves the
        liquidation level. With `replan`, the walk stops at the first fill that changes the
        position and returns that price (else None: `end` was reached).
        """
        bar = self._bar
        live = self._live
        while True:
            found = next_reached(live.values(), bar, cur, end) if live else None
            if self.position.qty != 0.0:
                liq = self._liquidation_hit(cur, end)
                # The level is a stop the venue holds: a market order or a stop the path meets at
                # the same price goes first (a stop_loss before it saves the position), a limit after.
                if liq is not None and (found is None or abs(liq - cur) < abs(found[1] - cur)
                                        or (liq == found[1] and found[0].kind == KIND_LIMIT)):
                    self._liquidate(liq)
                    self._at = liq
                    yield liq
                    if replan:
                        return liq
                    cur = liq
                    continue
            if found is None:
                return None
            rec, cur = found
            before = self.position.qty
            filled = rec.filled_qty
            self._reach(rec, cur)
            if rec.filled_qty != filled:
                self._at = cur
                yield cur
            if replan and self.position.qty != before:
                return cur

    def _reach(self, rec: SimOrder, at: float) -> None:
        """The path reached `rec` at price `at`: trigger it and/or fill it."""
        if rec.kind == KIND_MARKET:
            self._fill(rec, slipped(at, rec.side, self._slip), "taker", at)
        elif rec.kind == KIND_STOP:
            self._change(rec, Ev.TRIGGER, f"triggered at {at}")
            if rec.type is _STOP_LIMIT:
                limit = rec.price
                assert limit is not None
                if marketable(rec.side, limit, at):
                    # Filling at the trigger point is at or better than the limit: a limit fill.
                    self._fill(rec, at, "taker", at)
                else:
                    rec.kind = KIND_LIMIT
                    rec.level = limit
                    rec.up = rec.side is Side.SELL
                    self._change(rec, Ev.ACCEPT, f"rests as a limit at {limit}")
            else:
                self._fill(rec, slipped(at, rec.side, self._slip), "taker", at)
        else:
            # IOC/FOK too: rule 5.3 gives limits the maker fee unless marketable when sent.
            if rec.parts == 0 and self._split_next > 1 and not rec.taker_first:
                rec.parts = self._split_next  # the fault the emulator injects: this fill comes in parts
                self._split_next = 0
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
        side = rec.side
        sign = side.sign
        role = rec.role
        dp = self._qty_dp
        pos = self.position.qty
        if rec.reduce_only:
            if pos == 0.0 or sign * pos > 0.0:
                self._finish(rec, end_event(rec.path[-1], rec.filled_qty),
                             "reduce-only order with no position to reduce")
                return
            # Protection and `close` are for the whole position as it is when they fill (it may have
            # grown since they were sent); partial_close is capped at it.
            qty = abs(pos) if role.is_protection or role is _CLOSE else min(rec.qty - rec.filled_qty, abs(pos))
        else:
            qty = rec.qty - rec.filled_qty
        partial = rec.parts > 1
        if partial:
            # one of k parts (the last takes the rest); the order rests for the others, one a bar
            qty = self.instrument.round_qty(qty / rec.parts)
            rec.parts -= 1
            rec.active_from = self._bar + 1
            partial = qty > 0.0
        qty = round(qty, dp)
        fee = qty * price * (self.taker_fee if liquidity == "taker" else self.maker_fee)
        effect = apply_fill(self.position, sign, qty, price, role is _SCALE, dp, self._half_step)
        realized = effect.realized

        bar = self._bar
        self._events.append(Fill(bar, self._ts, rec.order_id, rec.tag, side, qty, price, fee, liquidity, role,
                                 realized, rec.client_id, self._detail_ts))
        before = rec.filled_qty
        rec.filled_qty = round(before + qty, dp)
        rec.avg_price = price if not before else (rec.avg_price * before + price * qty) / rec.filled_qty
        if partial:
            self._change(rec, Ev.FILL_PARTIAL, f"{rec.parts} part(s) to come")
        else:
            self._finish(rec, _FILL, "")

        self.fees_paid += fee
        self.realized_pnl += realized
        self.cash += realized - fee
        self.position = effect.position
        self._wallet_moves += 1
        if effect.closed:
            self._position_closed()
        elif self._protection:
            size = abs(self.position.qty)
            for p in self._protection.values():
                p.qty = size  # protection is for the whole position; a venue follows it silently
        if effect.opened > 0.0 and rec.attached and (role is _ENTRY or role is _SCALE):
            # Only a fill that opened or added to a position (on its own side) has one to protect:
            # an entry that merely reduced the other side sets none. Attached protection is live
            # from this point of the path on (active this bar).
            for spec in rec.attached:
                placed = self._place_protection(spec.kind, spec.resolve(price), price, bar, now=at,
                                                origin=spec.where, percent=spec.percent)
                if not placed.accepted:
                    refusal = placed.refusal
                    assert refusal is not None
                    self._events.append(Refused(bar, spec.kind, refusal.text, spec.where, refusal.code))

    def _position_closed(self) -> None:
        # Clear what belonged to the position that just closed (see "Protection" above).
        for rec in list(self._live.values()):
            if rec.reduce_only or rec.role is _SCALE:
                self._finish(rec, end_event(rec.path[-1], rec.filled_qty), "position closed")
        self._protection.clear()

    # ------------------------------------------------------------------ liquidation and funding (7.3, 7.4)
    def liquidation_price(self) -> float | None:
        """Where the wallet plus the position's PnL falls to its maintenance margin, on the tick
        (up for a long, down for a short); None when flat or when no price liquidates (a long
        whose wallet covers it at any price)."""
        # Asked at every step of a bar's path; it moves only when a fill or funding moves the
        # position or the wallet, which bump `_wallet_moves`.
        if self._liq_at != self._wallet_moves:
            self._liq_at = self._wallet_moves
            self._liq = self._liquidation_price()
        return self._liq

    def _liquidation_price(self) -> float | None:
        q, entry, _ = self.position
        if q == 0.0:
            return None
        # cash + q (P - entry) = |q| P mmr  =>  P = (q entry - cash) / (q - |q| mmr)
        p = (q * entry - self.cash) / (q - abs(q) * self.mmr)
        if q > 0.0:
            return self.instrument.ceil_price(p) if p > 0.0 else None
        return self.instrument.floor_price(p) if p > 0.0 else None

    def _liquidation_hit(self, cur: float, end: float) -> float | None:
        """The price at which the path from `cur` to `end` meets the liquidation level, or None."""
        liq = self.liquidation_price()
        if liq is None:
            return None
        if self.position.qty > 0.0:  # a long is liquidated on the way down
            if cur <= liq:
                return cur  # already through: at the open of a gap
            return liq if end <= liq else None
        if cur >= liq:
            return cur
        return liq if end >= liq else None

    def _liquidate(self, at: float) -> None:
        """Close the whole position at `at` as Bybit's liquidation engine does: every other working
        order of the symbol is cancelled first (CancelAllBeforeLiq), then a venue-made reduce-only
        order takes the position at that price, taker fee, no slippage; a loss past the wallet is
        the insurance fund's, so the wallet ends at 0, never below."""
        for rec in list(self._live.values()):
            self._finish(rec, end_event(rec.path[-1], rec.filled_qty), "CancelAllBeforeLiq")
        q = self.position.qty
        order_id = self.book.next_order_id()
        side = Side.SELL if q > 0.0 else Side.BUY
        request = OrderRequest(f"liquidation-{order_id}", side, _MARKET, abs(q), None, None, _IOC, True,
                               OrderRole.LIQUIDATION, None, self._bar, None)
        rec = self._record(request, order_id, self._bar, True)
        self._change(rec, Ev.ACCEPT, f"liquidated at {at:g}")
        self._fill(rec, at, "taker", at)
        if self.cash < 0.0:
            cover = -self.cash
            self.cash = 0.0
            self._wallet_moves += 1
            self._events.append(CashFlow(self._bar, self._ts, "insurance", cover))

    def _settle_funding(self, bar: int, ts: int, o: float) -> None:
        """Every funding instant up to the open `ts` of this bar: the position held now (before the
        bar's fills) pays (long, rate > 0) or receives |qty| x open x rate, one payment per instant."""
        instant = self.next_funding
        assert instant is not None
        q = self.position.qty
        while instant <= ts:
            if q != 0.0:
                rate = self._funding_rate_at(instant)
                amount = -q * o * rate
                self.cash += amount
                self._wallet_moves += 1
                self._events.append(CashFlow(bar, instant, "funding", amount, rate, q, o))
            instant += FUNDING_MS
        self.next_funding = instant

    def _funding_rate_at(self, instant: int) -> float:
        """The data's funding rate on the bar that starts at `instant`, else on the last bar before it;
        the account's rate when the data has none there."""
        series = self._funding_rates
        if series is not None:
            times, rates = series
            k = int(np.searchsorted(times, instant, side="right")) - 1
            if k >= 0 and rates[k] == rates[k]:
                return float(rates[k])
        return self.funding

    def split_next_fill(self, parts: int) -> None:
        """A fault for the emulator: the next resting limit that fills does so in `parts` partial
        fills, one per bar in which the price reaches it (PartiallyFilled, then Filled; a cancel in
        between ends it PartiallyFilledCanceled)."""
        self._split_next = parts

    def _margin_refusal(self, order: OrderRequest | _Values, exclude: SimOrder | None,
                        price: float | None = None) -> Refusal | None:
        """Margin at `price` (the last close; the path's price for an order sent within a bar)."""
        price = self.last_close if price is None else price
        return margin_refusal(
            order,
            self._live.values(),
            exclude=exclude,
            position_qty=self.position.qty,
            last_close=price,
            buying_power=self.equity(price) * self.leverage,
        )

    # ------------------------------------------------------------------ book keeping
    def _record(self, request: OrderRequest, order_id: str, active_from: int, reduce_only: bool,
                matched: bool = True) -> SimOrder:
        if matched:
            kind, up, level = matching_shape(request.type, request.side, request.price, request.trigger)
        else:
            kind, up, level = KIND_MARKET, True, _NAN  # a refused order never reaches the book
        orders = self.orders
        rec = SimOrder(request, order_id, reduce_only, len(orders), active_from, kind, up, level)
        orders[request.client_id] = rec
        self._events.append(OrderEvent(order_id, None, _SUBMITTED, self._bar, "", request.client_id, None, request))
        return rec

    def _change(self, rec: SimOrder, ev: Ev, reason: str = "", values: OrderRequest | None = None,
                code: RefusalCode | None = None) -> None:
        path = rec.path
        old = path[-1]
        new = TRANSITIONS.get((old, ev))
        if new is None:
            raise IllegalTransition(old, ev, rec.client_id)
        path.append(new)
        rec.reason = reason
        self._events.append(OrderEvent(rec.order_id, old, new, self._bar, reason, rec.client_id, ev, values, code))

    def _finish(self, rec: SimOrder, ev: Ev, reason: str) -> None:
        """Move `rec` to a final status and take it out of the book."""
        self._change(rec, ev, reason)
        self.book.take_out(rec)
        if rec.taker_first:
            self._set_taker_first(rec, False)
        role = rec.role
        if role.is_protection and self._protection.get(role.value) is rec:
            del self._protection[role.value]

    def _amend_in_place(self, rec: SimOrder, qty: float, price: float | None, trigger: float | None, now: float,
                        active_from: int) -> None:
        """Replace a working order's values through PendingAmend and back, as live would.

        `now` decides whether a limit is now marketable (taker at the next point it is checked);
        `active_from` is the first bar the new values may fill in.
        """
        before = rec.path[-1]
        what = _describe_amend(rec, qty, price, trigger)
        self._change(rec, Ev.AMEND, what)
        rec.qty, rec.price, rec.trigger = qty, price, trigger
        if rec.kind == KIND_STOP:
            rec.level = trigger  # type: ignore[assignment]
        elif rec.kind == KIND_LIMIT:
            rec.level = price  # type: ignore[assignment]
            self._set_taker_first(rec, marketable(rec.side, rec.level, now))
        rec.active_from = max(rec.active_from, active_from)
        self._change(rec, amend_ack_event(before), what, values=_live_values(rec))


def _describe_amend(rec: SimOrder, qty: float, price: float | None, trigger: float | None) -> str:
    """The reason text of an amend's events, e.g. `amend price 98.0->97.5`."""
    parts = [f"{name} {a}->{b}" for name, a, b in (("qty", rec.qty, qty), ("price", rec.price, price),
                                                    ("trigger", rec.trigger, trigger)) if a != b]
    return "amend " + ", ".join(parts) if parts else "amend (no change)"


def _live_values(rec: SimOrder) -> OrderRequest:
    """The record's current values as a request (what an amend's answer tells a mirror)."""
    r = rec.request
    return OrderRequest(rec.client_id, rec.side, rec.type, rec.qty, rec.price, rec.trigger, r.tif, rec.reduce_only,
                        rec.role, rec.tag, r.created_bar, rec.expire_bar, rec.attached, r.origin)
