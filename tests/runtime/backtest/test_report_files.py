"""rejections.csv, and the position still open at the end of the data (in equity but in no trade)."""
from __future__ import annotations

from paths import ROOT_DIR

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import BacktestError, exec_bars, prepare, run_backtest, run_engine
from playdeck.runtime.data.bars import Bars
from playdeck.runtime.execution.trading_state import RefusedIntent as Rejection
from playdeck.runtime.execution.orders import Fill, Side
from playdeck.runtime.backtest.artifacts import write_artifacts, write_fills_csv
from playdeck.runtime.backtest.report import (equity_curve, format_report, metrics, open_position, replay,
                                              round_trips, run_trades)
from playdeck.runtime.data.synthetic import generate

ROOT = ROOT_DIR
T0 = 1735689600000  # 2025-01-01T00:00:00Z


def fill(bar, side, qty, price, fee=0.0, pnl=0.0):
    return Fill(bar, 0, f"o{bar}", None, Side(side), qty, price, fee, "taker", None, pnl)


def bars(n: int) -> Bars:
    close = np.full(n, 100.0)
    return Bars("BTCUSDT", "1m", T0 + np.arange(n, dtype=np.int64) * 60_000, close, close, close, close, np.ones(n))


def write(out: Path, **kw) -> list[list[str]]:
    report = {"play": "p", "data": {"label": "synthetic"}, "metrics": {"initial_equity": 1000.0}}
    write_artifacts(out, bars(10).ts_open, 0, [], [], [], np.full(10, 1000.0), report, **kw)
    with open(out / "rejections.csv", newline="") as fh:
        return list(csv.reader(fh))


HEADER = ["bar", "ts", "kind", "tag", "reason", "where"]


def test_rejections_csv_has_one_row_per_refused_intent(tmp_path: Path):
    rejections = [Rejection(3, "market", None, "qty 0.0004 below min_qty 0.001", "plays/x.yml:12:7"),
                  Rejection(7, "limit", "entry, retry", "amend refused: order is Filled", "plays/x.yml:14:7")]
    rows = write(tmp_path, rejections=rejections)
    assert rows == [HEADER,
                    ["3", "2025-01-01T00:03:00Z", "market", "", "qty 0.0004 below min_qty 0.001", "plays/x.yml:12:7"],
                    ["7", "2025-01-01T00:07:00Z", "limit", "entry, retry", "amend refused: order is Filled",
                     "plays/x.yml:14:7"]]


def test_rejections_csv_is_written_with_only_its_header_when_nothing_was_refused(tmp_path: Path):
    # the call without the keyword, as runtime/backtest.py makes it today
    assert write(tmp_path / "default") == [HEADER]
    assert write(tmp_path / "empty", rejections=[]) == [HEADER]


def test_open_position_is_none_when_the_fills_end_flat():
    fills = [fill(1, "buy", 2, 100, fee=0.2), fill(3, "sell", 1, 110, fee=0.1, pnl=10),
             fill(5, "sell", 3, 120, fee=0.6, pnl=20), fill(7, "buy", 2, 115, fee=0.4, pnl=10)]
    assert open_position(replay(fills), 130.0) is None
    assert open_position(replay([]), 130.0) is None


def test_open_long_averages_its_adds():
    fills = [fill(1, "buy", 2, 100, fee=0.2), fill(3, "buy", 2, 110, fee=0.2)]
    assert round_trips(fills) == []
    p = open_position(replay(fills), 120.0)
    assert p == {"side": "long", "qty": 4, "entry_bar": 1, "entry_price": 105, "last_close": 120.0,
                 "unrealized_pnl": pytest.approx(4 * 15), "realized_pnl": 0, "fees": pytest.approx(0.4)}


