"""The checker on Plays that compile: feature jobs, warm-ups, types, what crosses accept, spans, and
the shape of the IR (frozen, slotted, free of lark objects)."""
from __future__ import annotations

from paths import ROOT_DIR

import enum
import textwrap

import attrs
import lark
import pytest
import yaml

from playdeck.compiler import compile_file, compile_text, ir
from playdeck.compiler.printer import ir_text
from playdeck.compiler.types import Type
from playdeck.dsl import syntax
from playdeck.dsl.diagnostics import PlayError
from playdeck.dsl.spans import Span

PLAYS = sorted((ROOT_DIR / "plays").glob("*.yml"))


def make_play(features: dict[str, str] | None = None, blocks: str = "", *, exec_tf: str = "15m",
              timeframes: str = "{htf: 4h}") -> str:
    """A Play text; without `blocks`, one case that reads every feature so that each is used."""
    features = features or {}
    feats = "".join(f"  {k}: {v}\n" for k, v in features.items())
    if not blocks:
        uses = " and ".join(f"{k} > 0" for k in features) or "flat"
        blocks = f"block main:\n  when {uses}:\n    close\n"
    return (f"play: t\nmarket:\n  symbol: BTCUSDT\n  exec: {exec_tf}\n  timeframes: {timeframes}\n"
            + (f"features:\n{feats}" if feats else "")
            + "blocks: |\n" + textwrap.indent(textwrap.dedent(blocks).lstrip("\n"), "  "))


def compiled(features: dict[str, str] | None = None, blocks: str = "", **kw):
    return compile_text(make_play(features, blocks, **kw), "t.yml")


def error_of(features: dict[str, str] | None = None, blocks: str = "", **kw):
    with pytest.raises(PlayError) as info:
        compiled(features, blocks, **kw)
    return info.value.diagnostics[0]


def condition(expr: str, features: dict[str, str] | None = None) -> ir.Expr:
    """The checked IR of `expr` written as the only condition of a Play."""
    c = compiled(features or {"fast": "ema(close, 9)", "slow": "ema(close, 21)"},
                 f"block main:\n  when {expr}:\n    close\n")
    return c.ir.blocks[0].cases[0].cond


# ---- feature jobs ------------------------------------------------------------------------------

def test_two_features_with_the_same_indicator_share_one_job():
    play = compiled({"a": "ema(close, 21)", "b": "ema(close, 21)"}).ir
    assert len(play.jobs) == 1
    assert play.jobs[0].indicator.fn == "ema" and play.jobs[0].indicator.params == (21,)


def test_an_indicator_written_in_a_condition_reuses_the_feature_job():
    play = compiled({"a": "ema(close, 21)"}, """
        block main:
          when ema(close, 21) > close and a > ema(close, 21)[1]:
            close
        """).ir
    assert [j.indicator.fn for j in play.jobs] == ["ema"]


def test_different_timeframes_or_lengths_are_different_jobs():
    play = compiled({"a": "ema(close, 21)", "b": "ema(close, 21) @ htf", "c": "ema(close, 22)",
                     "d": "ema(close, 21) @ 4h"}).ir
    assert [(j.indicator.tf, j.indicator.params) for j in play.jobs] == [
        ("15m", (21,)), ("4h", (21,)), ("15m", (22,))]


def test_all_fields_of_one_multi_output_call_are_one_job():
    play = compiled({"m": "macd(close, 12, 26, 9)"}, """
        block main:
          when m.macd > m.signal and macd(close, 12, 26, 9).hist > 0:
            close
        """).ir
    assert len(play.jobs) == 1 and play.jobs[0].indicator.field is None


def test_jobs_list_inputs_before_the_indicators_that_use_them():
    play = compiled({"x": "ema(rsi(close, 14), 9)"}).ir
    assert [j.indicator.fn for j in play.jobs] == ["rsi", "ema"]


# ---- warm-ups ------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, warmup", [
    ("ema(close, 21)", 20),
    ("rsi(close, 14)", 14),
    ("ema(rsi(close, 14), 9)", 22),  # 14 + 8: the outer one starts when the inner has values
    ("macd(close, 12, 26, 9)", 33),  # 25 for the line, 8 more for the signal
    ("pivot_high(5, 3)", 8),  # confirmed `right` bars after the pivot
    ("pivot_low(2, 2)", 4),
    ("bbands(close, 20, 2)", 19),
    ("atr(14)", 13),
    ("roc(close, 10)", 10),
    ("vwap(48)", 47),
    ("vwap()", 0),  # anchored at each UTC day: a value from the first bar
    ("sma(vwap(), 4)", 3),
    ("close[3]", 3),
    ("sma(close, 10)[5]", 14),
    ("highest(high, 20) - lowest(low, 10)", 19),
])
def test_feature_warmup(expr, warmup):
    assert compiled({"f": expr}, "block main:\n  when flat:\n    close\n").ir.features[0].warmup == warmup


