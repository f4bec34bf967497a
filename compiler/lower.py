"""Lowering: the checked IR -> the `ExecutionPlan` the runtime runs (DESIGN.md, "The pipeline").

A condition is split at its top-level `and`s: the conjuncts that read only market data are one
series expression, computed for all bars at once (a numpy bool array); the rest read trading
state and are evaluated per bar, only on bars where the series part is true. A conjunct that says
`flat`, `long` or `short` also becomes a guard the engine checks before anything else.
"""
from __future__ import annotations

import attrs

from . import ir
from .check import has_state
from .readiness import readiness_text
from .types import Type
from playdeck.dsl.limits import room_to_recurse


@attrs.frozen(slots=True)
class CasePlan:
    block: str
    index: int  # position in its block (first-match order)
    series: ir.Expr | None  # market-data-only part of the condition, or None (always true)
    state: ir.Expr | None  # the part that reads trading state, or None
    guard: str | None  # "flat" | "long" | "short": a position conjunct, checked first
    actions: tuple[ir.Action, ...]
    otherwise: bool = False
    span: object = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(slots=True)
class ExecutionPlan:
    play: ir.PlayIR
    blocks: tuple[tuple[CasePlan, ...], ...]
    timeframes: tuple[str, ...]  # every timeframe the plan reads, exec first

    @property
    def jobs(self) -> tuple[ir.Job, ...]:
        return self.play.jobs

    @property
    def features(self) -> tuple[ir.Feature, ...]:
        return self.play.features

    @property
    def warmup(self) -> int:
        return self.play.warmup


def conjuncts(e: ir.Expr) -> list[ir.Expr]:
    out, stack = [], [e]
    while stack:
        x = stack.pop()
        if isinstance(x, ir.Logic) and x.op == "and":
            stack += [x.right, x.left]
        else:
            out.append(x)
    return out


# Regrouping the conjuncts may make a chain longer than the condition was deep (`(a and b) and
# (c and d)` ...); past this many, join them as a balanced tree so the evaluator's recursion stays
# shallow. `and` is associative, so the grouping does not change the value.
_LEFT_DEEP = 32


def conjoin(parts: list[ir.Expr]) -> ir.Expr | None:
    if not parts:
        return None
    if len(parts) > _LEFT_DEEP:
        mid = len(parts) // 2
        return _and(conjoin(parts[:mid]), conjoin(parts[mid:]))
    out = parts[0]
    for p in parts[1:]:
        out = _and(out, p)
    return out


def _and(a: ir.Expr, b: ir.Expr) -> ir.Logic:
    t = Type.BOOL_SERIES if (a.type.is_series or b.type.is_series) else Type.BOOL
    return ir.Logic("and", a, b, t)


def lower_case(block: str, index: int, case: ir.Case) -> CasePlan:
    if case.cond is None:
        return CasePlan(block, index, None, None, None, case.actions, True, case.span)
    series, state = [], []
    guard = None
    for c in conjuncts(case.cond):
        if isinstance(c, ir.State) and c.name in ("flat", "long", "short") and guard is None:
            guard = c.name
        elif c.type.is_series and not has_state(c):
            series.append(c)
        else:
            state.append(c)
    return CasePlan(block, index, conjoin(series), conjoin(state), guard, case.actions, False, case.span)


@room_to_recurse()
def lower(play: ir.PlayIR) -> ExecutionPlan:
    blocks = tuple(tuple(lower_case(b.name, i, c) for i, c in enumerate(b.cases)) for b in play.blocks)
    tfs = [play.market.exec_tf]
    for j in play.jobs:
        if j.tf not in tfs:
            tfs.append(j.tf)
    for f in play.features:
        if f.tf not in tfs:
            tfs.append(f.tf)
    return ExecutionPlan(play, blocks, tuple(tfs))


@room_to_recurse()
def plan_text(plan: ExecutionPlan) -> str:
    """`playdeck compile --stage lower`: which part of each condition is precomputed."""
    from .printer import _Expr

    ex = _Expr(plan.play.market.exec_tf)
    out = [f"plan {plan.play.name}", "timeframes " + " ".join(plan.timeframes),
           f"jobs {len(plan.jobs)}", f"readiness {readiness_text(plan.play)}"]
    for cases in plan.blocks:
        if cases:
            out.append(f"block {cases[0].block}")
        for c in cases:
            if c.otherwise:
                out.append("  otherwise")
            else:
                out.append(f"  case {c.index}")
                out.append(f"    guard  {c.guard or '-'}")
                out.append(f"    series {ex(c.series) if c.series is not None else '-'}")
                out.append(f"    state  {ex(c.state) if c.state is not None else '-'}")
            out.append(f"    actions {len(c.actions)}")
    return "\n".join(out) + "\n"
