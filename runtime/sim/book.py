"""The simulator's order book: one record per order ever sent, the working ones, and Bybit's caps.

`SimOrder` is an `OrderRecord` with what matching needs besides: how the path reaches it right now
(`kind`, `up`, `level`), from which bar, its place in the queue, and the trail's high-water mark.
"""

from __future__ import annotations

import math

from playdeck.runtime.execution.orders import OrderRecord, OrderRequest, OrderStatus, Refusal, RefusalCode

__all__ = ["KIND_LIMIT", "KIND_MARKET", "KIND_STOP", "MAX_ACTIVE_ORDERS", "MAX_CONDITIONAL_ORDERS", "Book",
           "SimOrder"]

# How a working order is matched right now. The numbers are also the tie-break at one price:
# market orders first, then stops, then limits. A stop-limit is KIND_STOP until it triggers and
# KIND_LIMIT after.
KIND_MARKET = 0
KIND_STOP = 1
KIND_LIMIT = 2

MAX_ACTIVE_ORDERS, MAX_CONDITIONAL_ORDERS = 500, 10  # Bybit's per-symbol caps (bybit-v5.md)


class SimOrder(OrderRecord):
    """A book entry: the order's record plus its matching state. Owned and written by the exchange."""

    __slots__ = ("seq", "active_from", "kind", "up", "level", "taker_first", "ioc_bar", "trail_distance",
                 "trail_pct", "trail_extreme", "trail_bar", "parts")

    def __init__(self, request: OrderRequest, order_id: str, reduce_only: bool, seq: int, active_from: int,
                 kind: int, up: bool, level: float) -> None:
        super().__init__(request, order_id, reduce_only)
        self.seq = seq  # submission order: the last tie-break between orders reached at one price
        self.active_from = active_from  # first bar it may fill in (bar + 1 when sent at the close of bar)
        self.kind = kind
        self.up = up  # reached when the price rises to `level` (buy stop, sell limit); else when it falls
        self.level = level  # trigger while a stop, limit price while a limit, nan for a market order
        # A limit marketable when sent: it fills as a taker at the first open it meets, wherever that is.
        self.taker_first = False
        self.ioc_bar: int | None = None  # IOC/FOK: cancelled at the close of this bar if still open
        self.parts = 0  # a fill split into parts (an emulator fault): how many are still to come
        # trail protection only: distance (or fraction of the best price, for `trail 1.5%`), best
        # price seen since set, bar it was set in
        self.trail_distance = math.nan
        self.trail_pct = math.nan
        self.trail_extreme = math.nan
        self.trail_bar = -1


class Book:
    """Every order sent (by client id, in submission order), the working ones, and the index of
    pending orders by tag. Ids: the exchange's `sim-N`, N counting every order recorded."""

    def __init__(self) -> None:
        self.orders: dict[str, SimOrder] = {}
        self.live: dict[str, SimOrder] = {}  # the same dict for the book's life: callers may hold it
        self.by_tag: dict[str, SimOrder] = {}

    def next_order_id(self) -> str:
        return f"sim-{len(self.orders) + 1}"

    def cap_refusal(self, conditional: bool) -> Refusal | None:
        """Bybit's per-symbol caps: 500 working orders, 10 untriggered conditionals."""
        live = self.live
        if len(live) >= MAX_ACTIVE_ORDERS:
            return Refusal(RefusalCode.TOO_MANY_ORDERS, f"more than {MAX_ACTIVE_ORDERS} active orders (110020)")
        if conditional:
            # Untriggered stops only: a triggered stop-limit rests as an ordinary limit.
            if sum(1 for r in live.values() if r.kind == KIND_STOP) >= MAX_CONDITIONAL_ORDERS:
                return Refusal(RefusalCode.TOO_MANY_CONDITIONALS,
                               f"more than {MAX_CONDITIONAL_ORDERS} active conditional orders")
        return None

    def go_live(self, rec: SimOrder) -> None:
        self.live[rec.client_id] = rec
        if rec.tag is not None:
            self.by_tag[rec.tag] = rec

    def take_out(self, rec: SimOrder) -> None:
        """`rec` reached a final status: it no longer works."""
        self.live.pop(rec.client_id, None)
        tag = rec.tag
        if tag is not None and self.by_tag.get(tag) is rec:
            del self.by_tag[tag]

    def status(self, client_id: str) -> OrderStatus:
        return self.orders[client_id].path[-1]
