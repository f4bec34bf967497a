"""Percent protection (PLAY-LANGUAGE.md 7.1): a bare percentage literal as the whole value of a
stop_loss, take_profit or trail is a distance from a reference price, kept in the IR as its fraction
with `percent` set; anywhere else `2%` is the number 0.02, and a percentage added to or subtracted
from a price (`fill - 2%`) is an error whose hint shows both ways to write what was meant."""
from __future__ import annotations

import json
import textwrap

import pytest

from playdeck.compiler import compile_text
from playdeck.compiler import ir
from playdeck.compiler.printer import ir_json, ir_text
from playdeck.dsl.diagnostics import PlayError
from playdeck.dsl.fmt import format_play

HEAD = """\
play: pct
description: every form of percent protection
market: {symbol: BTCUSDT, exec: 15m}
features:
  atr: atr(14)
blocks: |
"""


def play(blocks: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(blocks).lstrip("\n"), "  ")


EVERY_FORM = play("""
    block entries:
      when flat and close > open:
        market buy risk 1%
          stop_loss 2%
          take_profit 3%
          trail 1.5%
      when flat and close < open:
        limit sell qty 0.01 at close + atr
          stop_loss (0.5%)
          take_profit fill * (1 - 3%)

    block manage:
      when long and position.upnl / equity > 2%:
        stop_loss 1%
        take_profit 4.25%
        trail 0.75%
      when short:
        stop_loss position.entry * (1 + 2%)
        trail close * 1%
    """)


def protections(text: str) -> list[ir.Protection]:
    out = []
    for b in compile_text(text).ir.blocks:
        for case in b.cases:
            for a in case.actions:
                out.extend(a.attached if isinstance(a, ir.OrderAction) else [a])
    return [p for p in out if isinstance(p, ir.Protection)]


def test_a_bare_percentage_is_a_distance_kept_as_its_fraction():
    got = [(p.kind, p.percent, p.value) for p in protections(EVERY_FORM)]
    assert got[:8] == [
        ("stop_loss", True, ir.Const(0.02)), ("take_profit", True, ir.Const(0.03)), ("trail", True, ir.Const(0.015)),
        ("stop_loss", True, ir.Const(0.005)),  # parentheses around the literal change nothing
        ("take_profit", False, got[4][2]),
        ("stop_loss", True, ir.Const(0.01)), ("take_profit", True, ir.Const(0.0425)), ("trail", True, ir.Const(0.0075)),
    ]


def test_in_an_expression_a_percentage_is_still_a_number():
    ps = protections(EVERY_FORM)
    tp, stop, trail = ps[4], ps[8], ps[9]
    assert not (tp.percent or stop.percent or trail.percent)
    assert ir.Const(0.03) in list(ir.walk(tp.value)) and ir.Const(0.02) in list(ir.walk(stop.value))
    assert ir.Const(0.01) in list(ir.walk(trail.value))


def test_the_ir_text_says_what_each_percentage_is_a_distance_from(text_snapshot):
    text = ir_text(compile_text(EVERY_FORM).ir)
    assert "      attached stop_loss 2% of fill\n" in text
    assert "    stop_loss 1% of entry\n" in text
    assert "      attached trail 1.5%\n" in text and "    trail 0.75%\n" in text
    assert "      attached take_profit fill * (1 - 0.03)\n" in text
    assert text == text_snapshot


def test_the_ir_json_carries_the_percent_flag():
    data = json.loads(ir_json(compile_text(EVERY_FORM).ir))
    standalone = data["blocks"][1]["cases"][0]["actions"]
    assert [(a["kind"], a["percent"], a["value"]["value"]) for a in standalone] == [
        ("stop_loss", True, 0.01), ("take_profit", True, 0.0425), ("trail", True, 0.0075)]


def test_fmt_keeps_the_percentages_as_written_and_round_trips():
    compiled = compile_text(EVERY_FORM)
    text = format_play(compiled.source, list(compiled.features), compiled.blocks)
    assert "        stop_loss 2%\n" in text and "      take_profit 4.25%\n" in text
    assert "        stop_loss 0.5%\n" in text  # the parentheses were around a literal: they go
    again = compile_text(text)
    assert again.ir == compiled.ir
    assert ir_text(again.ir) == ir_text(compiled.ir)
    assert [p.percent for p in protections(text)] == [p.percent for p in protections(EVERY_FORM)]


def test_risk_sizing_takes_a_percentage_stop_loss():
    entry = compile_text(play("""
        block b:
          when flat:
            stop buy risk 1% at high + 1 as brk
              stop_loss 1.5%
        """)).ir.blocks[0].cases[0].actions[0]
    assert entry.size.kind == "risk" and entry.attached[0].percent


def first_error(text: str):
    with pytest.raises(PlayError) as info:
        compile_text(text, "bad.yml")
    return info.value.diagnostics[0]


