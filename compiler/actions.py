"""Checking cases and actions: where each action may stand, its options, sizes and tags."""
from __future__ import annotations

import math

from playdeck.dsl import syntax as s
from playdeck.dsl.diagnostics import shorten
from playdeck.dsl.fmt import format_expr, number_text
from playdeck.dsl.limits import MAX_BARS
from playdeck.dsl.vocabulary import DEFAULT_TIME_IN_FORCE, PROTECTION_KINDS, TIF_WORDS, TIME_IN_FORCE

from . import ir
from .builtins import FUNCTIONS, KEYWORDS, RESERVED
from .check import Checker, _Ctx, _Stop, constant_value, listed

ENTRIES = ("market", "limit", "stop", "scale")
PROTECTIONS = PROTECTION_KINDS
# Which options each action takes; `at` is required for limit and stop.
OPTIONS = {
    "market": {"tag"},
    "limit": {"at", "expire", "tif", "tag"},
    "stop": {"at", "limit", "expire", "tag"},
    "scale": {"at", "tag"},
    "partial_close": {"at"},
    "close": {"at"},
}
_OPTION_WORDS = {"at": "at PRICE", "limit": "limit PRICE", "expire": "expire N bars",
                 "tif": "/".join(TIF_WORDS), "tag": "as TAG"}


def _words(words, last: str) -> str:
    """`a, b and c` (or `a, b or c`)."""
    words = list(words)
    return ", ".join(words[:-1]) + f" {last} " + words[-1] if len(words) > 1 else "".join(words)


def collect_tags(c: Checker, blocks: tuple[s.Block, ...]) -> None:
    """First pass: every `as TAG`, so that `cancel T` and `T.price` may come before the order."""
    def visit(a: s.Action) -> None:
        for o in a.options:
            if o.kind != "tag":
                continue
            tag = o.value
            if tag in c.tags:
                first = c.tags[tag].span
                c.error("tag", f"duplicate tag '{tag}'", o.span,
                        f"'{tag}' already names the order on line {first.line if first else '?'}; "
                        "tags must be unique (re-sending the same order amends it)")
            elif tag in RESERVED or tag in c.feature_defs:
                c.error("tag", f"tag '{tag}' is already a {'feature' if tag in c.feature_defs else 'built-in name'}",
                        o.span, "pick another tag")
            else:
                c.tags[tag] = a
        for child in a.children:
            visit(child)

    for b in blocks:
        for case in b.cases:
            for a in case.actions:
                visit(a)


def check_blocks(c: Checker, blocks: tuple[s.Block, ...]) -> tuple[ir.Block, ...]:
    out = []
    seen: dict[str, s.Block] = {}
    for b in blocks:
        if b.name in KEYWORDS:
            c.error("block", f"'{b.name}' is a word of the language and cannot name a block", b.span,
                    "pick another name, e.g. 'block entries:'")
        elif b.name in seen:
            c.error("block", f"duplicate block name '{b.name}'", b.span, "block names must be unique")
        seen[b.name] = b
        cases = []
        after_otherwise: s.Case | None = None
        for case in b.cases:
            if after_otherwise is not None:
                c.error("unreachable", "this case can never run: it comes after 'otherwise'", case.span,
                        "'otherwise' must be the last case of a block")
            checked = check_case(c, case)
            if checked is not None:
                cases.append(checked)
            if case.cond is None and after_otherwise is None:
                after_otherwise = case
        out.append(ir.Block(b.name, tuple(cases), b.span))
    return tuple(out)


def check_case(c: Checker, case: s.Case) -> ir.Case | None:
    ctx = _Ctx(c.market.exec_tf)
    cond = None
    ok = True
    if case.cond is not None:
        try:
            cond = c.expr(case.cond, ctx)
            c.need_bool(cond, case.cond, "a 'when' condition")
        except _Stop:
            ok = False
    actions = []
    for a in case.actions:
        try:
            actions.append(check_action(c, a, ctx))
        except _Stop:
            ok = False
    return ir.Case(cond, tuple(actions), case.span) if ok else None


