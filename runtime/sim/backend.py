"""SimBackend: the ExecutionBackend and VenueClock protocols over a SimExchange.

Async only at the boundary: every command runs the exchange synchronously and returns without
suspending, so a backtest's bar loop never yields to the event loop when nothing happens. The
engine moves time with `bar_closed(bar, ts, o, h, l, c)` (fills inside the bar, then the bar-close
work), or `at_close(bar, ts, close)` on bars where nothing is pending; commands sent afterwards are
sent "at the close of" that bar.

Events can be taken two ways, and a run should use one of them:
- `drain_events()` (sync): what the engine's bar loop does after each bar and each command;
- `events()` (async iterator): for a consumer task (console, journal); it waits for the next bar
  or command and ends after `close()`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from playdeck.runtime.execution.backend import PositionSnapshot
from playdeck.runtime.execution.orders import KEEP, OrderRequest, OrderResult, OrderSnapshot, ProtectionSpec
from playdeck.runtime.sim.exchange import SimExchange

__all__ = ["DetailBars", "SimBackend"]


class DetailBars:
    """The bar magnifier's bars (numpy columns) and, for each exec bar i, the detail bars
    [starts[i], ends[i]) inside it."""

    def __init__(self, ts: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray,
                 exec_ts: np.ndarray, exec_ms: int) -> None:
        self.ts, self.open, self.high, self.low, self.close = ts, o, h, l, c
        self.starts = np.searchsorted(ts, exec_ts, side="left").tolist()
        self.ends = np.searchsorted(ts, exec_ts + exec_ms, side="left").tolist()

    def rows(self, bar: int) -> zip:
        """(open time, open, high, low, close) of each detail bar of exec bar `bar`, as Python numbers."""
        a, b = self.starts[bar], self.ends[bar]
        return zip(self.ts[a:b].tolist(), self.open[a:b].tolist(), self.high[a:b].tolist(),
                   self.low[a:b].tolist(), self.close[a:b].tolist())


class SimBackend:
    def __init__(self, exchange: SimExchange, history: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 detail: DetailBars | None = None) -> None:
        """`history`: the exec bars' (open times, highs, lows), when the engine may skip bars
        (`next_bar_due` then says which ones the venue needs to see). `detail`: the bar
        magnifier's finer bars (7.5): fills inside an exec bar are found by walking its detail bars
        in order, each by the ohlc_path rule."""
        self.exchange = exchange
        self._history = history
        self._detail = detail
        self.bar = -1  # the bar whose close we are at; commands are sent at this close
        self.ts = 0
        self.last_close = math.nan
        self._wakeup: asyncio.Event | None = None  # made inside the consumer's loop, on demand
        self._closed = False
        # The engine drains after every bar and command: the exchange's own method, no wrapper call.
        self.drain_events = exchange.drain_events

    # ------------------------------------------------------------------ VenueClock (sync)
    def bar_closed(self, bar: int, ts: int, o: float, h: float, l: float, c: float) -> None:
        """Bar `bar` happened: match it, then do its close (expiry, IOC, trailing stops)."""
        ex = self.exchange
        detail = self._detail
        if detail is None:
            ex.process_bar(bar, ts, o, h, l, c)
        else:
            ex.open_bar(bar, ts, o)
            # Detail bars are walked only when the exec bar's range could reach something at all.
            if ex.reachable(bar, h, l):
                for dt, do, dh, dl, dc in detail.rows(bar):
                    ex.match_bar(bar, ts, do, dh, dl, dc, dt)
        ex.close_bar(bar, h, l, c)
        self.bar = bar
        self.ts = ts
        self.last_close = c
        if self._wakeup is not None:
            self._wakeup.set()

    def at_close(self, bar: int, ts: int, close: float) -> None:
        """The engine is at the close of `bar` (also on bars it did not need to `bar_closed`).

        Skipping `bar_closed` is only safe when nothing is pending (then matching would do nothing
        but mark to market), so this marks the position to market too.
        """
        self.bar = bar
        self.ts = ts
        self.last_close = close
        self.exchange.last_close = close

    def next_bar_due(self, i: int, limit: int) -> int:
        """The first bar in [i, limit) the venue must see while a position is open and no order
        works: the first bar at or after the next funding instant, or one whose range reaches the
        liquidation price; `limit` when none. Without `history`, every bar (i)."""
        ex = self.exchange
        if self._history is None or ex.position.qty == 0.0:
            return i if self._history is None else limit
        ts, high, low = self._history
        due = limit
        if ex.next_funding is not None:
            due = min(due, max(i, int(np.searchsorted(ts, ex.next_funding, side="left"))))
        liq = ex.liquidation_price()
        if liq is not None and i < due:
            reach = low[i:due] <= liq if ex.position.qty > 0.0 else high[i:due] >= liq
            k = int(np.argmax(reach))
            if reach[k]:
                due = i + k
        return due

    def close(self) -> None:
        """End `events()` once it has handed out what is queued."""
        self._closed = True
        self._wake()

    # ------------------------------------------------------------------ ExecutionBackend
    async def submit_order(self, order: OrderRequest) -> OrderResult:
        result = self.exchange.submit(order, self.bar, self.last_close)
        if self._wakeup is not None:
            self._wakeup.set()
        return result

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
        result = self.exchange.amend(client_id, self.bar, qty=qty, price=price, trigger=trigger,
                                     expire_bar=expire_bar, attached=attached)
        self._wake()
        return result

    async def cancel_order(self, client_id: str) -> bool:
        done = self.exchange.cancel(client_id, self.bar)
        self._wake()
        return done

    async def cancel_all(self) -> int:
        n = self.exchange.cancel_all(self.bar)
        self._wake()
        return n

    async def set_protection(self, kind: str, value: float, *, percent: bool = False) -> OrderResult:
        result = self.exchange.set_protection(kind, value, self.bar, self.last_close, percent)
        self._wake()
        return result

    async def get_position(self) -> PositionSnapshot:
        ex = self.exchange
        pos = ex.position
        return PositionSnapshot(qty=pos.qty, avg_entry=pos.avg_entry, layers=pos.layers,
                                realized_pnl=ex.realized_pnl, upnl=ex.upnl())

    async def get_open_orders(self) -> list[OrderSnapshot]:
        return self.exchange.open_orders()

    async def get_equity(self) -> float:
        return self.exchange.equity()

    async def sync_state(self) -> None:
        # The simulator is its own venue: there is nothing to reconcile.
        return None

    async def events(self) -> AsyncIterator[Any]:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        wakeup = self._wakeup
        while True:
            batch = self.exchange.drain_events()
            if batch:
                # Yielding suspends us and commands may queue more meanwhile: drain again after.
                for event in batch:
                    yield event
                continue
            if self._closed:
                return
            # No await between the empty drain and clear(), so no wake-up can be lost here.
            wakeup.clear()
            await wakeup.wait()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