def test_a_feature_built_on_a_feature_adds_their_warmups():
    play = compiled({"r": "rsi(close, 14)", "smooth": "ema(r, 9)"}).ir
    assert [f.warmup for f in play.features] == [14, 22]


def test_readiness_counts_the_extra_bar_a_cross_needs_and_offsets():
    play = compiled({"fast": "ema(close, 9)", "slow": "ema(close, 21)"}, """
        block main:
          when fast crosses_above slow:
            close
          when fast[4] > 0:
            close
        """).ir
    assert play.warmup == 21  # slow is first valid at 20; the cross also reads slow[1]


def test_readiness_waits_for_higher_timeframes_on_their_own_bars():
    play = compiled({"trend": "ema(close, 200) @ htf", "fast": "ema(close, 9)"}).ir
    # 4h bar 199 is the first with a value; it closes at the end of 15m bar 200 * 16 - 1
    assert play.warmup == 3199
    assert play.features[0].warmup == 199 and play.features[0].tf == "4h"


def test_readiness_counts_a_higher_timeframe_offset_in_its_own_bars_and_a_mixed_one_in_exec_bars():
    features = {"trend": "ema(close, 10) @ htf"}
    own = compiled(features, "block b:\n  when trend[2] > 0:\n    close\n").ir
    mixed = compiled(features, "block b:\n  when (trend - close)[2] > 0:\n    close\n").ir
    assert own.warmup == (9 + 2 + 1) * 16 - 1  # two closed 4h bars before the first value
    assert mixed.warmup == (9 + 1) * 16 - 1 + 2  # two 15m bars after it is visible


# ---- types ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, type_", [
    ("close > 1", Type.BOOL_SERIES),
    ("position.size > 1", Type.BOOL),
    ("flat", Type.BOOL),
    ("flat and close > fast", Type.BOOL_SERIES),
    ("not position.reduced", Type.BOOL),
    ("fast crosses_above slow", Type.BOOL_SERIES),
    ("equity * 2% > 100", Type.BOOL),
    ("abs(close - fast) > 2", Type.BOOL_SERIES),
    ("flat == long", Type.BOOL),
])
def test_condition_types(expr, type_):
    assert condition(expr).type is type_


def test_expression_node_types():
    cond = condition("min(fast, 2) - 1 > position.entry")
    assert cond.left.type is Type.NUM_SERIES  # a series as soon as one operand is
    assert cond.left.left.type is Type.NUM_SERIES
    assert cond.right.type is Type.NUM
    assert condition("1 + 2 > 2").left.type is Type.NUM


def test_percent_is_a_fraction():
    assert condition("close > 2%").right == ir.Const(0.02)


def test_features_are_series_and_may_be_bool():
    play = compiled({"up": "close > ema(close, 50)", "m": "macd(close, 12, 26, 9)"}, """
        block main:
          when up and m.hist > 0:
            close
        """).ir
    assert [f.expr.type for f in play.features] == [Type.BOOL_SERIES, Type.NUM_SERIES]
    assert play.features[1].fields == ("macd", "signal", "hist")


# ---- crosses ---------------------------------------------------------------------------------------

def test_crosses_a_written_number_like_pines_crossover():
    cond = condition("rsi(close, 14) crosses_above 30 or fast crosses_below -0.5")
    assert isinstance(cond.left, ir.Cross) and cond.left.right == ir.Const(30.0)
    assert isinstance(cond.right.right, ir.Neg)


def test_crosses_with_trading_state_is_an_error():
    d = error_of({"fast": "ema(close, 9)"}, """
        block main:
          when long and close crosses_above position.entry:
            close
        """)
    assert d.code == "type" and "trading state" in d.message


def test_crosses_with_a_bool_is_an_error():
    d = error_of({"fast": "ema(close, 9)"}, "block main:\n  when (close > fast) crosses_above fast:\n    close\n")
    assert d.code == "type" and "series<bool>" in d.message


# ---- names ----------------------------------------------------------------------------------------

def test_a_feature_may_share_an_indicators_name():
    play = compiled({"atr": "atr(14)", "rsi": "rsi(close, 14)"}, """
        block main:
          when rsi > 70 and close - atr > rsi(close, 14):
            close
        """).ir
    assert [f.name for f in play.features] == ["atr", "rsi"]
    assert len(play.jobs) == 2


