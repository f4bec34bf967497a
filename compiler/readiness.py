"""Readiness at compile time: the first exec bar where every feature, and every market-data input of
the blocks, has a value (the readiness gate of PLAY-LANGUAGE.md section 2), from warm-up lengths.

It follows the run-time gate (`runtime.evaluate.SeriesEvaluator.valid`) rule for rule, on warm-up
lengths instead of data, assuming the data starts on a boundary of every timeframe the Play uses:
bar k of a timeframe r times the exec one closes at exec bar (k + 1) * r - 1, and only then is its
value visible. Data can only make the run's gate later (a first 4h bar the data starts inside is
dropped; a pivot may not be found for a while); the backtest report prints the gate it used.
"""
from __future__ import annotations

import attrs

from . import ir
from .builtins import INDICATORS
from playdeck.dsl.vocabulary import tf_minutes


def readiness(play_features: dict[str, ir.Feature], exprs: list[ir.Expr], exec_tf: str,
              warmups: Warmups | None = None) -> int:
    """The first exec bar at which every feature and every expression in `exprs` (conditions and
    action values, on the exec timeframe) is known. `warmups` shares what the compile already knows."""
    ready = warmups if warmups is not None else Warmups(play_features)
    refs = [ir.FeatureRef(f.name, None, f.tf, f.expr.type) for f in play_features.values()]
    return max([ready.on(e, exec_tf) for e in refs + exprs] + [0])


def warmup_of(e: ir.Expr, features: dict[str, ir.Feature], tf: str) -> int:
    """Bars of `tf` before `e` has a value (a feature's or an indicator job's warm-up); a
    higher-timeframe feature read on exec bars counts from the close of its first warm bar."""
    return Warmups(features).on(e, tf)


class Warmups:
    """The first known bar of expressions, remembered for one compile: each feature's is worked out
    once, and every feature, job and condition that reads it reuses it, so thousands of features
    that read each other cost their number, not its square."""

    def __init__(self, features: dict[str, ir.Feature]):
        self.features = features  # the checker's own dict: it grows as features are checked
        # Keyed by identity (hashing a frozen IR node hashes its whole subtree, every time); each
        # entry holds its node, so no id can be reused by another node while the memo lives.
        self._memo: dict[tuple[int, str], tuple[ir.Expr, int]] = {}
        self._feature_memo: dict[tuple[str, str | None, str], int] = {}  # (feature, field, tf)

    def on(self, e: ir.Expr, tf: str) -> int:
        """Index, in `tf` bars, of the first bar where `e` is known."""
        key = (id(e), tf)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = (e, self._on(e, tf))
        return hit[1]

    def _on(self, e: ir.Expr, tf: str) -> int:
        if isinstance(e, ir.Bar):
            return _visible(0, e.tf, tf)
        if isinstance(e, ir.Indicator):
            own = max((self.on(a, e.tf) for a in e.args), default=0) + INDICATORS[e.fn].first_value(e.params, e.field)
            return _visible(own, e.tf, tf)
        if isinstance(e, ir.FeatureRef):
            key = (e.name, e.field, tf)
            known = self._feature_memo.get(key)
            if known is None:
                f = self.features[e.name]
                expr = f.expr if e.field is None else attrs.evolve(f.expr, field=e.field)
                known = self._feature_memo[key] = _visible(self.on(expr, f.tf), f.tf, tf)
            return known
        if isinstance(e, ir.Offset):
            # `trend[1]` of a 4h feature is one closed 4h bar ago; an offset over mixed timeframes
            # counts bars of the timeframe it is evaluated on (as the evaluator does).
            home = ir.home_tf(e.operand)
            if home is not None and home != tf:
                return _visible(self.on(e.operand, home) + e.bars, home, tf)
            return self.on(e.operand, tf) + e.bars
        if isinstance(e, ir.Cross):
            return max(self.on(e.left, tf), self.on(e.right, tf)) + 1  # a cross reads the bar before
        return max((self.on(k, tf) for k in ir.children(e)), default=0)


def _visible(k: int, src: str, dst: str) -> int:
    """The first `dst` bar that sees `src` bar k: the one its close falls in (src is a multiple)."""
    if src == dst:
        return k
    ratio = tf_minutes(src) // tf_minutes(dst)
    return (k + 1) * ratio - 1


def readiness_text(play: ir.PlayIR) -> str:
    """`N exec bars`, and the data alignment it assumes when higher timeframes are read."""
    tfs = {j.tf for j in play.jobs} | {f.tf for f in play.features} | {play.market.exec_tf}
    coarsest = max(tfs, key=tf_minutes)
    if coarsest == play.market.exec_tf:
        return f"{play.warmup} exec bars"
    return f"{play.warmup} exec bars (for data starting at a {coarsest} boundary)"
