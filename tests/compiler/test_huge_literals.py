"""A literal of thousands of digits (Python refuses int() of 4,300 digits or more) is a
`file:line:col` error saying what the limit is, never a crash: in an offset, an expiry, a size, an
indicator's length. (YAML numbers of that size: tests/dsl/test_yaml_reading.py.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from playdeck.compiler import compile_text
from playdeck.dsl.diagnostics import PlayError
from playdeck.tui.cli import main

HUGE = "1" + "0" * 5000
HEAD = "play: t\nmarket: {symbol: BTCUSDT, exec: 15m}\nfeatures:\n  fast: ema(close, 9)\nblocks: |\n  block main:\n"


def play(when: str = "flat", action: str = "close", feature: str = "ema(close, 9)") -> str:
    """`feature` on line 4, the `when` on line 7 (its text from column 10), the action on line 8 (column 7)."""
    return HEAD.replace("ema(close, 9)", feature) + f"    when {when}:\n      {action}\n"


def error(text: str):
    with pytest.raises(PlayError) as info:
        compile_text(text, "t.yml")
    d = info.value.diagnostics[0]
    return d.code, str(d.span), d.message


@pytest.mark.parametrize(("text", "expected"), [
    (play(when=f"close > close[{HUGE}]"), ("offset", "7:18", "offset [10000000000000000000...] is too large: an "
                                           "offset is a small whole number, at most 1,000,000 bars")),
    (play(feature=f"close[{HUGE}]"), ("offset", "4:9", "offset [10000000000000000000...] is too large: an offset "
                                      "is a small whole number, at most 1,000,000 bars")),
    (play(when="close > close[1000001]"), ("offset", "7:18", "offset [1000001] is too large: an offset is a small "
                                           "whole number, at most 1,000,000 bars")),
    (play(when=f"close > close[-{HUGE}]"), ("lookahead", "7:18", "negative offset [-1000000000000000000...] would "
                                            "read a future bar")),
    (play(when=f"close > close[{HUGE}.5]"), ("offset", "7:18", "an offset is a whole number written with digits "
                                             "only, not 10000000000000000000...")),
    (play(action=f"limit buy qty 1 at close expire {HUGE} bars"),
     ("value", "8:32", "'expire' counts at most 1,000,000 bars, not a number that large")),
    (play(action="limit buy qty 1 at close expire 2000000 bars"),
     ("value", "8:32", "'expire' counts at most 1,000,000 bars, not 2000000")),
    (play(action=f"market buy {HUGE}% equity"), ("value", "8:18", "10000000000000000000... is too large to be a "
                                                 "number here")),
    (play(action=f"market buy qty {HUGE}"), ("value", "8:22", "10000000000000000000... is too large to be a "
                                             "number here")),
    (play(feature=f"ema(close, {HUGE})"), ("value", "4:20", "10000000000000000000... is too large to be a number here")),
], ids=["offset", "offset in a feature", "offset one past the limit", "negative offset", "decimal offset",
         "expire", "expire past the limit", "percent size", "qty", "indicator length"])
def test_a_huge_literal_is_an_error_at_its_place(text: str, expected: tuple):
    assert error(text) == expected


def test_offsets_up_to_the_limit_compile_and_leading_zeros_do_not_count():
    ir = compile_text(play(when="close > close[1000000] and close > close[" + "0" * 5000 + "3]"), "t.yml").ir
    cond = ir.blocks[0].cases[0].cond
    assert (cond.left.right.bars, cond.right.right.bars) == (1_000_000, 3)
    assert compile_text(play(action="limit buy qty 1 at close expire 1000000 bars")).ir.blocks[0].cases[0] \
        .actions[0].expire == 1_000_000


def test_the_command_line_exits_2_with_the_error_not_70(tmp_path: Path, capsys):
    path = tmp_path / "t.yml"
    path.write_text(play(when=f"close > close[{HUGE}]"))
    assert main(["compile", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:7:18: error[offset]: offset [10000000000000000000...] is too large" in err
    assert "internal error" not in err and "hint: " in err
