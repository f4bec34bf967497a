"""Turning IR expressions into numbers: whole numpy arrays for market data, closures for state.

`SeriesEvaluator` computes an expression for every bar of a timeframe at once (indicator jobs are
computed once and shared). `compile_scalar` builds a Python closure `f(i, state, fill)` for the
parts of a condition or an order that read trading state; any market-data sub-expression inside it
is computed as an array first and only indexed per bar. Every operator computes what the
compiler's `OPERATORS` table says (a comparison with NaN is false, x / 0 is NaN, ...), on both paths.
"""
from __future__ import annotations

from typing import Any, Callable

import attrs
import numpy as np

from playdeck.compiler import ir
from playdeck.compiler.check import has_state
from playdeck.compiler.ir import home_tf
from playdeck.compiler.operators import OPERATORS

from playdeck.runtime.data.feeds import FeedStore
from playdeck.runtime.data.indicators import IMPLEMENTATIONS


class SeriesEvaluator:
    def __init__(self, feeds: FeedStore, features: dict[str, ir.Feature], exec_tf: str):
        self.feeds = feeds
        self.features = features
        self.exec_tf = exec_tf
        self._jobs: dict[ir.Indicator, Any] = {}
        self._cache: dict[tuple[ir.Expr, str], np.ndarray] = {}

    def exec(self, e: ir.Expr) -> np.ndarray:
        """`e` on every exec bar, as an array of the exec length."""
        out = self.on(e, self.exec_tf)
        if np.ndim(out) == 0:
            out = np.full(len(self.feeds), out)
        return out

    def job(self, ind: ir.Indicator) -> Any:
        key = ind.job()
        if key not in self._jobs:
            args = [np.asarray(self.on(a, ind.tf), dtype=np.float64) for a in ind.args]
            self._jobs[key] = IMPLEMENTATIONS[ind.fn](*args, *ind.params)
        return self._jobs[key]

    def on(self, e: ir.Expr, tf: str) -> Any:
        key = (e, tf)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = self._eval(e, tf)
        self._cache[key] = out
        return out

    def valid(self, e: ir.Expr, tf: str) -> np.ndarray:
        """Per bar of `tf`: does `e` have a known value there, i.e. is every market-data input it
        reads warm (not NaN) and visible? The readiness gate uses this rather than "`e` is not NaN",
        since a comparison with an unknown value is a known False (`not (x > sma)` would be True)
        and a boolean series is never NaN. Division by zero is a value (NaN), not a warm-up."""
        key = (e, tf, "valid")
        hit = self._cache.get(key)  # type: ignore[arg-type]
        if hit is not None:
            return hit
        out = self._valid(e, tf)
        self._cache[key] = out  # type: ignore[index]
        return out

    def _valid(self, e: ir.Expr, tf: str) -> np.ndarray:
        n = len(self.feeds.array(tf, "close"))
        if isinstance(e, (ir.Bar, ir.Indicator)):
            if isinstance(e, ir.Indicator) and e.field is None and isinstance(self.job(e), dict):
                fields = [attrs.evolve(e, field=k) for k in self.job(e)]
                return np.logical_and.reduce([self.valid(x, tf) for x in fields])
            arr = np.asarray(self.on(e, e.tf), dtype=np.float64)
            ok = ~np.isnan(arr)
            return ok if e.tf == tf else self.feeds.series_on_exec(e.tf, ok)
        if isinstance(e, ir.FeatureRef):
            f = self.features[e.name]
            ok = self.valid(f.expr if e.field is None else _select(f.expr, e.field), f.tf)
            return ok if f.tf == tf else self.feeds.series_on_exec(f.tf, ok)
        if isinstance(e, ir.Offset):
            home = home_tf(e.operand)
            if home is not None and home != tf:
                return self.feeds.series_on_exec(home, shift(self.valid(e.operand, home), e.bars))
            return shift(self.valid(e.operand, tf), e.bars)
        if isinstance(e, ir.Cross):
            both = self.valid(e.left, tf) & self.valid(e.right, tf)
            return both & shift(both, 1)  # a cross reads the previous bar too
        kids = ir.children(e)
        if not kids:  # constants, trading state, `fill`: not market data, always known
            return np.ones(n, dtype=bool)
        return np.logical_and.reduce([self.valid(k, tf) for k in kids])

    def _eval(self, e: ir.Expr, tf: str) -> Any:
        if isinstance(e, ir.Const):
            return np.float64(e.value)
        if isinstance(e, ir.Bar):
            return self.feeds.array(e.tf, e.field)
        if isinstance(e, ir.Indicator):
            out = self.job(e)
            if isinstance(out, dict):
                return out[e.field] if e.field is not None else out
            return out
        if isinstance(e, ir.FeatureRef):
            f = self.features[e.name]
            expr = f.expr if e.field is None else _select(f.expr, e.field)
            arr = self.on(expr, f.tf)
            if f.tf != tf:
                arr = self.feeds.series_on_exec(f.tf, np.asarray(arr, dtype=np.float64))
                if e.type.is_bool:
                    arr = arr > 0.5
            return arr
        if isinstance(e, ir.Offset):
            home = home_tf(e.operand)
            if home is not None and home != tf:
                # `trend[1]` for a 4h feature (or `(trend * 2)[1]`: any expression of one timeframe)
                # is its value one closed 4h bar ago: shift on its own bars, then forward-fill onto
                # exec bars (still only closed bars: no lookahead). Mixed timeframes count exec bars.
                own = self.on(e.operand, home)
                arr = self.feeds.series_on_exec(home, shift(np.asarray(own, dtype=np.float64), e.bars))
                return arr > 0.5 if e.operand.type.is_bool else arr
            return shift(np.asarray(self.on(e.operand, tf)), e.bars)
        if isinstance(e, ir.Neg):
            return OPERATORS["neg"].array(self.on(e.operand, tf))
        if isinstance(e, ir.Not):
            return np.logical_not(self.on(e.operand, tf))
        if isinstance(e, (ir.Arith, ir.Compare)):  # NaN compares false, even with !=; x / 0 is NaN
            return OPERATORS[e.op].array(self.on(e.left, tf), self.on(e.right, tf))
        if isinstance(e, ir.Cross):
            a = np.asarray(self.on(e.left, tf), dtype=np.float64)
            b = np.asarray(self.on(e.right, tf), dtype=np.float64)
            n = len(self.feeds.array(tf, "close"))
            a = np.broadcast_to(a, (n,))
            b = np.broadcast_to(b, (n,))
            pa, pb = shift(a, 1), shift(b, 1)
            now, before = (">", "<=") if e.direction == "above" else ("<", ">=")
            return OPERATORS[now].array(a, b) & OPERATORS[before].array(pa, pb)
        if isinstance(e, ir.Logic):
            a, b = self.on(e.left, tf), self.on(e.right, tf)
            return np.logical_and(a, b) if e.op == "and" else np.logical_or(a, b)
        if isinstance(e, ir.Func):
            return OPERATORS[e.fn].array(*(self.on(a, tf) for a in e.args))
        raise TypeError(f"no series rule for {type(e).__name__} (it reads trading state)")


