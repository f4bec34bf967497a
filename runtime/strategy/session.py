"""A Session: one Play trading on one venue bar by bar, as an operator drives it.

`Engine.run` is the backtest's loop: every bar at once, skipping what cannot matter. A console or a
live runner needs the same engine one closed bar at a time, with an operator's commands in between:
pause (bars keep flowing to the venue, the blocks stop sending), cancel an order, flatten (cancel
everything and close the position), kill (flatten and stop trading for good), reconcile now.
`Session.bar(i)` does for bar i exactly what `Engine.run` does; `snapshot()` is a frozen picture for a
screen, made from the TradingState only, so a slow screen reads a copy and never the live objects;
`transitions(order_id)` is one order's status changes with their bars and reasons, and `health()` /
`reconciliation()` what the venue says about itself (runtime/execution/venue_status.py).
"""
from __future__ import annotations

import enum
import math
from collections import deque
from typing import Callable
import attrs
import numpy as np

from playdeck.runtime.execution.orders import OrderEvent, OrderSnapshot, OrderStatus
from playdeck.runtime.execution.trading_state import RefusedIntent, Trade
from playdeck.runtime.execution.venue_status import (SIMULATOR_HEALTH, SIMULATOR_RECONCILIATION, HealthSnapshot,
                                                     ReconciliationSnapshot)
from playdeck.runtime.strategy.engine import Engine
from playdeck.runtime.strategy.intents import Intent
from playdeck.runtime.strategy.state_view import StateView

__all__ = ["Mode", "Session", "SessionSnapshot", "Transition"]

NAN = math.nan


class Mode(enum.Enum):
    WARMING_UP = "warming up"  # before the readiness gate: bars flow, nothing can be sent
    TRADING = "trading"
    PAUSED = "paused"  # by the operator: bars flow to the venue, the blocks send nothing
    KILLED = "killed"  # the kill switch: everything cancelled and closed, no more trading
    FINISHED = "finished"  # the data ended


@attrs.frozen
class SessionSnapshot:
    """What a screen shows of a session at one bar: values, never the live records."""

    bar: int
    ts: int
    mode: Mode
    close: float
    equity: float
    cash: float
    position_qty: float
    avg_entry: float
    layers: int
    upnl: float
    realized_pnl: float
    fees: float
    funding: float  # received - paid
    working: tuple[OrderSnapshot, ...]
    finished: tuple[OrderSnapshot, ...]  # the latest finished orders, newest last
    protection: tuple[tuple[str, float | None], ...]  # (kind, level) in force
    trades: tuple[Trade, ...]
    refusals: tuple[RefusedIntent, ...]
    log: tuple[str, ...]


@attrs.frozen
class Transition:
    """One status change of one order: in which bar (and that bar's open time), from what, to what,
    by which state-machine event ('' for the first status, Submitted), and the reason the venue gave."""

    bar: int
    ts: int
    old: OrderStatus | None
    new: OrderStatus
    event: str
    reason: str


