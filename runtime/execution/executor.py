"""The Executor: sends a strategy's orders and commands to a venue and keeps its TradingState.

One rule lives here because it is about orders, not about a venue: the **same tag** (PLAY-LANGUAGE.md
6). An order sent with the tag of an order still pending replaces it: the venue's fields (qty,
price, trigger) are amended, and playdeck's own (expiry, attached protection) are renewed; when the
type or side changes, or a stop-limit has already triggered (it rests as a limit and has no trigger
left) and gets a new trigger, the old one is cancelled and the new one sent.

After every command the venue's events are drained into the TradingState, so what is sent next in
the same bar sees the answer (a `cancel dip` then `... as dip` sends the new one fresh). Retrying
and pacing requests are the venue edge's business (the Bybit backend), not this one's.
"""

from __future__ import annotations

from typing import Any

from playdeck.runtime.execution.orders import OrderRequest, OrderResult, OrderStatus
from playdeck.runtime.execution.trading_state import TradingState

__all__ = ["Executor"]

_UNTRIGGERED = OrderStatus.UNTRIGGERED


class Executor:
    def __init__(self, backend: Any, state: TradingState) -> None:
        """`backend` implements ExecutionBackend and VenueClock (runtime/execution/backend.py)."""
        self.backend = backend
        self.state = state
        self._drain = backend.drain_events
        self._apply = state.apply_all

    def sync(self) -> None:
        """Apply what the venue has reported since the last call."""
        events = self._drain()
        if events:
            self._apply(events)

    async def submit(self, order: OrderRequest) -> OrderResult:
        """Send `order`, or amend the pending order with its tag (see the module docstring)."""
        tag = order.tag
        backend = self.backend
        pending = self.state.pending_by_tag.get(tag) if tag is not None else None
        if pending is not None:
            same = pending.type is order.type and pending.side is order.side
            if same and pending.type.is_conditional and order.trigger != pending.trigger \
                    and pending.path[-1] is not _UNTRIGGERED:
                # A stop-limit that triggered rests as a limit and has no trigger left to amend:
                # a new trigger means a new conditional order, so cancel and re-send.
                same = False
            if same:
                result = await backend.amend_order(pending.client_id, qty=order.qty, price=order.price,
                                                   trigger=order.trigger, expire_bar=order.expire_bar,
                                                   attached=order.attached)
                self.sync()
                return result
            await backend.cancel_order(pending.client_id)
            self.sync()
        result = await backend.submit_order(order)
        self.sync()
        return result

    async def cancel_tag(self, tag: str) -> bool:
        pending = self.state.pending_by_tag.get(tag)
        if pending is None:
            return False
        done = await self.backend.cancel_order(pending.client_id)
        self.sync()
        return done

    async def cancel_all(self) -> int:
        n = await self.backend.cancel_all()
        self.sync()
        return n

    async def set_protection(self, kind: str, value: float, percent: bool = False) -> OrderResult:
        result = await (self.backend.set_protection(kind, value, percent=True) if percent
                        else self.backend.set_protection(kind, value))
        self.sync()
        return result
