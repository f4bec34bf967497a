"""The backtest benchmark's hand-written floor implements the EMA-cross Play on its own from the
indicator values on (crosses, sizing, rounding, fills, fees, the position; it shares playdeck's
`ema`, which test_indicators checks against a textbook loop): it must agree with the engine fill for
fill, or one of them is wrong (and the bench's comparison would be meaningless)."""
from __future__ import annotations

from paths import ROOT_DIR

import importlib.util
from pathlib import Path

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
