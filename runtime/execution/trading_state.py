"""TradingState: the venue-neutral picture of one symbol's trading, built only from backend events.

Every backend (the simulator, the Bybit emulator, Bybit demo/live) emits `Fill`s and `OrderEvent`s;
`TradingState.apply` takes them in order and keeps:

- a mirror of every order, keyed by client id (Bybit's orderLinkId), moved through the one state
  machine (`order_state`), with the working ones, the pending order of each tag, the position's
  protection orders and each tag's last price (`T.price`);
- the position (through `ledger.apply_fill`, the arithmetic the simulator uses too) and what the
  Play language reads of it: when it opened, its first entry and first stop (for `position.r`),
  whether a partial close filled, which tags filled into it;
- the account: cash (wallet balance: start + realized PnL - fees), fees, realized PnL;
- history for the report: fills, trades (flat -> position -> flat; a flip ends one and starts the
  next), the open trade, refused intents, and a (bar, qty, avg entry, cash) row per fill.

The strategy's state view, the report, and later the journal, the reconciler and the console read
this and never a venue's insides. Nothing here does I/O or reads a clock.

Rules it applies itself, because they are the language's and not a venue's (PLAY-LANGUAGE.md 6):
protection follows the position's size; a position's per-position words reset when it closes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from playdeck.runtime.execution.ledger import FLAT, Position, apply_fill
from playdeck.runtime.execution.order_state import TRANSITIONS, Ev, IllegalTransition
from playdeck.runtime.execution.orders import (
    CashFlow,
    Fill,
    Instrument,
    OrderEvent,
    OrderRecord,
    OrderRole,
    OrderStatus,
    RefusalCode,
    Refused,
    rekey_refused,
)

__all__ = ["EXIT_REASONS", "OpenTrade", "RefusedIntent", "Trade", "TradingState"]

_NAN = math.nan
_TRANSITIONS_GET = TRANSITIONS.get
_SUBMITTED = OrderStatus.SUBMITTED
_ACCEPTS = frozenset({Ev.ACCEPT, Ev.ACCEPT_CONDITIONAL})
_SCALE, _PARTIAL_CLOSE, _STOP_LOSS = OrderRole.SCALE, OrderRole.PARTIAL_CLOSE, OrderRole.STOP_LOSS
_LIQUIDATION = OrderRole.LIQUIDATION


class Trade(NamedTuple):
    """One round trip, flat -> position -> flat. `qty` is all it entered (= all it exited), so
    (exit_price - entry_price) x qty is its gross PnL for a long; `pnl` is net of `fees`."""

    side: str
    entry_bar: int
    exit_bar: int
    qty: float
    entry_price: float
    exit_price: float
    pnl: float
    fees: float
    # what closed it (7.6): signal (a block's order), stop_loss, take_profit, trail, liquidation, or
    # end (still open when the run ended: valued at the last close, no exit fee)
    exit_reason: str = "signal"

    @property
    def return_pct(self) -> float:
        """Net PnL over the notional it entered (qty x average entry), in percent."""
        return self.pnl / (self.qty * self.entry_price) * 100.0


# The exit reason of a trade closed by a fill of each role (every other role is a block's order).
EXIT_REASONS = {"stop_loss": "stop_loss", "take_profit": "take_profit", "trail": "trail",
                "liquidation": "liquidation"}


class RefusedIntent(NamedTuple):
    """An intent that became no working order, and why (rejections.csv: one row each)."""

    bar: int
    kind: str  # the action (market, limit, stop_loss, ...)
    tag: str | None
    reason: str
    where: str  # file:line:col of the action
    code: RefusalCode | None = None


class OpenTrade:
    """The running sums of the round trip in progress."""

    __slots__ = ("side", "entry_bar", "in_qty", "in_val", "out_qty", "out_val", "pnl", "fees")

    def __init__(self, side: str, entry_bar: int) -> None:
        self.side = side
        self.entry_bar = entry_bar
        self.in_qty = self.in_val = self.out_qty = self.out_val = self.pnl = self.fees = 0.0


class TradingState:
    def __init__(self, instrument: Instrument, equity: float, *, keep_events: bool = False,
                 solvent: bool = True) -> None:
        """`solvent`: check that equity never falls below 0 (off only to replay bare fills)."""
        self.instrument = instrument
        self.initial_equity = equity
        self._dp = instrument.qty_decimals
        self._half_step = instrument.qty_step / 2.0

        # orders
        self.orders: dict[str, OrderRecord] = {}  # every order ever, by client id, in submission order
        self.open: dict[str, OrderRecord] = {}  # the working ones (the same dict for the state's life)
        self.pending_by_tag: dict[str, OrderRecord] = {}
        self.protection: dict[str, OrderRecord] = {}  # stop_loss / take_profit / trail of the position
        self.tag_prices: dict[str, float] = {}  # T.price: limit (else trigger) of the last order accepted

        # position and account
        self.position: Position = FLAT
        self.cash = equity
        self.realized_pnl = 0.0
        self.fees_paid = 0.0
        self.opened_bar: int | None = None
        self.first_entry_price = _NAN
        self.first_entry_qty = 0.0  # the size the position opened with (position.r's initial risk)
        self.first_stop_price = _NAN
        self.reduced = False
        self.filled_tags: set[str] = set()

        # history
        self.fills: list[Fill] = []
        self.trades: list[Trade] = []
        self.open_trade: OpenTrade | None = None
        self.snapshots: list[tuple[int, float, float, float]] = []  # (bar, qty, avg entry, cash) after each fill
        self.refusals: list[RefusedIntent] = []
        self.funding: list[CashFlow] = []  # each funding payment (funding.csv)
        self.funding_paid = 0.0  # USDT, >= 0
        self.funding_received = 0.0
        self.insurance = 0.0  # USDT the insurance fund covered past the wallet (liquidations)
        self.liquidations: list[Fill] = []
        # every event applied, oldest first, when asked for (tests, a console's log); off for speed
        self.events: list[Fill | OrderEvent | Refused] = []
        self._keep_events = keep_events
        self._solvent = solvent

    # ------------------------------------------------------------------ reads
    @property
    def qty(self) -> float:
        return self.position.qty

    @property
    def avg_entry(self) -> float:
        return self.position.avg_entry

    @property
    def layers(self) -> int:
        return self.position.layers

    def upnl(self, price: float) -> float:
        q = self.position.qty
        return 0.0 if q == 0.0 else q * (price - self.position.avg_entry)

    def equity(self, price: float) -> float:
        """Cash plus the position's unrealized PnL at `price`."""
        return self.cash + self.upnl(price)

    def status(self, client_id: str) -> OrderStatus:
        return self.orders[client_id].path[-1]

    def tag_filled(self, tag: str) -> bool:
        return tag in self.filled_tags

    # ------------------------------------------------------------------ events
    def apply_all(self, events: list[Fill | OrderEvent | Refused]) -> None:
        if self._keep_events:
            self.events.extend(events)
        fill_type, event_type = Fill, OrderEvent
        for e in events:
            cls = e.__class__
            if cls is event_type:
                self.apply_event(e)  # type: ignore[arg-type]
            elif cls is fill_type:
                self.apply_fill(e)  # type: ignore[arg-type]
            else:
                self.apply(e)

    def apply(self, event: Fill | OrderEvent | Refused) -> None:
        """Apply one event (`apply_all` for a batch, which keeps them when asked)."""
        if isinstance(event, OrderEvent):
            self.apply_event(event)
        elif isinstance(event, Fill):
            self.apply_fill(event)
        elif isinstance(event, CashFlow):
            self.apply_cash(event)
        elif isinstance(event, RefusedIntent):
            self.refusals.append(event)  # a refused intent read back from a journal
        elif isinstance(event, Refused):
            # Part of an earlier command refused at a fill (attached protection): a refused part of
            # the intent that sent it.
            self.refusals.append(RefusedIntent(event.bar, event.kind, None, event.reason, event.where, event.code))
        else:
            raise TypeError(f"not a backend event: {event!r}")

    def apply_event(self, e: OrderEvent) -> None:
        if e.old is None:
            values = e.values
            if values is None:
                raise ValueError(f"order {e.client_id}: a Submitted event must carry the order's values")
            known = self.orders.get(e.client_id)
            if known is not None:
                if known.path[-1] is not OrderStatus.REJECTED:
                    raise ValueError(f"order {e.client_id} was submitted twice")
                rekey_refused(self.orders, known)  # as the venue does: a refused create frees its id
            self.orders[e.client_id] = OrderRecord(values, e.order_id)
            return
        rec = self.orders[e.client_id]
        if not rec.order_id and e.order_id:
            rec.order_id = e.order_id  # a live venue names the order in its answer, after Submitted
        path = rec.path
        old = path[-1]
        new = _TRANSITIONS_GET((old, e.ev))  # the one state machine, inlined: every event comes here
        if new is None or new is not e.new:
            raise IllegalTransition(old, e.ev, rec.client_id)
        path.append(new)
        rec.reason = e.reason
        values = e.values
        if values is not None:
            rec.qty, rec.price, rec.trigger = values.qty, values.price, values.trigger
            rec.expire_bar, rec.attached = values.expire_bar, values.attached
        if new.is_final:
            self._finished(rec)
        elif old is _SUBMITTED and e.ev in _ACCEPTS:
            self._working(rec)
        elif values is not None and e.ev is not Ev.AMEND and rec.tag is not None:
            ref = rec.price if rec.price is not None else rec.trigger
            if ref is not None:
                self.tag_prices[rec.tag] = ref

    def _working(self, rec: OrderRecord) -> None:
        self.open[rec.client_id] = rec
        tag = rec.tag
        if tag is not None:
            self.pending_by_tag[tag] = rec
            ref = rec.price if rec.price is not None else rec.trigger
            if ref is not None:
                self.tag_prices[tag] = ref
        role = rec.role
        if role.is_protection:
            self.protection[role.value] = rec
            if role is _STOP_LOSS and self.first_stop_price != self.first_stop_price:
                self.first_stop_price = rec.trigger  # type: ignore[assignment]

    def _finished(self, rec: OrderRecord) -> None:
        self.open.pop(rec.client_id, None)
        tag = rec.tag
        if tag is not None and self.pending_by_tag.get(tag) is rec:
            del self.pending_by_tag[tag]
        if rec.role.is_protection:
            kind = rec.role.value
            if self.protection.get(kind) is rec:
                del self.protection[kind]

    def apply_fill(self, f: Fill) -> None:
        self.fills.append(f)
        rec = self.orders.get(f.client_id)
        if rec is not None:
            before = rec.filled_qty
            rec.filled_qty = round(before + f.qty, self._dp)
            rec.avg_price = f.price if not before else (rec.avg_price * before + f.price * f.qty) / rec.filled_qty
        role = f.role
        qty = f.qty
        sign = f.side.sign
        before = self.position
        effect = apply_fill(before, sign, qty, f.price, role is _SCALE, self._dp, self._half_step)
        after = self.position = effect.position
        # The venue's figure (the simulator's is this same ledger's; Bybit's is its execPnl).
        realized = f.realized_pnl
        self.cash += realized - f.fee
        self.realized_pnl += realized
        self.fees_paid += f.fee

        trade = self.open_trade
        if effect.reduced > 0.0 and trade is not None:
            share = effect.reduced / qty
            trade.out_qty += effect.reduced
            trade.out_val += effect.reduced * f.price
            trade.pnl += realized
            trade.fees += f.fee * share
            if effect.closed:
                self._close_trade(trade, f.bar, EXIT_REASONS.get(role._value_, "signal") if role else "signal")
                trade = None
        if effect.reduced > 0.0 and not effect.closed and role is _PARTIAL_CLOSE:
            self.reduced = True
        if effect.closed:
            self._position_closed()
        if effect.opened > 0.0:
            if trade is None:
                trade = self.open_trade = OpenTrade("long" if sign > 0 else "short", f.bar)
                self.opened_bar = f.bar
                self.first_entry_price = f.price
                self.first_entry_qty = effect.opened
                self.first_stop_price = _NAN
                self.reduced = False
            trade.in_qty += effect.opened
            trade.in_val += effect.opened * f.price
            trade.fees += f.fee * (effect.opened / qty)
            # Only a fill that opened or added to a position is "filled" into one.
            if f.tag is not None:
                self.filled_tags.add(f.tag)
        if self.protection and after.qty != 0.0:
            size = abs(after.qty)
            for p in self.protection.values():
                p.qty = size  # protection is for the whole position (spec 6)
        if role is _LIQUIDATION:
            self.liquidations.append(f)
        elif self._solvent and self.cash + (after.qty * (f.price - after.avg_entry) if after.qty != 0.0 else 0.0) < -1e-9 * f.price:
            # 7.4: equity below 0 is impossible (a liquidation comes first, and the insurance fund
            # covers what it loses past the wallet); a fill that leaves it there is a venue's bug.
            raise AssertionError(f"equity below 0 after fill {f}")
        self.snapshots.append((f.bar, after.qty, after.avg_entry, self.cash))

    def apply_cash(self, e: CashFlow) -> None:
        """Funding paid or received, or the insurance fund's cover: the wallet moves, equity with it."""
        self.cash += e.amount
        if e.kind == "funding":
            self.funding.append(e)
            if e.amount < 0.0:
                self.funding_paid -= e.amount
            else:
                self.funding_received += e.amount
        elif e.kind == "insurance":
            self.insurance += e.amount
        else:
            raise ValueError(f"unknown cash flow {e.kind!r}")
        self.snapshots.append((e.bar, self.position.qty, self.position.avg_entry, self.cash))
        if self.cash < 0.0 and e.kind == "insurance":
            raise AssertionError(f"the wallet is {self.cash} after the insurance fund's cover")

    def _close_trade(self, t: OpenTrade, bar: int, reason: str) -> None:
        self.trades.append(Trade(t.side, t.entry_bar, bar, float(f"{t.in_qty:.12g}"), t.in_val / t.in_qty,
                                 t.out_val / max(t.out_qty, 1e-18), t.pnl - t.fees, t.fees, reason))
        self.open_trade = None

    def _position_closed(self) -> None:
        # What belonged to the position: the venue cancels its orders (their events follow); the
        # language's per-position words start again.
        self.protection.clear()
        self.filled_tags.clear()
        self.opened_bar = None
        self.first_entry_price = _NAN
        self.first_entry_qty = 0.0
        self.first_stop_price = _NAN
        self.reduced = False

    def refuse(self, bar: int, kind: str, tag: str | None, reason: str, where: str,
               code: RefusalCode | None = None) -> None:
        """Record an intent refused before it reached a venue, or by the venue's answer (kept with the
        events, when they are kept: a journal replays it like one)."""
        refused = RefusedIntent(bar, kind, tag, reason, where, code)
        self.refusals.append(refused)
        if self._keep_events:
            self.events.append(refused)
