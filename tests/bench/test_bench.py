"""The benchmarks compare like with like (their logic, not their speed).

The backtest benchmark's hand-written floor implements the EMA-cross Play on its own from the
indicator values on (crosses, sizing, rounding, fills, fees, the position; it shares playdeck's
`ema`, which test_indicators checks against a textbook loop): it must agree with the engine fill for
fill, or one of them is wrong (and the bench's comparison would be meaningless). The whole-process
comparison's CSV must hold the generated bars, its Play must trade the reference script's rule, and
its RSS figures must be each child's own."""
from __future__ import annotations

from paths import ROOT_DIR

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from playdeck.compiler import compile_text
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import prepare, run_engine
from playdeck.runtime.execution.orders import Side
from playdeck.runtime.data.synthetic import generate

BENCH = ROOT_DIR / "bench" / "backtest.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_backtest", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_floor_agrees_with_the_engine_fill_for_fill(bench) -> None:
    bars = generate(60_000, seed=3)
    text = bench.play_text(as_written=False)
    assert "exec: 1m" in text
    plan = lower(compile_text(text, str(bench.PLAY)).ir)
    bt = prepare(plan, bars)
    fills = run_engine(bt).fills
    _, floor = bench.floor_run(bars)
    assert len(fills) > 100  # the EMA 9/21 cross trades a lot on 1m bars
    assert len(floor) == len(fills)
    for f, (bar, qty, price, fee, realized) in zip(fills, floor):
        assert f.bar == bar
        assert f.qty * f.side.sign == pytest.approx(qty, abs=1e-9)
        assert f.price == pytest.approx(price, rel=1e-12)
        assert f.fee == pytest.approx(fee, rel=1e-9)
        assert f.realized_pnl == pytest.approx(realized, rel=1e-9, abs=1e-9)
    assert {f.side for f in fills} == {Side.BUY, Side.SELL}


# ------------------------------------------------------------------ the whole-process comparison


@pytest.fixture(scope="module")
def whole():
    spec = importlib.util.spec_from_file_location("bench_whole_process", ROOT_DIR / "bench" / "whole_process.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_csv_the_bench_writes_is_the_bars_it_generated(whole, tmp_path: Path) -> None:
    # both processes read this file: it must hold the bars the engine figure runs on, exactly
    from playdeck.runtime.data.csv_import import import_csv

    bars = generate(5_000, seed=whole.SEED)
    got = import_csv(whole.write_csv(bars, tmp_path / "bars.csv"), "BTCUSDT", None).bars
    assert got.tf == "1m"
    for field in ("ts_open", "open", "high", "low", "close", "volume"):
        assert np.array_equal(np.asarray(getattr(got, field)), np.asarray(getattr(bars, field))), field


def test_the_bench_play_flips_on_the_crosses_the_reference_trades(whole) -> None:
    """The Play and bench/bt_sma_flip.py must do the same work: every flip of the engine is at a
    cross of the reference rule (fast > slow after fast <= slow, and the mirror), filled at the
    next open, 1 unit to open and the position to close. The two compute their SMAs with different
    rounding, so where fast and slow are equal as decimals (a tie), float noise may cross one and
    not the other: those bars are the only ones allowed to differ."""
    bars = generate(200_000, seed=5)
    plan = lower(compile_text(whole.play_text(), "sma_flip.yml").ir)
    bt = prepare(plan, bars)
    fills = run_engine(bt).fills
    close = np.asarray(bars.close)
    up, down = whole.flip_signals(close)
    crosses = {int(i) for i in np.flatnonzero(up | down) if i < len(close) - 1}  # the last bar's has no next open
    flips = {f.bar - 1 for f in fills}
    fast, slow = whole.sma(close, whole.FAST), whole.sma(close, whole.SLOW)
    ties = {i for i in range(1, len(close)) if min(abs(fast[i] - slow[i]), abs(fast[i - 1] - slow[i - 1])) < 1e-6}
    assert len(flips) > 5_000
    assert (flips ^ crosses) <= ties
    assert len(flips ^ crosses) < 10
    sides = {f.bar - 1: f.side for f in fills}
    assert all(sides[i] is (Side.BUY if up[i] else Side.SELL) for i in flips & crosses)
    # the first flip opens 1 unit; every later one closes it and opens 1 the other way (always in
    # the market, as bt_sma_flip.py's position.close() and buy/sell(size=1))
    assert {f.qty for f in fills} == {1.0}
    assert abs(bt.exchange.position_qty) == 1 and len(fills) == 2 * len(flips) - 1


def test_timed_process_reports_the_childs_own_peak_rss(whole) -> None:
    """Forked from this test process (numpy, the suite's objects), a child would report this
    process's RSS as its own; through the launcher it reports its own: a child that touches 200 MiB
    reports about that, and one that touches nothing reports far less than this process holds."""
    held = np.ones(40_000_000)  # 305 MiB here, so a child inheriting the figure would show it
    big = whole.timed_process([sys.executable, "-c", "import numpy as np; a = np.ones(26_214_400); print(a.sum())"])
    small = whole.timed_process([sys.executable, "-c", "print('hi')"])
    assert held.sum() == 40_000_000
    assert big.stdout.strip() == "26214400.0" and small.stdout.strip() == "hi"
    assert 200 * 2**20 <= big.peak_rss < 300 * 2**20
    assert small.peak_rss < 100 * 2**20
    assert big.seconds > 0 and small.seconds > 0 and big.cpu > 0


def test_timed_process_says_when_the_command_fails(whole) -> None:
    with pytest.raises(RuntimeError, match="exited 3: boom"):
        whole.timed_process([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])
