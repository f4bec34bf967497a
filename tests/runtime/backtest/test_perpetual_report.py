"""What a user sees of section 7 (perpetuals), end to end through `playdeck backtest` on small
hand-made bars: a liquidation in the headline and in trades.csv, funding.csv to the cent, the exit
reason of every kind of exit, the `end` row of a position still open, refused protection in the
headline, and the bar magnifier's detail_ts in fills.csv.

Every number below is worked out by hand in the comment above its assertion. Unless a Play says
otherwise: equity 1,000, taker 0.05%, maker 0.02%, no slippage, tick 0.1, mmr 0.5%, funding 0.01%
per 8 hours, bars from 2025-01-01T00:00Z (a funding instant).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from playdeck.tui.cli import main

T0 = 1735689600000  # 2025-01-01T00:00:00Z
MINUTE, HOUR = 60_000, 3_600_000
QUIET = (100, 100.5, 99.5, 100)


def play_text(name: str, blocks: str, exec_tf: str = "1m", leverage: float = 2, extra: str = "") -> str:
    return (f"play: {name}\nmarket: {{symbol: BTCUSDT, exec: {exec_tf}}}\naccount:\n  equity: 1000\n"
            f"  leverage: {leverage}\n  fees: {{maker: 0.0002, taker: 0.0005}}\n"
            f"  instrument: {{tick: 0.1, qty_step: 0.001, min_qty: 0.001}}\n{extra}blocks: |\n{blocks}")


class Run:
    def __init__(self, stdout: str, out: Path) -> None:
        self.stdout = stdout
        self.lines = stdout.splitlines()
        self.out = out
        self.report = json.loads((out / "report.json").read_text())
        self.m = self.report["metrics"]

    def rows(self, name: str) -> list[dict[str, str]]:
        with open(self.out / name, newline="") as fh:
            return list(csv.DictReader(fh))

    def headline(self) -> list[str]:
        """The lines before the data line: title, warnings, net PnL and return."""
        return self.lines[:next(k for k, x in enumerate(self.lines) if x.startswith("data "))]


@pytest.fixture
def backtest(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("PLAYDECK_CACHE", str(tmp_path / "cache"))

    def run(play: str, bars: list[tuple], step_ms: int = MINUTE, name: str = "p") -> Run:
        (tmp_path / f"{name}.yml").write_text(play)
        data = tmp_path / f"{name}.csv"
        data.write_text("timestamp,open,high,low,close,volume\n" + "".join(
            f"{T0 + k * step_ms},{o},{h},{lo},{c},1\n" for k, (o, h, lo, c) in enumerate(bars)))
        out = tmp_path / f"{name}-out"
        capsys.readouterr()
        assert main(["backtest", str(tmp_path / f"{name}.yml"), "--data", str(data), "--out", str(out),
                     "--no-progress"]) == 0
        return Run(capsys.readouterr().out, out)

    return run


def net_pnl_from_files(r: Run) -> float:
    """net PnL as the files add it up: every trades.csv row, funding, the insurance fund's cover."""
    return (sum(float(t["pnl"]) for t in r.rows("trades.csv")) + sum(float(f["amount"]) for f in r.rows("funding.csv"))
            + r.m["insurance_cover"])


# ---------------------------------------------------------------------------------------- 7.4 liquidation


