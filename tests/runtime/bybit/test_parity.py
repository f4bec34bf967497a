"""Parity: every example Play run through Bybit's API (`playdeck run --backend emulator`: pybit REST,
websockets streams, the emulator in lockstep over loopback) does what its backtest does on the same
data: the same orders with the same status paths, the same fills, trades, funding and final equity
(parity_kit.py says what is compared and to which precision)."""
from __future__ import annotations

from pathlib import Path

import pytest

from parity_kit import differences, rows, run_both, write_exec_csv
from paths import ROOT_DIR

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
