"""Name resolution and type checking: syntax tree -> typed IR (PLAY-LANGUAGE.md section 4).

Every problem becomes a `Diagnostic` with its span; checking goes on with the next case or feature,
so one run reports as much as it can.
"""
from __future__ import annotations

import difflib
import math
from typing import Callable, Iterable

import attrs

from playdeck.dsl import syntax as s
from playdeck.dsl.diagnostics import Diagnostic, shorten
from playdeck.dsl.limits import DEPTH_HINT, MAX_BARS, MAX_DEPTH

from . import ir
from .builtins import (FUNCTIONS, INDICATORS, KEYWORDS, NO_ARGUMENT_FORMS, POSITION_FIELDS, RESERVED, SERIES,
                       STATE_WORDS, TAG_FIELDS)
from .operators import fold
from .readiness import Warmups
from playdeck.dsl.vocabulary import PROTECTION_KINDS, TIMEFRAMES, is_multiple
from .types import Type, combine


# Different names searched for a did-you-mean per compile (see Checker.suggest).
MAX_SUGGESTION_SEARCHES = 50
# Names listed in a hint at most ("known: a, b, ..."): a hint's length must not grow with the file.
MAX_LISTED = 10


def listed(names: Iterable[str]) -> str:
    """`a, b, c`, or the first MAX_LISTED and how many there are in all."""
    names = list(names)
    if len(names) <= MAX_LISTED:
        return ", ".join(names)
    return ", ".join(names[:MAX_LISTED]) + f", ... ({len(names)} in all)"


class _Stop(Exception):
    """Abandon the current expression; its diagnostic is already recorded."""


@attrs.frozen
class _Ctx:
    tf: str
    in_feature: bool = False
    allow_fill: bool = False


_SERIES_OF = {"bool": Type.BOOL, "float": Type.NUM}