@pytest.mark.parametrize("side, gap, fee, cover", [
    # 1900% equity at the close 100: 190 long at the open of bar 1 (100), fee 9.5, wallet 990.5; its
    # liquidation price is 95.3. Bar 2 opens at 90, already past it: closed at the open, realized
    # 190 x (90 - 100) = -1900, fee 190 x 90 x 0.0005 = 8.55, wallet -918.05, which the insurance
    # fund covers: equity 0.
    ("buy", 90, "8.55", 918.05),
    # the same short, liquidated at the open 110 of bar 2 (fee 10.45, cover 919.95) in a market that
    # rose 10%: buy & hold is +10%, and still the headline shows no gain
    ("sell", 110, "10.45", 919.95),
])
def test_a_run_liquidated_to_zero_says_so_first_and_never_shows_a_gain(backtest, side: str, gap: float, fee: str,
                                                                         cover: float):
    blocks = f"  block b:\n    when flat and close == 100:\n      market {side} 1900% equity\n"
    after = (gap, gap + 0.5, gap - 0.5, gap)
    r = backtest(play_text("wiped", blocks, leverage=20), [QUIET, QUIET, after, after, after])
    assert r.lines[1] == "LIQUIDATED at bar 2 (2025-01-01T00:02:00Z): equity 0, nothing left to trade"
    head = r.headline()
    assert head[-1] == "net PnL     -1000.00 USDT   return -100.00%   CAGR -100.00%"
    assert not any("+" in line for line in head)  # no gain anywhere in the headline
    assert r.m["final_equity"] == 0.0 and r.m["return_pct"] == -100.0 and r.m["cagr_pct"] == -100.0
    assert r.m["buy_and_hold_pct"] == pytest.approx((gap / 100 - 1) * 100)
    assert (r.m["liquidations"], r.m["insurance_cover"]) == (1, cover)
    position = "long" if side == "buy" else "short"
    assert r.report["liquidations"] == [{"bar": 2, "ts": "2025-01-01T00:02:00Z", "side": position, "qty": 190.0,
                                         "price": float(gap)}]
    # the equity curve ends at 0: its returns after that are 0 (not 0/0), so the ratios are numbers
    assert all(math.isfinite(r.m[k]) for k in ("sharpe", "sortino", "calmar"))
    assert f"liquidated  1 time (the insurance fund covered {cover:.2f} USDT)" in r.lines
    (t,) = r.rows("trades.csv")
    # pnl -1900 - 9.5 - fee on 190 x 100 entered
    pnl = -1900 - 9.5 - float(fee)
    assert (t["side"], t["exit_reason"], t["exit_bar"], t["exit_price"], t["fees"]) == \
        (position, "liquidation", "2", str(gap), f"{9.5 + float(fee):g}")
    assert (float(t["pnl"]), float(t["return_pct"])) == (pytest.approx(pnl), pytest.approx(pnl / 19_000 * 100))
    assert net_pnl_from_files(r) == pytest.approx(r.m["net_pnl"]) == -1000.0
    assert "not modelled" not in r.stdout and "not_modelled" not in r.report
    assert (r.out / "funding.csv").read_text() == "ts,rate,qty,price,amount\n"  # none due: header only


def test_the_headline_names_the_first_of_several_liquidations(backtest):
    # 190 long at 100 is liquidated inside bar 2 at 95.3: -893, fee 9.0535, wallet 88.4465. At the
    # close 96 it buys again, 19 x 88.4465 / 96 = 17.505 (down to the step), filled at the open 96 of
    # bar 3, which falls to 80 through that position's liquidation price 91.5. What is left buys
    # again and is still open at the end.
    blocks = "  block b:\n    when flat:\n      market buy 1900% equity\n"
    r = backtest(play_text("twice", blocks, leverage=20),
                 [QUIET, QUIET, (99, 99.5, 94, 96), (96, 96.5, 80, 85), (85, 85.5, 84.5, 85)])
    assert r.lines[1] == "LIQUIDATED at bar 2 (2025-01-01T00:02:00Z), the first of 2 liquidations"
    assert r.m["liquidations"] == 2 and [x["bar"] for x in r.report["liquidations"]] == [2, 3]
    trades = r.rows("trades.csv")
    assert [t["exit_reason"] for t in trades] == ["liquidation", "liquidation", "end"]
    # 190 x (95.3 - 100) - 9.5 - 9.0535
    assert (trades[0]["exit_price"], trades[0]["pnl"]) == ("95.3", "-911.5535")
    assert (trades[1]["qty"], trades[1]["entry_price"], trades[1]["exit_price"]) == ("17.505", "96", "91.5")
    assert r.m["return_pct"] < 0 and "+" not in r.headline()[-1].split("CAGR")[0]
    assert net_pnl_from_files(r) == pytest.approx(r.m["net_pnl"], abs=1e-6)


