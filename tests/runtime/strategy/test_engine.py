"""The bar loop: no lookahead, the readiness gate, first-match blocks, intents in source order."""
from __future__ import annotations

from paths import ROOT_DIR

import asyncio
import math
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from playdeck.compiler import compile_file, compile_text
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import prepare
from playdeck.runtime.data.bars import Bars, tf_ms
from playdeck.runtime.execution.order_state import TRANSITIONS
from playdeck.runtime.execution.orders import Fill, OrderStatus
from playdeck.runtime.data.synthetic import generate

PLAYS = sorted(ROOT_DIR.joinpath("plays").glob("*.yml"))


def bars_at(tf: str, n: int, seed: int) -> Bars:
    """Synthetic bars relabelled as `tf` bars (the generator makes 1m bars; the shape is what matters)."""
    b = generate(n, seed=seed)
    ts = b.ts_open[0] + np.arange(n, dtype=np.int64) * tf_ms(tf)
    return attrs.evolve(b, tf=tf, ts_open=ts)


def run(plan, bars: Bars):
    bt = prepare(plan, bars, keep_events=True)
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


def refusals(bt, upto: int):
    """The refused intents up to bar `upto`: (bar, kind, tag, reason)."""
    return [(r.bar, r.kind, r.tag, r.reason) for r in bt.processor.rejections if r.bar <= upto]


def order_view(rec):
    """What an order is: its contents as sent (or last amended) and its status path."""
    o = rec.request
    return (rec.order_id, rec.tag, rec.side, rec.type, rec.role, o.tif, rec.reduce_only, rec.qty, rec.price,
            rec.trigger, rec.expire_bar, o.created_bar, tuple(rec.path))


def identity(rec):
    """The parts of an order no later amend or fill changes."""
    return (rec.order_id, rec.client_id, rec.tag, rec.side, rec.type, rec.role, rec.request.created_bar)


# Statuses nothing leads out of (from the shared table): an order there never changes again.
TERMINAL = frozenset(s for s in OrderStatus if not any(src is s for src, _ in TRANSITIONS))


