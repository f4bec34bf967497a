"""LiveOrder: a live backend's picture of one order (backend.py keeps them, reconciler.py reads them)."""
from __future__ import annotations

import attrs

from playdeck.runtime.bybit.reports import OrderReport
from playdeck.runtime.execution.orders import OrderRequest, OrderSnapshot, OrderStatus

__all__ = ["LiveOrder"]

_S = OrderStatus


@attrs.define(eq=False)
class LiveOrder:
    """This backend's picture of one order: its values (as sent or amended), its status, its id at
    Bybit, what of it executed, and why we asked for its cancel."""

    request: OrderRequest
    status: OrderStatus = _S.SUBMITTED
    order_id: str = ""
    filled: float = 0.0
    why_cancel: str = ""  # "", "expire", "position closed": said in its final event
    held: OrderReport | None = None  # a report that waits for executions not seen yet
    triggered: bool = False
    adopted: bool = False  # made by Bybit (TP/SL, liquidation) or found at Bybit, not sent by us

    @property
    def client_id(self) -> str:
        return self.request.client_id

    @property
    def is_open(self) -> bool:
        return not self.status.is_final and self.status is not _S.REJECTED

    def snapshot(self) -> OrderSnapshot:
        r = self.request
        return OrderSnapshot(self.order_id, r.client_id, r.tag, r.type, r.side, r.qty, r.price, r.trigger,
                             self.status, self.filled, r.role)