def _select(expr: ir.Expr, field: str) -> ir.Expr:
    assert isinstance(expr, ir.Indicator)
    return attrs.evolve(expr, field=field)


def shift(a: np.ndarray, n: int) -> np.ndarray:
    """`a` n bars ago: the first n values are unknown (NaN, or False for bool series)."""
    if n == 0 or np.ndim(a) == 0:
        return a
    out = np.empty_like(a)
    out[:n] = False if a.dtype == bool else np.nan
    out[n:] = a[:-n]
    return out


# ---- closures over trading state ---------------------------------------------------------------

Scalar = Callable[[int, Any, float], Any]


def compile_scalar(e: ir.Expr, series: SeriesEvaluator) -> Scalar:
    """A closure `f(i, state, fill)`; `state` is a `StateView` for the bar being closed."""
    if not has_state(e) and e.type.is_series:
        arr = series.exec(e)
        return lambda i, st, fill: arr[i]
    if isinstance(e, ir.Const):
        v = e.value
        return lambda i, st, fill: v
    if isinstance(e, ir.State):
        attr = e.name.replace("position.", "pos_")
        return lambda i, st, fill: getattr(st, attr)
    if isinstance(e, ir.TagState):
        tag, attr = e.tag, e.attr
        return lambda i, st, fill: st.tag(tag, attr)
    if isinstance(e, ir.FillPrice):
        return lambda i, st, fill: fill
    if isinstance(e, ir.Neg):
        f, neg = compile_scalar(e.operand, series), OPERATORS["neg"].scalar
        return lambda i, st, fill: neg(f(i, st, fill))
    if isinstance(e, ir.Not):
        f = compile_scalar(e.operand, series)
        return lambda i, st, fill: not f(i, st, fill)
    if isinstance(e, (ir.Arith, ir.Compare)):
        a, b = compile_scalar(e.left, series), compile_scalar(e.right, series)
        op = OPERATORS[e.op].scalar
        return lambda i, st, fill: op(a(i, st, fill), b(i, st, fill))
    if isinstance(e, ir.Logic):
        a, b = compile_scalar(e.left, series), compile_scalar(e.right, series)
        if e.op == "and":
            return lambda i, st, fill: bool(a(i, st, fill)) and bool(b(i, st, fill))
        return lambda i, st, fill: bool(a(i, st, fill)) or bool(b(i, st, fill))
    if isinstance(e, ir.Func):
        fs = [compile_scalar(x, series) for x in e.args]
        fn = OPERATORS[e.fn].scalar
        if len(fs) == 1:
            f = fs[0]
            return lambda i, st, fill: fn(f(i, st, fill))
        a, b = fs
        return lambda i, st, fill: fn(a(i, st, fill), b(i, st, fill))
    raise TypeError(f"no scalar rule for {type(e).__name__}")

