"""The bar loop: one engine for every mode (DESIGN.md, "The pipeline").

At the close of exec bar i (PLAY-LANGUAGE.md 5.1): the venue reports what filled inside bar i and
the TradingState applies it, then the blocks are evaluated first-match on a `StateView` of that
state, then their intents go through the IntentProcessor, so an order sent at the close of bar i
can first fill in bar i+1. The engine talks to the venue only through the `ExecutionBackend` and
`VenueClock` protocols (runtime/execution/backend.py) and reads only the TradingState.

The loop is O(1) per bar and skips bars where nothing can happen: with no order working, only bars
where some case's market-data part is true (a precomputed bool array) can produce an intent, and
an open position needs the venue only at funding instants and where its liquidation price is in
reach (`VenueClock.next_bar_due`).
"""
from __future__ import annotations

import math
from bisect import bisect_left
from typing import Callable

import attrs
import numpy as np

from playdeck.compiler import ir
from playdeck.compiler.lower import ExecutionPlan
from playdeck.runtime.data.feeds import FeedStore
from playdeck.runtime.execution.orders import Fill, OrderEvent
from playdeck.runtime.execution.trading_state import TradingState
from playdeck.runtime.strategy.binding import bind_plan, make_evaluator, ready_bar
from playdeck.runtime.strategy.intents import ORDER_KINDS, Intent, sending_order
from playdeck.runtime.strategy.processor import IntentProcessor
from playdeck.runtime.strategy.state_view import StateView

NAN = math.nan


@attrs.define(repr=False)
class RunResult:
    ready_bar: int
    start: int
    end: int  # exclusive
    state: TradingState
    evaluated_bars: int

    @property
    def fills(self) -> list[Fill]:
        return self.state.fills

    @property
    def events(self) -> list[OrderEvent]:
        """Every order event, when the TradingState was made with `keep_events` (else empty)."""
        return [e for e in self.state.events if isinstance(e, OrderEvent)]

    @property
    def snapshots(self) -> list[tuple[int, float, float, float]]:
        return self.state.snapshots

    def __repr__(self) -> str:  # asyncio reprs a task's result; keep it cheap for a million bars
        return f"RunResult(bars {self.start}..{self.end}, {len(self.state.fills)} fills)"


class Engine:
    def __init__(self, plan: ExecutionPlan, feeds: FeedStore, processor: IntentProcessor, *, where: str = ""):
        self.plan = plan
        self.feeds = feeds
        self.processor = processor
        self.executor = processor.executor
        self.state = processor.state
        self.venue = self.executor.backend  # ExecutionBackend and VenueClock
        self.where = where
        self.rebind(feeds)
        self.has_cancels = any(isinstance(a, ir.Cancel) for cases in plan.blocks for c in cases for a in c.actions)

    def rebind(self, feeds: FeedStore) -> None:
        """Evaluate the plan's series on `feeds`: at construction, and in live trading whenever a bar
        closes (the feeds grew by it; the series are causal, so the bars before read the same)."""
        self.feeds = feeds
        plan = self.plan
        self.series = make_evaluator(plan, feeds)
        self.blocks = bind_plan(plan, self.series, self.where)
        # What `_evaluate` reads per case, unpacked once so the per-bar loop does no attribute lookups.
        self.flat_blocks = tuple(tuple(bc.unpacked() for bc in cases) for cases in self.blocks)
        self.ready_bar = ready_bar(plan, self.series, len(feeds))

    # ---- the loop ----------------------------------------------------------------------------------
    async def run(self, start: int = 0, end: int | None = None,
                  progress: Callable[[int], None] | None = None) -> RunResult:
        n = len(self.feeds)
        end = n if end is None else min(end, n)
        bars = self.feeds.bars()
        ts, o, h, l, c = (np.asarray(bars.ts_open), bars.open, bars.high, bars.low, bars.close)
        state = self.state
        working = state.open  # truthy while any order is working
        venue = self.venue
        bar_closed = venue.bar_closed
        at_close = venue.at_close
        sync = self.executor.sync
        evaluate = self._evaluate
        send = self._send
        blocks = self.blocks
        # Bars where at least one case could fire with nothing working: the union of series parts.
        dense = any(bc.series is None for cases in blocks for bc in cases)
        evaluated = 0
        i = max(start, self.ready_bar)
        # `nxt` is the first candidate bar >= i (a plain int list: bisect and compare, no numpy
        # scalars per visited bar); dense plans evaluate every bar.
        if dense:
            cands: list[int] = []
        else:
            mask = np.zeros(n, dtype=bool)
            for cases in blocks:
                for bc in cases:
                    mask |= bc.series
            cands = np.flatnonzero(mask).tolist()
        k = bisect_left(cands, i)
        n_cands = len(cands)
        nxt = cands[k] if k < n_cands else end
        next_report = i + 65536
        next_due = venue.next_bar_due
        while i < end:
            if working or state.position.qty != 0.0:
                bar_closed(i, int(ts[i]), float(o[i]), float(h[i]), float(l[i]), float(c[i]))
                sync()
            if dense or i == nxt:
                evaluated += 1
                close = float(c[i])
                at_close(i, int(ts[i]), close)
                st = StateView(state, i, close)
                intents = evaluate(i, st)
                if intents:
                    await send(intents, st)
                if not dense:
                    k += 1
                    nxt = cands[k] if k < n_cands else end
            if progress is not None and i >= next_report:
                progress(i)
                next_report = i + 65536
            if dense or working:
                i += 1
            elif state.position.qty != 0.0:
                # A position with nothing working: only funding and liquidation need the venue.
                i = next_due(i + 1, nxt)
            else:
                i = nxt  # nothing works and no case can fire before the next candidate bar
        return RunResult(self.ready_bar, start, end, state, evaluated)

    def _evaluate(self, i: int, st: StateView) -> list[Intent]:
        """The intents of bar i: every block, first matching case, actions in source order."""
        intents: list[Intent] = []
        for cases in self.flat_blocks:
            for guard, series, state, actions in cases:
                if guard is not None and not guard(st):
                    continue
                if series is not None and not series[i]:
                    continue
                if state is not None and not state(i, st, NAN):
                    continue
                for make in actions:
                    intents.append(make(i, st))
                break
        return intents

    async def _send(self, intents: list[Intent], st: StateView) -> None:
        # Orders go out after every block has looked at the same state (5.1), cancels first.
        if self.has_cancels:
            intents = sending_order(intents)
        processor = self.processor
        order_for, send, command = processor.order_for, processor.send, processor.command
        for it in intents:
            if it.kind in ORDER_KINDS:
                # Sized and checked synchronously: a refused intent never makes a coroutine.
                order = order_for(it, st)
                if order is not None:
                    await send(order, it)
            else:
                await command(it, st)
