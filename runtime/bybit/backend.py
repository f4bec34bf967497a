"""BybitBackend: the ExecutionBackend and VenueClock protocols over Bybit's V5 API (demo, live, or
the emulator: they differ only in endpoints and keys).

What Bybit reports drives the one order state machine (`TRANSITIONS`); every change becomes the
same `OrderEvent`s and `Fill`s the simulator emits, so the engine's `TradingState` is built from
this backend's events exactly as from the simulator's. Reports reach it from the private stream
(`on_private`) and from REST (commands' answers, `reconcile`); both go through one idempotent path:

- an order report moves its order along `path_to(current, reported)`; a report that needs
  executions not seen yet (Filled, or cancelled after a partial fill) waits for them, so a fill is
  never applied to a finished order; a stale report (an order with a cancel or amend in flight
  that shows nothing new) is ignored, the answer to the request will tell;
- an execution is applied once (by execId): `Trigger` first for a conditional, the `Fill`, then
  `fill` or `fill_partial` by its leavesQty. An execution of an order not known yet (Bybit sends
  the execution of a stop-loss it made before the order) waits for that order's report;
- orders Bybit makes itself (the position's TP/SL from trading-stop, a liquidation) are adopted
  when their report arrives.

What the language asks and Bybit cannot do is done here, the same way the simulator does it:
- attached protection is placed when its entry fills, at the fill price (`trading-stop` for
  stop_loss / take_profit, this backend's own trail for `trail`, see trail.py);
- `expire N bars` is a cancel at the close of the bar, recorded `Expired`;
- pending scale orders are cancelled when the position they were for closes;
- the trail moves at bar closes (`close_bar`).
Those reactions are requests, so they run in `catch_up()`, never inside a stream callback.

Commands emit what they know at once (`Submitted`, `PendingAmend`, `PendingCancel`, an ack's
`New` / `Untriggered`, a refusal's `Rejected`); the rest follows from reports. A create whose answer
never came stays `Submitted` until `reconcile` finds the order or proves it absent.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs

from playdeck.runtime.bybit.client import BybitRest
from playdeck.runtime.bybit.errors import BybitFailure
from playdeck.runtime.bybit.mapping import STOP_ORDER_ROLES, create_fields, num, refusal_for
from playdeck.runtime.bybit.live_order import LiveOrder
from playdeck.runtime.bybit.reconciler import StateReconciler
from playdeck.runtime.bybit.reports import ExecutionReport, OrderReport, execution_report, order_report
from playdeck.runtime.bybit.trail import TrailPlan
from playdeck.runtime.execution.backend import PositionSnapshot
from playdeck.runtime.execution.venue_status import DriftEvent, EndpointBudget, HealthSnapshot, ReconciliationSnapshot
from playdeck.runtime.execution.ledger import FLAT, apply_fill
from playdeck.runtime.execution.order_state import TRANSITIONS, Ev, IllegalTransition, amend_ack_event, path_to
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
)
from playdeck.runtime.sim.exchange import FUNDING_MS
from playdeck.runtime.sim.protection import protection_request

__all__ = ["BybitBackend", "LiveOrder"]

_CLOSED = object()  # the end of an events() iteration

log = logging.getLogger("playdeck.bybit")

_S = OrderStatus
_SHOW_FILLS = (_S.FILLED, _S.PARTIALLY_FILLED_CANCELED, _S.PARTIALLY_FILLED)  # wait for their executions
_IN_FLIGHT = (_S.PENDING_CANCEL, _S.PENDING_AMEND)
_ENDED_BY_US = (_S.CANCELLED, _S.DEACTIVATED)


class BybitBackend:
    def __init__(self, rest: BybitRest, *, instrument: Instrument, equity: float,
                 on_events: Callable[[list[Any]], None] | None = None, id_prefix: str = "pd") -> None:
        """`on_events` gets every batch of events before the next request goes out (the journal)."""
        self.rest = rest
        self.inst = instrument
        self.symbol = instrument.symbol
        self._price_dp = instrument.price_decimals
        self._on_events = on_events
        self._id_prefix = id_prefix
        self.orders: dict[str, LiveOrder] = {}
        self._by_order_id: dict[str, LiveOrder] = {}
        self._events: list[Any] = []
        self._unsaved: list[Any] = []
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()  # reports not yet applied
        self._orphans: dict[str, list[dict[str, Any]]] = {}  # executions of orders not known yet
        self._reactions: deque[tuple[str, Any]] = deque()
        self.exec_ids: set[str] = set()
        self.last_exec_ms = 0
        self.exec_since: int | None = None  # where reconciliation looks for executions before any is seen
        # the ledger of our own fills: realized PnL, the wallet, the liquidation's insurance
        self.position = FLAT
        self.cash = equity
        self.realized = 0.0
        self._dp = instrument.qty_decimals
        self._half_step = instrument.qty_step / 2.0
        # time: fills belong to `bar_now` (the bar being walked / forming); commands are sent at the
        # close of `bar` (the last closed bar)
        self.bar = -1
        self.ts = 0
        self.bar_now = 0
        self.ts_now = 0
        self.last_close = math.nan
        self.at: float | None = None  # the market price of a lockstep pause, inside bar_now
        self.trail: TrailPlan | None = None
        self.trail_id: str | None = None
        self._n = 0  # for the ids of protection records
        self.drift: list[tuple[str, Any, Any, str]] = []
        self.on_drift: Callable[[str, Any, Any, str], None] | None = None
        self.on_log: Callable[[str], None] | None = None  # the runner's log (default: logging)
        self._listeners: list[asyncio.Queue[Any]] = []  # consumers of events()
        # for the console's health and reconciliation panes (the runner fills in what it owns)
        self.venue_name = "bybit"
        self.stream: Any = None  # the private ResilientStream
        self.journal_path: str | None = None
        self.reconciler = StateReconciler(self)
        self._drift_ts: list[int] = []

    # ================================================================== VenueClock (the engine's side)
    def bar_closed(self, bar: int, ts: int, o: float, h: float, l: float, c: float) -> None:
        """The bar has happened at the venue; its reports were applied by `catch_up` already."""
        self.at_close(bar, ts, c)

    def at_close(self, bar: int, ts: int, close: float) -> None:
        self.bar, self.ts, self.last_close = bar, ts, close
        self.at = None

    def next_bar_due(self, i: int, limit: int) -> int:
        return i  # a live venue sees every bar

    def drain_events(self) -> list[Any]:
        self._save()
        events = self._events
        self._events = []
        return events

    # ------------------------------------------------------------------ the runner's side
    def bar_opened(self, bar: int, ts: int) -> None:
        """Bar `bar` (opening at `ts`) is now the one trading: its fills are its."""
        self.bar_now, self.ts_now = bar, ts
        self.at = None

    def on_private(self, msg: dict[str, Any]) -> None:
        """A private-stream push (order, execution, position, wallet): queued for `catch_up`."""
        topic = str(msg.get("topic", "")).split(".")[0]
        if topic in ("order", "execution"):
            for item in msg.get("data") or []:
                if item.get("symbol", self.symbol) == self.symbol:
                    self._queue.append((topic, item))

    async def catch_up(self) -> None:
        """Apply every report received so far, then carry out what they call for (protection of a
        filled entry, cancels of a closed position's scale orders), until nothing is left."""
        while True:
            self._apply_queue()
            if not self._reactions:
                break
            kind, arg = self._reactions.popleft()
            if kind == "protect":
                await self._protect_fill(*arg)
            elif kind == "cancel":
                rec = self.orders.get(arg[0])
                if rec is not None and rec.is_open and rec.status is not _S.PENDING_CANCEL:
                    await self._cancel(rec, arg[1])
        self._save()

    async def close_bar(self, bar: int, ts: int, o: float, h: float, l: float, c: float,
                        path: list[float] | None = None) -> None:
        """At the close of `bar`, after the venue's own close: `expire N bars` ends, the trail
        follows the bar (inside the bar it was set in: `path`, the prices after it was set) and
        moves. Commands go out at this close."""
        self.at_close(bar, ts, c)
        await self.catch_up()
        for rec in list(self.orders.values()):
            r = rec.request
            if rec.is_open and r.expire_bar is not None and bar >= r.expire_bar and not r.role.is_protection \
                    and rec.status is not _S.PENDING_CANCEL:
                await self._cancel(rec, "expire")
        await self.catch_up()
        trail = self.trail
        rec = self.orders.get(self.trail_id or "")
        if trail is not None and rec is not None and rec.is_open:
            if path:
                trail.follow(path, bar)
            level = trail.ratchet(bar, h, l, c, self.inst)
            if level is not None and rec.status is _S.UNTRIGGERED:
                await self._amend(rec, trigger=level, why="trail")
        await self.catch_up()

    def follow_path(self, prices: list[float]) -> None:
        """Market prices inside the bar being walked (lockstep: what the emulator's path passed)."""
        if self.trail is not None and prices:
            self.trail.follow(prices, self.bar_now)

    def pause_at(self, price: float) -> None:
        """Lockstep: the venue waits inside `bar_now` at `price` (after a fill)."""
        self.at = price

    # ================================================================== ExecutionBackend
    async def submit_order(self, order: OrderRequest) -> OrderResult:
        rec = LiveOrder(order)
        self.orders[order.client_id] = rec
        self._emit(OrderEvent("", None, _S.SUBMITTED, self._cmd_bar, "", order.client_id, None, order))
        try:
            answer = await self._req("create", **create_fields(order, self.inst, self.symbol))
        except BybitFailure as failure:
            return await self._create_failed(rec, failure)
        self._bind(rec, str(answer.get("orderId", "")))
        if order.tif is TimeInForce.POST_ONLY:
            # A post-only limit that would take liquidity is made and cancelled by Bybit at once: its
            # report says so, and playdeck records it Rejected (bybit-v5.md, playdeck's decisions).
            found = await self._req("order", self.symbol, order.client_id)
            if found is not None:
                report = order_report(found)
                if report.status is _S.CANCELLED and "PostOnly" in report.reject_reason:
                    refusal = Refusal(RefusalCode.POST_ONLY_WOULD_TAKE,
                                      f"post_only limit would take liquidity ({report.reject_reason})")
                    if rec.status is _S.SUBMITTED:
                        self._change(rec, Ev.REJECT, refusal.text, code=refusal.code)
                    return OrderResult(False, order.client_id, rec.status, rec.order_id, refusal)
        if rec.status is _S.SUBMITTED:
            self._change(rec, Ev.ACCEPT_CONDITIONAL if order.type.is_conditional else Ev.ACCEPT)
        return OrderResult(True, order.client_id, rec.status, rec.order_id)

    async def _create_failed(self, rec: LiveOrder, failure: BybitFailure) -> OrderResult:
        order = rec.request
        if failure.code == 110072:
            # An earlier try got through (a lost answer, a restart): adopt what Bybit has.
            found = await self._req("order", self.symbol, order.client_id)
            if found is not None:
                self._log(f"order {order.client_id}: already at Bybit (110072), adopted")
                self._bind(rec, str(found.get("orderId", "")))
                if rec.status is _S.SUBMITTED:
                    self._change(rec, Ev.ACCEPT_CONDITIONAL if order.type.is_conditional else Ev.ACCEPT)
                self._queue.append(("order", found))
                self._apply_queue()
                return OrderResult(True, order.client_id, rec.status, rec.order_id)
        if failure.network or failure.code in (10000, 10016) or (failure.http or 0) >= 500:
            # No answer: the order may or may not exist. Never guess: reconciliation will tell.
            self._log(f"order {order.client_id}: no answer from Bybit ({failure}); left Submitted until "
                      "reconciliation finds it or proves it absent")
            return OrderResult(True, order.client_id, rec.status, None)
        refusal = refusal_for(failure)
        self._log(f"order {order.client_id} rejected: {refusal.text}")
        self._change(rec, Ev.REJECT, refusal.text, code=refusal.code)
        return OrderResult(False, order.client_id, _S.REJECTED, None, refusal)

    async def amend_order(self, client_id: str, *, qty: float | None = None, price: float | None = None,
                          trigger: float | None = None, expire_bar: int | None | object = KEEP,
                          attached: tuple[ProtectionSpec, ...] | object = KEEP) -> OrderResult:
        rec = self.orders.get(client_id)
        if rec is None or not rec.is_open:
            status = _S.REJECTED if rec is None else rec.status
            return OrderResult(False, client_id, status, None if rec is None else rec.order_id,
                               Refusal(RefusalCode.NOT_OPEN, f"order {client_id} is not open"))
        r = rec.request
        inst = self.inst
        new_qty = r.qty if qty is None else inst.round_qty(qty)
        new_price = r.price if price is None else inst.round_price(price)
        new_trigger = r.trigger if trigger is None or rec.triggered else inst.round_price(trigger)
        own = {}
        if expire_bar is not KEEP:
            own["expire_bar"] = expire_bar
        if attached is not KEEP:
            own["attached"] = attached
        if (new_qty, new_price, new_trigger) == (r.qty, r.price, r.trigger):
            # Only playdeck's own attributes change: nothing to ask Bybit.
            rec.request = attrs.evolve(r, **own)
            return OrderResult(True, client_id, rec.status, rec.order_id)
        return await self._amend(rec, qty=None if new_qty == r.qty else new_qty,
                                 price=None if new_price == r.price else new_price,
                                 trigger=None if new_trigger == r.trigger else new_trigger, own=own)

    async def _amend(self, rec: LiveOrder, *, qty: float | None = None, price: float | None = None,
                     trigger: float | None = None, own: dict[str, Any] | None = None, why: str = "") -> OrderResult:
        r = rec.request
        before = rec.status
        if before not in (_S.NEW, _S.PARTIALLY_FILLED, _S.UNTRIGGERED):
            return OrderResult(False, rec.client_id, before, rec.order_id,
                               Refusal(RefusalCode.BAD_AMEND, f"order {rec.client_id} is {before.value}"))
        fields: dict[str, Any] = {"symbol": self.symbol}
        fields.update(self._ref(rec))
        if qty is not None:
            fields["qty"] = num(qty, self._dp)
        if price is not None:
            fields["price"] = num(price, self._price_dp)
        if trigger is not None:
            fields["triggerPrice"] = num(trigger, self._price_dp)
        what = ", ".join(f"{k} {a}->{b}" for k, a, b in (("qty", r.qty, qty), ("price", r.price, price),
                                                           ("trigger", r.trigger, trigger)) if b is not None)
        self._change(rec, Ev.AMEND, f"amend {what}" + (f" ({why})" if why else ""))
        try:
            await self._req("amend", **fields)
        except BybitFailure as failure:
            if rec.status is _S.PENDING_AMEND:
                self._change(rec, amend_ack_event(before), f"amend refused: {failure}")
            if failure.code == 110001:
                await self._look_up(rec)  # it finished meanwhile (filled, cancelled): the report says how
            refusal = refusal_for(failure)
            return OrderResult(False, rec.client_id, rec.status, rec.order_id, refusal)
        values = attrs.evolve(r, qty=self._qty_of(rec) if qty is None else qty,
                              price=r.price if price is None else price,
                              trigger=r.trigger if trigger is None else trigger, **(own or {}))
        rec.request = values
        if rec.status is _S.PENDING_AMEND:
            self._change(rec, amend_ack_event(before), f"amend {what}", values=values)
        return OrderResult(True, rec.client_id, rec.status, rec.order_id)

    async def cancel_order(self, client_id: str) -> bool:
        rec = self.orders.get(client_id)
        if rec is None or not rec.is_open or rec.status is _S.PENDING_CANCEL:
            return False
        return await self._cancel(rec, "")

    async def _cancel(self, rec: LiveOrder, why: str) -> bool:
        rec.why_cancel = why
        self._change(rec, Ev.CANCEL_REQUEST, why)
        try:
            await self._req("call", "cancel_order", category="linear", symbol=self.symbol, **self._ref(rec))
        except BybitFailure as failure:
            # 110001: gone already (filled, or ended by Bybit): its report tells which
            self._log(f"cancel {rec.client_id}: {failure}")
            await self._look_up(rec)
            return False
        await self._look_up(rec)
        return True

    async def cancel_all(self) -> int:
        open_ = [rec for rec in self.orders.values() if rec.is_open and rec.status is not _S.PENDING_CANCEL]
        for rec in open_:
            rec.why_cancel = ""
            self._change(rec, Ev.CANCEL_REQUEST, "cancel all")
        if open_:
            try:
                await self._req("cancel_all", self.symbol)
            except BybitFailure as failure:
                self._log(f"cancel all: {failure}")
            for rec in open_:
                await self._look_up(rec)
        return len(open_)

    async def set_protection(self, kind: str, value: float, *, percent: bool = False) -> OrderResult:
        return await self._set_protection(kind, value, percent, reference=self.last_close, origin="")

    async def get_position(self) -> PositionSnapshot:
        q, avg, layers = self.position
        return PositionSnapshot(qty=q, avg_entry=avg, layers=layers, realized_pnl=self.realized,
                                upnl=0.0 if q == 0.0 else q * (self.last_close - avg))

    async def get_open_orders(self) -> list[OrderSnapshot]:
        return [rec.snapshot() for rec in self.orders.values() if rec.is_open]

    async def get_equity(self) -> float:
        q, avg, _ = self.position
        return self.cash + (0.0 if q == 0.0 else q * (self.last_close - avg))

    async def sync_state(self) -> None:
        await self.reconcile("asked")

    async def events(self) -> AsyncIterator[Any]:
        """Every event from now on, as it is emitted, for a consumer task beside the engine (the
        engine itself drains them); ends after `close()`."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            while True:
                event = await queue.get()
                if event is _CLOSED:
                    return
                yield event
        finally:
            self._listeners.remove(queue)

    def close(self) -> None:
        """End every `events()` iteration (after what it has been handed)."""
        for queue in self._listeners:
            queue.put_nowait(_CLOSED)

    # ================================================================== protection
    async def _set_protection(self, kind: str, value: float, percent: bool, *, reference: float,
                              origin: str, attached: bool = False) -> OrderResult:
        pos = self.position.qty
        if pos == 0.0:
            return OrderResult(False, None, _S.REJECTED, None,
                               Refusal(RefusalCode.NO_POSITION, f"can not set {kind} for zero position"))
        if kind == "trail":
            return await self._set_trail(value, percent, reference, origin, attached)
        level = self.inst.round_price(value)
        existing = self._protection(kind)
        current = None if existing is None else (existing.request.price if kind == "take_profit"
                                                  else existing.request.trigger)
        if existing is not None and current == level:
            return OrderResult(True, existing.client_id, existing.status, existing.order_id)
        field = "takeProfit" if kind == "take_profit" else "stopLoss"
        # A move of a resting level goes through PendingAmend as the simulator's does; one caught
        # mid-flight (triggering, another request out) is just sent, its report tells the rest.
        before = None if existing is None or existing.status not in (_S.NEW, _S.UNTRIGGERED) else existing.status
        if before is not None:
            self._change(existing, Ev.AMEND, f"{kind} {current}->{level}")
        try:
            await self._req("trading_stop", symbol=self.symbol, **{field: num(level, self._price_dp)})
        except BybitFailure as failure:
            if existing is not None:
                if existing.status is _S.PENDING_AMEND and before is not None:
                    self._change(existing, amend_ack_event(before), f"{kind} refused: {failure}")
                if failure.code != 34040:
                    return OrderResult(False, existing.client_id, existing.status, existing.order_id,
                                       refusal_for(failure))
                return OrderResult(True, existing.client_id, existing.status, existing.order_id)
            refusal = refusal_for(failure)
            rec = self._protection_record(kind, level, origin)
            self._change(rec, Ev.REJECT, refusal.text, code=refusal.code)
            return OrderResult(False, rec.client_id, _S.REJECTED, None, refusal)
        if existing is not None:
            values = attrs.evolve(existing.request, qty=self._qty_of(existing),
                                  **({"price": level} if kind == "take_profit" else {"trigger": level}))
            existing.request = values
            if existing.status is _S.PENDING_AMEND and before is not None:
                self._change(existing, amend_ack_event(before), f"{kind} moved to {level}", values=values)
            return OrderResult(True, existing.client_id, existing.status, existing.order_id)
        rec = self._protection_record(kind, level, origin)
        self._change(rec, Ev.ACCEPT if kind == "take_profit" else Ev.ACCEPT_CONDITIONAL)
        return OrderResult(True, rec.client_id, rec.status, None)

    def _protection_record(self, kind: str, level: float, origin: str) -> LiveOrder:
        """The local record of a TP/SL Bybit makes on trading-stop (bound to its order by stopOrderType
        when the report arrives)."""
        self._n += 1
        side = Side.SELL if self.position.qty > 0.0 else Side.BUY
        request = protection_request(kind, side, level, abs(self.position.qty), f"{kind}-{self._cmd_bar}-{self._n}",
                                     self._cmd_bar, origin)
        rec = LiveOrder(request, adopted=True)
        self.orders[request.client_id] = rec
        self._emit(OrderEvent("", None, _S.SUBMITTED, self._cmd_bar, "", request.client_id, None, request))
        return rec

    async def _set_trail(self, value: float, percent: bool, reference: float, origin: str,
                         attached: bool) -> OrderResult:
        long = self.position.qty > 0.0
        rec = self.orders.get(self.trail_id or "")
        bar = self._cmd_bar
        if rec is not None and rec.is_open and self.trail is not None:
            level = self.trail.reset(value, percent, reference, bar, self.inst)
            if level == rec.request.trigger:
                return OrderResult(True, rec.client_id, rec.status, rec.order_id)
            return await self._amend(rec, trigger=level, why="trail set again")
        plan = TrailPlan.start(long, value, percent, reference, bar, self.inst)
        if not plan.level > 0:
            what = f"{value * 100:g}%" if percent else f"{value:g}"
            return OrderResult(False, None, _S.REJECTED, None, Refusal(
                RefusalCode.BAD_PRICE, f"trail stop at {plan.level:g}: distance {what} from {reference:g}"))
        self._n += 1
        request = protection_request("trail", Side.SELL if long else Side.BUY, plan.level, abs(self.position.qty),
                                     f"{self._id_prefix}-trail-{bar}-{self._n}", bar, origin)
        result = await self.submit_order(request)
        if result.accepted:
            self.trail, self.trail_id = plan, request.client_id
        return result

    def _qty_of(self, rec: LiveOrder) -> float:
        """An order's qty now: protection is for the whole position, whatever it was set for."""
        r = rec.request
        return abs(self.position.qty) if r.role.is_protection and self.position.qty != 0.0 else r.qty

    def _protection(self, kind: str) -> LiveOrder | None:
        role = OrderRole(kind)
        for rec in self.orders.values():
            if rec.request.role is role and rec.is_open:
                return rec
        return None

    async def _protect_fill(self, rec: LiveOrder, price: float) -> None:
        """An entry with attached protection filled at `price`: place each at its fill-relative level."""
        for spec in rec.request.attached:
            result = await self._set_protection(spec.kind, spec.resolve(price), spec.percent, reference=price,
                                                origin=spec.where, attached=True)
            if not result.accepted:
                refusal = result.refusal
                assert refusal is not None
                self._emit(Refused(self.bar_now, spec.kind, refusal.text, spec.where, refusal.code))

    # ================================================================== reports
    def _apply_queue(self) -> None:
        while self._queue:
            topic, item = self._queue.popleft()
            if topic == "execution":
                self._on_execution(item)
            else:
                self._on_order(item)

    def _find(self, link: str, order_id: str) -> LiveOrder | None:
        if link:
            rec = self.orders.get(link)
            if rec is not None:
                return rec
        return self._by_order_id.get(order_id) if order_id else None

    def _bind(self, rec: LiveOrder, order_id: str) -> None:
        if order_id and not rec.order_id:
            rec.order_id = order_id
            self._by_order_id[order_id] = rec
            for item in self._orphans.pop(order_id, []):
                self._on_execution(item)

    def _on_order(self, item: dict[str, Any]) -> None:
        report = order_report(item)
        rec = self._find(report.order_link_id, report.order_id)
        if rec is None:
            rec = self._adopt(item, report)
            if rec is None:
                return
        self._bind(rec, report.order_id)
        self._move(rec, report)

    def _adopt(self, item: dict[str, Any], report: OrderReport) -> LiveOrder | None:
        """An order we did not send: a TP/SL Bybit made on trading-stop (bound to its local record),
        a liquidation, or an order found at Bybit (by hand, or lost from our books): adopted."""
        stop_type = str(item.get("stopOrderType", ""))
        role = STOP_ORDER_ROLES.get(stop_type)
        if role is not None and not report.order_link_id:
            for rec in self.orders.values():
                if rec.request.role is role and not rec.order_id and rec.adopted and rec.status is not _S.REJECTED:
                    return rec
        create_type = str(item.get("createType", ""))
        liquidation = create_type == "CreateByLiq"
        if report.status.is_final and not liquidation and report.cum_exec_qty == 0.0 and role is None:
            return None  # an order that ended without trading: nothing of ours to know
        if role is None:
            role = OrderRole.LIQUIDATION if liquidation else (
                OrderRole.CLOSE if report.reduce_only else OrderRole.ENTRY)
        if report.order_type == "Limit":
            otype = OrderType.STOP_LIMIT if report.trigger is not None else OrderType.LIMIT
        else:
            otype = OrderType.STOP if report.trigger is not None else OrderType.MARKET
        client_id = report.order_link_id or f"{role.value}-{report.order_id}"
        request = OrderRequest(client_id, report.side, otype, report.qty or abs(self.position.qty), report.price,
                               report.trigger, TimeInForce.GTC, report.reduce_only or role.is_protection, role, None,
                               self._cmd_bar, None)
        rec = LiveOrder(request, adopted=True)
        self.orders[client_id] = rec
        self._emit(OrderEvent("", None, _S.SUBMITTED, self._cmd_bar, "", client_id, None, request))
        if report.status is not _S.REJECTED:
            self._change(rec, Ev.ACCEPT_CONDITIONAL if otype.is_conditional and report.status is _S.UNTRIGGERED
                         else Ev.ACCEPT, "made by Bybit" if role in (OrderRole.LIQUIDATION,) or role.is_protection
                         else "found at Bybit")
        if not liquidation and not role.is_protection:
            self._drift("unknown order", None, {"orderId": report.order_id, "orderLinkId": report.order_link_id,
                                                "status": report.status.value}, "adopted")
        return rec

    def _move(self, rec: LiveOrder, report: OrderReport) -> None:
        target = report.status
        current = rec.status
        if target is current:
            self._values_changed(rec, report)
            return
        if current.is_final or current is _S.REJECTED:
            if current is _S.EXPIRED and target in _ENDED_BY_US:
                return  # our expiry, as Bybit calls it
            if target is not current:
                self._drift("order status", current.value, target.value, "kept the local final status")
            return
        if target in _SHOW_FILLS and report.cum_exec_qty > rec.filled + self._half_step:
            rec.held = report  # its executions come first
            return
        if target in (_S.CANCELLED, _S.PARTIALLY_FILLED_CANCELED) and rec.filled > 0.0:
            target = _S.PARTIALLY_FILLED_CANCELED
        if current in _IN_FLIGHT and not target.is_final and target not in (_S.TRIGGERED, _S.FILLED):
            return  # the answer to our request tells; this report was sent before it
        if current is _S.SUBMITTED and target is _S.CANCELLED and "PostOnly" in report.reject_reason:
            self._change(rec, Ev.REJECT, report.reject_reason, code=RefusalCode.POST_ONLY_WOULD_TAKE)
            return
        reason = _end_reason(report, rec)
        if rec.why_cancel == "expire" and target in _ENDED_BY_US and current is _S.PENDING_CANCEL:
            self._change(rec, Ev.EXPIRE, f"expired at the close of bar {self.bar}")
            return
        events = path_to(current, target)
        if events is None:
            raise IllegalTransition(current, f"report {target.value}", rec.client_id)
        for ev in events:
            if ev is Ev.TRIGGER:
                rec.triggered = True
            values = None
            if ev is Ev.ACCEPT and current is _S.TRIGGERED:
                values = rec.request  # a stop-limit now rests as a limit
            self._change(rec, ev, reason if rec.status.is_final or ev in (Ev.CANCEL, Ev.DEACTIVATE, Ev.CANCEL_PARTIAL,
                                                                          Ev.REJECT) else "", values=values)
        self._values_changed(rec, report)

    def _values_changed(self, rec: LiveOrder, report: OrderReport) -> None:
        """Bybit moved a resting order's price or trigger itself: an amend, in the state machine's words."""
        if rec.status not in (_S.NEW, _S.UNTRIGGERED) or rec.adopted is False:
            return
        r = rec.request
        price = report.price if r.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else r.price
        trigger = report.trigger if r.type.is_conditional and not rec.triggered else r.trigger
        if (price, trigger) == (r.price, r.trigger) or (price is None and trigger is None):
            return
        values = attrs.evolve(r, price=price, trigger=trigger, qty=self._qty_of(rec))
        before = rec.status
        self._change(rec, Ev.AMEND, "moved by Bybit")
        rec.request = values
        self._change(rec, amend_ack_event(before), "moved by Bybit", values=values)

    def _on_execution(self, item: dict[str, Any]) -> None:
        e = execution_report(item)
        if e.exec_id in self.exec_ids:
            return
        self.last_exec_ms = max(self.last_exec_ms, e.exec_time)
        if e.exec_type == "Funding":
            self.exec_ids.add(e.exec_id)
            self._funding(e)
            return
        rec = self._find(e.order_link_id, e.order_id)
        if rec is None:
            self._orphans.setdefault(e.order_id, []).append(item)
            return
        self.exec_ids.add(e.exec_id)
        self._fill(rec, e, item)

    def _fill(self, rec: LiveOrder, e: ExecutionReport, item: dict[str, Any]) -> None:
        r = rec.request
        if r.type.is_conditional and not rec.triggered:
            rec.triggered = True
            if rec.status in (_S.UNTRIGGERED, _S.PENDING_AMEND, _S.PENDING_CANCEL):
                self._change(rec, Ev.TRIGGER, f"triggered at {r.trigger}")
        sign = e.side.sign
        role = r.role
        pos_before = self.position
        effect = apply_fill(pos_before, sign, e.qty, e.price, role is OrderRole.SCALE, self._dp, self._half_step)
        self.position = effect.position
        self.realized += effect.realized
        self.cash += effect.realized - e.fee
        fill = Fill(self.bar_now, self.ts_now, rec.order_id, r.tag, e.side, e.qty, e.price, e.fee,
                    "maker" if e.is_maker else "taker", role, effect.realized, rec.client_id, None, e.exec_id)
        self._emit(fill)
        rec.filled = round(rec.filled + e.qty, self._dp)
        leaves = float(item.get("leavesQty") or 0.0)
        done = leaves < self._half_step
        self._change(rec, Ev.FILL if done else Ev.FILL_PARTIAL, "")
        if role is OrderRole.LIQUIDATION and self.cash < 0.0:
            cover = -self.cash
            self.cash = 0.0
            self._emit(CashFlow(self.bar_now, self.ts_now, "insurance", cover))
        if effect.closed:
            # What belonged to the position: Bybit clears its TP/SL and reduce-only orders; the
            # language's scale orders were for it too.
            self.trail = None
            for other in self.orders.values():
                if other.is_open and other.request.role is OrderRole.SCALE and other.status is not _S.PENDING_CANCEL:
                    self._reactions.append(("cancel", (other.client_id, "position closed")))
        if effect.opened > 0.0 and r.attached and role in (OrderRole.ENTRY, OrderRole.SCALE):
            self._reactions.append(("protect", (rec, e.price)))
        if rec.held is not None and rec.filled + self._half_step >= rec.held.cum_exec_qty:
            held, rec.held = rec.held, None
            self._move(rec, held)

    def _funding(self, e: ExecutionReport) -> None:
        amount = -e.fee  # Bybit's fee sign: positive is paid
        self.cash += amount
        instant = self.ts_now // FUNDING_MS * FUNDING_MS
        qty = e.qty if e.side is Side.BUY else -e.qty
        self._emit(CashFlow(self.bar_now, instant, "funding", amount, e.fee_rate, qty, e.price))

    # ================================================================== reconciliation (reconciler.py)
    async def reconcile(self, why: str) -> None:
        """Take Bybit's word for orders, executions and the position (StateReconciler.run)."""
        await self.reconciler.run(why)

    async def _look_up(self, rec: LiveOrder, missing_ok: bool = False) -> None:
        await self.reconciler.look_up(rec, missing_ok)

    # ================================================================== for a screen
    def health(self) -> HealthSnapshot:
        """The private stream, the request budgets, the clock, retries and the journal, now."""
        rest = self.rest
        h = self.stream.health() if self.stream is not None else None
        stream = None if h is None else ("connected" if h.ready else ("reconnecting" if h.attempts else "disconnected"))
        now = rest.clock.now_ms()
        age = None if h is None or h.last_message_ms is None else max(0.0, (now - h.last_message_ms) / 1000)
        budgets = tuple(EndpointBudget(e, used, limit, window) for e, used, limit, window
                        in rest.limiter.budgets(rest._monotonic()))
        size = None
        if self.journal_path is not None:
            try:
                size = sum(os.path.getsize(self.journal_path + x) for x in ("", "-wal") if os.path.exists(self.journal_path + x))
            except OSError:
                size = None
        return HealthSnapshot(self.venue_name, stream=stream, reconnects=None if h is None else h.reconnects,
                              last_message_age_s=age, rate_limits=budgets, clock_offset_ms=rest.clock.offset_ms,
                              retries=rest.retries, journal_path=self.journal_path, journal_bytes=size,
                              note="" if rest.limiter.kept else "no request limits kept (lockstep: compressed time)")

    def reconciliation(self, keep: int = 50) -> ReconciliationSnapshot:
        drift = tuple(DriftEvent(ts, what, _said(local), _said(exchange), action)
                      for ts, (what, local, exchange, action) in zip(self._drift_ts[-keep:], self.drift[-keep:]))
        r = self.reconciler
        return ReconciliationSnapshot(self.venue_name, last_run_ts=r.last_run_ms, result=r.last_result, runs=r.runs,
                                      drift=drift, drift_count=len(self.drift))

    # ================================================================== plumbing
    @property
    def _cmd_bar(self) -> int:
        """The bar a command is sent in: inside the bar being walked at a pause, else at the close."""
        return self.bar_now if self.at is not None else self.bar

    async def _req(self, method: str, *args: Any, **kw: Any) -> Any:
        """A request to Bybit, once every event so far is saved (the journal is ahead of the venue)."""
        self._save()
        return await getattr(self.rest, method)(*args, **kw)

    def _ref(self, rec: LiveOrder) -> dict[str, str]:
        if rec.adopted and rec.order_id:
            return {"orderId": rec.order_id}
        return {"orderLinkId": rec.client_id}

    def _change(self, rec: LiveOrder, ev: Ev, reason: str = "", *, values: OrderRequest | None = None,
                code: RefusalCode | None = None) -> None:
        old = rec.status
        new = TRANSITIONS.get((old, ev))
        if new is None:
            raise IllegalTransition(old, ev, rec.client_id)
        rec.status = new
        bar = self.bar_now if ev in (Ev.FILL, Ev.FILL_PARTIAL, Ev.TRIGGER) or self.at is not None else self.bar
        self._emit(OrderEvent(rec.order_id, old, new, bar, reason, rec.client_id, ev, values, code))
        if new.is_final and rec.client_id == self.trail_id:
            self.trail = None

    def _emit(self, event: Any) -> None:
        self._events.append(event)
        self._unsaved.append(event)
        for queue in self._listeners:
            queue.put_nowait(event)

    def _save(self) -> None:
        if self._unsaved and self._on_events is not None:
            batch, self._unsaved = self._unsaved, []
            self._on_events(batch)
        else:
            self._unsaved.clear()

    def _drift(self, what: str, local: Any, exchange: Any, action: str) -> None:
        self.drift.append((what, local, exchange, action))
        self._drift_ts.append(self.rest.clock.now_ms() if self.rest is not None else 0)
        self._log(f"drift: {what}: local {local!r}, Bybit {exchange!r}: {action}")
        if self.on_drift is not None:
            self.on_drift(what, local, exchange, action)

    def _log(self, text: str) -> None:
        if self.on_log is not None:
            self.on_log(text)
        else:
            log.info(text)


def _end_reason(report: OrderReport, rec: LiveOrder) -> str:
    if rec.why_cancel:
        return rec.why_cancel
    if report.cancel_type in ("CancelByReduceOnly", "CancelByTpSlTsClear"):
        return "position closed"
    if report.cancel_type == "CancelAllBeforeLiq":
        return "CancelAllBeforeLiq"
    return report.reject_reason if report.reject_reason not in ("", "EC_NoError") else report.cancel_type



def _said(value: Any) -> str:
    """A side of a drift for a screen: nothing, a value, or a report's fields as `name value`."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)
