"""`playdeck backtest` end to end: the report, the files, every example Play, bad input."""
from __future__ import annotations

from paths import ROOT_DIR

import csv
import json
import os
import subprocess
import xml.etree.ElementTree as ET
import sys
from pathlib import Path

import numpy as np
import pytest

from playdeck.runtime.execution.orders import Fill, Side
from playdeck.runtime.backtest.report import equity_curve, metrics, round_trips
from playdeck.runtime.data.bars import Bars

ROOT = ROOT_DIR
PLAYS = sorted((ROOT / "plays").glob("*.yml"))


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PLAYDECK_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "playdeck.tui.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("play", PLAYS, ids=[p.stem for p in PLAYS])
def test_every_example_play_backtests_on_the_bundled_year(play: Path, cache: Path, tmp_path: Path):
    out = tmp_path / "run"
    r = cli("backtest", str(play), "--out", str(out), cache=cache)
    assert r.returncode == 0, r.stderr
    assert "synthetic" in r.stdout and "net PnL" in r.stdout
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    assert m["final_equity"] == pytest.approx(m["initial_equity"] + m["net_pnl"])
    with open(out / "fills.csv") as fh:
        fills = list(csv.DictReader(fh))
    with open(out / "orders.csv") as fh:
        orders = list(csv.DictReader(fh))
    assert len(fills) == m["fills"]
    # a Play that never trades on the bundled year would pass everything else here
    assert m["fills"] >= 1 and fills, f"{play.name} made no fill on the bundled year"
    assert sum(report["orders_by_status"].values()) == len(orders)
    # every fill belongs to an order that ended Filled (fills here are all-or-nothing)
    filled = {o["order_id"] for o in orders if o["final_status"] == "Filled"}
    assert {f["order_id"] for f in fills} <= filled
    assert all(int(f["bar"]) >= report["ready_bar"] for f in fills)
    # every refused intent is a row of rejections.csv, with the action's place in the Play
    with open(out / "rejections.csv") as fh:
        refused = list(csv.DictReader(fh))
    assert len(refused) == sum(report["rejected_by_reason"].values())
    assert all(r["where"].startswith(f"{play}:") and r["reason"] for r in refused)
    # net PnL = every row of trades.csv (a position still open at the end is its last row, `end`)
    # + funding received - funding paid + the insurance fund's cover
    with open(out / "trades.csv") as fh:
        trades = list(csv.DictReader(fh))
    total = sum(float(t["pnl"]) for t in trades)
    total += report["funding"]["received"] - report["funding"]["paid"] + m["insurance_cover"]
    assert total == pytest.approx(m["net_pnl"], abs=1e-4)
    assert len(trades) == m["trades"]
    held = report["open_position"]
    ends = [t for t in trades if t["exit_reason"] == "end"]
    if held is None:
        assert ends == []
    else:
        assert ends == [trades[-1]] and "(the last trade, exit_reason end)" in r.stdout
        assert float(ends[0]["pnl"]) == pytest.approx(held["realized_pnl"] - held["fees"] + held["unrealized_pnl"],
                                                      abs=1e-4)
        # out, on paper, at the last bar of the run (equity.csv's last row) and its close, without a fee
        last_bar = (out / "equity.csv").read_text().splitlines()[-1].split(",")[0]
        assert ends[0]["exit_bar"] == last_bar and float(ends[0]["fees"]) == pytest.approx(held["fees"], abs=1e-6)
        if held["realized_pnl"] == 0:  # nothing closed before (else the exit price averages both parts)
            assert float(ends[0]["exit_price"]) == pytest.approx(held["last_close"])


