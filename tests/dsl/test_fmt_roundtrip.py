"""`fmt` round trips, as properties: random well-formed syntax trees are printed by dsl/fmt.py and
parsed back by dsl/parser.py into an equal tree.

Syntax level only (names are not resolved). The trees are built directly rather than drawn from
the grammar, so every operator, nesting and option combination is reached without keywords gluing
to names. Numbers are non-negative: a minus sign is a `Neg` node.
"""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from playdeck.dsl import syntax as s
from playdeck.dsl.fmt import format_blocks, format_expr, format_feature
from playdeck.dsl.parser import _literals, parse_blocks, parse_feature

# Every keyword and symbol word of the grammar, plus the terminals written as patterns.
KEYWORDS = {w for w in _literals().values() if w.isidentifier()} | {
    "buy", "sell", "post_only", "ioc", "fok", "bars", "bar"}
NAME = re.compile(r"[a-z_][a-z0-9_]{0,7}")

names = st.from_regex(NAME, fullmatch=True).filter(lambda n: n not in KEYWORDS)

# Numbers as a user writes them (the parser keeps the spelling) or as a float only (fmt spells it).
digits = st.integers(0, 10**6).map(str)
decimal = st.tuples(st.integers(0, 10**4), st.integers(0, 9999)).map(lambda t: f"{t[0]}.{t[1]}")
exponent = st.tuples(st.integers(1, 9), st.sampled_from(["e", "E"]), st.sampled_from(["", "+", "-"]),
                     st.integers(0, 12)).map(lambda t: f"{t[0]}{t[1]}{t[2]}{t[3]}")
number_text = st.one_of(digits, decimal, exponent)
written_num = number_text.map(lambda t: s.Num(float(t), t))
float_num = st.floats(min_value=0, max_value=1e18, allow_nan=False, allow_infinity=False).map(s.Num)
pct_text = st.one_of(digits, decimal).map(lambda t: t + "%")
pct = pct_text.map(lambda t: s.Pct(float(t[:-1]), t))

leaves = st.one_of(written_num, float_num, pct, names.map(s.Name))

ARITH = ["+", "-", "*", "/"]
COMPARE = ["<", "<=", ">", ">=", "==", "!="]


def _extend(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(s.Call, names, st.lists(inner, max_size=3).map(tuple)),
        st.builds(s.Field, inner, names),
        st.builds(s.Offset, inner, st.integers(-3, 500)),
        st.builds(s.Neg, inner),
        st.builds(s.BinOp, st.sampled_from(ARITH), inner, inner),
        st.builds(s.Compare, st.sampled_from(COMPARE), inner, inner),
        st.builds(s.Cross, st.sampled_from(["above", "below"]), inner, inner),
        st.builds(s.And, inner, inner),
        st.builds(s.Or, inner, inner),
        st.builds(s.Not, inner),
    )


exprs = st.recursive(leaves, _extend, max_leaves=12)
# Inside blocks the structure is what is under test; small expressions keep a block quick to parse.
small_exprs = st.recursive(leaves, _extend, max_leaves=4)

# ---- actions and blocks ---------------------------------------------------------------------------

ORDER_SIZES = {
    "qty": small_exprs, "usdt": small_exprs, "equity": pct, "risk": pct, "position": pct,
}
OPTION_ORDER = ["at", "limit", "expire", "tif", "tag"]  # fmt prints options in this order


def sizes(kinds: list[str]) -> st.SearchStrategy:
    return st.sampled_from(kinds).flatmap(lambda k: ORDER_SIZES[k].map(lambda v: s.Size(k, v)))


def option(kind: str) -> st.SearchStrategy:
    if kind in ("at", "limit"):
        return small_exprs.map(lambda e: s.Option(kind, e))
    if kind == "expire":
        return st.one_of(st.integers(0, 500).map(float), decimal.map(float)).map(lambda n: s.Option(kind, n))
    if kind == "tif":
        return st.sampled_from(["post_only", "ioc", "fok"]).map(lambda t: s.Option(kind, t))
    return names.map(lambda t: s.Option(kind, t))