def test_a_flip_closes_the_long_and_leaves_the_short_open():
    fills = [fill(1, "buy", 2, 100, fee=0.2), fill(5, "sell", 3, 120, fee=0.6, pnl=40)]
    (long,) = round_trips(fills)
    assert (long.side, long.exit_bar, long.fees) == ("long", 5, pytest.approx(0.2 + 0.4))
    p = open_position(replay(fills), 110.0)
    # the short got 1 of the flip's 3: a third of its fee, none of its realized PnL
    assert (p["side"], p["qty"], p["entry_bar"], p["entry_price"]) == ("short", 1, 5, 120)
    assert p["unrealized_pnl"] == pytest.approx(10) and p["fees"] == pytest.approx(0.2)
    assert p["realized_pnl"] == 0


def test_a_partial_reduction_keeps_the_entry_price_and_counts_as_realized():
    fills = [fill(1, "buy", 3, 100, fee=0.3), fill(4, "sell", 1, 110, fee=0.1, pnl=10)]
    p = open_position(replay(fills), 90.0)
    assert (p["side"], p["qty"], p["entry_bar"], p["entry_price"]) == ("long", 2, 1, 100)
    assert p["unrealized_pnl"] == pytest.approx(-20) and p["realized_pnl"] == pytest.approx(10)
    assert p["fees"] == pytest.approx(0.4)


def test_an_add_after_a_reduction_reweights_the_entry_at_the_size_then():
    # 2 @ 100, half closed at 110, then 1 @ 130: the exchange's average is (100*1 + 130*1) / 2 = 115,
    # not the mean of every add (100*2 + 130) / 3 = 110
    fills = [fill(1, "buy", 2, 100), fill(4, "sell", 1, 110, pnl=10), fill(6, "buy", 1, 130)]
    p = open_position(replay(fills), 120.0)
    assert (p["qty"], p["entry_price"]) == (2, 115)
    assert p["unrealized_pnl"] == pytest.approx(10) and p["realized_pnl"] == pytest.approx(10)


@pytest.mark.parametrize("play, ends", [("scale_out", [127, 128, 141, 142, 614, None]),
                                        ("ema_cross", [None])])
def test_trades_plus_the_open_position_add_up_to_net_pnl(play: str, ends: list[int | None]):
    """Against the simulator's equity: nothing of net PnL may be lost between the trades (the `end` row
    of a position still open included), funding and the insurance fund's cover."""
    plan = lower(compile_file(ROOT / "plays" / f"{play}.yml").ir)
    data = exec_bars(generate(60_000, seed=4), plan.play.market.exec_tf)
    initial = plan.play.account.equity
    seen = set()
    for end in ends:
        bt = prepare(plan, data)
        result = run_engine(bt, 0, end)
        eq, qty = equity_curve(data, result.snapshots, initial, result.start, result.end)
        last_close = float(data.close[result.end - 1])
        p = open_position(bt.state, last_close)
        assert (p is None) == (qty[-1] == 0)
        trades = run_trades(bt.state, result.end - 1, last_close)
        assert [t.exit_reason == "end" for t in trades[-1:]] == ([] if not trades else [p is not None])
        funding = bt.state.funding_received - bt.state.funding_paid  # in net PnL, in no trade
        assert sum(t.pnl for t in trades) + funding + bt.state.insurance == pytest.approx(eq[-1] - initial, abs=1e-4)
        if p is not None:  # the `end` row is the open position, valued as report.json gives it
            assert trades[-1].pnl == pytest.approx(p["realized_pnl"] - p["fees"] + p["unrealized_pnl"], abs=1e-5)
        if p is not None:
            assert p["qty"] == pytest.approx(abs(qty[-1]))
            seen.add("reduced" if p["realized_pnl"] else "open")
        else:
            seen.add("flat")
    # the cut points were chosen to end flat, open, and open after a partial take-profit
    assert seen == ({"flat", "open", "reduced"} if play == "scale_out" else {"open"})


