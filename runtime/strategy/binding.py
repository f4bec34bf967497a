"""Binding an execution plan to data: each case's market-data part as a bool array, its state part
and every action as closures over the bar and its `StateView`, and the readiness gate.

An action becomes `make(i, st) -> Intent` with everything evaluated at the close of bar i. The one
value not known then is `fill`, the fill price of an entry under which stop_loss / take_profit /
trail hang: those are bound into a `FillExpr` (runtime/execution/orders.py), everything but `fill`
already a number, so the request stays a plain value and the venue resolves it when the entry fills.
"""
from __future__ import annotations

import math
from operator import attrgetter
from typing import Any, Callable

import attrs
import numpy as np

from playdeck.compiler import ir
from playdeck.compiler.lower import CasePlan, ExecutionPlan
from playdeck.dsl.vocabulary import TIME_IN_FORCE
from playdeck.runtime.data.feeds import FeedStore
from playdeck.runtime.execution.orders import FILL, ProtectionSpec, Side, TimeInForce
from playdeck.runtime.strategy.evaluate import SeriesEvaluator, compile_scalar
from playdeck.runtime.strategy.intents import Intent
from playdeck.runtime.strategy.state_view import StateView

__all__ = ["BoundCase", "bind_plan", "fill_template", "ready_bar"]

NAN = math.nan
_TIF = {wire: TimeInForce(wire) for wire in TIME_IN_FORCE.values()}

Make = Callable[[int, StateView], Intent]


@attrs.frozen
class BoundCase:
    plan: CasePlan
    series: np.ndarray | None
    state: Callable | None
    actions: tuple[Make, ...]

    def unpacked(self) -> tuple[Any, bytes | None, Callable | None, tuple[Make, ...]]:
        """What the bar loop reads per case, without attribute lookups: the guard, the series part
        as bytes (0/1: indexing gives a plain int, not a numpy scalar), the state part, the actions."""
        p = self.plan
        return (None if p.guard is None else attrgetter(p.guard),
                None if self.series is None else self.series.tobytes(), self.state, self.actions)


def bind_plan(plan: ExecutionPlan, series: SeriesEvaluator, where: str) -> tuple[tuple[BoundCase, ...], ...]:
    return tuple(tuple(_bind_case(c, series, where) for c in cases) for cases in plan.blocks)


def _bind_case(c: CasePlan, series: SeriesEvaluator, where: str) -> BoundCase:
    arr = None if c.series is None else np.ascontiguousarray(series.exec(c.series), dtype=bool)
    state = None if c.state is None else compile_scalar(c.state, series)
    return BoundCase(c, arr, state, tuple(_bind_action(a, series, where) for a in c.actions))


def _where(file: str, span: Any) -> str:
    return f"{file}:{span.line}:{span.col}" if span is not None else file


def _bind_action(a: ir.Action, series: SeriesEvaluator, file: str) -> Make:
    where = _where(file, a.span)
    if isinstance(a, ir.Cancel):
        return lambda i, st: Intent(i, "cancel", tag=a.tag, where=where)
    if isinstance(a, ir.Protection):
        value = compile_scalar(a.value, series)
        kind, percent = a.kind, a.percent
        return lambda i, st: Intent(i, kind, value=float(value(i, st, NAN)), where=where, percent=percent)
    price = None if getattr(a, "price", None) is None else compile_scalar(a.price, series)
    if isinstance(a, ir.Close):
        return lambda i, st: Intent(i, "close", price=_opt(price, i, st), where=where)
    size_kind, size_value = _bind_size(a.size, series)
    if isinstance(a, ir.PartialClose):
        return lambda i, st: Intent(i, "partial_close", size_kind=size_kind, size_value=size_value(i, st),
                                    price=_opt(price, i, st), where=where)
    trigger = None if a.trigger is None else compile_scalar(a.trigger, series)
    side = Side(a.side)
    attached = tuple((p.kind, _attached_value(p, side, series), _where(file, p.span), p.percent and p.kind == "trail")
                     for p in a.attached)
    tif = _TIF[a.tif]
    kind, expire, tag = a.kind, a.expire, a.tag

    def make(i: int, st: StateView) -> Intent:
        # `fill` is the only unknown of an attached action; everything else is bound to bar i.
        protections = tuple([ProtectionSpec(k, fn(i, st), w, pct) for k, fn, w, pct in attached]) if attached else ()
        return Intent(i, kind, side, size_kind, size_value(i, st),
                      None if price is None else float(price(i, st, NAN)),
                      None if trigger is None else float(trigger(i, st, NAN)),
                      tif, expire, tag, protections, NAN, where)
    return make