def _options(c: Checker, a: s.Action) -> dict[str, s.Option]:
    allowed = OPTIONS[a.kind]
    found: dict[str, s.Option] = {}
    for o in a.options:
        if o.kind not in allowed:
            words = ", ".join(f"'{_OPTION_WORDS[k]}'" for k in sorted(allowed)) or "none"
            what = o.value if o.kind == "tif" else _OPTION_WORDS[o.kind]
            raise c.fail("option", f"'{what}' is not an option of {a.kind}", o.span, f"{a.kind} takes {words}")
        if o.kind in found:
            once = (f"give each option once; {_words(TIF_WORDS, 'and')} exclude each other" if o.kind == "tif"
                    else f"give '{_OPTION_WORDS[o.kind]}' once")
            raise c.fail("option", f"'{_OPTION_WORDS[o.kind]}' is given twice", o.span, once)
        found[o.kind] = o
    return found


def _price(c: Checker, e: s.Expr, ctx: _Ctx, what: str, slot: str, attached: bool = False) -> ir.Expr:
    """A price (or trail distance) written in `slot`: an option word (`at`, `limit`) or a protection kind."""
    added = percent_added(e)
    if added is not None:
        raise c.fail("percent", _percent_added_message(added, "a distance" if slot == "trail" else "a price"),
                     added.span, _percent_added_hint(added, slot, attached))
    x = c.expr(e, ctx)
    c.need_num(x, e, what)
    v = constant_value(x)
    if v is not None and not v > 0:  # NaN too: a division by zero
        hint = "prices and trail distances are positive numbers"
        if slot in PROTECTIONS and isinstance(e, s.Neg) and isinstance(e.operand, s.Pct):
            hint = (f"a percentage distance is written without a sign: '{slot} {_pct_text(e.operand)}' is "
                    f"{_pct_text(e.operand)} from the {_reference(slot, attached)}")
        raise c.fail("value", f"{what} must be positive, not {v:g}", e.span, hint)
    return x


# ---- percent protection (PLAY-LANGUAGE.md 7.1) -------------------------------------------------

def _protection(c: Checker, a: s.Action, ctx: _Ctx, attached: bool) -> ir.Protection:
    """`stop_loss PRICE`, `take_profit PRICE`, `trail DISTANCE`, or any of them with a bare percentage
    literal (`stop_loss 2%`): a distance from the reference price (the fill under an entry, the
    position's average entry standing alone; a trail's best price), kept as its fraction."""
    if isinstance(a.value, s.Pct):
        c._finite(a.value)
        v = a.value.value
        if not 0 < v < 100:
            written = f"{a.kind} {_pct_text(a.value)}"
            raise c.fail("value", f"'{written}' is out of range: a percentage distance must be more than 0% and "
                         "less than 100%", a.value.span, _percent_example(a.kind, attached))
        return ir.Protection(a.kind, ir.Const(v / 100.0, span=a.value.span), a.span, percent=True)
    what = f"the {a.kind} {'distance' if a.kind == 'trail' else 'price'}"
    return ir.Protection(a.kind, _price(c, a.value, ctx, what, a.kind, attached), a.span)


def _pct_text(p: s.Pct) -> str:
    return shorten(p.text or number_text(p.value) + "%")


def _reference(kind: str, attached: bool) -> str:
    if kind == "trail":
        return "best price since it was set"
    return "fill" if attached else "position's average entry"


def _percent_example(kind: str, attached: bool) -> str:
    example = "1.5%" if kind == "trail" else "2%"
    return f"e.g. '{kind} {example}': {example} from the {_reference(kind, attached)}"


def _is_pct(e: s.Expr) -> bool:
    return isinstance(e, s.Pct) or (isinstance(e, s.Neg) and isinstance(e.operand, s.Pct))


