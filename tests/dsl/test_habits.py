"""Habits of Pine, Python and JavaScript users (dsl/habits.py): where the parser fails on one, the
error names the habit and what to write instead, at the habit's own place in the file. The goldens
of the common ones are rows of tests/tui/test_bad_inputs.py; these pin the variants and that text
which is no habit is left alone."""
from __future__ import annotations

import textwrap

import pytest

from playdeck.compiler import compile_text
from playdeck.dsl.diagnostics import PlayError

HEAD = """\
play: habits
market: {symbol: BTCUSDT, exec: 15m}
features:
  fast: ema(close, 9)
  slow: ema(close, 21)
  atr: atr(14)
"""


def with_blocks(text: str) -> str:
    return HEAD + "blocks: |\n" + textwrap.indent(textwrap.dedent(text).lstrip("\n"), "  ")


def with_feature(value: str) -> str:
    return HEAD + f"  extra: {value}\nblocks: |\n  block b:\n    when flat:\n      close\n"


def first(text: str):
    with pytest.raises(PlayError) as info:
        compile_text(text, "h.yml")
    d = info.value.diagnostics[0]
    line = text.splitlines()[d.span.line - 1]
    return d, line[d.span.col - 1:d.span.end_col - 1]


# (Play text, the text under the caret, message, hint)
CASES = [
    pytest.param(with_feature("ta.ema(close, 9)"), "ta.ema(close, 9)",
                 "unknown function 'ta.ema': a Play calls its built-ins without 'ta.'", "write 'ema(close, 9)'",
                 id="ta. in a feature"),
    pytest.param(with_blocks("block b:\n  when math.max(close, open) > fast:\n    close\n"), "math.max(close, open)",
                 "unknown function 'math.max': a Play calls its built-ins without 'math.'", "write 'max(close, open)'",
                 id="Pine v5 math.max"),
    pytest.param(with_blocks("block b:\n  when close > ta.bb(close, 20, 2).upper:\n    close\n"), "ta.bb(close, 20, 2)",
                 "unknown function 'ta.bb': a Play calls its built-ins without 'ta.'", "write 'bbands(close, 20, 2)'",
                 id="Pine's ta.bb is bbands"),
    pytest.param(with_blocks("block b:\n  when ta.pivothigh(3, 2) > 0:\n    close\n"), "ta.pivothigh(3, 2)",
                 "unknown function 'ta.pivothigh': a Play calls its built-ins without 'ta.'",
                 "write 'pivot_high(3, 2)'", id="Pine's ta.pivothigh is pivot_high"),
    pytest.param(with_blocks("block b:\n  when flat and ta.crossover(fast, ema(close, 50)):\n    close\n"),
                 "ta.crossover(fast, ema(close, 50))",
                 "unknown function 'ta.crossover': a Play calls its built-ins without 'ta.'",
                 "Pine's ta.crossover(a, b) is an operator here: write 'fast crosses_above ema(close, 50)'",
                 id="ta.crossover is crosses_above"),
    pytest.param(with_blocks("block b:\n  when ta.change(close) > 0:\n    close\n"), "ta.change(close)",
                 "unknown function 'ta.change': a Play calls its built-ins without 'ta.'",
                 "'change' is not a built-in either; the built-ins are sma, ema, wma, rma, rsi, atr, stdev, highest, "
                 "lowest, roc, ... (18 in all)", id="a ta. call that has no built-in"),
    pytest.param(with_blocks("block b:\n  when ta.rsi(close, 14 > 70:\n    close\n"), "ta.rsi(",
                 "unknown function 'ta.rsi': a Play calls its built-ins without 'ta.'", "write 'rsi(...)'",
                 id="a ta. call left open"),
    pytest.param(with_feature("close = open"), "=",
                 "unexpected '='; a comparison is written '=='",
                 "write 'close == open' (a single '=' assigns in Pine and Python; a Play assigns nothing)",
                 id="= in a feature"),
    pytest.param(with_blocks("block b:\n  when close = open: // same\n    close\n"), "=",
                 "unexpected '='; a comparison is written '=='",
                 "write 'when close == open:' (a single '=' assigns in Pine and Python; a Play assigns nothing)",
                 id="= before a Pine comment: the = comes first"),
    pytest.param(with_blocks("block b:\n  when long:\n    stop_loss = close - atr\n"), "=",
                 "unexpected '='; a Play assigns nothing",
                 "a Play names values under 'features:' ('fast: ema(close, 9)'), and an action takes its value "
                 "without '=' ('stop_loss fill - 2 * atr')", id="= after an action word"),
    pytest.param(with_feature("ema(close, 9) // the fast one"), "//",
                 "unexpected '//'; a comment starts with '#'",
                 "write '# the fast one' ('//' starts a comment in Pine and JavaScript, not in a Play)",
                 id="// after a feature"),
    pytest.param(with_blocks("block b:\n  when flat:\n      market buy qty 1\n   //\n"), "//",
                 "unexpected '//'; a comment starts with '#'",
                 "write '# ...' ('//' starts a comment in Pine and JavaScript, not in a Play)",
                 id="// indented as no level is"),
    pytest.param(with_blocks("block b:\n  when flat:\n    limit buy qty 1 at close postOnly\n"), "postOnly",
                 "unknown word 'postOnly'; did you mean 'post_only'?",
                 "write 'post_only': the words of a Play are lower case, with '_' between words", id="postOnly"),
    pytest.param(with_blocks("block b:\n  when fast crossesAbove slow:\n    close\n"), "crossesAbove",
                 "unknown word 'crossesAbove'; did you mean 'crosses_above'?",
                 "write 'crosses_above': the words of a Play are lower case, with '_' between words",
                 id="crossesAbove"),
    pytest.param(with_blocks("block b:\n  when long:\n    Take_Profit close + atr\n"), "Take_Profit",
                 "unknown word 'Take_Profit'; did you mean 'take_profit'?",
                 "write 'take_profit': the words of a Play are lower case, with '_' between words", id="Take_Profit"),
    pytest.param(with_blocks("block b:\n  when long:\n    PartialClose 50%\n"), "PartialClose",
                 "unknown word 'PartialClose'; did you mean 'partial_close'?",
                 "write 'partial_close': the words of a Play are lower case, with '_' between words",
                 id="PartialClose"),
]


@pytest.mark.parametrize("text,at,message,hint", CASES)
def test_a_habit_is_named_at_its_place_with_what_to_write(text: str, at: str, message: str, hint: str):
    d, under_caret = first(text)
    assert (d.code, d.message, d.hint, under_caret) == ("syntax", message, hint, at)


@pytest.mark.parametrize("text", [
    with_blocks("block b:\n  when close / 2 > open // 2:\n    close\n"),  # '//' as floor division is no operator either
])
def test_a_double_slash_is_never_an_operator(text: str):
    d, under_caret = first(text)
    assert under_caret == "//"


@pytest.mark.parametrize("text", [
    with_blocks("block b:\n  when close == open:  # a comment // with slashes\n    close\n"),
    with_blocks("block b:\n  when close / 2 > open:\n    close\n"),
    HEAD.replace("  atr: atr(14)\n", "  stoploss: lowest(low, 10)\n")
    + "blocks: |\n  block b:\n    when long and close < stoploss:\n      stop_loss stoploss\n",
    HEAD + "  ta: close\nblocks: |\n  block b:\n    when flat and ta > open:\n      close\n",
])
def test_text_that_only_looks_like_a_habit_compiles(text: str):
    assert compile_text(text).ir.name == "habits"

