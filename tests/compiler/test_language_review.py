"""Findings of the language review that a one-row golden in test_bad_inputs.py cannot pin: characters
that a terminal would not show, expressions at and past the nesting limit (compiled, formatted and
backtested end to end), and settings left empty."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from playdeck.compiler import compile_text
from playdeck.compiler.check import nesting
from playdeck.compiler.lower import lower
from playdeck.compiler.printer import ir_text
from playdeck.dsl.diagnostics import PlayError
from playdeck.dsl.fmt import format_play
from playdeck.dsl.limits import MAX_DEPTH

PLAY = """\
play: t
market:
  symbol: BTCUSDT
  exec: 15m
  timeframes: {{htf: 1h}}
features:
  atr: atr(14)
{features}blocks: |
  block a:
    when {cond}:
      market buy qty 0.001
        stop_loss fill - atr
"""


def make(cond: str, features: str = "") -> str:
    return PLAY.format(cond=cond, features=features)


def error(text: str) -> PlayError:
    with pytest.raises(PlayError) as info:
        compile_text(text, "bad.yml")
    return info.value


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "playdeck.tui.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


# ---- characters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ch, name", [("\x00", "U+0000 (NUL)"), ("\x07", "U+0007 (BEL)"),
                                      ("\x0c", "U+000C (form feed)"), ("\x1b", "U+001B (ESC)")])
def test_a_control_character_is_named_at_its_place(ch: str, name: str):
    text = make("flat").replace("  block a:", f"  block a:  # red {ch}[31m")
    err = error(text)
    d = err.diagnostics[0]
    assert (d.code, str(d.span)) == ("char", "9:19")
    assert d.message == f"control character {name} is not allowed in a Play"
    rendered = err.render()
    assert "\n 9 |   block a:  # red ?[31m\n" in rendered  # shown, not sent to the terminal
    assert ch not in rendered


@pytest.mark.parametrize("ch", ["\u2028", "\x85"])
def test_a_unicode_line_break_is_refused_where_it_is_not_yaml_jargon(ch: str):
    d = error(make("flat").replace("  block a:", f"  block a:  # x{ch} more")).diagnostics[0]
    assert (d.code, str(d.span)) == ("char", "9:16")
    assert "is not allowed in a Play" in d.message and "<block end>" not in d.message


def test_the_cli_exits_2_on_a_control_character(tmp_path: Path):
    (tmp_path / "bad.yml").write_text(make("flat").replace("flat", "flat\x1b", 1))
    r = run_cli("compile", "bad.yml", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("bad.yml:10:14: error[char]: control character U+001B (ESC)")
    assert "internal error" not in r.stderr


# ---- nesting depth --------------------------------------------------------------------------------

def chain(term: str, op: str, n: int) -> str:
    return f" {op} ".join([term] * n)


def test_a_long_and_chain_is_a_depth_error_at_the_condition():
    d = error(make(chain("close > open", "and", 250))).diagnostics[0]
    assert (d.code, str(d.span)) == ("depth", "10:10")
    assert d.message == f"this expression nests too deeply (250 levels; at most {MAX_DEPTH})"
    assert "parentheses" in d.hint


@pytest.mark.parametrize("n", [3000, 20000])
def test_any_length_is_an_error_not_a_crash(n: int):
    assert error(make(chain("close", "+", n) + " > 0")).diagnostics[0].code == "depth"


def test_grouping_with_parentheses_makes_the_same_terms_fit():
    group = "(" + chain("close > open", "and", 100) + ")"
    compiled = compile_text(make(chain(group, "and", 3)))
    assert nesting(compiled.ir.blocks[0].cases[0].cond, {}) <= MAX_DEPTH


def test_features_count_towards_the_depth_of_what_uses_them():
    features = f"  f1: {chain('close', '+', 150)}\n"
    d = error(make(chain("f1", "+", 60) + " > 0", features)).diagnostics[0]
    assert (d.code, str(d.span)) == ("depth", "11:10")
    assert "counting the features it uses" in d.message


def deepest_allowed() -> str:
    """A Play whose condition nests exactly MAX_DEPTH levels through two 1h features."""
    features = (f"  f1: {chain('close', '+', 60)} @ htf\n"
                f"  f2: {chain('f1', '+', 60)} @ htf\n")
    base = compile_text(make("f2[1] > 0", features))
    feature_depth = nesting(base.ir.features[-1].expr, {"f1": nesting(base.ir.features[1].expr, {})})
    terms = MAX_DEPTH - feature_depth - 3  # the reference, the offset and the top "and" take 3 levels
    text = make(chain("f2[1]", "+", terms) + " > 0 and position.size == 0", features)
    return text


def test_the_deepest_allowed_expression_compiles_formats_and_prints():
    text = deepest_allowed()
    compiled = compile_text(text)
    depths: dict[str, int] = {}
    for f in compiled.ir.features:
        depths[f.name] = nesting(f.expr, depths)
    assert nesting(compiled.ir.blocks[0].cases[0].cond, depths) == MAX_DEPTH
    assert ir_text(compiled.ir)
    assert lower(compiled.ir).blocks
    assert compile_text(format_play(compiled.source, list(compiled.features), compiled.blocks)).ir == compiled.ir
    # one more term is refused
    more = text.replace(" > 0 and", " + f2[1] > 0 and")
    assert error(more).diagnostics[0].code == "depth"


def test_the_deepest_allowed_expression_backtests(tmp_path: Path):
    # The evaluator recurses at Python's default limit: the compiler's limit must fit inside it.
    (tmp_path / "deep.yml").write_text(deepest_allowed())
    r = run_cli("backtest", "deep.yml", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "internal error" not in r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["play"] and report["data"]["bars"] > report["ready_bar"] > 0  # it ran past the gate


def test_a_long_condition_is_lowered_without_a_deep_chain():
    # 180 conjuncts written as nested groups stay shallow; lowering regroups them balanced.
    groups = " and ".join("(" + chain("close > open", "and", 20) + ")" for _ in range(9))
    plan = lower(compile_text(make(groups)).ir)
    assert nesting(plan.blocks[0][0].series, {}) < 40  # not 180


# ---- settings left empty ---------------------------------------------------------------------------

def test_an_empty_account_means_every_default():
    text = make("flat").replace("features:", "description:\naccount:\nfeatures:")
    compiled = compile_text(text)
    assert compiled.ir.account == compile_text(make("flat")).ir.account
    assert compiled.ir.description == ""
    formatted = format_play(compiled.source, list(compiled.features), compiled.blocks)
    assert "account" not in formatted and "description" not in formatted


def test_nan_in_any_numeric_setting_is_an_error_at_its_key():
    text = make("flat").replace("features:", "account:\n  fees: {maker: .nan}\n  slippage_bps: -.inf\nfeatures:")
    err = error(text)
    assert [(d.code, str(d.span)) for d in err.diagnostics] == [("value", "7:17"), ("value", "8:17")]
