"""The bar loop: no lookahead, the readiness gate, first-match blocks, intents in source order."""
from __future__ import annotations

import asyncio
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from playdeck.compiler import compile_file, compile_text
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest import prepare
from playdeck.runtime.bars import Bars, tf_ms
from playdeck.runtime.orders import Fill
from playdeck.runtime.synthetic import generate

PLAYS = sorted(Path(__file__).parent.parent.joinpath("plays").glob("*.yml"))


def bars_at(tf: str, n: int, seed: int) -> Bars:
    """Synthetic bars relabelled as `tf` bars (the generator makes 1m bars; the shape is what matters)."""
    b = generate(n, seed=seed)
    ts = b.ts_open[0] + np.arange(n, dtype=np.int64) * tf_ms(tf)
    return attrs.evolve(b, tf=tf, ts_open=ts)


def run(plan, bars: Bars):
    bt = prepare(plan, bars)
    result = asyncio.run(bt.engine.run())
    return bt, result


def trace(result, upto: int):
    fills = [(f.bar, f.order_id, f.side.value, f.qty, f.price, f.fee, f.liquidity) for f in result.fills
             if f.bar <= upto]
    events = [(e.order_id, e.old, e.new, e.bar, e.reason) for e in result.events if e.bar <= upto]
    return fills, events


_READY: dict[Path, int] = {}


def ready_bar(path: Path) -> int:
    if path not in _READY:
        plan = lower(compile_file(path).ir)
        bt = prepare(plan, bars_at(plan.play.market.exec_tf, 8000, 1))
        _READY[path] = bt.engine.ready_bar
    return _READY[path]


@pytest.mark.parametrize("path", PLAYS, ids=[p.stem for p in PLAYS])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), extra=st.integers(200, 1200), cut=st.floats(0.0, 1.0))
def test_no_lookahead_prefix_run_matches_full_run(path: Path, seed: int, extra: int, cut: float):
    """Running on the first k bars and on all n gives the same orders and fills up to bar k-1.

    k is drawn after the full run's first order event, so the compared traces are never empty."""
    plan = lower(compile_file(path).ir)
    n = ready_bar(path) + extra
    bars = bars_at(plan.play.market.exec_tf, n, seed)
    _, full = run(plan, bars)
    first = min((e.bar for e in full.events), default=None)
    assume(first is not None and first < n - 2)  # a run without orders has nothing to compare
    k = first + 1 + int(cut * (n - first - 1))
    _, prefix = run(plan, bars.take(0, k))
    expected = trace(full, k - 1)
    assert expected[1]  # at least the first order's events
    assert trace(prefix, k - 1) == expected


def test_higher_timeframe_value_appears_only_when_its_bar_closes():
    text = """
play: htf_probe
market: {symbol: BTCUSDT, exec: 15m, timeframes: {htf: 1h}}
features:
  hclose: sma(close, 1) @ htf
blocks: |
  block probe:
    when flat and hclose > 0:
      market buy qty 0.001
"""
    plan = lower(compile_text(text).ir)
    bars = bars_at("15m", 400, 3)
    bt = prepare(plan, bars)
    ev = bt.engine.series
    ref = plan.features[0]
    on_exec = bt.feeds.series_on_exec(ref.tf, np.asarray(ev.on(ref.expr, ref.tf)))
    # 1h bar j covers exec bars 4j..4j+3 and is visible from exec bar 4j+3 (its close) on.
    for i in range(len(bars)):
        j = (i + 1) // 4 - 1
        if j < 0:
            assert np.isnan(on_exec[i])
        else:
            assert on_exec[i] == pytest.approx(bars.close[4 * j + 3], rel=1e-12)
    # ...and the readiness gate waits for it: the first tradable bar is the close of the first hour.
    assert bt.engine.ready_bar == 3


def test_readiness_gate_no_order_before_every_feature_is_warm():
    text = """
play: gate
market: {symbol: BTCUSDT, exec: 1m}
features:
  slow: sma(close, 50)
blocks: |
  block always:
    when close > 0 and slow > 0:
      market buy qty 0.001
"""
    plan = lower(compile_text(text).ir)
    bt, result = run(plan, bars_at("1m", 200, 5))
    assert bt.engine.ready_bar == 49
    created = [e.bar for e in result.events if e.old is None]
    assert created and min(created) == 49
    assert min(f.bar for f in result.fills) == 50  # a market order sent at the close of 49 fills in 50


