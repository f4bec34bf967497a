"""Funding from the data's funding_rate column, end to end through `playdeck backtest` (7.3): a long
held over the funding instants pays the file's rate at each 00:00, 08:00 and 16:00 (UTC), whatever
other rows say, the account's rate where the instant's cell is empty, and the same again when the
file's bars come back from the cache. Every amount below is worked out by hand: 10 contracts at a
flat 1,000 (fees and slippage 0) are 10,000 USDT of notional, so a rate r moves 10,000 x r."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from playdeck.tui.cli import main

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z, a funding instant
HOUR = 3_600_000

PLAY = """\
play: hold_long
description: Buy 10 contracts at the first chance and hold them.
market:
  symbol: BTCUSDT
  exec: {exec_tf}
account:
  equity: 100000
  leverage: 1
  fees: {{maker: 0, taker: 0}}
  slippage_bps: 0
features:
  c: sma(close, 1)
blocks: |
  block hold:
    when flat:
      market buy qty 10
"""


def write_data(path: Path, hours: int, rates: dict[int, str], column: str | None = "funding_rate") -> Path:
    """`hours` 1h bars from T0, flat at 1,000; the rate cell of hour k is rates.get(k, '') (empty:
    unknown). Without `column`, the file has no funding rate column at all."""
    lines = ["timestamp,open,high,low,close,volume" + (f",{column}" if column else "")]
    for k in range(hours):
        row = f"{T0 + k * HOUR},1000,1000,1000,1000,1"
        lines.append(row + (f",{rates.get(k, '')}" if column else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def backtest(tmp_path: Path, monkeypatch, data: Path, exec_tf: str, name: str) -> dict:
    play = tmp_path / f"{name}.yml"
    play.write_text(PLAY.format(exec_tf=exec_tf))
    monkeypatch.setenv("PLAYDECK_CACHE", str(tmp_path / "cache"))
    out = tmp_path / name
    assert main(["backtest", str(play), "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    return json.loads((out / "report.json").read_text())


def test_a_long_on_1h_bars_pays_the_file_s_rate_at_each_instant(tmp_path, monkeypatch):
    # Bought at the close of the 00:00 bar, filled at the 01:00 open: held from 01:00 on day 1.
    rates = {
        0: "0.009",      # 00:00 day 1: an instant, but the position is flat then
        7: "0.004",      # 07:00, 09:00, 15:00: rows between instants, never read
        8: "0.0003",     # 08:00: pays 10,000 x 0.0003 = 3.00
        9: "0.004",
        15: "-0.004",
        16: "-0.0001",   # 16:00: receives 10,000 x 0.0001 = 1.00
        24: "0.00025",   # 00:00 day 2: pays 2.50
        # 08:00 day 2 (hour 32): empty, so account.funding (0.01%, the default): pays 1.00
        31: "0.004",
    }
    data = write_data(tmp_path / "rates.csv", 34, rates)
    report = backtest(tmp_path, monkeypatch, data, "1h", "run")
    assert report["funding"] == {"paid": 6.5, "received": 1.0, "payments": 4}
    assert report["data"]["funding_rates"] is True and report["data"]["cached"] is False
    assert report["metrics"]["net_pnl"] == pytest.approx(-5.5, abs=1e-9)  # funding is all that moved
    # the second run maps the remembered bars, rates and all, and pays the same
    again = backtest(tmp_path, monkeypatch, data, "1h", "again")
    assert again["data"]["cached"] is True and again["funding"] == report["funding"]


def test_12h_bars_settle_each_instant_with_the_rate_of_the_1h_bar_at_it(tmp_path, monkeypatch):
    # 12h exec bars (00:00, 12:00) from 1h data: the 16:00 and 00:00 instants settle together at the
    # 00:00 open of day 2, and 08:00 of day 2 at its 12:00 open, each at the rate of the file's 1h bar
    # at that instant. A rate read off the 12h bars (their first hour: 12:00, 00:00, 12:00) would be
    # 0.004 or the like here, and show.
    rates = {
        12: "0.004",     # 12:00 day 1, the bar of the fill: no instant
        16: "0.0002",    # 16:00 day 1: pays 2.00 (at the 00:00 open of day 2)
        23: "0.004",
        24: "-0.0003",   # 00:00 day 2: receives 3.00
        32: "0.00015",   # 08:00 day 2: pays 1.50 (at the 12:00 open)
        36: "0.004",     # 12:00 day 2
    }
    data = write_data(tmp_path / "rates.csv", 48, rates)
    report = backtest(tmp_path, monkeypatch, data, "12h", "run")
    assert report["funding"] == {"paid": 3.5, "received": 3.0, "payments": 3}
    assert report["data"]["funding_rates"] is True


def test_the_same_bars_without_the_column_pay_the_account_s_rate(tmp_path, monkeypatch):
    data = write_data(tmp_path / "plain.csv", 34, {}, column=None)
    report = backtest(tmp_path, monkeypatch, data, "1h", "run")
    # 08:00, 16:00, 00:00, 08:00 at 0.01%: 1.00 each; and report.json's data says nothing of rates
    assert report["funding"] == {"paid": 4.0, "received": 0.0, "payments": 4}
    assert "funding_rates" not in report["data"]


def test_a_column_of_empty_cells_is_said_and_pays_the_account_s_rate(tmp_path, monkeypatch):
    data = write_data(tmp_path / "blank.csv", 34, {}, column="fundingRate")
    report = backtest(tmp_path, monkeypatch, data, "1h", "run")
    assert report["funding"] == {"paid": 4.0, "received": 0.0, "payments": 4}
    assert report["data"]["funding_rates"] is False


def test_data_import_and_list_say_which_series_have_rates(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PLAYDECK_CACHE", str(tmp_path / "cache"))
    rated = write_data(tmp_path / "rates.csv", 34, {8: "0.0003", 16: "-0.0001", 24: "0.00025"})
    plain = write_data(tmp_path / "plain.csv", 34, {}, column=None)
    assert main(["data", "import", str(rated), "--symbol", "ETHUSDT"]) == 0
    assert capsys.readouterr().out.endswith(" (funding rates on 3 of 34 bars)\n")
    assert main(["data", "import", str(plain), "--symbol", "BTCUSDT"]) == 0
    assert "funding" not in capsys.readouterr().out  # an import without the column prints what it did
    assert main(["data", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"BTCUSDT  1h   2025-01-01T00:00:00Z .. 2025-01-02T09:00:00Z  34 rows  imported from {plain}",
        f"ETHUSDT  1h   2025-01-01T00:00:00Z .. 2025-01-02T09:00:00Z  34 rows  imported from {rated}"
        "  with funding rates",
    ]


def test_imported_bars_bring_their_rates_to_a_run_without_data(tmp_path, monkeypatch):
    rated = write_data(tmp_path / "rates.csv", 34, {8: "0.0003", 16: "-0.0001", 24: "0.00025"})
    monkeypatch.setenv("PLAYDECK_CACHE", str(tmp_path / "cache"))
    assert main(["data", "import", str(rated), "--symbol", "BTCUSDT"]) == 0
    play = tmp_path / "hold.yml"
    play.write_text(PLAY.format(exec_tf="2h"))  # 2h bars from the cached 1h bars
    assert main(["backtest", str(play), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # filled at the 02:00 open; 08:00 pays 3.00, 16:00 receives 1.00, 00:00 pays 2.50, 08:00 (empty) 1.00
    assert report["funding"] == {"paid": 6.5, "received": 1.0, "payments": 4}
    assert report["data"]["funding_rates"] is True and "cached" not in report["data"]
