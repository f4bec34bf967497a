"""The one interface the engine and the IntentProcessor trade through, whatever the venue.

`SimBackend` (runtime/sim_backend.py) and the Bybit backend (demo and live) implement it. It is
async because live is; a simulated backend answers without suspending. Backends take commands and
emit events: every fill and every order status change comes out of `events()`, in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

import attrs

from playdeck.runtime.execution.orders import KEEP, AttachedProtection, Fill, Order, OrderEvent, OrderResult, ProtectionKind

__all__ = ["ExecutionBackend", "PositionSnapshot"]


@attrs.frozen
class PositionSnapshot:
    """The net position of the backend's symbol. Flat: qty 0, avg_entry NaN, layers 0."""

    qty: float  # signed: > 0 long, < 0 short
    avg_entry: float
    layers: int
    realized_pnl: float  # gross, since the backend started
    upnl: float  # at the last close (sim) or mark price (live)

    @property
    def is_flat(self) -> bool:
        return self.qty == 0.0


@runtime_checkable
class ExecutionBackend(Protocol):
    async def submit_order(self, order: Order) -> OrderResult: ...

    async def amend_order(
        self,
        order_id: str,
        *,
        qty: float | None = None,
        price: float | None = None,
        trigger: float | None = None,
        expire_bar: int | None | object = KEEP,
        attached: tuple[AttachedProtection, ...] | object = KEEP,
    ) -> OrderResult:
        """Change qty / limit price / trigger (None: unchanged). `expire_bar` and `attached` are
        playdeck's own attributes of the order (a same-tag replacement brings new ones); changing
        only those asks nothing of the venue."""
        ...

    async def cancel_order(self, order_id: str) -> bool: ...

    async def cancel_all(self) -> int:
        """Cancel every open order of the symbol, protection included; returns how many."""
        ...

    async def set_protection(self, kind: ProtectionKind, value: float) -> OrderResult:
        """Set or move the position's stop_loss / take_profit (value = price) or trail (distance)."""
        ...

    async def get_position(self) -> PositionSnapshot: ...

    async def get_open_orders(self) -> list[Order]: ...

    async def get_equity(self) -> float: ...

    async def sync_state(self) -> None:
        """Bring local state in line with the venue's (reconcile); a no-op where nothing can drift."""
        ...

    def events(self) -> AsyncIterator[Fill | OrderEvent]:
        """Fills and status changes as they happen, oldest first."""
        ...
