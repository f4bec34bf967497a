"""What the emulator keeps per order beside the simulator's record: the Bybit side of it.

The simulator's `SimOrder` holds the live qty / price / trigger, the fills and the status path (the
one state machine); `VenueOrder` adds what only Bybit has: the orderId, the orderLinkId as given
(possibly empty), the request's Bybit spellings, times on the API clock, the status last reported,
cancelType / rejectReason, and the sums Bybit reports (cumExecValue, cumExecFee, closedPnl).
"""

from __future__ import annotations

import attrs

from playdeck.runtime.execution.orders import OrderStatus
from playdeck.runtime.sim.book import SimOrder

__all__ = ["OPEN_STATUSES", "VenueOrder", "bybit_status"]

# Bybit's open statuses (bybit-v5.md 2.3): what /v5/order/realtime lists by default.
OPEN_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered", "Triggered"})

_S = OrderStatus
_BYBIT = {
    _S.NEW: "New",
    _S.PARTIALLY_FILLED: "PartiallyFilled",
    _S.FILLED: "Filled",
    _S.CANCELLED: "Cancelled",
    # On linear Bybit reports an order cancelled after a partial fill as Cancelled with
    # cumExecQty > 0 (PartiallyFilledCanceled is spot's); playdeck records PartiallyFilledCanceled.
    _S.PARTIALLY_FILLED_CANCELED: "Cancelled",
    _S.REJECTED: "Rejected",
    _S.UNTRIGGERED: "Untriggered",
    _S.TRIGGERED: "Triggered",
    _S.DEACTIVATED: "Deactivated",
    # Bar expiry is playdeck's and a live backend sends it as a cancel: the emulator never sees it.
    _S.EXPIRED: "Cancelled",
}


def bybit_status(status: OrderStatus) -> str | None:
    """Bybit's orderStatus for a simulator status; None for the local in-flight ones (Submitted,
    PendingAmend, PendingCancel), which are requests, not statuses a venue reports."""
    return _BYBIT.get(status)


@attrs.define(slots=True, eq=False)
class VenueOrder:
    order_id: str
    link_id: str  # the orderLinkId as given ('' when none)
    client_id: str  # the simulator's key: the orderLinkId, else the orderId
    symbol: str
    side: str  # Buy | Sell
    order_type: str  # Market | Limit
    tif: str
    trigger_direction: int  # 0 for an order without a trigger
    trigger_by: str  # '' for an order without a trigger
    reduce_only: bool
    close_on_trigger: bool
    stop_order_type: str  # '' for a plain order; StopLoss / TakeProfit / TrailingStop / Stop
    create_type: str
    take_profit: float | None  # attached to the order (set on the position when it fills)
    stop_loss: float | None
    created_ms: int
    last_price_on_created: float
    rec: SimOrder | None = None  # None only for the moment between the create and the submit
    seq: int = 0  # creation order across the venue: the tie-break of equal createdTimes
    updated_ms: int = 0
    status: str = ""  # the orderStatus last reported ('' before the first)
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    cum_qty: float = 0.0
    cum_value: float = 0.0
    cum_fee: float = 0.0
    closed_pnl: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_conditional(self) -> bool:
        return self.trigger_direction != 0 or self.stop_order_type not in ("", "UNKNOWN")
