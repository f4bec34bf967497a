"""The readiness gate and higher-timeframe offsets, on hand-made 1m bars.

Nothing trades before every market-data input a feature or a case reads has a value: a boolean
feature (never NaN) counts from the warm-up of what it compares, and a higher-timeframe input
counts from the close of its own first warm bar. `x[n]` of an expression of one timeframe counts
that timeframe's bars.
"""
from __future__ import annotations

from paths import ROOT_DIR

import asyncio
import textwrap

import attrs
import numpy as np
import pytest

from playdeck.compiler import compile_file, compile_text, ir
from playdeck.compiler.lower import lower
from playdeck.dsl.vocabulary import tf_minutes
from playdeck.runtime.backtest.run import exec_bars, prepare
from playdeck.runtime.data.synthetic import generate
from playdeck.runtime.data.bars import Bars

PLAYS = ROOT_DIR / "plays"


def play(blocks: str, features: str) -> str:
    return ("play: probe\nmarket: {symbol: BTCUSDT, exec: 1m, timeframes: {h: 1h}}\n"
            "account: {equity: 10000, leverage: 10, fees: {maker: 0.0, taker: 0.0}, slippage_bps: 0}\n"
            "features:\n" + textwrap.indent(textwrap.dedent(features).strip() + "\n", "  ")
            + "blocks: |\n" + textwrap.indent(textwrap.dedent(blocks).strip() + "\n", "  "))


def rising(n: int, step: float = 0.01) -> Bars:
    close = 100.0 + step * np.arange(n)
    return Bars("BTCUSDT", "1m", np.arange(n) * 60_000, close, close, close, close, np.ones(n))


def falling(n: int) -> Bars:
    return rising(n, -0.01)


def first_intent_bar(text: str, bars: Bars) -> tuple[int, int | None]:
    bt = prepare(lower(compile_text(text).ir), bars)
    seen: list[int] = []
    evaluate = bt.engine._evaluate

    def spy(i, st):
        out = evaluate(i, st)
        seen.extend(i for _ in out)
        return out

    bt.engine._evaluate = spy
    asyncio.run(bt.engine.run())
    return bt.engine.ready_bar, (seen[0] if seen else None)


def test_a_boolean_higher_timeframe_feature_waits_for_what_it_compares():
    # sma(close, 3) on 1h first has a value when the third hour closes: exec bar 179. Before that
    # `up` reads False (unknown), so `not up` would fire from bar 59 without the gate; on falling
    # prices it is truly false from then on, so the first order comes exactly at the gate.
    ready, first = first_intent_bar(play("""
        block b:
          when flat and not up:
            market buy qty 1
        """, "up: close > sma(close, 3) @ h"), falling(300))
    assert (ready, first) == (179, 179)


def test_cases_wait_for_a_higher_timeframe_offset_inside_them():
    # hc[1] (one closed hour ago) first exists when the second hour closes: bar 119. On falling
    # prices `not (hc > hc[1])` is true from there on, and was "true" from bar 59 without the gate.
    ready, first = first_intent_bar(play("""
        block b:
          when flat and not (hc > hc[1]):
            market buy qty 1
        """, "hc: sma(close, 1) @ h"), falling(300))
    assert (ready, first) == (119, 119)


def test_an_offset_over_an_expression_of_one_timeframe_counts_its_bars():
    # (hc * 1)[1] is hc one closed hour ago, exactly like hc[1]: on rising prices both are true
    # from the second hour on, not only on the bars where an hour closes.
    text = play("""
        block b:
          when flat and (hc * 1) > (hc * 1)[1]:
            market buy qty 1
          when flat and hc > hc[1]:
            market sell qty 1
        """, "hc: sma(close, 1) @ h")
    bt = prepare(lower(compile_text(text).ir), rising(240))
    first, second = (bt.engine.series.exec(c.series) for c in bt.plan.blocks[0])
    assert np.array_equal(first, second)
    assert np.flatnonzero(first).tolist() == list(range(119, 240))


