"""The interfaces the engine trades through, whatever the venue.

- `ExecutionBackend`: commands (submit, amend, cancel, protection) and reads, async because live
  is; a simulated backend answers without suspending. Orders are named by their client id (Bybit's
  orderLinkId), which the strategy chose, so a command never waits for a venue's id.
- `VenueClock`: how time and events reach the engine. At each closed exec bar the engine calls
  `bar_closed` (the simulator matches its book over the bar; a live venue has seen the bar happen
  and only notes it) or `at_close` on a bar it skips because nothing works and nothing can fire;
  then it takes `drain_events()`, every `Fill`, `OrderEvent` and `Refused` since the last drain in
  the order they happened, and applies them to its `TradingState`. It drains again after each
  command, so the blocks of one bar see the answers to the commands sent before.

Both are implemented by `SimBackend` (runtime/sim/backend.py) and, next, the Bybit backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

import attrs

from playdeck.runtime.execution.orders import KEEP, OrderRequest, OrderResult, OrderSnapshot, ProtectionSpec

__all__ = ["ExecutionBackend", "PositionSnapshot", "VenueClock"]


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
    async def submit_order(self, order: OrderRequest) -> OrderResult: ...

    async def amend_order(
        self,
        client_id: str,
        *,
        qty: float | None = None,
        price: float | None = None,
        trigger: float | None = None,
        expire_bar: int | None | object = KEEP,
        attached: tuple[ProtectionSpec, ...] | object = KEEP,
    ) -> OrderResult:
        """Change qty / limit price / trigger (None: unchanged). `expire_bar` and `attached` are
        playdeck's own attributes of the order (a same-tag replacement brings new ones); changing
        only those asks nothing of the venue."""
        ...

    async def cancel_order(self, client_id: str) -> bool: ...

    async def cancel_all(self) -> int:
        """Cancel every open order of the symbol, protection included; returns how many."""
        ...

    async def set_protection(self, kind: str, value: float, *, percent: bool = False) -> OrderResult:
        """Set or move the position's stop_loss / take_profit (value = price) or trail (distance; with
        `percent`, the fraction of the best price since set that the stop trails by)."""
        ...

    async def get_position(self) -> PositionSnapshot: ...

    async def get_open_orders(self) -> list[OrderSnapshot]: ...

    async def get_equity(self) -> float: ...

    async def sync_state(self) -> None:
        """Bring local state in line with the venue's (reconcile); a no-op where nothing can drift."""
        ...

    def events(self) -> AsyncIterator[Any]:
        """Fills, status changes and late refusals as they happen, oldest first (for a consumer
        task such as the console or a journal; the engine itself uses `VenueClock.drain_events`)."""
        ...


@runtime_checkable
class VenueClock(Protocol):
    def bar_closed(self, bar: int, ts: int, o: float, h: float, l: float, c: float) -> None:
        """Exec bar `bar` (opened at `ts`, epoch ms) has closed with these prices; what happened
        inside it is now in `drain_events()`. Commands after this are sent at its close."""
        ...

    def at_close(self, bar: int, ts: int, close: float) -> None:
        """The engine is at the close of `bar` without `bar_closed` (nothing was working)."""
        ...

    def drain_events(self) -> list[Any]:
        """Every event since the last drain, oldest first."""
        ...

    def next_bar_due(self, i: int, limit: int) -> int:
        """While a position is open and no order works, the first bar in [i, limit) that the venue
        must see (`bar_closed`) even though no block can fire before `limit`: funding is due, or
        the bar could reach the liquidation price. A live venue sees every bar: it returns i."""
        ...