def test_a_feature_may_not_take_a_state_word():
    d = error_of({"long": "ema(close, 9)"})
    assert d.code == "name" and "built-in" in d.message


def test_tags_may_be_read_before_the_order_that_sets_them():
    play = compiled(None, """
        block first:
          when entry.pending and close > entry.price * 1.01:
            cancel entry
        block second:
          when flat and not entry.filled:
            limit buy qty 1 at close * 0.99 as entry
        """).ir
    assert play.tags == ("entry",)
    assert play.blocks[0].cases[0].cond.left == ir.TagState("entry", "pending", Type.BOOL)


def test_feature_timeframe_literal_and_alias_resolve_to_the_same_timeframe():
    play = compiled({"a": "ema(close, 50) @ htf", "b": "ema(close, 50) @ 4h"}).ir
    assert play.features[0].expr == play.features[1].expr
    assert play.timeframe_of("htf") == "4h"


# ---- actions --------------------------------------------------------------------------------------

def test_order_actions_carry_their_options():
    play = compiled({"atr": "atr(14)"}, """
        block main:
          when flat:
            stop buy risk 1% at high + atr limit high + 2 * atr expire 3 bars as breakout
              stop_loss fill - 2 * atr
              trail 3 * atr
            limit sell usdt 500 at close + atr ioc
          when long:
            partial_close 50% at position.entry + atr
            scale buy 25% of position at close - atr as add
          otherwise:
            close at close
        """).ir
    stop, limit = play.blocks[0].cases[0].actions
    assert (stop.kind, stop.side, stop.size.kind, stop.size.pct, stop.expire, stop.tag) == (
        "stop", "buy", "risk", 0.01, 3, "breakout")
    assert stop.trigger is not None and stop.price is not None
    assert [p.kind for p in stop.attached] == ["stop_loss", "trail"]
    assert isinstance(stop.attached[0].value.left, ir.FillPrice)
    assert (limit.tif, limit.size.kind) == ("IOC", "usdt")
    pc, sc = play.blocks[0].cases[1].actions
    assert isinstance(pc, ir.PartialClose) and pc.size.pct == 0.5 and pc.price is not None
    assert (sc.kind, sc.size.kind, sc.size.pct, sc.tag) == ("scale", "position", 0.25, "add")
    assert play.blocks[0].cases[2].cond is None
    assert isinstance(play.blocks[0].cases[2].actions[0], ir.Close)


def test_close_is_a_series_inside_an_expression_and_an_action_at_line_start():
    play = compiled(None, "block main:\n  when close > close[1]:\n    close at close\n").ir
    case = play.blocks[0].cases[0]
    assert case.cond.left == ir.Bar("close", "15m")
    assert case.actions[0] == ir.Close(ir.Bar("close", "15m"))


# ---- spans ----------------------------------------------------------------------------------------

def _text_at(text: str, span: Span) -> str:
    lines = text.splitlines()
    assert span.line == span.end_line
    return lines[span.line - 1][span.col - 1:span.end_col - 1]


def test_spans_point_into_the_play_file():
    text = make_play({"fast": "ema(close, 9)", "slow": '"sma(close, 21)"'}, """
        block main:
          when flat and fast crosses_above slow:
            limit buy qty 0.5 at close - 10 as entry
              stop_loss fill - 20
        """)
    play = compile_text(text, "t.yml").ir
    fast, slow = play.features
    assert _text_at(text, fast.span) == "fast"
    assert _text_at(text, fast.expr.span) == "ema(close, 9)"
    assert _text_at(text, slow.expr.span) == "sma(close, 21)"  # inside the quotes
    case = play.blocks[0].cases[0]
    assert _text_at(text, case.cond.span) == "flat and fast crosses_above slow"
    assert _text_at(text, case.cond.right.span) == "fast crosses_above slow"
    order = case.actions[0]
    assert _text_at(text, order.span) == "limit buy qty 0.5 at close - 10 as entry"
    assert _text_at(text, order.price.span) == "close - 10"
    assert _text_at(text, order.size.span) == "qty 0.5"
    assert _text_at(text, order.attached[0].span) == "stop_loss fill - 20"
    assert _text_at(text, order.attached[0].value.left.span) == "fill"
    assert _text_at(text, play.blocks[0].span) == "main"


@pytest.mark.parametrize("path", PLAYS, ids=[p.stem for p in PLAYS])
def test_every_span_of_an_example_play_is_inside_the_file(path):
    text = path.read_text()
    lines = text.splitlines()
    c = compile_file(path)
    for node in walk((c.ir, c.blocks, c.features)):
        span = getattr(node, "span", None)
        if isinstance(span, Span):
            assert 1 <= span.line <= span.end_line <= len(lines)
            assert 1 <= span.col <= len(lines[span.line - 1]) + 1
            if span.line == span.end_line:
                assert span.col < span.end_col