# ---------------------------------------------------------------------------------------- 7.3 funding
def test_funding_rows_to_the_cent_and_the_position_open_at_the_end_as_the_last_trade(backtest):
    # 1h bars. Long 2 from the open of bar 1 (100); at 08:00 bar 8 opens at 105: the long pays
    # 2 x 105 x 0.0001 = 0.021. The close 120 of bar 12 closes it and sells 1: out at the open 121 of
    # bar 13 (realized 42, fees 0.1 + 0.121), short 1 at 121 (fee 0.0605). At 16:00 bar 16 opens at 110:
    # the short receives 1 x 110 x 0.0001 = 0.011. The run ends with the short open at the close 115
    # of bar 19: the `end` row, unrealized 6 - fee 0.0605 = 5.9395 on 121 entered: 4.908677686%.
    blocks = ("  block b:\n    when flat and close < 120:\n      market buy qty 2\n"
              "    when long and close >= 120:\n      close\n      market sell qty 1\n")
    opens = {8: 105.0, 13: 121.0, 16: 110.0}
    closes = {12: 120.0, 19: 115.0}
    bars = []
    for k in range(20):
        o = opens.get(k, 100.0)
        c = closes.get(k, o)
        bars.append((o, max(o, c) + 0.5, min(o, c) - 0.5, c))
    r = backtest(play_text("fund", blocks, exec_tf="1h"), bars, step_ms=HOUR)
    assert (r.out / "funding.csv").read_text().splitlines() == [
        "ts,rate,qty,price,amount",
        "2025-01-01T08:00:00Z,0.0001,2,105,-0.021",
        "2025-01-01T16:00:00Z,0.0001,-1,110,0.011"]
    assert r.report["funding"] == {"paid": 0.021, "received": 0.011, "payments": 2}
    assert (r.m["funding_paid"], r.m["funding_received"]) == (0.021, 0.011)
    assert "funding     paid 0.02 USDT, received 0.01 USDT (2 payments)" in r.lines
    assert [list(t.values())[1:] for t in r.rows("trades.csv")] == [
        ["long", "1", "2025-01-01T01:00:00Z", "13", "2025-01-01T13:00:00Z", "2", "100", "121", "41.779", "0.221",
         "signal", "20.8895"],
        ["short", "13", "2025-01-01T13:00:00Z", "19", "2025-01-01T19:00:00Z", "1", "121", "115", "5.9395", "0.0605",
         "end", "4.908677686"]]
    assert r.report["open_position"]["unrealized_pnl"] == 6.0
    open_line = next(x for x in r.lines if x.startswith("open "))
    assert open_line == ("open        short 1 @ 121.00 since bar 13, unrealized +6.00 USDT (the last trade, "
                         "exit_reason end)")
    # 41.779 + 5.9395 - 0.021 + 0.011
    assert r.m["net_pnl"] == pytest.approx(47.7085) == pytest.approx(net_pnl_from_files(r))
    # the `end` row counts: 2 trades, both won; expectancy (41.779 + 5.9395) / 2
    assert (r.m["trades"], r.m["win_rate_pct"], r.m["expectancy"]) == (2, 100.0, 23.85925)
    # held 12 and 6 bars: 9 hours on average
    assert (r.m["avg_holding_bars"], r.m["avg_holding"]) == (9.0, "9h")
    assert "holding     avg 9.00 1h bars (9h)" in r.lines


# ---------------------------------------------------------------------------------------- 7.6 exit reasons
PROTECTED = ("  block b:\n    when flat and close == 100:\n      market buy qty 1\n{attached}"
             "    when long and close >= 103:\n      close\n")