def report(**extra) -> dict:
    m = {"net_pnl": 1.0, "return_pct": 0.01, "initial_equity": 1000.0, "final_equity": 1001.0,
         "max_drawdown_pct": 0.0, "max_drawdown_usdt": 0.0, "sharpe": 0.0, "trades": 0, "win_rate_pct": None,
         "profit_factor": None, "exposure_pct": 50.0, "fees": 0.1, "fills": 1}
    return {"play": "p", "symbol": "BTCUSDT", "exec": "1m", "ready_bar": 0, "metrics": m,
            "data": {"label": "synthetic", "bars": 10, "from": "a", "to": "b"},
            "orders_by_status": {"Filled": 1}, "rejected_by_reason": {}, **extra}


def test_format_report_states_the_open_position_only_when_there_is_one():
    fills = [fill(34000, "buy", 0.25, 101234.5, fee=0.05)]
    text = format_report(report(open_position=open_position(replay(fills), 101283.86)))
    assert ("open        long 0.25 @ 101234.50 since bar 34000, unrealized +12.34 USDT (the last trade, exit_reason "
            "end)") in text
    lines = text.splitlines()
    assert lines.index(next(x for x in lines if x.startswith("open "))) == \
        lines.index(next(x for x in lines if x.startswith("trades "))) + 1
    for flat in (report(), report(open_position=None)):
        assert not any(x.startswith("open") for x in format_report(flat).splitlines())


def test_the_same_run_writes_byte_identical_files(tmp_path):
    # no wall-clock time in report.json: a run can be pinned, diffed and compared across machines
    play = ROOT / "plays" / "scale_out.yml"
    for out in ("a", "b"):
        run_backtest(str(play), out=str(tmp_path / out))
    for name in ("fills.csv", "orders.csv", "trades.csv", "equity.csv", "rejections.csv", "funding.csv", "equity.svg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    first, second = ({k: v for k, v in json.loads((tmp_path / out / "report.json").read_text()).items()
                      if k != "out"} for out in ("a", "b"))
    assert first == second


def test_a_trade_scaled_in_and_out_gives_its_whole_qty_so_the_row_adds_up():
    # buy 2 @ 100, sell 1 @ 101, buy 3 @ 102, sell 4 @ 95: 5 in at 101.2, 5 out at 96.2. qty 5 (not
    # the peak size 4) makes (exit - entry) x qty = -25 the gross PnL of the fills' realized parts
    fills = [fill(1, "buy", 2, 100), fill(2, "sell", 1, 101, pnl=1), fill(3, "buy", 3, 102),
             fill(4, "sell", 4, 95, pnl=-26)]
    (t,) = round_trips(fills)
    assert (t.qty, t.entry_price, t.exit_price) == (5, pytest.approx(101.2), pytest.approx(96.2))
    assert (t.exit_price - t.entry_price) * t.qty == pytest.approx(t.pnl) == pytest.approx(-25)


def test_float_dust_of_large_quantities_neither_opens_a_trade_nor_keeps_one_open():
    # 0.3 + 58998.9 - 58999.2 is 3.6e-12 in floats: the position is flat and there is one trade
    fills = [Fill(1, 0, "a", None, Side.BUY, 0.3, 100.0, 0.0, "taker", None, 0.0),
             Fill(1, 0, "b", None, Side.BUY, 58998.9, 100.0, 0.0, "taker", None, 0.0),
             Fill(2, 0, "c", None, Side.SELL, 58999.2, 101.0, 0.0, "taker", None, 58999.2)]
    trades = round_trips(fills)
    assert [(t.side, t.qty, t.pnl) for t in trades] == [("long", 58999.2, 58999.2)]
    assert open_position(replay(fills), 101.0) is None


def test_an_open_remainder_left_by_large_adds_and_reductions_is_reported_without_float_noise():
    # a short of 0.05 that traded 1.2 million-contract layers in and out (a PEPE-like coin)
    fills = [Fill(1, 0, "a", None, Side.SELL, 0.05, 0.04, 0.0, "taker", None, 0.0)]
    for k in range(50):
        fills.append(Fill(2 + k, 0, "b", None, Side.SELL, 1234567.85 + k * 0.1, 0.04, 0.0, "taker", None, 0.0))
        fills.append(Fill(2 + k, 0, "c", None, Side.BUY, 1234567.85 + k * 0.1, 0.041, 0.0, "taker", None, -1.0))
    assert open_position(replay(fills), 0.05)["qty"] == 0.05