def test_report_and_files_of_the_default_play(cache: Path, tmp_path: Path):
    out = tmp_path / "run"
    r = cli("backtest", "plays/ema_cross.yml", "--from", "2025-03-01", "--to", "2025-05-01", "--out", str(out),
            cache=cache)
    assert r.returncode == 0, r.stderr
    for word in ("net PnL", "return", "CAGR", "buy & hold", "drawdown", "sharpe", "sortino", "calmar", "win rate",
                 "profit factor", "expectancy", "holding", "exposure", "fees", "funding", "liquidated", "trades",
                 "orders", "rejected"):
        assert word in r.stdout
    assert "not modelled" not in r.stdout and "LIQUIDATED" not in r.stdout
    heads = {name: (out / name).read_text().splitlines()[0] for name in ("fills.csv", "orders.csv", "trades.csv",
                                                                          "equity.csv", "funding.csv")}
    assert heads["fills.csv"] == "bar,ts,order_id,tag,side,qty,price,fee,liquidity,detail_ts"
    assert heads["funding.csv"] == "ts,rate,qty,price,amount"
    assert heads["orders.csv"] == ("order_id,tag,type,side,qty,price,trigger,created_bar,final_status,"
                                   "status_path,role,reason")
    assert heads["trades.csv"] == ("trade,side,entry_bar,entry_ts,exit_bar,exit_ts,qty,entry_price,exit_price,pnl,"
                                   "fees,exit_reason,return_pct")
    assert heads["equity.csv"] == "bar,ts,equity"
    svg = ET.parse(out / "equity.svg").getroot()  # well-formed, with the curve in it
    assert svg.tag.endswith("svg") and len(svg.find("{http://www.w3.org/2000/svg}polyline").get("points").split()) > 10
    rows = (out / "equity.csv").read_text().splitlines()[1:]
    # --from/--to keep the data's bar numbering: March 1st is bar 59 days * 96 into 2025
    assert rows[0].startswith(f"{59 * 96},2025-03-01T00:00:00Z")
    assert rows[-1].split(",")[1].startswith("2025-04-30T23:45")
    with open(out / "fills.csv") as fh:
        for f in csv.DictReader(fh):
            assert f["side"] in ("buy", "sell") and f["liquidity"] in ("maker", "taker")
            assert f["ts"].endswith("Z") and f["detail_ts"] == ""  # no bar magnifier


@pytest.mark.parametrize("args,needle", [
    (["backtest", "plays/ema_cross.yml", "--from", "yesterday"], "cannot read 'yesterday' as a date"),
    (["backtest", "plays/ema_cross.yml", "--data", "no/such.csv"], "no such data file"),
    (["backtest", "plays/ema_cross.yml", "--from", "2031-01-01"], "no bars in the chosen range"),
    # EMA 21 on 15m is ready at bar 21; three hours are bars 0..11
    (["backtest", "plays/ema_cross.yml", "--to", "2025-01-01T03:00"],
     "cannot trade in this run: its features are ready at bar 21 (warm-up), so its first order could fill in "
     "bar 22, but the chosen range ends at bar 11"),
    # ready at bar 21 and the range ends at bar 21 (05:15-05:30): an order sent at its close could
    # only fill in bar 22, outside the range, so no order of this run can fill
    (["backtest", "plays/ema_cross.yml", "--to", "2025-01-01T05:30"], "but the chosen range ends at bar 21"),
])
def test_bad_backtest_options_are_one_clear_error(args, needle, cache: Path):
    r = cli(*args, cache=cache)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr + r.stdout


