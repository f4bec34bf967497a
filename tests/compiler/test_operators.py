"""One operator table for the checker and the run: every operator over NaN, infinities, zeros and
ordinary numbers gives the same value in the table's scalar and numpy functions, in the checker's
folding of written numbers, and in both of the evaluator's paths (per-bar closures, whole arrays).
A table of expected values pins the rules themselves, so agreement on a wrong value fails too."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from playdeck.compiler import compile_text, ir
from playdeck.compiler.check import Checker, _Ctx, constant_value
from playdeck.compiler.operators import OPERATORS
from playdeck.compiler.types import Type
from playdeck.dsl.diagnostics import PlayError
from playdeck.dsl.parser import parse_feature
from playdeck.runtime.strategy.evaluate import SeriesEvaluator, compile_scalar


def compiled_with_price(price: str):
    return compile_text("play: t\nmarket: {symbol: BTCUSDT, exec: 15m}\nblocks: |\n  block main:\n    when flat:\n"
                        f"      limit buy qty 1 at {price}\n", "t.yml")

NAN, INF = math.nan, math.inf
# Each operand and how a Play writes it (the checker only ever sees written numbers).
WRITTEN = {NAN: "(0 / 0)", INF: "(1e308 * 10)", -INF: "-(1e308 * 10)", 0.0: "0", -0.0: "-0", 1.0: "1",
           -2.5: "-2.5", 3.0: "3"}
OPERANDS = list(WRITTEN)
NUMERIC = ("+", "-", "*", "/", "neg", "min", "max", "abs")
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


def same(a, b) -> bool:
    """Equal values, NaN counting as equal to NaN."""
    a, b = float(a), float(b)
    return (a != a and b != b) or a == b


def node(name: str, args: tuple) -> ir.Expr:
    if name == "neg":
        return ir.Neg(args[0], Type.NUM)
    if name in ("min", "max", "abs"):
        return ir.Func(name, args, Type.NUM)
    if name in COMPARISONS:
        return ir.Compare(name, *args, Type.BOOL)
    return ir.Arith(name, *args, Type.NUM)


def folded(name: str, values: tuple) -> float:
    """The checker's constant folding of the operator over the values as a Play writes them."""
    w = [WRITTEN[v] for v in values]
    text = {"neg": f"-{w[0]}" if values else "", "min": f"min({', '.join(w)})", "max": f"max({', '.join(w)})",
            "abs": f"abs({w[0]})"}.get(name) or f"{w[0]} {name} {w[-1]}"
    checker = Checker(ir.Market("BTCUSDT", "15m", ()))
    x = checker.expr(parse_feature(text, "x").expr, _Ctx("15m"))
    assert not checker.diags
    value = constant_value(x)
    assert value is not None, text
    return value


def cases():
    for name, op in OPERATORS.items():
        for values in itertools.product(OPERANDS, repeat=op.arity):
            yield pytest.param(name, values, id=f"{name}{values}")


@pytest.mark.parametrize(("name", "values"), list(cases()))
def test_every_path_computes_the_same_value(name: str, values: tuple):
    op = OPERATORS[name]
    scalar = op.scalar(*values)
    array = op.array(*(np.array([v]) for v in values))
    assert array.shape == (1,) and same(scalar, array[0])
    expr = node(name, tuple(ir.Const(v) for v in values))
    assert same(compile_scalar(expr, SeriesEvaluator(None, {}, "15m"))(0, None, NAN), scalar)  # per-bar closure
    assert same(SeriesEvaluator(None, {}, "15m").on(expr, "15m"), scalar)  # the series path on constants
    if name in NUMERIC:
        assert same(folded(name, values), scalar)


def test_the_array_function_agrees_element_wise_over_whole_arrays():
    for name, op in OPERATORS.items():
        columns = list(zip(*itertools.product(OPERANDS, repeat=op.arity)))
        got = op.array(*(np.array(c) for c in columns))
        want = [op.scalar(*row) for row in zip(*columns)]
        assert all(same(g, w) for g, w in zip(got, want)), name


@pytest.mark.parametrize(("name", "values", "expected"), [
    ("<", (NAN, 1.0), False), (">", (1.0, NAN), False), ("==", (NAN, NAN), False),
    ("!=", (NAN, 1.0), False), ("!=", (1.0, NAN), False), ("!=", (NAN, NAN), False), ("!=", (1.0, 3.0), True),
    ("<=", (-INF, INF), True), ("==", (INF, INF), True), ("==", (0.0, -0.0), True),
    ("/", (1.0, 0.0), NAN), ("/", (0.0, 0.0), NAN), ("/", (-2.5, -0.0), NAN), ("/", (INF, 0.0), NAN),
    ("/", (1.0, INF), 0.0), ("/", (3.0, -2.5), -1.2), ("/", (NAN, 1.0), NAN),
    ("-", (INF, INF), NAN), ("*", (0.0, INF), NAN), ("+", (INF, 1.0), INF), ("*", (-2.5, INF), -INF),
    ("min", (1.0, NAN), NAN), ("min", (NAN, 1.0), NAN), ("max", (1.0, NAN), NAN), ("max", (NAN, 1.0), NAN),
    ("min", (-INF, 3.0), -INF), ("max", (-2.5, 3.0), 3.0), ("abs", (-INF,), INF), ("abs", (NAN,), NAN),
    ("neg", (NAN,), NAN), ("neg", (INF,), -INF),
])
def test_the_rules_of_the_readme(name: str, values: tuple, expected):
    op = OPERATORS[name]
    assert same(op.scalar(*values), expected)
    assert same(op.array(*(np.array([v]) for v in values))[0], expected)


def test_comparing_two_conditions_with_equals_and_not_equals_works_on_booleans():
    for a, b in itertools.product((True, False), repeat=2):
        for name in ("==", "!="):
            op = OPERATORS[name]
            want = (a == b) if name == "==" else (a != b)
            assert op.scalar(a, b) is want or op.scalar(a, b) == want
            assert op.array(np.array([a]), np.array([b]))[0] == want


@pytest.mark.parametrize("price", ["max(1, 0/0)", "max(0/0, 1)", "min(1, 0/0)", "min(0/0, 1)"])
def test_max_with_nan_is_refused_as_a_price_whichever_side_the_nan_is_on(price: str):
    with pytest.raises(PlayError) as info:
        compiled_with_price(price)
    d = info.value.diagnostics[0]
    assert (d.code, d.message) == ("value", "a price must be positive, not nan")


def test_max_with_numbers_folds_to_the_larger_one_and_compiles():
    play = compiled_with_price("max(0 - 1, 2)").ir
    assert constant_value(play.blocks[0].cases[0].actions[0].price) == 2.0
