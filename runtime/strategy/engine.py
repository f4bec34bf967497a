"""The bar loop: one engine for every mode (DESIGN.md, "The pipeline").

At the close of exec bar i (PLAY-LANGUAGE.md 5.1): the backend applies what filled inside bar i,
then the blocks are evaluated first-match, then their intents go through the IntentProcessor, so
an order sent at the close of bar i can first fill in bar i+1.

The loop is O(1) per bar and skips bars where nothing can happen: with no order working, only bars
where some case's market-data part is true (a precomputed bool array) can produce an intent.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from operator import attrgetter
from typing import Any, Callable

import attrs
import numpy as np

from playdeck.compiler import ir
from playdeck.compiler.lower import CasePlan, ExecutionPlan

from playdeck.runtime.strategy.evaluate import SeriesEvaluator, compile_scalar
from playdeck.runtime.data.feeds import FeedStore
from playdeck.runtime.strategy.intents import ORDER_KINDS, Intent, IntentProcessor, Rejection, sending_order
from playdeck.runtime.execution.orders import AttachedProtection, Fill, OrderEvent, Side, TimeInForce
from playdeck.runtime.strategy.state_view import StateView

NAN = math.nan
_TIF = {"GTC": TimeInForce.GTC, "PostOnly": TimeInForce.POST_ONLY, "IOC": TimeInForce.IOC,
        "FOK": TimeInForce.FOK}


@attrs.frozen
class _BoundCase:
    plan: CasePlan
    series: np.ndarray | None
    state: Callable | None
    actions: tuple[Callable[[int, StateView], Intent], ...]


@attrs.define(repr=False)
class RunResult:
    ready_bar: int
    start: int
    end: int  # exclusive
    fills: list[Fill]
    events: list[OrderEvent]
    snapshots: list[tuple[int, float, float, float]]  # (bar, position qty, avg entry, cash) after fills
    evaluated_bars: int

    def __repr__(self) -> str:  # asyncio reprs a task's result; keep it cheap for a million bars
        return f"RunResult(bars {self.start}..{self.end}, {len(self.fills)} fills, {len(self.events)} events)"


class Engine:
    def __init__(self, plan: ExecutionPlan, feeds: FeedStore, backend: Any, processor: IntentProcessor,
                 *, where: str = ""):
        self.plan = plan
        self.feeds = feeds
        self.backend = backend
        self.ex = backend.exchange  # the state the conditions read (sim book or live mirror)
        self.processor = processor
        self.where = where
        features = {f.name: f for f in plan.features}
        self.series = SeriesEvaluator(feeds, features, plan.play.market.exec_tf)
        self.tag_prices: dict[str, float] = {}
        self.blocks = tuple(tuple(self._bind(c) for c in cases) for cases in plan.blocks)
        # What `_evaluate` reads per case, unpacked once so the per-bar loop does no attribute lookups;
        # the series part as bytes (0/1), which index to a plain int instead of a numpy scalar.
        self.flat_blocks = tuple(
            tuple((None if bc.plan.guard is None else attrgetter(bc.plan.guard),
                   None if bc.series is None else bc.series.tobytes(), bc.state, bc.actions)
                  for bc in cases)
            for cases in self.blocks)
        self.ready_bar = self._ready_bar()
        self.has_cancels = any(isinstance(a, ir.Cancel) for cases in plan.blocks for c in cases for a in c.actions)

    # ---- binding the plan to data ----------------------------------------------------------------
    def _bind(self, c: CasePlan) -> _BoundCase:
        series = None if c.series is None else np.ascontiguousarray(self.series.exec(c.series), dtype=bool)
        state = None if c.state is None else compile_scalar(c.state, self.series)
        return _BoundCase(c, series, state, tuple(self._bind_action(a) for a in c.actions))

    def _where(self, span) -> str:
        return f"{self.where}:{span.line}:{span.col}" if span is not None else self.where

    def _bind_action(self, a: ir.Action) -> Callable[[int, StateView], Intent]:
        where = self._where(a.span)
        if isinstance(a, ir.Cancel):
            return lambda i, st: Intent(i, "cancel", tag=a.tag, where=where)
        if isinstance(a, ir.Protection):
            value = compile_scalar(a.value, self.series)
            return lambda i, st: Intent(i, a.kind, value=float(value(i, st, NAN)), where=where)
        price = None if getattr(a, "price", None) is None else compile_scalar(a.price, self.series)
        if isinstance(a, ir.Close):
            return lambda i, st: Intent(i, "close", price=_opt(price, i, st), where=where)
        size_kind, size_value = self._bind_size(a.size)
        if isinstance(a, ir.PartialClose):
            return lambda i, st: Intent(i, "partial_close", size_kind=size_kind, size_value=size_value(i, st),
                                        price=_opt(price, i, st), where=where)
        trigger = None if a.trigger is None else compile_scalar(a.trigger, self.series)
        attached = tuple((p.kind, compile_scalar(p.value, self.series), self._where(p.span)) for p in a.attached)
        side = Side(a.side)
        tif = _TIF[a.tif]

        kind, expire, tag = a.kind, a.expire, a.tag

        def make(i: int, st: StateView) -> Intent:
            # `fill` is the only unknown of an attached action; everything else is bound to bar i.
            protections = tuple([AttachedProtection(k, _bind_fill(fn, i, st), w) for k, fn, w in attached]) \
                if attached else ()
            return Intent(i, kind, side, size_kind, size_value(i, st),
                          None if price is None else float(price(i, st, NAN)),
                          None if trigger is None else float(trigger(i, st, NAN)),
                          tif, expire, tag, protections, NAN, where)
        return make

    def _bind_size(self, size: ir.Size):
        if size.value is not None:
            fn = compile_scalar(size.value, self.series)
            return size.kind, lambda i, st: float(fn(i, st, NAN))
        pct = size.pct
        return size.kind, lambda i, st: pct

    def _ready_bar(self) -> int:
        """The first bar where every feature, and every market-data input the cases read, has a
        known value (the readiness gate); higher-timeframe inputs count from their own closes."""
        ready = self.plan.warmup
        exec_tf = self.plan.play.market.exec_tf
        exprs = [ir.FeatureRef(f.name, fl, f.tf, f.expr.type) for f in self.plan.features for fl in (f.fields or (None,))]
        exprs += [c.series for cases in self.plan.blocks for c in cases if c.series is not None]
        for e in exprs:
            ok = np.flatnonzero(self.series.valid(e, exec_tf))
            ready = max(ready, int(ok[0]) if len(ok) else len(self.feeds))
        return ready

    # ---- the loop ----------------------------------------------------------------------------------
    async def run(self, start: int = 0, end: int | None = None,
                  progress: Callable[[int], None] | None = None) -> RunResult:
        n = len(self.feeds)
        end = n if end is None else min(end, n)
        bars = self.feeds.bars()
        ts, o, h, l, c = (np.asarray(bars.ts_open), bars.open, bars.high, bars.low, bars.close)
        ex = self.ex
        working = ex.working  # truthy while any order is working
        backend = self.backend
        advance = backend.advance
        at_close = backend.at_close
        evaluate = self._evaluate
        send = self._send
        tag_prices = self.tag_prices
        blocks = self.blocks
        # Bars where at least one case could fire with nothing working: the union of series parts.
        dense = any(bc.series is None for cases in blocks for bc in cases)
        fills: list[Fill] = []
        events: list[OrderEvent] = []
        snapshots: list[tuple[int, float, float, float]] = []
        add_fill, add_event, add_snapshot = fills.append, events.append, snapshots.append
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
        while i < end:
            if working:
                advance(i, int(ts[i]), float(o[i]), float(h[i]), float(l[i]), float(c[i]))
                if ex.refused_attached:
                    self._report_refused_attached()
                drained = ex.drain_events()
                if drained:
                    got_fill = False
                    for e in drained:
                        if isinstance(e, Fill):
                            add_fill(e)
                            got_fill = True
                        else:
                            add_event(e)
                    if got_fill:
                        add_snapshot((i, ex.position_qty, ex.avg_entry, ex.cash))
            if dense or i == nxt:
                evaluated += 1
                close = float(c[i])
                at_close(i, int(ts[i]), close)
                st = StateView(ex, i, close, tag_prices)
                intents = evaluate(i, st)
                if intents:
                    await send(intents, st)
                    for e in ex.drain_events():
                        if not isinstance(e, Fill):
                            add_event(e)
                if not dense:
                    k += 1
                    nxt = cands[k] if k < n_cands else end
            if progress is not None and i >= next_report:
                progress(i)
                next_report = i + 65536
            if dense or working:
                i += 1
            else:
                i = nxt  # nothing works and no case can fire before the next candidate bar
        return RunResult(self.ready_bar, start, end, fills, events, snapshots, evaluated)

    def _report_refused_attached(self) -> None:
        # An attached stop_loss / take_profit / trail the exchange refused when its entry filled is
        # a refused part of that intent: it goes with the other refusals (rejections.csv, report).
        add = self.processor.rejections.append
        for bar, item, reason in self.ex.refused_attached:
            add(Rejection(bar, item.kind, None, reason, item.where))
        self.ex.refused_attached.clear()

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
        order_for, send, process = processor.order_for, processor.send, processor.process
        for it in intents:
            if it.kind in ORDER_KINDS:
                # Sized and checked synchronously: a refused intent never makes a coroutine.
                order = order_for(it, st)
                if order is None:
                    continue
                result = await send(order, it, st)
            else:
                result = await process(it, st)
            if it.tag is not None and result is not None and result.accepted:
                ref = it.price if it.price is not None else it.trigger  # limit price, else trigger
                if ref is not None:
                    self.tag_prices[it.tag] = processor.instrument.round_price(ref)


def _opt(fn, i: int, st: StateView) -> float | None:
    return None if fn is None else float(fn(i, st, NAN))


def _bind_fill(fn, i: int, st: StateView) -> Callable[[float], float]:
    return lambda fill: float(fn(i, st, fill))