def test_first_match_and_source_order_of_intents():
    text = """
play: order
market: {symbol: BTCUSDT, exec: 1m}
blocks: |
  block one:
    when flat:
      limit buy qty 0.001 at close * 0.5 as first
      limit buy qty 0.002 at close * 0.4 as second
    when flat:
      limit buy qty 0.003 at close * 0.3 as never
  block two:
    when first.pending:
      limit buy qty 0.004 at close * 0.2 as third
"""
    plan = lower(compile_text(text).ir)
    bt, result = run(plan, bars_at("1m", 3, 7))
    tags = [rec.order.tag for rec in bt.exchange.orders.values()]
    # bar 0: block one sends first and second (first match only); block two sees the state before them.
    # bar 1: first is pending, so the same tags re-send (amend) and block two adds third.
    assert tags[:2] == ["first", "second"]
    assert "never" not in tags
    assert tags[2] == "third"
    first, third = bt.exchange.order_by_tag("first"), bt.exchange.order_by_tag("third")
    assert [o.qty for o in (first, third)] == [0.001, 0.004]
    # block two did not see block one's orders of the same bar: `third` comes one bar later
    assert (first.created_bar, third.created_bar) == (0 + bt.engine.ready_bar, 1 + bt.engine.ready_bar)


def test_same_tag_still_pending_is_amended_not_duplicated():
    text = """
play: amend
market: {symbol: BTCUSDT, exec: 1m}
blocks: |
  block b:
    when flat:
      limit buy qty 0.001 at close * 0.5 as dip
"""
    plan = lower(compile_text(text).ir)
    bars = bars_at("1m", 5, 9)
    bt, result = run(plan, bars)
    dips = [rec for rec in bt.exchange.orders.values() if rec.order.tag == "dip"]
    assert len(dips) == 1
    assert abs(dips[0].order.price - bars.close[4] * 0.5) <= 0.05 + 1e-9  # re-priced at the last bar, to the tick
    assert "PendingAmend" in str(dips[0].path)


def test_rejections_are_recorded_with_reasons_and_the_run_goes_on():
    text = """
play: rej
market: {symbol: BTCUSDT, exec: 1m}
account: {equity: 1000, leverage: 1}
blocks: |
  block b:
    when flat:
      market buy qty 1
    otherwise:
      close
"""
    plan = lower(compile_text(text).ir)
    bt, result = run(plan, bars_at("1m", 20, 11))
    reasons = {r.reason for r in bt.processor.rejections}
    assert any("margin" in r for r in reasons)
    assert len(bt.processor.rejections) == 20
    assert result.fills == []


def test_every_fill_is_a_fill_and_bars_are_data_indexes():
    plan = lower(compile_file(PLAYS[0]).ir)
    bars = bars_at(plan.play.market.exec_tf, 5000, 2)
    bt, result = run(plan, bars)
    assert all(isinstance(f, Fill) for f in result.fills)
    assert all(f.ts == int(bars.ts_open[f.bar]) for f in result.fills)


def test_offset_of_a_higher_timeframe_feature_counts_its_own_bars():
    text = """
play: htf_offset
market: {symbol: BTCUSDT, exec: 15m, timeframes: {htf: 1h}}
features:
  hclose: sma(close, 1) @ htf
blocks: |
  block probe:
    when hclose[1] < hclose:
      market buy qty 0.001
"""
    plan = lower(compile_text(text).ir)
    bars = bars_at("15m", 200, 3)
    bt = prepare(plan, bars)
    cond = plan.blocks[0][0].series
    offset = cond.left
    prev = bt.engine.series.exec(offset)
    for i in range(len(bars)):
        j = (i + 1) // 4 - 1  # the latest closed hour at exec bar i
        if j < 1:
            assert np.isnan(prev[i])
        else:
            assert prev[i] == pytest.approx(bars.close[4 * (j - 1) + 3], rel=1e-12)  # the hour before it


@pytest.mark.parametrize("path", PLAYS, ids=[p.stem for p in PLAYS])
def test_skipping_quiet_bars_changes_nothing(path: Path):
    """The loop jumps over bars where nothing works and no case's market part is true. A Play with
    one more case that reads only state (so every bar is visited) must trade exactly the same."""
    text = path.read_text()
    dense_text = text.rstrip("\n") + "\n\n  block never:\n    when equity < 0:\n      close\n"
    sparse_plan = lower(compile_text(text).ir)
    dense_plan = lower(compile_text(dense_text).ir)
    bars = bars_at(sparse_plan.play.market.exec_tf, ready_bar(path) + 1500, 17)
    bt_sparse, sparse = run(sparse_plan, bars)
    bt_dense, dense = run(dense_plan, bars)
    assert dense.evaluated_bars == len(bars) - bt_dense.engine.ready_bar  # every bar was visited
    assert trace(sparse, len(bars)) == trace(dense, len(bars))
    assert bt_sparse.exchange.cash == bt_dense.exchange.cash