@pytest.mark.parametrize("attached, bar2, reason, exit_price, pnl", [
    # in at the open 100 of bar 1 (fee 0.05); bar 2 falls to 94 through the stop at 95: taker 0.0475
    ("        stop_loss fill - 5\n        take_profit fill + 5\n", (100, 101, 94, 95), "stop_loss", "95", "-5.0975"),
    # bar 2 rises to 106 through the take_profit at 105: maker 0.021
    ("        stop_loss fill - 5\n        take_profit fill + 5\n", (100, 106, 99, 102), "take_profit", "105", "4.929"),
    # trail 3 from the fill: 97, then 101 - 3 = 98 at the close of bar 1, 102.5 - 3 = 99.5 after bar 2 (high
    # 102.5, close 102 below the `close` signal's 103); bar 3 falls through it: out at 99.5, taker 0.04975
    ("        trail 3\n", (100, 102.5, 99.6, 102), "trail", "99.5", "-0.59975"),
    # no protection: the close 103 of bar 2 sends `close`, out at the open 101 of bar 3, taker 0.0505
    ("", (100, 103.5, 99.6, 103), "signal", "101", "0.8995"),
])
def test_each_exit_names_what_closed_the_trade(backtest, attached: str, bar2: tuple, reason: str, exit_price: str,
                                                pnl: str):
    bar3 = (101, 101.5, 99, 99.5)
    r = backtest(play_text("exits", PROTECTED.format(attached=attached)), [QUIET, (100, 101, 99.8, 100.5), bar2, bar3])
    (t,) = r.rows("trades.csv")
    assert (t["exit_reason"], t["exit_price"], t["pnl"]) == (reason, exit_price, pnl)
    assert float(t["return_pct"]) == pytest.approx(float(pnl) / 100 * 100)
    assert r.report["protection_refused"] == {"total": 0, "by_kind": {}}
    assert not any("refused" in line or "LIQUIDATED" in line for line in r.headline())


def test_refused_protection_is_counted_in_the_headline(backtest):
    # a long filled at 100 with its stop above and its take_profit below: Bybit refuses both (110093,
    # 110092); at the close 103 of bar 2 the block's stop_loss close + 1 is refused again. The
    # position runs unprotected to the end: its `end` row.
    blocks = ("  block b:\n    when flat and close == 100:\n      market buy qty 1\n        stop_loss fill + 5\n"
              "        take_profit fill - 5\n    when long and close > 102:\n      stop_loss close + 1\n")
    r = backtest(play_text("refused", blocks), [QUIET, (100, 101, 99, 100), (100, 104, 99.5, 103),
                                                (103, 103.5, 100.5, 101)])
    assert r.lines[1] == "3 protection orders refused (stop_loss 2, take_profit 1), see rejections.csv"
    assert r.report["protection_refused"] == {"total": 3, "by_kind": {"stop_loss": 2, "take_profit": 1}}
    assert [x["reason"][-8:] for x in r.rows("rejections.csv")] == ["(110093)", "(110092)", "(110093)"]
    (t,) = r.rows("trades.csv")
    # still open: out on paper at the last close 101, no exit fee: 1 - 0.05
    assert (t["exit_reason"], t["exit_bar"], t["exit_price"], t["pnl"], t["fees"]) == \
        ("end", "3", "101", "0.95", "0.05")


# ---------------------------------------------------------------------------------------- 7.5 magnifier
def test_fills_name_the_detail_bar_they_filled_in(backtest):
    # 5m exec bars walked on 1m detail bars: the entry fills at the open of exec bar 1 (00:05, its first
    # minute), its take_profit at 105 in the third minute of that bar (00:07)
    blocks = "  block b:\n    when flat and close == 100:\n      market buy qty 1\n        take_profit fill + 5\n"
    minutes = [QUIET] * 5 + [QUIET, (100, 102, 99.5, 101), (101, 106, 100.5, 104), (104, 104.5, 103, 104),
                             (104, 104.5, 103, 104)] + [(104, 104.5, 103, 104)] * 5
    r = backtest(play_text("zoom", blocks, exec_tf="5m", extra="  intrabar: 1m\n"), minutes)
    fills = r.rows("fills.csv")
    assert [(f["bar"], f["ts"], f["detail_ts"], f["price"]) for f in fills] == [
        ("1", "2025-01-01T00:05:00Z", "2025-01-01T00:05:00Z", "100"),
        ("1", "2025-01-01T00:05:00Z", "2025-01-01T00:07:00Z", "105")]
    assert r.rows("trades.csv")[0]["exit_reason"] == "take_profit"