def percent_added(e: s.Expr) -> s.BinOp | None:
    """The first `PRICE + N%` or `PRICE - N%` (either order) where `e`'s value is still a price: at the
    top, or under `+`, `-`, unary minus, min, max or abs. There `2%` is the number 0.02, never what
    the writer meant. Under `*` or `/` it is a fraction as usual (`fill * (1 - 2%)`)."""
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, s.BinOp) and x.op in ("+", "-"):
            if _is_pct(x.left) or _is_pct(x.right):
                return x
            stack += [x.right, x.left]
        elif isinstance(x, s.Neg):
            stack.append(x.operand)
        elif isinstance(x, s.Call) and x.fn in FUNCTIONS:
            stack.extend(reversed(x.args))
    return None


def _percent_added_message(e: s.BinOp, what: str) -> str:
    pct, other_left = (e.right, True) if _is_pct(e.right) else (e.left, False)
    p = pct.operand if isinstance(pct, s.Neg) else pct
    number = number_text(round(p.value / 100.0, 15) * (-1 if isinstance(pct, s.Neg) else 1))
    written, shown = shorten(format_expr(pct)), shorten(format_expr(e), 40)
    if other_left:
        verb = f"adds the number {number} to" if e.op == "+" else f"subtracts the number {number} from"
        return f"'{shown}' {verb} {what}, not {written} of it"
    return f"'{shown}' mixes the number {number} with {what} by '{e.op}', not {written} of it"


def _percent_added_hint(e: s.BinOp, slot: str, attached: bool) -> str:
    pct, other = (e.right, e.left) if _is_pct(e.right) else (e.left, e.right)
    p = pct.operand if isinstance(pct, s.Neg) else pct
    op = e.op if not isinstance(pct, s.Neg) else ("-" if e.op == "+" else "+")
    scaled = shorten(format_expr(s.BinOp("*", other, s.BinOp(op, s.Num(1.0, "1"), p))), 60)
    written = _pct_text(p)
    if slot == "trail":
        return (f"write 'trail {written}' (it follows the best price at {written} from it), or a distance in "
                f"price such as 'close * {written}'")
    if slot in PROTECTIONS:
        ref = _reference(slot, attached)
        bare = f"'{slot} {written}' ({written} from the {ref})"
        reads_reference = other == (s.Name("fill") if attached else s.Field(s.Name("position"), "entry"))
        return f"write {bare} or '{scaled}'" if reads_reference else f"write '{scaled}', or {bare}"
    side = "above" if op == "+" else "below"
    return (f"write '{scaled}' for {written} {side} {shorten(format_expr(other), 40)}; a percentage is a fraction "
            "of what it multiplies")


def _pct(c: Checker, size: s.Size, *, high: float | None) -> float:
    c._finite(size.value)  # `1000...0% equity` of hundreds of digits reads as infinity
    v = size.value.value
    if v <= 0 or (high is not None and v > high):
        rng = f"more than 0% and at most {high:g}%" if high is not None else "more than 0%"
        raise c.fail("value", f"{v:g}% is out of range here; it must be {rng}", size.value.span,
                     "e.g. 'partial_close 50%', 'risk 1%', '10% equity'")
    return v / 100.0


def _size(c: Checker, a: s.Action, ctx: _Ctx) -> ir.Size:
    size = a.size
    if size.kind in ("qty", "usdt"):
        x = c.expr(size.value, ctx)
        c.need_num(x, size.value, f"a {size.kind} size")
        # Written numbers (`-1`, `2 - 3`) can be judged now; anything that reads data at run time.
        v = constant_value(x)
        if v is not None and not v > 0:
            raise c.fail("value", f"a {size.kind} size must be positive", size.value.span,
                         "the side (buy/sell) gives the direction; the size is always positive")
        return ir.Size(size.kind, value=x, span=size.span)
    if size.kind == "position":
        if a.kind not in ("scale", "partial_close"):
            raise c.fail("size", "'% of position' sizes only scale and partial_close", size.span,
                         "size an entry with 'qty', 'usdt', '% equity' or 'risk'")
        return ir.Size("position", pct=_pct(c, size, high=100 if a.kind == "partial_close" else None),
                       span=size.span)
    if size.kind == "risk":
        return ir.Size("risk", pct=_pct(c, size, high=100), span=size.span)
    return ir.Size("equity", pct=_pct(c, size, high=None), span=size.span)


