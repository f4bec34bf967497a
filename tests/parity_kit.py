"""Parity of `playdeck run --backend emulator` with `playdeck backtest`: the data both read, the two
runs, and the comparison of their files (tests/runtime/bybit/test_parity.py).

Data: the bundled set's bars at the Play's exec timeframe (the emulator matches the bars it is given,
so parity is judged at the exec timeframe), enough of them to pass the Play's warm-up and trade.
Compared: orders (type, side, qty, price, trigger, created bar, status path, role, tag), fills (bar,
ts, side, qty, price, fee, liquidity), trades, funding and final equity. Venue ids differ by nature
(`sim-N` vs Bybit's UUIDs) and so do reason texts; numbers are equal to Bybit's precision: it reports
fees, realized PnL and prices of slipped fills with 8 decimals.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import exec_bars, prepare, run_backtest
from playdeck.runtime.bybit.runner import RunConfig, run_play
from playdeck.runtime.data.sources import load_bars

ORDER_FIELDS = ("tag", "type", "side", "qty", "price", "trigger", "created_bar", "final_status", "status_path", "role")
FILL_FIELDS = ("bar", "ts", "tag", "side", "qty", "price", "fee", "liquidity")
TRADE_FIELDS = ("side", "entry_bar", "exit_bar", "qty", "entry_price", "exit_price", "pnl", "fees", "exit_reason")
FUNDING_FIELDS = ("ts", "rate", "qty", "price", "amount")
NUMBER_TOLERANCE = 1e-6  # absolute: 8-decimal fees and PnL summed over a few hundred fills


def write_exec_csv(play: str, path: Path, extra: int = 700) -> Path:
    """The bundled bars at the Play's exec timeframe: its warm-up plus `extra` bars, as a CSV."""
    plan = lower(compile_file(play).ir)
    tf = plan.play.market.exec_tf
    bars = exec_bars(load_bars(plan.play.market.symbol, None, None, None, tf, None).bars, tf)
    ready = prepare(plan, bars.take(0, min(len(bars), 6000))).engine.ready_bar
    n = min(len(bars), ready + extra)
    with path.open("w") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        for i in range(n):
            fh.write(f"{int(bars.ts_open[i])},{float(bars.open[i])!r},{float(bars.high[i])!r},"
                     f"{float(bars.low[i])!r},{float(bars.close[i])!r},{round(float(bars.volume[i]), 3)}\n")
    return path


def run_both(play: str, data: Path, out: Path) -> tuple[Path, Path, dict[str, Any], dict[str, Any]]:
    bt, live = out / "backtest", out / "run"
    bt_report = run_backtest(play, data=str(data), out=str(bt))
    run_report = run_play(RunConfig(play, backend="emulator", data=str(data), out=str(live)))
    return bt, live, bt_report, run_report


def rows(path: Path, fields: tuple[str, ...]) -> list[tuple[str, ...]]:
    with path.open(newline="") as fh:
        return [tuple(r[f] for f in fields) for r in csv.DictReader(fh)]


def same_value(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=NUMBER_TOLERANCE)


def differences(bt: Path, live: Path) -> list[str]:
    """What differs between the two runs' files (empty: parity)."""
    found: list[str] = []
    for name, fields in (("orders.csv", ORDER_FIELDS), ("fills.csv", FILL_FIELDS), ("trades.csv", TRADE_FIELDS),
                         ("funding.csv", FUNDING_FIELDS)):
        a, b = rows(bt / name, fields), rows(live / name, fields)
        if len(a) != len(b):
            found.append(f"{name}: {len(a)} rows in the backtest, {len(b)} in the run")
        for k, (ra, rb) in enumerate(zip(a, b)):
            bad = [f"{f} {x!r} vs {y!r}" for f, x, y in zip(fields, ra, rb) if not same_value(x, y)]
            if bad:
                found.append(f"{name} row {k + 1}: " + "; ".join(bad))
                break
    ea = json.loads((bt / "report.json").read_text())["metrics"]["final_equity"]
    eb = json.loads((live / "report.json").read_text())["metrics"]["final_equity"]
    if not math.isclose(ea, eb, abs_tol=1e-4):
        found.append(f"final equity {ea} vs {eb}")
    return found
