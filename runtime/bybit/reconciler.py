"""StateReconciler: the exchange's word taken over ours, for one BybitBackend.

Run at start, after every reconnect of the private stream, when a lockstep step's pushes did not all
arrive, every few minutes of a streaming run, and on demand. It reads executions since the last one
seen (or since the session began: a fresh session takes none from before it), every order we think
open, orders open at Bybit we do not know, and the position; what it finds is queued into the
backend as reports, so the exchange's truth becomes events through the one state machine and the
journal tells what happened. Each difference is a drift record (what, local, exchange, action):
`execution missed`, `unknown order` (adopted), `order absent` (a create that never got through,
rejected locally), `order status`, `position` (adopted at Bybit's average entry, never flattened).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from playdeck.runtime.bybit.reports import order_report, position_report
from playdeck.runtime.execution.ledger import apply_fill
from playdeck.runtime.execution.order_state import Ev, end_event
from playdeck.runtime.execution.orders import (
    Fill,
    OrderEvent,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

from playdeck.runtime.bybit.live_order import LiveOrder

if TYPE_CHECKING:
    from playdeck.runtime.bybit.backend import BybitBackend

__all__ = ["StateReconciler"]

_S = OrderStatus


class StateReconciler:
    def __init__(self, backend: BybitBackend) -> None:
        self.backend = backend
        self.runs = 0
        self.last_run_ms: int | None = None
        self.last_result: str | None = None

    async def run(self, why: str) -> None:
        """Take Bybit's word: executions since the last seen one, every order we think open, orders
        open at Bybit we do not know, and the position. Each difference is a drift record."""
        b = self.backend
        await b.catch_up()
        drift_before = len(b.drift)
        # Executions since the last one seen (a minute's overlap: ids make it harmless), or since the
        # session began; a fresh session takes none from before it: the position says what they left.
        since = b.last_exec_ms - 60_000 if b.last_exec_ms else b.exec_since
        executions = [] if since is None else await b._req("executions", b.symbol, since)
        for item in sorted(executions, key=lambda x: (int(x.get("execTime") or 0), int(x.get("seq") or 0))):
            if item.get("execId") not in b.exec_ids:
                b._drift("execution missed", None, {"execId": item.get("execId"),
                                                       "orderLinkId": item.get("orderLinkId")}, "applied")
                b._queue.append(("execution", item))
        b._apply_queue()
        open_items = await b._req("open_orders", b.symbol)
        seen = set()
        for item in open_items:
            rec = b._find(str(item.get("orderLinkId", "")), str(item.get("orderId", "")))
            if rec is not None:
                seen.add(rec.client_id)
            b._queue.append(("order", item))
        b._apply_queue()
        for rec in list(b.orders.values()):
            if rec.is_open and rec.client_id not in seen:
                await self.look_up(rec, missing_ok=True)
        for order_id in list(b._orphans):
            # Executions of orders we never heard of (traded by hand, or while we were away): the
            # order's report adopts it, and its executions follow.
            got = await b._req("call", "get_open_orders", category="linear", symbol=b.symbol, orderId=order_id)
            items = got.get("list") or []
            if not items:
                got = await b._req("call", "get_order_history", category="linear", symbol=b.symbol,
                                      orderId=order_id)
                items = got.get("list") or []
            if items:
                b._queue.append(("order", items[0]))
                b._apply_queue()
        await self.check_position(why)
        await b.catch_up()
        found = len(b.drift) - drift_before
        self.runs += 1
        self.last_run_ms = b.rest.clock.now_ms()
        self.last_result = "in sync" if not found else f"{found} drift{'s' if found > 1 else ''} adopted ({why})"


    async def look_up(self, rec: LiveOrder, missing_ok: bool = False) -> None:
        """Ask Bybit for one order (any status) and apply what it says, its executions first."""
        b = self.backend
        found = None
        if rec.order_id or not rec.adopted:
            ref = b._ref(rec) if rec.order_id else {"orderLinkId": rec.client_id}
            for method, extra in (("get_open_orders", {}), ("get_order_history", {})):
                got = await b._req("call", method, category="linear", symbol=b.symbol, **ref, **extra)
                items = got.get("list") or []
                if items:
                    found = items[0]
                    break
        if found is not None:
            report = order_report(found)
            if report.cum_exec_qty > rec.filled + b._half_step:
                # executions we have not seen: fetch them first
                got = await b._req("call", "get_executions", category="linear", symbol=b.symbol,
                                           orderId=report.order_id, limit=100)
                for item in sorted(got.get("list") or [], key=lambda x: int(x.get("execTime") or 0)):
                    if item.get("execId") not in b.exec_ids:
                        b._queue.append(("execution", item))
            b._queue.append(("order", found))
            b._apply_queue()
            return
        if rec.status is _S.SUBMITTED and not rec.adopted:
            # Bybit has no order with this orderLinkId: the create never got through.
            b._drift("order absent", rec.status.value, None, "rejected locally")
            b._change(rec, Ev.REJECT, "never reached Bybit (no order with this orderLinkId)")
        elif not missing_ok and rec.status is _S.PENDING_CANCEL and rec.adopted and not rec.order_id:
            b._change(rec, end_event(_S.UNTRIGGERED if rec.request.type.is_conditional else _S.NEW, rec.filled),
                         "cancelled")

    async def check_position(self, why: str) -> None:
        b = self.backend
        item = await b._req("position", b.symbol)
        venue = position_report(item)
        local = b.position.qty
        if abs(venue.qty - local) < b._half_step:
            return
        # Traded by hand, or fills we cannot see: take Bybit's position, say so, never flatten it.
        b._drift("position", local, venue.qty, "adopted Bybit's position")
        delta = round(venue.qty - local, b._dp)
        price = venue.avg_price or b.last_close
        side = Side.BUY if delta > 0 else Side.SELL
        b._n += 1
        client_id = f"adopted-{b._n}"
        request = OrderRequest(client_id, side, OrderType.MARKET, abs(delta), None, None, TimeInForce.GTC, False,
                               OrderRole.ENTRY, None, b._cmd_bar, None)
        rec = LiveOrder(request, adopted=True)
        b.orders[client_id] = rec
        b._emit(OrderEvent("", None, _S.SUBMITTED, b._cmd_bar, "adopted from Bybit", client_id, None, request))
        b._change(rec, Ev.ACCEPT, "adopted from Bybit")
        effect = apply_fill(b.position, side.sign, abs(delta), price, False, b._dp, b._half_step)
        b.position = effect.position
        b.realized += effect.realized
        b.cash += effect.realized
        b._emit(Fill(b.bar, b.ts, "", None, side, abs(delta), price, 0.0, "taker", OrderRole.ENTRY,
                        effect.realized, client_id, None, f"adopted-{why}-{b._n}"))
        rec.filled = abs(delta)
        b._change(rec, Ev.FILL, "adopted from Bybit")