@st.composite
def options(draw) -> tuple[s.Option, ...]:
    # Syntax allows any option on any order (the checker narrows it); one of each kind, in fmt's order.
    kinds = draw(st.lists(st.sampled_from(OPTION_ORDER), unique=True, max_size=5))
    return tuple(draw(option(k)) for k in sorted(kinds, key=OPTION_ORDER.index))


@st.composite
def actions(draw, depth: int = 0) -> s.Action:
    kind = draw(st.sampled_from(["market", "limit", "stop", "scale", "partial_close", "close", "cancel",
                                 "stop_loss", "take_profit", "trail"]))
    if kind in ("market", "limit", "stop", "scale"):
        a = s.Action(kind, side=draw(st.sampled_from(["buy", "sell"])),
                     size=draw(sizes(["qty", "usdt", "equity", "risk", "position"])), options=draw(options()))
    elif kind == "partial_close":
        a = s.Action(kind, size=draw(sizes(["qty", "position"])), options=draw(options()))
    elif kind == "close":
        a = s.Action(kind, options=draw(options()))
    elif kind == "cancel":
        a = s.Action(kind, target=draw(st.one_of(st.none(), names)))
    else:
        a = s.Action(kind, value=draw(small_exprs))
    if depth < 2:
        # The grammar lets any action carry indented lines; where they may stand is the checker's call.
        children = draw(st.lists(actions(depth + 1), max_size=2 - depth))
        a = s.Action(a.kind, a.side, a.size, a.options, a.target, a.value, tuple(children))
    return a


cases = st.builds(s.Case, st.one_of(st.none(), small_exprs),
                  st.lists(actions(), min_size=1, max_size=3).map(tuple))
blocks = st.lists(st.builds(s.Block, names, st.lists(cases, min_size=1, max_size=3).map(tuple)),
                  min_size=1, max_size=2).map(tuple)


@settings(max_examples=200, deadline=None)
@given(exprs)
def test_expression_prints_and_parses_back_to_the_same_tree(e):
    text = format_expr(e)
    back = parse_feature(text, "x").expr
    assert back == e, text
    assert format_expr(back) == text  # and printing is stable


@settings(max_examples=100, deadline=None)
@given(blocks)
def test_blocks_print_and_parse_back_to_the_same_tree(bs):
    text = format_blocks(bs)
    back = parse_blocks(text)
    assert back == bs, text
    assert format_blocks(back) == text


@settings(max_examples=100, deadline=None)
@given(exprs, st.one_of(st.none(), names, st.sampled_from(["1m", "15m", "4h", "1d", "1w"])))
def test_feature_with_timeframe_round_trips(e, tf):
    f = s.FeatureDef("f", e, tf)
    back = parse_feature(format_feature(f), "f")
    assert (back.expr, back.tf) == (e, tf)


def test_precedence_gets_just_the_parentheses_it_needs():
    a, b, c = s.Name("a"), s.Name("b"), s.Name("c")
    assert format_expr(s.BinOp("-", a, s.BinOp("-", b, c))) == "a - (b - c)"
    assert format_expr(s.BinOp("-", s.BinOp("-", a, b), c)) == "a - b - c"
    assert format_expr(s.BinOp("*", s.BinOp("+", a, b), c)) == "(a + b) * c"
    assert format_expr(s.Neg(s.Offset(a, 1))) == "-a[1]"
    assert format_expr(s.Offset(s.Neg(a), 1)) == "(-a)[1]"
    assert format_expr(s.Not(s.And(a, b))) == "not (a and b)"
    assert format_expr(s.And(s.Or(a, b), c)) == "(a or b) and c"
    assert format_expr(s.Compare("<", s.Compare("<", a, b), c)) == "(a < b) < c"
    assert format_expr(s.Neg(s.Num(2.0))) == "-2"