def _attached_value(p: ir.Protection, side: Side, series: SeriesEvaluator) -> Callable[[int, StateView], Any]:
    """The price of attached protection as a FillExpr. `stop_loss 2%` under a buy is `fill x (1 - 2%)`,
    `take_profit 3%` `fill x (1 + 3%)` (mirrored under a sell, whose position is short); a
    percentage trail stays the fraction (the venue trails the best price by it)."""
    if not p.percent or p.kind == "trail":
        return fill_template(p.value, series)
    fraction = compile_scalar(p.value, series)
    below = (p.kind == "stop_loss") == (side is Side.BUY)  # a long's stop and a short's target lie below
    sign = -1.0 if below else 1.0
    return lambda i, st: ("*", FILL, 1.0 + sign * float(fraction(i, st, NAN)))


def _bind_size(size: ir.Size, series: SeriesEvaluator) -> tuple[str, Callable[[int, StateView], float]]:
    if size.value is not None:
        fn = compile_scalar(size.value, series)
        return size.kind, lambda i, st: float(fn(i, st, NAN))
    pct = size.pct
    return size.kind, lambda i, st: pct


def _opt(fn: Callable | None, i: int, st: StateView) -> float | None:
    return None if fn is None else float(fn(i, st, NAN))


def _reads_fill(e: ir.Expr) -> bool:
    return any(isinstance(x, ir.FillPrice) for x in ir.walk(e))


def fill_template(e: ir.Expr, series: SeriesEvaluator) -> Callable[[int, StateView], Any]:
    """`e` (a price under an entry) as `f(i, st) -> FillExpr`: every part without `fill` evaluated
    at bar i into a float, the rest kept as operations on FILL."""
    if not _reads_fill(e):
        f = compile_scalar(e, series)
        return lambda i, st: float(f(i, st, NAN))
    if isinstance(e, ir.FillPrice):
        return lambda i, st: FILL
    if isinstance(e, ir.Neg):
        a = fill_template(e.operand, series)
        return lambda i, st: ("neg", a(i, st))
    if isinstance(e, ir.Arith):
        left, right = fill_template(e.left, series), fill_template(e.right, series)
        op = e.op
        return lambda i, st: (op, left(i, st), right(i, st))
    if isinstance(e, ir.Func):
        parts = [fill_template(x, series) for x in e.args]
        fn = e.fn
        return lambda i, st: (fn, *[p(i, st) for p in parts])
    raise TypeError(f"no rule to bind `fill` inside {type(e).__name__}")


def ready_bar(plan: ExecutionPlan, series: SeriesEvaluator, n_bars: int) -> int:
    """The first bar where every feature, and every market-data input the cases read, has a
    known value (the readiness gate); higher-timeframe inputs count from their own closes."""
    ready = plan.warmup
    exec_tf = plan.play.market.exec_tf
    exprs: list[ir.Expr] = [ir.FeatureRef(f.name, fl, f.tf, f.expr.type) for f in plan.features
                            for fl in (f.fields or (None,))]
    exprs += [c.series for cases in plan.blocks for c in cases if c.series is not None]
    for e in exprs:
        ok = np.flatnonzero(series.valid(e, exec_tf))
        ready = max(ready, int(ok[0]) if len(ok) else n_bars)
    return ready


def make_evaluator(plan: ExecutionPlan, feeds: FeedStore) -> SeriesEvaluator:
    return SeriesEvaluator(feeds, {f.name: f for f in plan.features}, plan.play.market.exec_tf)