def htf_ratio(plan) -> int:
    """Exec bars per bar of the Play's highest timeframe (1 when every feature is on exec bars)."""
    exec_ms = tf_ms(plan.play.market.exec_tf)
    tfs = set(plan.timeframes) | set(dict(plan.play.market.timeframes).values()) | {plan.play.market.exec_tf}
    return max(tf_ms(tf) // exec_ms for tf in tfs)


def check_prefix_run(path: Path, seed: int, extra: int, data) -> None:
    """Run on all n bars; cut at k = (the bar a chosen order of that run was created at) + 1, where a
    lookahead would change a decision; run on the first k bars; compare everything up to bar k-1."""
    plan = lower(compile_file(path).ir)
    n = ready_bar(path) + extra
    bars = bars_at(plan.play.market.exec_tf, n, seed)
    bt_full, full = run(plan, bars)
    recs = list(bt_full.state.orders.values())
    ratio = htf_ratio(plan)
    chosen = None
    if recs:
        pool = recs
        if ratio > 1:
            # Half the cuts fall inside a bar of the highest timeframe (the prefix then ends with a
            # forming, unclosed higher-timeframe bar), half on its close, when the run has such orders.
            inside = data.draw(st.booleans(), label="cut inside a higher-timeframe bar")
            pool = [r for r in recs if ((r.request.created_bar + 1) % ratio != 0) == inside] or recs
        chosen = pool[data.draw(st.integers(0, len(pool) - 1), label="order")]
        k = chosen.request.created_bar + 1
    else:
        k = data.draw(st.integers(1, n), label="k (the full run has no orders)")
        event("the full run has no orders")
    event(f"cut inside a {ratio}-bar higher-timeframe bar: {k % ratio != 0}" if ratio > 1 else "exec only")
    bt_prefix, prefix = run(plan, bars.take(0, k))
    last = k - 1

    expected = trace(full, last)
    if chosen is not None:
        assert chosen.order_id in {e[0] for e in expected[1]}  # the compared trace is not empty
    assert trace(prefix, last) == expected
    assert refusals(bt_prefix, last) == refusals(bt_full, last)

    # The same orders were created up to bar k-1, and none of them differs in what it is.
    full_upto = [r for r in recs if r.request.created_bar <= last]
    assert [identity(r) for r in bt_prefix.state.orders.values()] == [identity(r) for r in full_upto]
    # An order of the full run that was done by bar k-1 is, to the last field, the prefix run's order.
    for r in full_upto:
        if r.path[-1] in TERMINAL and max(e.bar for e in full.events if e.client_id == r.client_id) <= last:
            assert order_view(bt_prefix.state.orders[r.client_id]) == order_view(r)
    # Orders still working at bar k-1 (the chosen one among them) may be amended later in the full run:
    # compare the book at bar k-1 with the full data's run stopped after bar k-1 (its loop is the full
    # run's loop: same fills, events and refusals up to there).
    bt_cut = prepare(plan, bars, keep_events=True)
    cut = asyncio.run(bt_cut.engine.run(0, k))
    assert trace(cut, last) == expected
    assert refusals(bt_cut, last) == refusals(bt_full, last)
    assert [order_view(r) for r in bt_prefix.state.orders.values()] == \
        [order_view(r) for r in bt_cut.state.orders.values()]


@pytest.mark.parametrize("path", PLAYS, ids=[p.stem for p in PLAYS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), extra=st.integers(1000, 4000), data=st.data())
def test_no_lookahead_prefix_run_matches_full_run(path: Path, seed: int, extra: int, data):
    """Running on the first k bars and on all n gives the same orders (contents and status paths),
    fills, events and refused intents up to bar k-1, on exec and higher-timeframe features alike.

    k is one past the bar where an order of the full run was created, so a decision at bar k-1 (where
    any peek at bar k would show) is always compared; a random k only when the full run has no order."""
    check_prefix_run(path, seed, extra, data)


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


def _ref_ema(x: list[float], n: int) -> list[float]:
    out, y, a = [], math.nan, 2 / (n + 1)
    for i, v in enumerate(x):
        if i == n - 1:
            y = sum(x[:n]) / n  # seeded with the SMA of the first n
        elif i >= n:
            y = a * v + (1 - a) * y
        out.append(y)
    return out


def _ref_sma(x: list[float], n: int) -> list[float]:
    return [math.nan if i < n - 1 else sum(x[i - n + 1 : i + 1]) / n for i in range(len(x))]


def test_a_cross_of_two_higher_timeframe_series_fires_once_at_the_close_where_it_happens():
    # Judged on exec bars (Pine's ta.crossover on forward-filled values): the cross is true at the
    # exec close where the new 1h values appear, not on the three exec bars after it. Inside an
    # `@ htf` feature it is judged on 1h bars and that bool is forward-filled like any 1h value.
    text = """
play: htf_cross
market: {symbol: BTCUSDT, exec: 15m, timeframes: {htf: 1h}}
features:
  a: ema(close, 2) @ htf
  b: sma(close, 4) @ htf
  up: ema(close, 2) crosses_above sma(close, 4) @ htf
blocks: |
  block exec_cross:
    when a crosses_above b:
      market buy qty 0.0000001
  block htf_cross:
    when up:
      market sell qty 0.0000001
"""
    plan = lower(compile_text(text).ir)
    bars = bars_at("15m", 800, 11)
    bt, _ = run(plan, bars)
    hourly = [float(bars.close[4 * j + 3]) for j in range(len(bars) // 4)]  # a 1h close is its 4th 15m close
    a, b = _ref_ema(hourly, 2), _ref_sma(hourly, 4)
    crosses = [j for j in range(1, len(hourly)) if a[j] > b[j] and a[j - 1] <= b[j - 1]]
    assert len(crosses) > 10
    fired = {kind: [r.bar for r in bt.processor.rejections if r.kind == "market" and r.where.endswith(line)]
             for kind, line in (("exec", ":11:7"), ("htf", ":14:7"))}
    assert fired["exec"] == [4 * j + 3 for j in crosses]  # once, at the close of the crossing hour
    assert fired["htf"] == [4 * j + 3 + k for j in crosses for k in range(4) if 4 * j + 3 + k < len(bars)]


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
    tags = [rec.tag for rec in bt.state.orders.values()]
    # bar 0: block one sends first and second (first match only); block two sees the state before them.
    # bar 1: first is pending, so the same tags re-send (amend) and block two adds third.
    assert tags[:2] == ["first", "second"]
    assert "never" not in tags
    assert tags[2] == "third"
    first, third = bt.state.pending_by_tag.get("first"), bt.state.pending_by_tag.get("third")
    assert [o.qty for o in (first, third)] == [0.001, 0.004]
    # block two did not see block one's orders of the same bar: `third` comes one bar later
    assert (first.request.created_bar, third.request.created_bar) == (0 + bt.engine.ready_bar, 1 + bt.engine.ready_bar)


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
    dips = [rec for rec in bt.state.orders.values() if rec.tag == "dip"]
    assert len(dips) == 1
    assert abs(dips[0].price - bars.close[4] * 0.5) <= 0.05 + 1e-9  # re-priced at the last bar, to the tick
    assert OrderStatus.PENDING_AMEND in dips[0].path


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


MAGNIFIED = """
play: magnified
market: {symbol: BTCUSDT, exec: 15m}
account: {equity: 10000, leverage: 3, slippage_bps: 2, intrabar: 1m}
features:
  fast: ema(close, 5)
  slow: ema(close, 13)
  atr: atr(14)
blocks: |
  block entries:
    when flat and fast crosses_above slow:
      limit buy risk 1% at close - 0.3 * atr expire 4 bars as dip
        stop_loss fill - 1.5 * atr
        take_profit fill + 2 * atr
    when flat and fast crosses_below slow:
      stop sell qty 0.05 at low - 0.2 * atr as brk
        stop_loss 0.8%
        trail 1.5%
"""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), data=st.data())
def test_no_lookahead_with_the_bar_magnifier(seed: int, data) -> None:
    """With intrabar: 1m, a prefix run on the first k exec bars (and the minutes inside them) gives the
    same fills (and the detail bar of each), events and refusals up to bar k-1 as the full run."""
    from playdeck.runtime.backtest.run import detail_bars, exec_bars

    plan = lower(compile_text(MAGNIFIED).ir)
    minutes = generate(15 * 700, seed=seed)
    bars = exec_bars(minutes, "15m")
    full_bt = prepare(plan, bars, keep_events=True, detail=detail_bars(minutes, "1m"))
    full = asyncio.run(full_bt.engine.run())
    assert any(f.detail_ts is not None for f in full.fills) or not full.fills
    created = sorted({r.request.created_bar for r in full_bt.state.orders.values()})
    k = (data.draw(st.sampled_from(created), label="cut after an order") if created
         else data.draw(st.integers(2, len(bars)), label="k")) + 1
    k = min(k, len(bars))
    cut_minutes = minutes.take(0, int(np.searchsorted(minutes.ts_open, bars.ts_open[k - 1] + tf_ms("15m"))))
    prefix_bt = prepare(plan, bars.take(0, k), keep_events=True, detail=detail_bars(cut_minutes, "1m"))
    prefix = asyncio.run(prefix_bt.engine.run())
    last = k - 1
    fills = lambda r: [tuple(f) for f in r.fills if f.bar <= last]  # noqa: E731
    events = lambda r: [(e.client_id, e.old, e.new, e.bar, e.reason) for e in r.events if e.bar <= last]  # noqa: E731
    assert fills(prefix) == fills(full)
    assert events(prefix) == events(full)
    assert [r[:4] for r in prefix_bt.state.refusals] == [r[:4] for r in full_bt.state.refusals if r.bar <= last]
