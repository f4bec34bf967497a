"""The report's metrics by hand on tiny equity curves and trade lists (README, "How the metrics are
measured"), and the `end` row of a position still open (7.6)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from playdeck.runtime.backtest.report import (
    YEAR_MS,
    bar_returns,
    cagr_pct,
    calmar_ratio,
    duration_text,
    end_trade,
    metrics,
    replay,
    run_trades,
    sharpe_ratio,
    sortino_ratio,
)
from playdeck.runtime.execution.orders import Fill, Side
from playdeck.runtime.execution.trading_state import Trade

DAY_MS = 86_400_000


def fill(bar, side, qty, price, fee=0.0, pnl=0.0):
    return Fill(bar, 0, f"o{bar}", None, Side(side), qty, price, fee, "taker", None, pnl)


def trade(pnl: float, entry_bar: int = 0, exit_bar: int = 1, reason: str = "signal") -> Trade:
    return Trade("long", entry_bar, exit_bar, 1.0, 100.0, 100.0 + pnl, pnl, 0.0, reason)


# A daily curve from 1,000: +10%, -10%, +10% after a flat first bar. Returns 0, 0.1, -0.1, 0.1:
# mean 0.025; population sd sqrt(0.0275 / 4) = 0.0829156; downside deviation sqrt(0.1^2 / 4) = 0.05.
CURVE = np.array([1000.0, 1100.0, 990.0, 1089.0])


def test_sharpe_and_sortino_of_a_tiny_daily_curve():
    rets = bar_returns(CURVE, 1000.0)
    assert rets == pytest.approx([0.0, 0.1, -0.1, 0.1])
    assert sharpe_ratio(rets, 365) == pytest.approx(0.025 / math.sqrt(0.0275 / 4) * math.sqrt(365))
    # the downside deviation divides by all 4 bars (zero target), not by the 1 losing bar
    assert sortino_ratio(rets, 365) == pytest.approx(0.025 / 0.05 * math.sqrt(365)) == pytest.approx(9.5524865)


def test_metrics_of_the_tiny_curve():
    trades = [trade(100.0, 0, 1), trade(-110.0, 1, 2), trade(99.0, 2, 3, "end")]
    m = metrics(CURVE, np.array([0.0, 1.0, 1.0, 1.0]), 1000.0, [], trades, "1d", first_open=50.0, last_close=60.0,
                span_ms=4 * DAY_MS)
    assert m["max_drawdown_pct"] == 10.0  # 1100 -> 990
    assert m["buy_and_hold_pct"] == 20.0  # 50 -> 60
    # 1.089 compounded over 4 days of a 365-day year
    cagr = (1.089 ** (365 / 4) - 1) * 100
    assert m["cagr_pct"] == pytest.approx(cagr, rel=1e-9)
    assert m["calmar"] == pytest.approx(cagr / 10.0, rel=1e-9)
    assert m["sortino"] == pytest.approx(9.5525)
    # (100 - 110 + 99) / 3, held 1 day each
    assert m["expectancy"] == pytest.approx(29.666667)
    assert (m["avg_holding_bars"], m["avg_holding"]) == (1.0, "1d")
    assert (m["liquidations"], m["insurance_cover"], m["funding_paid"], m["funding_received"]) == (0, 0.0, 0.0, 0.0)


def test_win_rate_and_profit_factor_count_the_end_row():
    # A position held open at a loss is a loss: leaving it out would flatter a Play that never closes
    # its losers. One closed win of 30, the open position down 10: 50%, profit factor 3.
    m = metrics(np.full(3, 1020.0), np.ones(3), 1000.0, [], [trade(30.0), trade(-10.0, reason="end")], "1m")
    assert (m["trades"], m["win_rate_pct"], m["profit_factor"], m["expectancy"]) == (2, 50.0, 3.0, 10.0)


def test_cagr_calmar_and_sortino_edges():
    assert cagr_pct(1000.0, 1210.0, 2 * YEAR_MS) == pytest.approx(10.0)
    assert cagr_pct(1000.0, 1000.0, DAY_MS) == 0.0
    assert cagr_pct(1000.0, 0.0, DAY_MS) == -100.0  # wiped out
    assert cagr_pct(1000.0, 2000.0, 60_000) == "inf"  # doubled in a minute: past any float
    assert calmar_ratio(10.0, 5.0) == 2.0
    assert calmar_ratio(10.0, 0.0) == "inf" and calmar_ratio(0.0, 0.0) == 0.0 and calmar_ratio("inf", 3.0) == "inf"
    assert sortino_ratio(np.array([0.01, 0.0, 0.02]), 365) == "inf"  # rose, never fell
    assert sortino_ratio(np.zeros(5), 365) == 0.0 and sharpe_ratio(np.zeros(5), 365) == 0.0  # never moved


def test_returns_after_equity_reached_zero_are_zero_not_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 RuntimeWarning either
        rets = bar_returns(np.array([500.0, 0.0, 0.0]), 1000.0)
    assert rets.tolist() == [-0.5, -1.0, 0.0]
    m = metrics(np.array([500.0, 0.0, 0.0]), np.zeros(3), 1000.0, [], [trade(-1000.0)], "1m", span_ms=3 * 60_000)
    assert m["return_pct"] == -100.0 and m["cagr_pct"] == -100.0 and m["calmar"] == -1.0
    assert math.isfinite(m["sharpe"]) and math.isfinite(m["sortino"])


def test_duration_text():
    assert [duration_text(s) for s in (0, 59.6, 5400, 90061, 14 * 86400)] == ["0s", "1m", "1h 30m", "1d 1h 1m 1s",
                                                                               "14d"]


def test_without_trades_the_trade_metrics_are_undefined():
    m = metrics(np.full(4, 1000.0), np.zeros(4), 1000.0, [], [], "15m")
    assert (m["expectancy"], m["avg_holding_bars"], m["avg_holding"]) == (None, None, None)
    assert (m["sharpe"], m["sortino"], m["calmar"], m["cagr_pct"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["buy_and_hold_pct"] is None  # no prices given


# ---------------------------------------------------------------------------------------- the `end` row
def test_the_end_row_of_a_position_reduced_and_still_open():
    # 3 long at 100 (fee 0.3), 1 sold at 110 (realized 10, fee 0.1); 2 left, the run ends at bar 9
    # closing at 90: unrealized 2 x (90 - 100) = -20. The row: 3 entered at 100, out on average at
    # (110 + 2 x 90) / 3, pnl 10 - 20 - 0.4 = -10.4, no exit fee.
    state = replay([fill(1, "buy", 3, 100, fee=0.3), fill(4, "sell", 1, 110, fee=0.1, pnl=10)])
    t = end_trade(state, 9, 90.0)
    assert (t.side, t.entry_bar, t.exit_bar, t.qty, t.entry_price, t.exit_reason) == ("long", 1, 9, 3, 100, "end")
    assert t.exit_price == pytest.approx(290 / 3) and t.fees == pytest.approx(0.4)
    assert t.pnl == pytest.approx(-10.4)
    # a round trip's arithmetic still holds: (exit - entry) x qty is its gross PnL
    assert (t.exit_price - t.entry_price) * t.qty == pytest.approx(t.pnl + t.fees)
    assert t.return_pct == pytest.approx(-10.4 / 300 * 100)
    assert run_trades(state, 9, 90.0) == [t]


def test_a_run_that_ends_flat_has_no_end_row():
    state = replay([fill(1, "buy", 1, 100), fill(2, "sell", 1, 101, pnl=1)])
    assert end_trade(state, 5, 90.0) is None
    assert [x.exit_reason for x in run_trades(state, 5, 90.0)] == ["signal"]