def check_action(c: Checker, a: s.Action, ctx: _Ctx) -> ir.Action:
    if a.children and a.kind not in ENTRIES:
        child = a.children[0]
        raise c.fail("attached", f"'{child.kind}' is indented under '{a.kind}', which is not an entry",
                     child.span, f"only {_words(ENTRIES, 'and')} orders carry attached "
                     f"{_words(PROTECTIONS, 'or')}; move it out to the action level")
    if a.kind in PROTECTIONS:
        return _protection(c, a, ctx, attached=False)
    if a.kind == "cancel":
        if a.target is not None and a.target not in c.tags:
            close = c.suggest("tag", a.target, lambda: [[*c.tags, "all"]])
            raise c.fail("tag", f"unknown tag '{a.target}'", a.span,
                         (f"did you mean '{close}'? " if close is not None else "")
                         + "tags are given with 'as TAG' on an order"
                         + (f"; known: {listed(c.tags)}" if c.tags else ""))
        return ir.Cancel(a.target, a.span)
    opts = _options(c, a)
    at = _price(c, opts["at"].value, ctx, "a price", "at") if "at" in opts else None
    if a.kind == "close":
        return ir.Close(at, a.span)
    if a.kind == "partial_close":
        return ir.PartialClose(_size(c, a, ctx), at, a.span)
    # entries
    if a.kind in ("limit", "stop") and at is None:
        raise c.fail("option", f"a {a.kind} order needs 'at {'PRICE' if a.kind == 'limit' else 'TRIGGER'}'",
                     a.span, f"e.g. {a.kind} {a.side} qty 0.01 at close")
    size = _size(c, a, ctx)
    expire = None
    if "expire" in opts:
        n = opts["expire"].value
        if n > MAX_BARS:  # also a literal of hundreds of digits, which reads as infinity
            shown = number_text(n) if n < math.inf else "a number that large"
            raise c.fail("value", f"'expire' counts at most {MAX_BARS:,} bars, not {shown}", opts["expire"].span,
                         "an order that should wait longer can go without 'expire': it stays until it fills "
                         "or is cancelled")
        if not float(n).is_integer() or n < 1:
            raise c.fail("value", f"'expire' needs a whole number of bars of at least 1, not {n:g}",
                         opts["expire"].span, "e.g. 'expire 3 bars': cancelled at the close of the 3rd bar")
        expire = int(n)
    attached = []
    kinds: set[str] = set()
    for child in a.children:
        if child.kind not in PROTECTIONS:
            raise c.fail("attached", f"'{child.kind}' cannot be attached under an order", child.span,
                         f"only {_words(PROTECTIONS, 'and')} are indented under an entry")
        if child.children:
            raise c.fail("attached", "attached actions cannot carry actions of their own", child.children[0].span,
                         "indent every attached action one level under the entry, side by side")
        if child.kind in kinds:
            raise c.fail("attached", f"a second '{child.kind}' under the same entry", child.span,
                         f"a position has one {child.kind}; keep one, and move it later with a standalone "
                         f"'{child.kind}' action")
        kinds.add(child.kind)
        attached.append(_protection(c, child, _Ctx(ctx.tf, allow_fill=True), attached=True))
    if size.kind == "risk" and "stop_loss" not in kinds:
        raise c.fail("risk", "'risk' sizing needs a stop_loss attached under this order", size.span,
                     "the quantity is risk / distance to the stop: indent 'stop_loss PRICE' under the order")
    tif = TIME_IN_FORCE[opts["tif"].value if "tif" in opts else DEFAULT_TIME_IN_FORCE]
    tag = opts["tag"].value if "tag" in opts else None
    if a.kind == "stop":
        limit = _price(c, opts["limit"].value, ctx, "a limit price", "limit") if "limit" in opts else None
        return ir.OrderAction("stop", a.side, size, price=limit, trigger=at, expire=expire, tag=tag,
                              attached=tuple(attached), span=a.span)
    return ir.OrderAction(a.kind, a.side, size, price=at, expire=expire, tif=tif, tag=tag,
                          attached=tuple(attached), span=a.span)