class Checker:
    def __init__(self, market: ir.Market):
        self.market = market
        self.aliases = dict(market.timeframes)
        self.diags: list[Diagnostic] = []
        self.feature_defs: dict[str, s.FeatureDef] = {}
        self.features: dict[str, ir.Feature] = {}
        self._resolving: list[str] = []
        self._failed: set[str] = set()
        self.tags: dict[str, s.Action] = {}
        self.depths: dict[str, int] = {}  # feature -> how deep its expression nests, features expanded
        self._nesting = 0
        self.warmups = Warmups(self.features)  # shared by every feature, job and condition
        self._suggestions: dict[tuple[str, str], str | None] = {}  # (kind, name) -> did you mean

    # ---- reporting --------------------------------------------------------------------------
    def error(self, code: str, message: str, span, hint: str = "") -> None:
        self.diags.append(Diagnostic(code, message, span, hint))

    def fail(self, code: str, message: str, span, hint: str = "") -> _Stop:
        self.error(code, message, span, hint)
        return _Stop()

    # ---- features ---------------------------------------------------------------------------
    def resolve_tf(self, name: str, span) -> str:
        tf = self.aliases.get(name, name)
        if tf not in TIMEFRAMES:
            names = listed(self.aliases)
            hint = (f"use {names} (named in market.timeframes) or a timeframe such as 4h" if names
                    else "use a timeframe such as 4h, or name one in market.timeframes")
            raise self.fail("timeframe", f"unknown timeframe '{name}'", span, hint)
        if not is_multiple(tf, self.market.exec_tf):
            raise self.fail("timeframe", f"timeframe {tf} is not a whole multiple of the exec timeframe "
                            f"{self.market.exec_tf}", span,
                            "higher timeframes are built from exec bars")
        return tf

    def check_features(self, defs: Iterable[s.FeatureDef]) -> None:
        for d in defs:
            self.feature_defs[d.name] = d
        for d in self.feature_defs.values():
            if d.name not in self.features:
                try:
                    self.feature(d.name)
                except _Stop:
                    pass

    def feature(self, name: str) -> ir.Feature:
        if name in self.features:
            return self.features[name]
        d = self.feature_defs[name]
        if name in self._failed:
            raise _Stop()  # already reported
        if name in self._resolving:
            cycle = " -> ".join(self._resolving[self._resolving.index(name):] + [name])
            raise self.fail("cycle", f"feature '{name}' depends on itself ({cycle})", d.span,
                            "a feature cannot use itself, directly or through other features; break the loop")
        if name in RESERVED:
            self._failed.add(name)
            raise self.fail("name", f"'{name}' is a built-in name and cannot name a feature", d.span,
                            "pick another name, e.g. my_" + name)
        self._resolving.append(name)
        outer, self._nesting = self._nesting, 0  # judged as an expression of its own
        try:
            tf = self.resolve_tf(d.tf, d.tf_span) if d.tf is not None else self.market.exec_tf
            expr = self.expr(d.expr, _Ctx(tf, in_feature=True), allow_multi=True)
        except _Stop:
            self._failed.add(name)
            raise
        finally:
            self._resolving.pop()
            self._nesting = outer
        self.depths[name] = nesting(expr, self.depths)
        if not expr.type.is_series:
            raise self.fail("type", f"feature '{name}' is a constant ({expr.type}); a feature is a series "
                            "computed from market data", d.expr.span,
                            "use market data, e.g. ema(close, 21); write a fixed number straight into a condition")
        fields: tuple[str, ...] = ()
        if isinstance(expr, ir.Indicator) and expr.field is None:
            fields = INDICATORS[expr.fn].fields
        f = ir.Feature(name, expr, tf, fields, self.warmups.on(expr, tf), d.span)
        self.features[name] = f
        return f

    # ---- expressions ------------------------------------------------------------------------
    def expr(self, e: s.Expr, ctx: _Ctx, allow_multi: bool = False) -> ir.Expr:
        self._nesting += 1
        try:
            out = self._expr(e, ctx)
        finally:
            self._nesting -= 1
        if self._nesting == 0:
            self._not_too_deep(out, e)
        if not allow_multi and isinstance(out, ir.Indicator) and out.field is None and INDICATORS[out.fn].fields:
            fields = INDICATORS[out.fn].fields
            raise self.fail("field", f"{out.fn} has several outputs ({', '.join(fields)}); pick one",
                            e.span, f"e.g. {out.fn}(...).{fields[1]}")
        if not allow_multi and isinstance(out, ir.FeatureRef) and out.field is None \
                and self.features[out.name].fields:
            fields = self.features[out.name].fields
            raise self.fail("field", f"feature '{out.name}' has several outputs ({', '.join(fields)}); pick one",
                            e.span, f"e.g. {out.name}.{fields[1]}")
        return out

    def _not_too_deep(self, x: ir.Expr, src: s.Expr) -> None:
        # The parser already refused anything deeper than MAX_DEPTH on its own; what is left is a
        # feature used inside another one: the evaluator recurses through the features it reads.
        depth = nesting(x, self.depths)
        if depth > MAX_DEPTH:
            raise self.fail("depth", f"this expression nests too deeply ({depth} levels, counting the features "
                            f"it uses; at most {MAX_DEPTH})", src.span,
                            DEPTH_HINT + "; a feature counts as deep as its own expression")

    def _expr(self, e: s.Expr, ctx: _Ctx) -> ir.Expr:
        m = getattr(self, "_x_" + type(e).__name__)
        return m(e, ctx)

    def _x_Num(self, e: s.Num, ctx: _Ctx) -> ir.Expr:
        self._finite(e)
        return ir.Const(e.value, span=e.span)

    def _x_Pct(self, e: s.Pct, ctx: _Ctx) -> ir.Expr:
        self._finite(e)
        return ir.Const(e.value / 100.0, span=e.span)

    def _finite(self, e: s.Num | s.Pct) -> None:
        # 1e400 reads as infinity: a number no price, size or length can be
        if not math.isfinite(e.value):
            raise self.fail("value", f"{shorten(e.text or str(e.value))} is too large to be a number here", e.span,
                            "numbers must be finite (at most about 1.8e308)")

    def _x_Name(self, e: s.Name, ctx: _Ctx) -> ir.Expr:
        n = e.id
        if n in SERIES:
            return ir.Bar(n, ctx.tf, span=e.span)
        if n in self.feature_defs:
            f = self.feature(n)
            # A feature on the exec timeframe reads a higher-timeframe one as a condition does
            # (forward-filled from the close of each of its bars); one on another timeframe reads
            # only its own timeframe's features.
            if ctx.in_feature and f.tf != ctx.tf and ctx.tf != self.market.exec_tf:
                raise self.fail("timeframe", f"feature '{n}' is computed on {f.tf} and cannot be used inside a "
                                f"feature on {ctx.tf}", e.span,
                                f"a feature on {ctx.tf} reads features on {ctx.tf} only; use '{n}' in a feature "
                                f"on {self.market.exec_tf} (the exec timeframe) or in a condition")
            return ir.FeatureRef(n, None, f.tf, f.expr.type, span=e.span)
        if n in STATE_WORDS or n == "position":
            self._no_state_in_feature(n, e.span, ctx)
            if n == "position":
                raise self.fail("field", "'position' needs a field", e.span,
                                "use " + ", ".join("position." + f for f in POSITION_FIELDS))
            return ir.State(n, _SERIES_OF[STATE_WORDS[n]], span=e.span)
        if n == "fill":
            if not ctx.allow_fill:
                raise self.fail("fill", "'fill' is only known in an action attached under an entry", e.span,
                                f"indent {' / '.join(PROTECTION_KINDS)} under the entry order to use its fill price")
            return ir.FillPrice(span=e.span)
        if n in self.tags:
            raise self.fail("field", f"tag '{n}' needs a field", e.span,
                            "use " + ", ".join(f"{n}.{f}" for f in TAG_FIELDS))
        if n in INDICATORS or n in FUNCTIONS:
            raise self.fail("name", f"'{n}' is a function; call it with arguments", e.span,
                            f"e.g. {INDICATORS[n].usage() if n in INDICATORS else n + '(a, b)'}")
        raise self.unknown(n, e.span, ctx)

    def suggest(self, kind: str, name: str, groups: Callable[[], Iterable[Iterable[str]]]) -> str | None:
        """The known name closest to `name` (did you mean?), from the first of `groups` that has one.

        A search reads every candidate (every feature, every tag), so only the first
        MAX_SUGGESTION_SEARCHES different names are searched for, each once: in a file with thousands
        of mistakes, the rest of its diagnostics cost the same as in a small file."""
        key = (kind, name)
        if key in self._suggestions:
            return self._suggestions[key]
        if len(self._suggestions) >= MAX_SUGGESTION_SEARCHES:
            return None
        found = next((close[0] for group in groups() if (close := difflib.get_close_matches(name, list(group), n=1))),
                     None)
        self._suggestions[key] = found
        return found

    def unknown(self, n: str, span, ctx: _Ctx) -> _Stop:
        def groups() -> list[list[str]]:
            known = list(SERIES)
            if not ctx.in_feature:
                known += list(STATE_WORDS) + ["position"] + list(self.tags)
            # The user's own names first: 'fsat' is one swap from the feature 'fast', and as close to 'flat'.
            return [list(self.feature_defs), known]

        close = self.suggest("name in a feature" if ctx.in_feature else "name", n, groups)
        if close is not None:
            hint = f"did you mean '{close}'?"
        else:
            hint = "names are open high low close volume, the features, and the state words " \
                   "flat long short equity position.*"
        if n in KEYWORDS:
            hint = f"'{n}' is a keyword of the language and cannot stand here"
        return self.fail("name", f"unknown name '{n}'", span, hint)

    def _no_state_in_feature(self, what: str, span, ctx: _Ctx) -> None:
        if ctx.in_feature:
            raise self.fail("state", f"'{what}' is trading state and cannot be used in a feature", span,
                            "features are computed from market data only; use it in a 'when' condition")

    def _x_Field(self, e: s.Field, ctx: _Ctx) -> ir.Expr:
        obj = e.obj
        if isinstance(obj, s.Name):
            n = obj.id
            if n == "position":
                self._no_state_in_feature("position." + e.name, e.span, ctx)
                if e.name not in POSITION_FIELDS:
                    raise self._no_field("position", e.name, POSITION_FIELDS, e.span)
                return ir.State("position." + e.name, _SERIES_OF[POSITION_FIELDS[e.name]], span=e.span)
            if n in self.tags and n not in self.feature_defs:
                self._no_state_in_feature(f"{n}.{e.name}", e.span, ctx)
                if e.name not in TAG_FIELDS:
                    raise self._no_field(f"tag '{n}'", e.name, TAG_FIELDS, e.span)
                return ir.TagState(n, e.name, _SERIES_OF[TAG_FIELDS[e.name]], span=e.span)
            if n in self.feature_defs:
                ref = self._x_Name(obj, ctx)
                f = self.features[n]
                if e.name not in f.fields:
                    raise self._no_field(f"feature '{n}'", e.name, f.fields, e.span)
                return attrs.evolve(ref, field=e.name, span=e.span)
        if isinstance(obj, s.Call) and obj.fn in INDICATORS:
            call = self._x_Call(obj, ctx)
            fields = INDICATORS[obj.fn].fields
            if e.name not in fields:
                raise self._no_field(obj.fn, e.name, fields, e.span)
            return attrs.evolve(call, field=e.name, span=e.span)
        inner = self.expr(obj, ctx)
        raise self.fail("field", f"no field '{e.name}' on a value of type {inner.type}", e.span, _FIELDS_HINT)

    def _no_field(self, owner: str, name: str, fields, span) -> _Stop:
        if not fields:
            return self.fail("field", f"{owner} has no fields", span, _FIELDS_HINT)
        return self.fail("field", f"{owner} has no field '{name}'", span,
                         "fields are " + ", ".join(fields))

    def _x_Call(self, e: s.Call, ctx: _Ctx) -> ir.Expr:
        if e.fn in FUNCTIONS:
            want = FUNCTIONS[e.fn]
            if len(e.args) != want:
                raise self.fail("arity", f"{e.fn} takes {want} argument{'s' if want > 1 else ''}, "
                                f"got {len(e.args)}", e.span, f"write {e.fn}({', '.join('ab'[:want])})")
            args = tuple(self.expr(a, ctx) for a in e.args)
            for a, src in zip(args, e.args):
                self.need_num(a, src, f"argument of {e.fn}")
            return ir.Func(e.fn, args, combine(False, *(a.type for a in args)), span=e.span)
        if e.fn not in INDICATORS:
            close = difflib.get_close_matches(e.fn, list(INDICATORS) + list(FUNCTIONS), n=1)
            raise self.fail("name", f"unknown function '{e.fn}'", e.span,
                            f"did you mean '{close[0]}'?" if close else
                            "functions are " + " ".join(list(INDICATORS) + list(FUNCTIONS)))
        fn = NO_ARGUMENT_FORMS.get(e.fn, e.fn) if not e.args else e.fn
        sig = INDICATORS[fn]
        if len(e.args) != sig.arity:
            usage = sig.usage()
            if e.fn in NO_ARGUMENT_FORMS:
                usage = f"{e.fn}() ({INDICATORS[NO_ARGUMENT_FORMS[e.fn]].doc}) or {usage}"
            raise self.fail("arity", f"{e.fn} takes {sig.arity} argument{'s' if sig.arity != 1 else ''}, "
                            f"got {len(e.args)}", e.span, f"write {usage}")
        series = []
        for a in e.args[:sig.series_args]:
            x = self.expr(a, ctx)
            if x.type != Type.NUM_SERIES or has_state(x):
                raise self.fail("type", f"the first argument of {e.fn} must be a series of numbers, "
                                f"not {x.type}" + (" trading state" if has_state(x) else ""), a.span,
                                "e.g. close, (high + low) / 2, a feature, or another indicator")
            series.append(x)
        params = []
        for kind, a in zip(sig.params, e.args[sig.series_args:]):
            value = a.value if isinstance(a, s.Num) else None
            if isinstance(a, s.Neg) and isinstance(a.operand, s.Num):
                value = -a.operand.value  # written out, just not positive: the range check below says so
            if value is None:
                raise self.fail("type", f"{e.fn} needs a number written out here", a.span,
                                f"parameters are fixed when the Play compiles; write {sig.usage()}")
            self._finite(a if isinstance(a, s.Num) else a.operand)
            if kind == "int" and (not float(value).is_integer() or value < 1):
                raise self.fail("value", f"the length of {e.fn} must be a whole number of at least 1, "
                                f"not {value:g}", a.span, f"lengths count bars; write {sig.usage()}")
            if value <= 0:
                raise self.fail("value", f"{e.fn} needs a positive number here, not {value:g}", a.span,
                                f"write {sig.usage()}")
            params.append(int(value) if kind == "int" else float(value))
        if e.fn == "macd" and params[0] >= params[1]:
            raise self.fail("value", "macd's fast length must be shorter than its slow length", e.span,
                            "the lengths are fast, slow, signal: e.g. macd(close, 12, 26, 9)")
        implicit = tuple(ir.Bar(c, ctx.tf) for c in sig.implicit)
        return ir.Indicator(fn, implicit + tuple(series), tuple(params), ctx.tf, None, span=e.span)

    def _x_Offset(self, e: s.Offset, ctx: _Ctx) -> ir.Expr:
        text = e.text or str(e.bars)
        written = shorten(text)  # an offset of thousands of digits is not repeated in full
        if not text.lstrip("-").isdigit():  # `x[1.0]`, `x[1e2]`: the spec wants an integer literal
            raise self.fail("offset", f"an offset is a whole number written with digits only, not {written}",
                            e.span, "x[1] is the previous bar, x[2] the one before")
        if e.bars < 0:
            raise self.fail("lookahead", f"negative offset [{written}] would read a future bar", e.span,
                            "x[n] is x n closed bars ago; n must be 0 or more")
        if e.bars > MAX_BARS:
            raise self.fail("offset", f"offset [{written}] is too large: an offset is a small whole number, at most "
                            f"{MAX_BARS:,} bars", e.span,
                            "x[n] reads x n closed bars ago; for a longer look back use a higher timeframe, "
                            "e.g. 'x1d: close @ 1d' and then x1d[30]")
        x = self.expr(e.obj, ctx)
        if not x.type.is_series or has_state(x):
            raise self.fail("offset", f"only a market series has past values; this is {x.type}"
                            + (" trading state" if has_state(x) else ""), e.span,
                            "offsets apply to open high low close volume, features and indicators")
        return ir.Offset(x, int(e.bars), x.type, span=e.span)

    def need_num(self, x: ir.Expr, src, what: str) -> None:
        if not x.type.is_num:
            raise self.fail("type", f"{what} must be a number, not {x.type}", src.span,
                            "use a price or an amount, e.g. close - 2 * atr; true/false values are conditions")

    def need_bool(self, x: ir.Expr, src, what: str) -> None:
        if not x.type.is_bool:
            raise self.fail("type", f"{what} must be true/false (bool), not {x.type}", src.span,
                            "compare it, e.g. 'x > 0'")

    def _x_Neg(self, e: s.Neg, ctx: _Ctx) -> ir.Expr:
        x = self.expr(e.operand, ctx)
        self.need_num(x, e.operand, "the operand of '-'")
        return ir.Neg(x, x.type, span=e.span)

    def _x_BinOp(self, e: s.BinOp, ctx: _Ctx) -> ir.Expr:
        a, b = self.expr(e.left, ctx), self.expr(e.right, ctx)
        self.need_num(a, e.left, f"the left side of '{e.op}'")
        self.need_num(b, e.right, f"the right side of '{e.op}'")
        return ir.Arith(e.op, a, b, combine(False, a.type, b.type), span=e.span)

    def _x_Compare(self, e: s.Compare, ctx: _Ctx) -> ir.Expr:
        a, b = self.expr(e.left, ctx), self.expr(e.right, ctx)
        if e.op in ("==", "!=") and a.type.is_bool and b.type.is_bool:
            pass
        else:
            self.need_num(a, e.left, f"the left side of '{e.op}'")
            self.need_num(b, e.right, f"the right side of '{e.op}'")
        return ir.Compare(e.op, a, b, combine(True, a.type, b.type), span=e.span)

    def _x_Cross(self, e: s.Cross, ctx: _Ctx) -> ir.Expr:
        a, b = self.expr(e.left, ctx), self.expr(e.right, ctx)
        for x, src, side in ((a, e.left, "left"), (b, e.right, "right")):
            if x.type == Type.NUM_SERIES and not has_state(x):
                continue
            if x.type == Type.NUM and is_constant(x):
                continue  # a written number is the same on every bar, so it has a past: Pine's crossover(x, 30)
            raise self.fail("type", f"crosses_{e.direction} needs two series of numbers; the {side} side is "
                            f"{x.type}" + (" trading state, which has no past bar" if has_state(x) else ""),
                            src.span, "compare series such as close, features or indicators")
        if is_constant(a) and is_constant(b):
            raise self.fail("type", f"crosses_{e.direction} between two constants can never happen", e.span,
                            "cross a series such as close or a feature, e.g. 'rsi crosses_above 30'")
        return ir.Cross(e.direction, a, b, span=e.span)

    def _logic(self, op: str, e, ctx: _Ctx) -> ir.Expr:
        a, b = self.expr(e.left, ctx), self.expr(e.right, ctx)
        self.need_bool(a, e.left, f"the left side of '{op}'")
        self.need_bool(b, e.right, f"the right side of '{op}'")
        return ir.Logic(op, a, b, combine(True, a.type, b.type), span=e.span)

    def _x_And(self, e: s.And, ctx: _Ctx) -> ir.Expr:
        return self._logic("and", e, ctx)

    def _x_Or(self, e: s.Or, ctx: _Ctx) -> ir.Expr:
        return self._logic("or", e, ctx)

    def _x_Not(self, e: s.Not, ctx: _Ctx) -> ir.Expr:
        x = self.expr(e.operand, ctx)
        self.need_bool(x, e.operand, "the operand of 'not'")
        return ir.Not(x, x.type, span=e.span)