def test_equal_expressions_written_in_two_places_are_equal():
    play = compiled({"a": "ema(close, 9)"}, """
        block main:
          when a > close[1] and a > close[1]:
            close
        """).ir
    cond = play.blocks[0].cases[0].cond
    assert cond.left == cond.right and cond.left.span != cond.right.span
    assert hash(cond.left) == hash(cond.right)


# ---- the shape of the IR --------------------------------------------------------------------------

def walk(value):
    """Every attrs node, tuple item and leaf reachable from `value`."""
    yield value
    if attrs.has(type(value)):
        for f in attrs.fields(type(value)):
            yield from walk(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from walk(item)
    elif isinstance(value, dict):
        raise AssertionError(f"a dict in the IR: {value!r}")


IR_CLASSES = [c for c in vars(ir).values() if isinstance(c, type) and attrs.has(c) and c.__module__ == ir.__name__]


def test_every_ir_class_is_frozen_and_slotted():
    assert len(IR_CLASSES) >= 20
    for cls in IR_CLASSES:
        assert "__slots__" in vars(cls), cls
        assert "__dict__" not in {n for c in cls.__mro__ for n in vars(c).get("__slots__", ())}, cls
    play = compiled({"fast": "ema(close, 9)"}).ir
    for node in (play, play.features[0], play.features[0].expr, play.blocks[0], play.account):
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            node.name = "x"
        assert not hasattr(node, "__dict__")


@pytest.mark.parametrize("path", PLAYS, ids=[p.stem for p in PLAYS])
def test_no_lark_objects_or_mutable_containers_in_the_ir(path):
    c = compile_file(path)
    allowed = (str, int, float, bool, type(None), enum.Enum, Span)
    for tree in (c.ir, c.blocks, c.features):
        for node in walk(tree):
            assert not isinstance(node, (lark.Tree, lark.Token, list, set)), type(node)
            assert attrs.has(type(node)) or isinstance(node, (tuple, *allowed)), type(node)


def test_syntax_nodes_ignore_spans_and_spelling_in_equality():
    assert syntax.Num(1.0, "1.0", Span(1, 1, 1, 4)) == syntax.Num(1.0, "1", Span(9, 9, 9, 10))
    assert ir.Const(1.0, span=Span(1, 1, 1, 2)) == ir.Const(1.0)


def test_numbers_with_an_exponent_are_numbers_in_the_settings():
    # YAML 1.1 (PyYAML) reads 2e-4 and 1e4 as text; a Play reads them as YAML 1.2 and users do
    text = textwrap.dedent("""\
        play: e
        market: {symbol: BTCUSDT, exec: 15m}
        account:
          equity: 1e4
          fees: {maker: 2e-4, taker: 5.5E-4}
          instrument: {tick: 1e-1, qty_step: 1e-3, min_qty: 1e-3}
        blocks: |
          block b:
            when flat:
              market buy qty 1e-3
        """)
    acct = compile_text(text, "e.yml").ir.account
    assert (acct.equity, acct.maker_fee, acct.taker_fee) == (10000.0, 0.0002, 0.00055)
    with pytest.raises(PlayError) as e:
        compile_text(text.replace("equity: 1e4", 'equity: "1e4"'), "e.yml")  # quoted, it is text
    assert "must be a number, not the text '1e4'" in str(e.value)
    with pytest.raises(PlayError) as e:
        compile_text(text.replace("equity: 1e4", "equity: !!str 1e4"), "e.yml")  # tagged as text, too
    assert "must be a number, not the text '1e4'" in str(e.value)
    # and YAML itself is left as it was for everyone else
    assert yaml.safe_load("a: 1e4") == {"a": "1e4"}


def test_vwap_without_arguments_is_the_session_vwap_and_prints_as_written():
    c = compiled({"v": "vwap()", "r": "vwap(24)"}, "block main:\n  when close > vwap():\n    close\n")
    fns = sorted(j.indicator.fn for j in c.ir.jobs)
    assert fns == ["vwap", "vwap_session"]  # one job for the feature and the inline call
    text = ir_text(c.ir)
    assert "v: series<float> on 15m warmup=0 = vwap()" in text and "vwap_session" not in text
    with pytest.raises(PlayError) as e:
        compiled({"v": "vwap(1, 2)"}, "block main:\n  when flat:\n    close\n")
    assert "write vwap() (anchored at each UTC day) or vwap(length)" in str(e.value)