def write_csv(path: Path, n: int = 3000) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    price = 100.0
    rng = np.random.default_rng(3)
    for k in range(n):
        o = price
        price = round(price * (1 + rng.normal(0, 0.002)), 1)
        hi, lo = max(o, price) + 0.1, min(o, price) - 0.1
        lines.append(f"{1735689600000 + k * 60_000},{o},{hi:.1f},{lo:.1f},{price},{rng.uniform(1, 5):.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_imported_data_in_the_cache_is_used_instead_of_the_synthetic_set(tmp_path: Path):
    own_cache = tmp_path / "cache"
    data = write_csv(tmp_path / "bars.csv")
    r = cli("data", "import", str(data), "--symbol", "BTCUSDT", "--tf", "1m", cache=own_cache)
    assert r.returncode == 0, r.stderr
    assert "imported 3000 1m bars of BTCUSDT" in r.stdout
    bt = cli("backtest", "plays/ema_cross.yml", "--out", str(tmp_path / "o"), cache=own_cache)
    assert bt.returncode == 0, bt.stderr
    assert "market data: 200 exec bars" in bt.stdout and "synthetic" not in bt.stdout


def test_backtest_on_an_imported_csv(cache: Path, tmp_path: Path):
    lines = ["timestamp,open,high,low,close,volume"]
    price = 100.0
    rng = np.random.default_rng(3)
    for k in range(3000):
        o = price
        price = round(price * (1 + rng.normal(0, 0.002)), 1)
        hi, lo = max(o, price) + 0.1, min(o, price) - 0.1
        lines.append(f"{1735689600000 + k * 60_000},{o},{hi:.1f},{lo:.1f},{price},{rng.uniform(1, 5):.3f}")
    data = tmp_path / "bars.csv"
    data.write_text("\n".join(lines) + "\n")
    r = cli("backtest", "plays/ema_cross.yml", "--data", str(data), "--out", str(tmp_path / "o"), cache=cache)
    assert r.returncode == 0, r.stderr
    assert "market data: 200 exec bars" in r.stdout  # 3000 1m bars -> 200 15m bars


def test_data_import_reports_bad_rows_with_their_numbers(cache: Path, tmp_path: Path):
    data = tmp_path / "bad.csv"
    data.write_text("timestamp,open,high,low,close,volume\n"
                    "2025-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
                    "2025-01-01T00:01:00Z,1,x,0.5,1.5,10\n"
                    "2025-01-01T00:05:00Z,1,2,0.5,1.5,10\n")
    r = cli("data", "import", str(data), "--symbol", "BTCUSDT", "--tf", "1m", "--cache-dir", str(cache), cache=cache)
    assert r.returncode == 2 and "row 3" in r.stderr and "Traceback" not in r.stderr
    ok = cli("data", "import", str(data), "--symbol", "BTCUSDT", "--tf", "1m", "--gaps", "fill",
             "--cache-dir", str(cache), cache=cache)
    assert ok.returncode == 2  # a bad value is never skipped, whatever the gap policy


# ---- report arithmetic, by hand ---------------------------------------------------------------

def fill(bar, side, qty, price, fee=0.0, pnl=0.0):
    return Fill(bar, 0, f"o{bar}", None, Side(side), qty, price, fee, "taker", None, pnl)


def test_round_trips_split_a_flip_into_two_trades():
    fills = [fill(1, "buy", 2, 100, fee=0.2), fill(3, "sell", 1, 110, fee=0.1, pnl=10),
             fill(5, "sell", 3, 120, fee=0.6, pnl=20), fill(7, "buy", 2, 115, fee=0.4, pnl=10)]
    trades = round_trips(fills)
    assert [(t.side, t.entry_bar, t.exit_bar) for t in trades] == [("long", 1, 5), ("short", 5, 7)]
    long, short = trades
    assert long.entry_price == 100 and long.exit_price == pytest.approx((110 + 120) / 2)
    # the flip's fee is split by quantity: 1 of 3 closes the long, 2 of 3 open the short
    assert long.fees == pytest.approx(0.2 + 0.1 + 0.2) and long.pnl == pytest.approx(30 - 0.5)
    assert short.entry_price == 120 and short.exit_price == 115
    assert short.fees == pytest.approx(0.4 + 0.4) and short.pnl == pytest.approx(10 - 0.8)


def test_numbers_in_the_files_are_plain_decimals():
    from playdeck.runtime.backtest.numtext import num

    assert [num(v) for v in (0.00001, 100.02, 25.0, 0.30000000000000004, None)] == \
        ["0.00001", "100.02", "25", "0.3", ""]


def test_equity_curve_and_metrics_by_hand():
    close = np.array([100.0, 101, 102, 99, 98, 105])
    bars = Bars("BTCUSDT", "1m", np.arange(6) * 60_000, close, close, close, close, np.ones(6))
    # bought 1 at 100 in bar 1 (fee 1); sold at 105 in bar 5 (fee 1)
    snaps = [(1, 1.0, 100.0, 999.0), (5, 0.0, float("nan"), 1003.0)]
    eq, qty = equity_curve(bars, snaps, 1000.0, 0, 6)
    assert eq.tolist() == [1000, 1000, 1001, 998, 997, 1003]
    fills = [fill(1, "buy", 1, 100, fee=1), fill(5, "sell", 1, 105, fee=1, pnl=5)]
    m = metrics(eq, qty, 1000.0, fills, round_trips(fills), "1m")
    assert m["net_pnl"] == 3 and m["trades"] == 1 and m["win_rate_pct"] == 100.0
    assert m["max_drawdown_usdt"] == pytest.approx(1001 - 997)
    assert m["max_drawdown_pct"] == pytest.approx(4 / 1001 * 100, abs=1e-3)
    assert m["exposure_pct"] == pytest.approx(4 / 6 * 100, abs=0.01)
    assert m["fees"] == 2 and m["profit_factor"] == "inf"


def test_the_data_timeframe_is_read_from_the_timestamps(cache: Path, tmp_path: Path):
    """A 15m CSV for a 15m Play needs no --data-tf; a missing bar is still reported as a gap."""
    lines = ["timestamp,open,high,low,close,volume"]
    rng = np.random.default_rng(5)
    price = 100.0
    for k in range(400):
        o = price
        price = round(price * (1 + rng.normal(0, 0.004)), 1)
        lines.append(f"{1735689600000 + k * 900_000},{o},{max(o, price) + 0.1:.1f},{min(o, price) - 0.1:.1f},"
                     f"{price},1")
    data = write_lines(tmp_path / "m15.csv", lines)
    r = cli("backtest", "plays/ema_cross.yml", "--data", str(data), "--out", str(tmp_path / "o"), cache=cache)
    assert r.returncode == 0, r.stderr
    assert "market data: 400 exec bars" in r.stdout
    gap = write_lines(tmp_path / "gap.csv", lines[:100] + lines[101:])
    bad = cli("backtest", "plays/ema_cross.yml", "--data", str(gap), cache=cache)
    assert bad.returncode == 2 and "row 101" in bad.stderr and "gap" in bad.stderr.lower()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_warm_up_longer_than_the_data_is_an_error_not_an_empty_report(cache: Path, tmp_path: Path):
    play = tmp_path / "long.yml"
    play.write_text(Path("plays/ema_cross.yml").read_text().replace("ema(close, 21)", "ema(close, 100000)"))
    r = cli("backtest", str(play), "--out", str(tmp_path / "out"), cache=cache)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "ready at bar 100000 (warm-up), so its first order could fill in bar 100001, but the data ends at bar 35039" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_run_without_trades_says_profit_factor_n_a(cache: Path, tmp_path: Path):
    play = tmp_path / "never.yml"
    # EMA 9 above EMA 21 by more than the price itself: never true, so never an order
    play.write_text(Path("plays/ema_cross.yml").read_text()
                    .replace("fast crosses_above slow", "fast > slow + close")
                    .replace("fast crosses_below slow", "fast < slow - close"))
    r = cli("backtest", str(play), "--out", str(tmp_path / "out"), cache=cache)
    assert r.returncode == 0, r.stderr
    assert "trades      0   win rate n/a   profit factor n/a" in r.stdout
    m = json.loads((tmp_path / "out" / "report.json").read_text())["metrics"]
    assert m["profit_factor"] is None and m["win_rate_pct"] is None
