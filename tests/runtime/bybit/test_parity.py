"""Parity: every example Play run through Bybit's API (`playdeck run --backend emulator`: pybit REST,
websockets streams, the emulator in lockstep over loopback) does what its backtest does on the same
data: the same orders with the same status paths, the same fills, trades, funding and final equity
(parity_kit.py says what is compared and to which precision)."""
from __future__ import annotations

from pathlib import Path

import pytest

from parity_kit import differences, rows, run_both, write_exec_csv
from paths import ROOT_DIR
from playdeck.runtime.backtest.report import format_report

PLAYS = sorted(p.stem for p in (ROOT_DIR / "plays").glob("*.yml"))
# Plays that trade rarely get more bars, so each one's parity covers several trades.
EXTRA = {"mtf_trend": 1500, "scale_out": 1500, "ema_pullback": 1500}


@pytest.mark.parametrize("name", PLAYS)
def test_a_run_through_bybit_does_what_the_backtest_does(name: str, tmp_path: Path) -> None:
    play = str(ROOT_DIR / "plays" / f"{name}.yml")
    data = write_exec_csv(play, tmp_path / "bars.csv", EXTRA.get(name, 700))
    bt, live, bt_report, run_report = run_both(play, data, tmp_path)
    assert differences(bt, live) == []
    # Not vacuous: the Play traded, and the run went through the venue (its own ids, a journal).
    fills = rows(live / "fills.csv", ("order_id",))
    assert fills, f"{name} did not trade on this data: parity would prove nothing"
    assert all(not f[0].startswith("sim-") for f in fills)
    assert run_report["journal"].endswith("journal.sqlite") and Path(run_report["journal"]).exists()
    assert bt_report["metrics"]["trades"] == run_report["metrics"]["trades"]


LIQUIDATED = """\
play: liquidated
description: too much leverage on purpose, a take-profit attached and a far limit resting; the data liquidates it
market:
  symbol: BTCUSDT
  exec: 15m
account:
  equity: 10000
  leverage: 50
  fees: {maker: 0.0002, taker: 0.00055}
  slippage_bps: 2
features:
  fast: ema(close, 3)
blocks: |
  block enter:
    when flat and fast > 0:
      market buy 4500% equity
        take_profit fill * 1.05
      limit buy qty 0.01 at close * 0.9 as far
"""


def test_liquidations_through_bybit_are_the_backtests(tmp_path: Path) -> None:
    """Bybit's liquidation (the orders it cancels first, its own order and BustTrade execution, a
    take-profit it clears, the insurance fund's cover) adopted by the backend as the simulator has it."""
    play = tmp_path / "liquidated.yml"
    play.write_text(LIQUIDATED)
    data = write_exec_csv(str(play), tmp_path / "bars.csv", 300)
    bt, live, bt_report, run_report = run_both(str(play), data, tmp_path)
    assert differences(bt, live) == []
    assert len(run_report["liquidations"]) >= 2
    assert run_report["liquidations"] == bt_report["liquidations"]
    # `playdeck run` prints the same headline a backtest does
    assert format_report(run_report).splitlines()[1] == format_report(bt_report).splitlines()[1]
    assert format_report(run_report).splitlines()[1].startswith("LIQUIDATED at bar ")