def test_an_offset_over_mixed_timeframes_counts_exec_bars():
    # hc - close mixes 1h and 1m: [1] is one exec bar ago
    text = play("""
        block b:
          when flat and (hc - close)[1] < 0:
            market buy qty 1
        """, "hc: sma(close, 1) @ h")
    bt = prepare(lower(compile_text(text).ir), rising(180))
    mixed = bt.engine.series.exec(bt.plan.blocks[0][0].series)
    offset = bt.plan.blocks[0][0].series.left  # (hc - close)[1]
    hc = bt.engine.series.exec(offset.operand.left)
    close = 100.0 + 0.01 * np.arange(180)
    expected = np.zeros(180, dtype=bool)
    with np.errstate(invalid="ignore"):
        expected[1:] = (hc[:-1] - close[:-1]) < 0
    assert np.array_equal(mixed, expected)


@pytest.mark.parametrize("path", sorted(PLAYS.glob("*.yml")), ids=lambda p: p.stem)
def test_compile_readiness_is_the_run_gate_on_data_that_starts_on_every_boundary(path):
    # `playdeck compile` prints readiness from warm-up lengths; the run finds its gate from the
    # data. On data starting at midnight (a boundary of every timeframe) they must agree, except
    # that data can only make the gate later (a pivot not yet found).
    plan = lower(compile_file(path).ir)
    data_only = attrs.evolve(plan, play=attrs.evolve(plan.play, warmup=0))
    bars = generate(plan.play.warmup * _exec_minutes(plan) + 5_000, seed=3)
    gate = prepare(data_only, exec_bars(bars, plan.play.market.exec_tf)).engine.ready_bar
    uses_pivots = any(j.indicator.fn.startswith("pivot_") for j in plan.jobs)
    assert gate >= plan.play.warmup if uses_pivots else gate == plan.play.warmup


def _exec_minutes(plan) -> int:
    return tf_minutes(plan.play.market.exec_tf)


def test_an_exec_feature_reads_a_higher_timeframe_feature_as_a_condition_does():
    text = play("""
        block b:
          when flat and above and slope > 0:
            market buy qty 1
          when flat and close > hc and hc - hc[1] > 0:
            market sell qty 1
        """, """
        hc: sma(close, 2) @ h
        above: close > hc
        slope: hc - hc[1]
        """)
    compiled = compile_text(text).ir
    assert {f.name: f.warmup for f in compiled.features} == {"hc": 1, "above": 119, "slope": 179}
    bt = prepare(lower(compiled), rising(400))
    as_features, as_condition = (bt.engine.series.exec(c.series) for c in bt.plan.blocks[0])
    assert np.array_equal(as_features, as_condition)
    # hc's first value is hour 1's, seen from the close of exec bar 119; its slope needs hour 2 too
    assert int(np.flatnonzero(as_features)[0]) == 179 == bt.engine.ready_bar == compiled.warmup


@pytest.mark.parametrize("k", [150, 239, 240, 241, 333])
def test_an_exec_feature_of_a_higher_timeframe_feature_has_no_lookahead(k):
    # the features computed on the first k bars equal the full run's first k values
    text = play("""
        block b:
          when flat and above and slope > 0 and smooth > 0:
            market buy qty 1
        """, """
        hc: ema(close, 2) @ h
        above: close > hc
        slope: hc - hc[1]
        smooth: sma(hc, 3)
        """)
    plan = lower(compile_text(text).ir)
    rng = np.random.default_rng(5)
    close = 100.0 + np.cumsum(rng.normal(0, 0.1, 400))
    bars = Bars("BTCUSDT", "1m", np.arange(400) * 60_000, close, close + 0.1, close - 0.1, close, np.ones(400))
    full, prefix = prepare(plan, bars).engine.series, prepare(plan, bars.take(0, k)).engine.series
    for name in ("above", "slope", "smooth"):
        feature = next(f for f in plan.features if f.name == name)
        ref = ir.FeatureRef(name, None, feature.tf, feature.expr.type)
        np.testing.assert_array_equal(prefix.exec(ref), full.exec(ref)[:k], err_msg=name)