_FIELDS_HINT = ("fields exist on macd (macd, signal, hist), bbands (upper, middle, lower) and features "
                "defined as one of them, on position.* and on tags (T.pending, T.price, T.filled)")


def nesting(e: ir.Expr, features: dict[str, int]) -> int:
    """Levels of operators and calls from `e` down to its deepest leaf, a feature counting as deep
    as its own expression (plus one). Iterative: this guards the code that recurses."""
    out: dict[int, int] = {}
    stack: list[tuple[ir.Expr, bool]] = [(e, False)]
    while stack:
        x, done = stack.pop()
        kids = ir.children(x)
        if not done and kids:
            stack.append((x, True))
            stack.extend((k, False) for k in kids)
            continue
        if isinstance(x, ir.FeatureRef):
            out[id(x)] = features.get(x.name, 0) + 1
        else:
            out[id(x)] = max((out.get(id(k), 0) for k in kids), default=-1) + 1
    return out[id(e)]


def has_state(e: ir.Expr) -> bool:
    return any(isinstance(n, (ir.State, ir.TagState, ir.FillPrice)) for n in ir.walk(e))


def is_constant(e: ir.Expr) -> bool:
    return all(isinstance(n, (ir.Const, ir.Neg, ir.Arith, ir.Func)) for n in ir.walk(e))


def constant_value(e: ir.Expr) -> float | None:
    """The value of an expression of written numbers only (`-5`, `-(1)`, `2 * 3 - 7`), else None.
    Computed by the run's own operator table, so `max(1, 0/0)` is NaN here as it is at run time."""
    if isinstance(e, ir.Const):
        return e.value
    if not is_constant(e):
        return None
    return _fold(e)


def _fold(e: ir.Expr) -> float:
    if isinstance(e, ir.Const):
        return e.value
    if isinstance(e, ir.Neg):
        return fold("neg", _fold(e.operand))
    if isinstance(e, ir.Func):
        return fold(e.fn, *(_fold(a) for a in e.args))
    assert isinstance(e, ir.Arith)
    return fold(e.op, _fold(e.left), _fold(e.right))