class Session:
    def __init__(self, engine: Engine, *, history: int = 200, trade_from: int = 0,
                 on_intent: Callable[[Intent], None] | None = None) -> None:
        """`trade_from`: the first bar the blocks may act on (a live run: the first bar closed while
        connected; the bars before are history). `on_intent` sees every intent before it is sent."""
        self.engine = engine
        self.state = engine.state
        self.venue = engine.venue
        self.executor = engine.executor
        self.processor = engine.processor
        self.trade_from = trade_from
        self.on_intent = on_intent
        self.refresh()
        self.mode = Mode.WARMING_UP
        self.bar_index = -1
        self.log: deque[str] = deque(maxlen=history)
        self._history = history
        self._seen_refusals = 0
        # Status changes by order id, indexed from the TradingState's events when a screen asks; and
        # the latest order of each client id, for a live venue, whose order id comes with its answer
        # (the order's Submitted carries none yet).
        self._transitions: dict[str, list[Transition]] = {}
        self._by_client: dict[str, list[Transition]] = {}
        self._seen_events = 0

    def __len__(self) -> int:
        return len(self._c)

    def refresh(self) -> None:
        """Read the engine's bars again (live: after `Engine.rebind` with a bar more)."""
        bars = self.engine.feeds.bars()
        self._ts = np.asarray(bars.ts_open)
        self._o, self._h, self._l, self._c = bars.open, bars.high, bars.low, bars.close

    @property
    def ready_bar(self) -> int:
        return self.engine.ready_bar

    # ------------------------------------------------------------------ time
    async def bar(self, i: int) -> None:
        """Exec bar i has closed: the venue reports it, then (when trading) the blocks act on it."""
        ts, c = int(self._ts[i]), float(self._c[i])
        state = self.state
        if state.open or state.position.qty != 0.0:
            self.venue.bar_closed(i, ts, float(self._o[i]), float(self._h[i]), float(self._l[i]), c)
            self.executor.sync()
        self.venue.at_close(i, ts, c)
        self.bar_index = i
        if self.mode is Mode.WARMING_UP and i >= self.engine.ready_bar and i >= self.trade_from:
            self.mode = Mode.TRADING
            self.log.append(f"bar {i}: ready, trading")
        if self.mode is Mode.TRADING:
            st = StateView(state, i, c)
            intents = self.engine._evaluate(i, st)
            for it in intents:
                self.log.append(f"bar {i}: {_describe(it)}")
                if self.on_intent is not None:
                    self.on_intent(it)
            if intents:
                await self.engine._send(intents, st)
        self._log_refusals()

    def finish(self) -> None:
        self.mode = Mode.FINISHED

    # ------------------------------------------------------------------ the operator's commands
    def pause(self) -> None:
        if self.mode is Mode.TRADING:
            self.mode = Mode.PAUSED
            self.log.append(f"bar {self.bar_index}: paused by the operator")

    def resume(self) -> None:
        if self.mode is Mode.PAUSED:
            self.mode = Mode.TRADING
            self.log.append(f"bar {self.bar_index}: resumed")

    async def cancel(self, client_id: str) -> bool:
        done = await self.venue.cancel_order(client_id)
        self.executor.sync()
        self.log.append(f"bar {self.bar_index}: cancel {client_id}: {'sent' if done else 'not open'}")
        return done

    async def flatten(self) -> None:
        """Cancel every working order (protection included) and close the position at market."""
        n = await self.executor.cancel_all()
        self.log.append(f"bar {self.bar_index}: flatten: {n} order(s) cancelled")
        if self.state.position.qty != 0.0:
            i = max(self.bar_index, 0)
            st = StateView(self.state, i, float(self._c[i]))
            await self.processor.process(Intent(i, "close", where="operator"), st)
        self._log_refusals()

    async def kill(self) -> None:
        """The kill switch: flatten, then never trade again in this session."""
        await self.flatten()
        self.mode = Mode.KILLED
        self.log.append(f"bar {self.bar_index}: KILLED by the operator")

    async def reconcile(self) -> ReconciliationSnapshot:
        """The operator's "reconcile now": the venue compares its book with ours and reports what it
        changed as events (never written into our state directly); the simulator has nothing to do."""
        await self.venue.sync_state()
        self.executor.sync()
        status = self.reconciliation()
        said = status.result if status.result is not None else status.note
        self.log.append(f"bar {self.bar_index}: reconcile: {said}")
        return status

    # ------------------------------------------------------------------ reading
    def health(self) -> HealthSnapshot:
        """The venue's stream, rate-limit budgets, clock, retries and journal; the simulator has none."""
        own = getattr(self.venue, "health", None)
        return SIMULATOR_HEALTH if own is None else own()

    def reconciliation(self) -> ReconciliationSnapshot:
        own = getattr(self.venue, "reconciliation", None)
        return SIMULATOR_RECONCILIATION if own is None else own()

    def transitions(self, order_id: str, client_id: str | None = None) -> tuple[Transition, ...]:
        """Every status change of the order `order_id`, oldest first (in-flight states included);
        `client_id` finds an order the venue has not named yet (a live create not answered).

        Read from the TradingState's events, so it needs one that keeps them
        (`prepare(..., keep_events=True)`); without them it is (). Keyed by the venue's order id,
        because a refused create frees its client id for a new order; an order's changes are
        followed by client id from its Submitted on, since a live venue's Submitted has no order
        id (Bybit names the order in its answer).
        """
        events = self.state.events
        if self._seen_events < len(events):
            ts = self._ts
            index, by_client = self._transitions, self._by_client
            for e in events[self._seen_events:]:
                if e.__class__ is not OrderEvent:
                    continue
                changes = None
                if e.client_id:
                    if e.old is None:  # Submitted: a new order holds this client id from now on
                        changes = by_client[e.client_id] = []
                    else:
                        changes = by_client.get(e.client_id)
                if changes is None:
                    changes = index.setdefault(e.order_id, [])
                changes.append(Transition(e.bar, int(ts[min(max(e.bar, 0), len(ts) - 1)]), e.old, e.new,
                                          "" if e.ev is None else e.ev.value, e.reason))
                if e.order_id:
                    index[e.order_id] = changes
            self._seen_events = len(events)
        found = self._transitions.get(order_id) if order_id else None
        if found is None and client_id is not None:
            found = self._by_client.get(client_id)
        return tuple(found or ())

    def snapshot(self) -> SessionSnapshot:
        st = self.state
        i = max(self.bar_index, 0)
        close = float(self._c[i])
        q, avg, layers = st.position
        finished = [r for r in st.orders.values() if r.path[-1].is_final][-self._history:]
        return SessionSnapshot(
            bar=self.bar_index, ts=int(self._ts[i]), mode=self.mode, close=close, equity=st.equity(close),
            cash=st.cash, position_qty=q, avg_entry=avg, layers=layers, upnl=st.upnl(close),
            realized_pnl=st.realized_pnl, fees=st.fees_paid, funding=st.funding_received - st.funding_paid,
            working=tuple(r.snapshot() for r in st.open.values()),
            finished=tuple(r.snapshot() for r in finished),
            protection=tuple((kind, rec.trigger if rec.trigger is not None else rec.price)
                             for kind, rec in st.protection.items()),
            trades=tuple(st.trades[-self._history:]), refusals=tuple(st.refusals[-self._history:]),
            log=tuple(self.log))

    def _log_refusals(self) -> None:
        refusals = self.state.refusals
        for r in refusals[self._seen_refusals:]:
            self.log.append(f"bar {r.bar}: refused {r.kind}{'' if r.tag is None else ' ' + r.tag}: {r.reason}")
        self._seen_refusals = len(refusals)


def _describe(it: Intent) -> str:
    side = "" if it.side is None else f" {it.side.value}"
    tag = "" if it.tag is None else f" as {it.tag}"
    if it.kind in ("stop_loss", "take_profit", "trail"):
        return f"{it.kind} {it.value * 100:g}%" if it.percent else f"{it.kind} {it.value:g}"
    return f"{it.kind}{side}{tag}"