def test_orders_csv_paths_are_in_bybit_statuses(tmp_path):
    # a re-priced (amended) limit that fills, and a cancelled one: New>Filled and New>Cancelled in
    # orders.csv, while the events keep the PendingAmend / PendingCancel the requests went through
    play = tmp_path / "p.yml"
    play.write_text("""play: paths
market: {symbol: BTCUSDT, exec: 1m}
account: {instrument: {tick: 0.1, qty_step: 0.001, min_qty: 0.001}}
blocks: |
  block b:
    when flat and close >= 100:
      limit buy qty 1 at close - 5 as dip
      limit buy qty 1 at 50 as far
    when close < 100:
      cancel far
""")
    data = tmp_path / "bars.csv"
    rows = [(100, 100, 100, 100), (100, 101, 99, 101), (101, 101, 95, 96), (96, 97, 95.5, 96)]
    data.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{T0 + k * 60_000},{o},{h},{lo},{c},1\n" for k, (o, h, lo, c) in enumerate(rows)))
    run_backtest(str(play), data=str(data), data_tf="1m", out=str(tmp_path / "o"), cache_dir=str(tmp_path))
    with open(tmp_path / "o" / "orders.csv") as fh:
        paths = {row["tag"]: row["status_path"] for row in csv.DictReader(fh)}
    assert paths == {"dip": "New>Filled", "far": "New>Cancelled"}


def test_with_no_trades_win_rate_and_profit_factor_are_undefined_not_zero():
    m = metrics(np.full(5, 1000.0), np.zeros(5), 1000.0, [], [], "1m")
    assert (m["trades"], m["win_rate_pct"], m["profit_factor"]) == (0, None, None)
    line = next(x for x in format_report(report()).splitlines() if x.startswith("trades"))
    assert line == "trades      0   win rate n/a   profit factor n/a   expectancy n/a"


def test_data_without_one_complete_exec_bar_says_so(tmp_path):
    data = tmp_path / "short.csv"
    data.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{T0 + k * 60_000},100,101,99,100,1\n" for k in range(7)))
    with pytest.raises(BacktestError, match=r"the data holds no complete 15m bar \(7 1m bars\)"):
        run_backtest(str(ROOT / "plays" / "ema_cross.yml"), data=str(data), data_tf="1m", write=False,
                     cache_dir=str(tmp_path))


def test_detail_ts_is_the_detail_bars_open_or_empty(tmp_path: Path):
    # fills.csv's last column, row by row: a fill without a detail bar (no magnifier) writes '' among
    # ones that have one, and the column's text does not shift the others
    fills = [Fill(3, T0 + 180_000, "a", "x", Side.BUY, 1.0, 100.0, 0.05, "taker", None, 0.0, "a", T0 + 200_000),
             Fill(4, T0 + 240_000, "b", None, Side.SELL, 1.0, 101.0, 0.05, "taker", None, 1.0, "b"),
             Fill(5, T0 + 300_000, "c", None, Side.BUY, 2.0, 99.5, 0.1, "maker", None, 0.0, "c", T0 + 359_000)]
    write_fills_csv(tmp_path / "fills.csv", fills)
    with open(tmp_path / "fills.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert [r[-1] for r in rows] == ["detail_ts", "2025-01-01T00:03:20Z", "", "2025-01-01T00:05:59Z"]
    assert rows[2] == ["4", "2025-01-01T00:04:00Z", "b", "", "sell", "1", "101", "0.05", "taker", ""]
    write_fills_csv(tmp_path / "none.csv", fills[1:2])
    assert (tmp_path / "none.csv").read_text().splitlines()[1].endswith(",taker,")
