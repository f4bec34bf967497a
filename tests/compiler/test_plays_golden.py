"""Every example Play, pinned: its IR as canonical text and as JSON (one golden file each, under
tests/__snapshots__/test_plays_golden/), and `playdeck fmt` round trips.

Regenerate after an intended change with `pytest tests/test_plays_golden.py --snapshot-update`,
then read the diff.
"""
from __future__ import annotations

from paths import ROOT_DIR

import json

import pytest

from playdeck.compiler import compile_file, compile_text
from playdeck.compiler.printer import ir_json, ir_text
from playdeck.dsl.fmt import format_play

# Every example Play: a new file in plays/ gets its goldens without touching this test.
PLAYS = sorted((ROOT_DIR / "plays").glob("*.yml"))
IDS = [p.stem for p in PLAYS]


def canonical(compiled) -> str:
    return format_play(compiled.source, list(compiled.features), compiled.blocks)


def test_there_are_example_plays_including_the_default():
    names = {p.name for p in PLAYS}
    assert len(PLAYS) >= 10
    assert {"ema_cross.yml", "ema_pullback.yml"} <= names


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_ir_text(path, text_snapshot):
    assert ir_text(compile_file(path).ir) == text_snapshot


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_ir_json(path, json_snapshot):
    text = ir_json(compile_file(path).ir)
    data = json.loads(text)
    assert data["schema"] == "playdeck.ir/1" and data["name"] == path.stem
    assert text == json_snapshot


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_play_name_matches_file_and_has_a_description(path):
    play = compile_file(path).ir
    assert play.name == path.stem
    assert len(play.description) > 20


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_fmt_output_compiles_to_the_same_ir(path):
    compiled = compile_file(path)
    again = compile_text(canonical(compiled), str(path))
    assert again.ir == compiled.ir
    assert again.blocks == compiled.blocks and again.features == compiled.features
    # equal IR, and equal text: nothing that equality ignores (spans aside) was lost
    assert ir_text(again.ir) == ir_text(compiled.ir)


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_fmt_is_idempotent(path):
    once = canonical(compile_file(path))
    assert canonical(compile_text(once, str(path))) == once


def _features_used() -> set[str]:
    """Every language feature the example Plays use, as short labels."""
    from playdeck.dsl import syntax as s

    used: set[str] = set()

    def expr(e) -> None:
        kind = type(e).__name__
        used.add(kind)
        if isinstance(e, s.Name):
            used.add(e.id)
        elif isinstance(e, s.Call):
            used.add(e.fn + "()")
        elif isinstance(e, s.Field) and isinstance(e.obj, s.Name):
            used.add("position." + e.name if e.obj.id == "position" else "." + e.name)
        elif isinstance(e, (s.BinOp, s.Compare)):
            used.add(e.op)
        elif isinstance(e, s.Cross):
            used.add("crosses_" + e.direction)
        for child in (getattr(e, a, None) for a in ("obj", "operand", "left", "right")):
            if child is not None:
                expr(child)
        for a in getattr(e, "args", ()):
            expr(a)

    def action(a, attached: bool) -> None:
        used.add(("attached " if attached else "") + a.kind)
        if a.size is not None:
            used.add(f"{a.kind} size {a.size.kind}")
            if not isinstance(a.size.value, s.Pct):
                expr(a.size.value)
        for o in a.options:
            used.add(f"{a.kind} {o.kind}" + (f" {o.value}" if o.kind == "tif" else ""))
            if o.kind in ("at", "limit"):
                expr(o.value)
        if a.kind == "cancel":
            used.add("cancel all" if a.target is None else "cancel TAG")
        if a.value is not None:
            expr(a.value)
        for child in a.children:
            action(child, True)

    for path in PLAYS:
        c = compile_file(path)
        for f in c.features:
            expr(f.expr)
            if f.tf is not None:
                used.add("@ literal" if f.tf[0].isdigit() else "@ alias")
        for b in c.blocks:
            for case in b.cases:
                if case.cond is None:
                    used.add("otherwise")
                else:
                    expr(case.cond)
                for a in case.actions:
                    action(a, False)
        used.add("intrabar " + c.ir.account.intrabar)
    return used


def test_the_examples_together_use_every_action_option_and_builtin():
    used = _features_used()
    wanted = {
        # actions and their options
        "market", "limit", "stop", "scale", "partial_close", "close", "cancel",
        "stop_loss", "take_profit", "trail", "attached stop_loss", "attached take_profit", "attached trail",
        "limit at", "limit expire", "limit tif post_only", "limit tif ioc", "limit tif fok", "limit tag",
        "stop at", "stop limit", "stop expire", "stop tag", "market tag", "market size equity",
        "scale at", "scale tag", "partial_close at", "close at", "cancel all", "cancel TAG",
        # sizes
        "limit size qty", "limit size usdt", "market size risk", "limit size risk", "stop size risk",
        "scale size position", "partial_close size position", "partial_close size qty",
        # expressions
        "Num", "Pct", "Neg", "Offset", "Call", "Field", "Not", "And", "Or",
        "+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "crosses_above", "crosses_below",
        "min()", "max()", "abs()", "otherwise",
        # built-in indicators
        *(f"{fn}()" for fn in ("sma", "ema", "wma", "rma", "rsi", "atr", "stdev", "highest", "lowest", "roc",
                               "macd", "bbands", "vwap", "pivot_high", "pivot_low")),
        ".signal", ".hist", ".macd", ".upper", ".lower", ".middle",
        # state
        "flat", "long", "short", "equity", "fill", ".pending", ".price", ".filled",
        *(f"position.{f}" for f in ("size", "entry", "layers", "upnl", "r", "bars", "reduced")),
        "@ alias", "@ literal", "intrabar worst_case", "intrabar ohlc_path",
    }
    assert wanted - used == set()


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_example_plays_are_written_in_canonical_form(path):
    # The examples are what users copy: `playdeck fmt` leaves them as they are.
    assert canonical(compile_file(path)) == path.read_text()
