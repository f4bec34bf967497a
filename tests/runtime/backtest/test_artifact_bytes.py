"""The vectorized writers give the very bytes the scalar writers gave (csv.writer with CRLF lines,
a `strftime` and a `num` per value, equity.csv with LF lines): the scalar writers, as they were, are
kept here as the oracle, and every example Play's run is written both ways. The goldens read the
files as text (newlines folded); this compares bytes, line ends included."""
from __future__ import annotations

from paths import ROOT_DIR

import csv
from pathlib import Path

import numpy as np
import pytest

from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.artifacts import order_rows, write_artifacts
from playdeck.runtime.backtest.numtext import num
from playdeck.runtime.backtest.report import equity_curve, iso, round_trips, run_trades
from playdeck.runtime.backtest.run import build_report, detail_bars, exec_bars, prepare, run_engine
from playdeck.runtime.data.synthetic import generate

PLAYS = sorted((ROOT_DIR / "plays").glob("*.yml"))


def oracle_files(out: Path, ts, start, fills, rows, trades, equity, rejections, funding) -> None:
    """The writers of report.py before the vectorized ones, unchanged but for their inputs."""
    with open(out / "rejections.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["bar", "ts", "kind", "tag", "reason", "where"])
        w.writerows([r.bar, iso(int(ts[r.bar])), r.kind, r.tag or "", r.reason, r.where] for r in rejections)
    with open(out / "fills.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["bar", "ts", "order_id", "tag", "side", "qty", "price", "fee", "liquidity", "detail_ts"])
        for f in fills:
            w.writerow([f.bar, iso(f.ts), f.order_id, f.tag or "", f.side.value, num(f.qty), num(f.price),
                        num(f.fee), f.liquidity, "" if f.detail_ts is None else iso(f.detail_ts)])
    with open(out / "orders.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["order_id", "tag", "type", "side", "qty", "price", "trigger",
                                           "created_bar", "final_status", "status_path", "role", "reason"])
        w.writeheader()
        w.writerows({**r._asdict(), "qty": num(r.qty), "price": num(r.price), "trigger": num(r.trigger)} for r in rows)
    with open(out / "trades.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trade", "side", "entry_bar", "entry_ts", "exit_bar", "exit_ts", "qty", "entry_price",
                    "exit_price", "pnl", "fees", "exit_reason", "return_pct"])
        for k, t in enumerate(trades, 1):
            w.writerow([k, t.side, t.entry_bar, iso(int(ts[t.entry_bar])), t.exit_bar, iso(int(ts[t.exit_bar])),
                        num(t.qty), num(t.entry_price), num(t.exit_price), num(t.pnl), num(t.fees), t.exit_reason,
                        num(t.return_pct)])
    with open(out / "funding.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "rate", "qty", "price", "amount"])
        w.writerows([iso(c.ts), num(c.rate), num(c.qty), num(c.price), num(c.amount)] for c in funding)
    with open(out / "equity.csv", "w", newline="") as fh:
        fh.write("bar,ts,equity\n")
        idx = np.arange(start, start + len(equity))
        fh.writelines(f"{b},{iso(int(ts[b]))},{e:.6f}\n" for b, e in zip(idx.tolist(), equity.tolist()))


MAGNIFIED = ROOT_DIR / "plays" / "atr_trail.yml"  # also run with the bar magnifier: fills name detail bars


@pytest.mark.parametrize("play, magnifier", [*((p, None) for p in PLAYS), (MAGNIFIED, "15m")],
                         ids=[*(p.stem for p in PLAYS), "atr_trail-intrabar-15m"])
def test_files_are_byte_identical_to_the_scalar_writers(play: Path, magnifier: str | None, tmp_path: Path):
    if magnifier is None:
        plan = lower(compile_file(play).ir)
    else:
        copy = tmp_path / play.name
        copy.write_text(play.read_text().replace("  slippage_bps: 2\n",
                                                 f"  slippage_bps: 2\n  intrabar: {magnifier}\n"))
        plan = lower(compile_file(copy).ir)
        assert plan.play.account.magnifier == magnifier
    base = generate(120_000, seed=11)
    bars = exec_bars(base, plan.play.market.exec_tf)
    bt = prepare(plan, bars, where=str(play), detail=detail_bars(base, magnifier))
    result = run_engine(bt)
    eq, qty = equity_curve(bars, result.snapshots, plan.play.account.equity, result.start, result.end)
    assert bt.state.trades == round_trips(result.fills)  # a replay of the fills makes the same round trips
    last = result.end - 1
    trades = run_trades(bt.state, last, float(bars.close[last]))  # with the `end` row of a position still open
    report = build_report(bt, bars, result, eq, qty)
    rows = order_rows(bt.state.orders)
    ts = np.asarray(bars.ts_open)
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    write_artifacts(tmp_path / "new", ts, result.start, result.fills, rows, trades, eq, report,
                    rejections=bt.processor.rejections, funding=bt.state.funding)
    oracle_files(tmp_path / "old", ts, result.start, result.fills, rows, trades, eq, bt.processor.rejections,
                 bt.state.funding)
    assert len(result.fills) > 10 and bt.state.funding  # something to compare
    # the magnified run names a detail bar for every fill, the others none
    assert {f.detail_ts is None for f in result.fills} == {magnifier is None}
    for name in ("fills.csv", "orders.csv", "trades.csv", "rejections.csv", "funding.csv", "equity.csv"):
        assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes(), name
