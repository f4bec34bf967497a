"""The IR's two stable forms: readable text (the golden files) and JSON with a schema version.

The text prints every compound expression in parentheses, so precedence is never a question, and
every condition with its type.
"""
from __future__ import annotations

import enum
import json
from typing import Any

import attrs

from playdeck.dsl.fmt import number_text
from playdeck.dsl.vocabulary import DEFAULT_TIME_IN_FORCE, TIME_IN_FORCE

from . import ir
from .readiness import readiness_text
from playdeck.dsl.limits import room_to_recurse


def _num(v: float) -> str:
    return number_text(float(v))


class _Expr:
    def __init__(self, exec_tf: str):
        self.exec_tf = exec_tf

    def __call__(self, e: ir.Expr, top: bool = True) -> str:
        t = self.text(e)
        return t[1:-1] if top and t.startswith("(") and _balanced(t[1:-1]) else t

    def tf(self, tf: str) -> str:
        return "" if tf == self.exec_tf else f"@{tf}"

    def text(self, e: ir.Expr) -> str:
        x = self.text
        if isinstance(e, ir.Const):
            return _num(e.value)
        if isinstance(e, ir.Bar):
            return e.field + self.tf(e.tf)
        if isinstance(e, ir.Indicator):
            from .builtins import INDICATORS

            sig = INDICATORS[e.fn]
            args = [self(a) for a in e.args[len(sig.implicit):]] + [_num(p) for p in e.params]
            return f"{sig.written or e.fn}({', '.join(args)}){'.' + e.field if e.field else ''}{self.tf(e.tf)}"
        if isinstance(e, ir.FeatureRef):
            return e.name + (f".{e.field}" if e.field else "")
        if isinstance(e, ir.State):
            return e.name
        if isinstance(e, ir.TagState):
            return f"{e.tag}.{e.attr}"
        if isinstance(e, ir.FillPrice):
            return "fill"
        if isinstance(e, ir.Offset):
            return f"{x(e.operand)}[{e.bars}]"
        if isinstance(e, ir.Neg):
            return f"-{x(e.operand)}"
        if isinstance(e, ir.Not):
            return f"(not {x(e.operand)})"
        if isinstance(e, (ir.Arith, ir.Compare, ir.Logic)):
            return f"({x(e.left)} {e.op} {x(e.right)})"
        if isinstance(e, ir.Cross):
            return f"({x(e.left)} crosses_{e.direction} {x(e.right)})"
        if isinstance(e, ir.Func):
            return f"{e.fn}({', '.join(self(a) for a in e.args)})"
        raise TypeError(f"no printing rule for {type(e).__name__}")


def _balanced(t: str) -> bool:
    depth = 0
    for ch in t:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _size(s: ir.Size, ex: _Expr) -> str:
    if s.kind in ("qty", "usdt"):
        return f"{s.kind} {ex(s.value)}"
    pct = _num(round(s.pct * 100, 10)) + "%"
    return {"equity": f"{pct} equity", "risk": f"risk {pct}", "position": f"{pct} of position"}[s.kind]


def _protection(p: ir.Protection, ex: _Expr, reference: str) -> str:
    """`stop_loss (fill - (2 * atr))`; a percentage (7.1) names what it is a distance from:
    `stop_loss 2% of fill`, `take_profit 3% of entry`, `trail 1.5%` (of the best price)."""
    if not p.percent:
        return f"{p.kind} {ex(p.value)}"
    assert isinstance(p.value, ir.Const)
    pct = _num(round(p.value.value * 100, 10)) + "%"
    return f"{p.kind} {pct}" if p.kind == "trail" else f"{p.kind} {pct} of {reference}"


def _action(a: ir.Action, ex: _Expr) -> list[str]:
    if isinstance(a, ir.Protection):
        return [_protection(a, ex, "entry")]
    if isinstance(a, ir.Cancel):
        return [f"cancel {a.tag if a.tag is not None else 'all'}"]
    if isinstance(a, ir.Close):
        return ["close" + (f" at {ex(a.price)}" if a.price is not None else "") + " reduce_only"]
    if isinstance(a, ir.PartialClose):
        return [f"partial_close {_size(a.size, ex)}" + (f" at {ex(a.price)}" if a.price is not None else "")
                + " reduce_only"]
    words = [a.kind, a.side, _size(a.size, ex)]
    if a.kind == "stop":
        words.append(f"trigger {ex(a.trigger)}")
        if a.price is not None:
            words.append(f"limit {ex(a.price)}")
    elif a.price is not None:
        words.append(f"at {ex(a.price)}")
    if a.expire is not None:
        words.append(f"expire {a.expire} bars")
    if a.kind in ("limit",) or a.tif != TIME_IN_FORCE[DEFAULT_TIME_IN_FORCE]:
        words.append(f"tif {a.tif}")
    if a.tag is not None:
        words.append(f"as {a.tag}")
    lines = [" ".join(words)]
    lines.extend(f"  attached {_protection(p, ex, 'fill')}" for p in a.attached)
    return lines


@room_to_recurse()
def ir_text(play: ir.PlayIR) -> str:
    ex = _Expr(play.market.exec_tf)
    m, a = play.market, play.account
    out = [f"playdeck IR v{play.schema_version}", f"play {play.name}"]
    if play.description:
        out.append(f"  description {json.dumps(play.description)}")
    tfs = " ".join(f"{k}={v}" for k, v in m.timeframes)
    out.append(f"market {m.symbol} exec={m.exec_tf}" + (f" timeframes: {tfs}" if tfs else ""))
    out.append(f"account equity={_num(a.equity)} leverage={_num(a.leverage)} maker={_num(a.maker_fee)} "
               f"taker={_num(a.taker_fee)} slippage_bps={_num(a.slippage_bps)} intrabar={a.intrabar} "
               f"mmr={_num(a.mmr)} funding={_num(a.funding)}")
    out.append(f"instrument tick={_num(a.tick)} qty_step={_num(a.qty_step)} min_qty={_num(a.min_qty)}")
    out.append("jobs")
    for i, j in enumerate(play.jobs):
        out.append(f"  #{i} {ex(j.indicator)} on {j.tf} warmup={j.warmup}")
    out.append("features")
    for f in play.features:
        fields = f" fields={','.join(f.fields)}" if f.fields else ""
        out.append(f"  {f.name}: {f.expr.type} on {f.tf} warmup={f.warmup}{fields} = {ex(f.expr)}")
    out.append("tags " + (" ".join(play.tags) if play.tags else "-"))
    out.append(f"readiness {readiness_text(play)}")
    for b in play.blocks:
        out.append(f"block {b.name}")
        for c in b.cases:
            out.append("  otherwise" if c.cond is None else f"  when {ex(c.cond)} : {c.cond.type}")
            for act in c.actions:
                out.extend("    " + ln for ln in _action(act, ex))
    return "\n".join(out) + "\n"


def _json(v: Any) -> Any:
    if attrs.has(type(v)):
        d: dict[str, Any] = {"node": type(v).__name__}
        for f in attrs.fields(type(v)):
            val = getattr(v, f.name)
            if f.name == "span":
                d["span"] = None if val is None else [val.line, val.col, val.end_line, val.end_col]
            else:
                d[f.name] = _json(val)
        return d
    if isinstance(v, (tuple, list)):
        return [_json(x) for x in v]
    if isinstance(v, enum.Enum):
        return v.value
    return v


@room_to_recurse()
def ir_json(play: ir.PlayIR) -> str:
    data = _json(play)
    data["schema"] = f"playdeck.ir/{play.schema_version}"
    return json.dumps(data, indent=2, sort_keys=False) + "\n"