@pytest.mark.parametrize("line", ["stop_loss 100%", "trail 0%", "take_profit 150%", "stop_loss 0.0%", "trail 100.0%"])
def test_a_percentage_distance_is_more_than_0_and_less_than_100(line: str):
    d = first_error(play(f"block b:\n  when long:\n    {line}\n"))
    assert d.code == "value" and "must be more than 0% and less than 100%" in d.message
    assert f"'{line}'" in d.message and d.hint.startswith("e.g. '")


@pytest.mark.parametrize("line", ["stop_loss 99.99%", "trail 0.01%", "take_profit 0.001%"])
def test_percentages_just_inside_the_range_compile(line: str):
    assert protections(play(f"block b:\n  when long:\n    {line}\n"))[0].percent


def test_a_signed_percentage_is_not_a_distance_and_the_hint_says_to_drop_the_sign():
    d = first_error(play("block b:\n  when long:\n    stop_loss -2%\n"))
    assert (d.code, d.message) == ("value", "the stop_loss price must be positive, not -0.02")
    assert d.hint == ("a percentage distance is written without a sign: 'stop_loss 2%' is 2% from the position's "
                      "average entry")


# (action lines, the code the caret is on, message, hint)
ADDED = [
    ("market buy qty 1\n      stop_loss fill - 2%", "fill - 2%",
     "'fill - 2%' subtracts the number 0.02 from a price, not 2% of it",
     "write 'stop_loss 2%' (2% from the fill) or 'fill * (1 - 2%)'"),
    ("market sell qty 1\n      take_profit fill - 3%", "fill - 3%",
     "'fill - 3%' subtracts the number 0.03 from a price, not 3% of it",
     "write 'take_profit 3%' (3% from the fill) or 'fill * (1 - 3%)'"),
    ("market sell qty 1\n      stop_loss fill + 1.5%", "fill + 1.5%",
     "'fill + 1.5%' adds the number 0.015 to a price, not 1.5% of it",
     "write 'stop_loss 1.5%' (1.5% from the fill) or 'fill * (1 + 1.5%)'"),
    ("take_profit position.entry + 3%", "position.entry + 3%",
     "'position.entry + 3%' adds the number 0.03 to a price, not 3% of it",
     "write 'take_profit 3%' (3% from the position's average entry) or 'position.entry * (1 + 3%)'"),
    ("stop_loss close - 2%", "close - 2%",
     "'close - 2%' subtracts the number 0.02 from a price, not 2% of it",
     "write 'close * (1 - 2%)', or 'stop_loss 2%' (2% from the position's average entry)"),
    ("stop_loss max(close - atr - 1%, low)", "close - atr - 1%",
     "'close - atr - 1%' subtracts the number 0.01 from a price, not 1% of it",
     "write '(close - atr) * (1 - 1%)', or 'stop_loss 1%' (1% from the position's average entry)"),
    ("limit buy qty 1 at close - 1%", "close - 1%",
     "'close - 1%' subtracts the number 0.01 from a price, not 1% of it",
     "write 'close * (1 - 1%)' for 1% below close; a percentage is a fraction of what it multiplies"),
    ("stop buy qty 1 at high limit high + 0.5%", "high + 0.5%",
     "'high + 0.5%' adds the number 0.005 to a price, not 0.5% of it",
     "write 'high * (1 + 0.5%)' for 0.5% above high; a percentage is a fraction of what it multiplies"),
    ("close at -(2% - close)", "2% - close",
     "'2% - close' mixes the number 0.02 with a price by '-', not 2% of it",
     "write 'close * (1 - 2%)' for 2% below close; a percentage is a fraction of what it multiplies"),
    ("trail atr + 1%", "atr + 1%",
     "'atr + 1%' adds the number 0.01 to a distance, not 1% of it",
     "write 'trail 1%' (it follows the best price at 1% from it), or a distance in price such as 'close * 1%'"),
]


@pytest.mark.parametrize("actions,at,message,hint", ADDED, ids=[row[1] for row in ADDED])
def test_a_percentage_added_to_a_price_is_an_error_showing_both_fixes(actions: str, at: str, message: str, hint: str):
    text = play(f"block b:\n  when long:\n    {actions}\n")
    d = first_error(text)
    assert (d.code, d.message, d.hint) == ("percent", message, hint)
    line = text.splitlines()[d.span.line - 1]
    assert line[d.span.col - 1:d.span.end_col - 1] == at


@pytest.mark.parametrize("value", ["fill * (1 - 2%)", "fill - 2% * atr", "fill - atr * 2%", "fill * 98%",
                                   "fill - fill * 2%", "min(fill * (1 - 1%), fill - atr)"])
def test_a_percentage_that_scales_something_is_no_mistake(value: str):
    p = protections(play(f"block b:\n  when flat:\n    market buy qty 1\n      stop_loss {value}\n"))[0]
    assert not p.percent


def test_a_percentage_added_in_a_condition_is_left_alone():
    # a condition compares ratios too (upnl / equity + 1%): the rule is about prices an action sets
    assert compile_text(play("block b:\n  when position.upnl / equity + 1% < 0:\n    close\n"))
