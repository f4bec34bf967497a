"""Backtest results: equity curve, round-trip trades, the metrics of the report, and the files.

Everything is derived from the run's fills and post-fill snapshots with numpy; nothing here runs
per bar in Python.
"""
from __future__ import annotations

import csv
import json
import math
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from playdeck.runtime.data.bars import Bars, tf_minutes
from playdeck.runtime.execution.orders import Fill, Instrument
from playdeck.runtime.execution.trading_state import Trade, TradingState

if TYPE_CHECKING:
    from playdeck.runtime.execution.trading_state import RefusedIntent as Rejection


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def equity_curve(bars: Bars, snapshots, initial: float, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Equity and position qty at the close of every bar in [start, end)."""
    idx = np.arange(start, end)
    close = np.asarray(bars.close[start:end], dtype=np.float64)
    if not snapshots:
        return np.full(len(idx), initial), np.zeros(len(idx))
    sb = np.array([s[0] for s in snapshots])
    sq = np.array([s[1] for s in snapshots], dtype=np.float64)
    sa = np.nan_to_num(np.array([s[2] for s in snapshots], dtype=np.float64))
    sc = np.array([s[3] for s in snapshots], dtype=np.float64)
    k = np.searchsorted(sb, idx, side="right") - 1
    has = k >= 0
    kk = np.where(has, k, 0)
    qty = np.where(has, sq[kk], 0.0)
    cash = np.where(has, sc[kk], initial)
    avg = np.where(has, sa[kk], 0.0)
    return cash + qty * (close - avg), qty


def replay(fills: list[Fill], qty_step: float = 1e-9) -> TradingState:
    """A TradingState that has seen only `fills` (a run's state has them all already): for trades
    and the open position of a list of fills, made the one way trades are made."""
    state = TradingState(Instrument("", 1.0, qty_step, qty_step), 0.0, solvent=False)
    for f in fills:
        state.apply_fill(f)
    return state


def round_trips(fills: list[Fill], qty_step: float = 1e-9) -> list[Trade]:
    """The round trips of a list of fills (flat -> position -> flat; a flip ends one and starts the next)."""
    return replay(fills, qty_step).trades


def open_position(state: TradingState, last_close: float) -> dict[str, Any] | None:
    """The position the run ends with, valued at `last_close`; None when it ends flat.

    It is in the equity curve and net PnL but in no trade, so the report states it on its own:
    net PnL = sum of trade PnLs + realized_pnl - fees + unrealized_pnl.
    """
    trade = state.open_trade
    qty, avg, _ = state.position
    if qty == 0.0 or trade is None:
        return None
    return {
        "side": trade.side,
        "qty": _sig(abs(qty)),
        "entry_bar": trade.entry_bar,
        "entry_price": _sig(avg),
        "last_close": last_close,
        "unrealized_pnl": round(qty * (last_close - avg), 6),
        "realized_pnl": round(trade.pnl, 6),
        "fees": round(trade.fees, 6),
    }


def _sig(v: float) -> float:
    # 10 significant digits like `_num`, so report.json shows 0.3 and not 0.30000000000000004
    return float(f"{v:.10g}")


def metrics(equity: np.ndarray, qty: np.ndarray, initial: float, fills: list[Fill], trades: list[Trade],
            tf: str) -> dict[str, Any]:
    final = float(equity[-1]) if len(equity) else initial
    peak = np.maximum.accumulate(np.concatenate([[initial], equity]))[1:] if len(equity) else np.array([initial])
    dd = (peak - equity) / peak if len(equity) else np.zeros(1)
    rets = np.diff(np.concatenate([[initial], equity])) / np.concatenate([[initial], equity[:-1]]) \
        if len(equity) else np.zeros(0)
    per_year = 365 * 24 * 60 / tf_minutes(tf)
    sd = float(np.std(rets)) if len(rets) > 1 else 0.0
    sharpe = float(np.mean(rets) / sd * math.sqrt(per_year)) if sd > 0 else 0.0
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl <= 0]
    gross_loss = -sum(losses)
    return {
        "initial_equity": initial,
        "final_equity": round(final, 6),
        "net_pnl": round(final - initial, 6),
        "return_pct": round((final / initial - 1) * 100, 4),
        "max_drawdown_pct": round(float(dd.max()) * 100, 4) if len(dd) else 0.0,
        "max_drawdown_usdt": round(float((peak - equity).max()), 6) if len(equity) else 0.0,
        "sharpe": round(sharpe, 4),
        "trades": len(trades),
        "win_rate_pct": round(len(wins) / len(trades) * 100, 2) if trades else None,  # no trades: undefined
        "profit_factor": (round(sum(wins) / gross_loss, 4) if gross_loss > 0 else (None if not wins else "inf")),
        "exposure_pct": round(float(np.mean(qty != 0)) * 100, 2) if len(qty) else 0.0,
        "fees": round(sum(f.fee for f in fills), 6),
        "fills": len(fills),
    }


def order_rows(orders) -> list[dict[str, Any]]:
    """orders.csv's rows from the TradingState's mirror (live qty / price / trigger, Bybit's statuses)."""
    rows = []
    for rec in orders.values():
        rows.append({"order_id": rec.order_id, "tag": rec.tag or "", "role": rec.role.value, "type": rec.type.value,
                     "side": rec.side.value, "qty": _num(rec.qty), "price": _num(rec.price),
                     "trigger": _num(rec.trigger), "created_bar": rec.request.created_bar,
                     "final_status": rec.path[-1].value, "status_path": rec.venue_path(), "reason": rec.reason})
    return rows


def _num(v: float | None) -> str:
    """A plain decimal (never 1e-05), at most 10 significant digits, no trailing zeros."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return np.format_float_positional(float(f"{v:.10g}"), trim="-")


def write_artifacts(out: Path, bars: Bars, start: int, fills: list[Fill], orders, trades: list[Trade],
                    equity: np.ndarray, report: dict[str, Any], *, rejections: Sequence[Rejection] = ()) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ts = np.asarray(bars.ts_open)
    write_rejections(out / "rejections.csv", ts, rejections)
    with open(out / "fills.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["bar", "ts", "order_id", "tag", "side", "qty", "price", "fee", "liquidity"])
        for f in fills:
            w.writerow([f.bar, iso(f.ts), f.order_id, f.tag or "", f.side.value, _num(f.qty), _num(f.price),
                        _num(f.fee), f.liquidity])
    rows = order_rows(orders)
    with open(out / "orders.csv", "w", newline="") as fh:
        # the columns of the issue first, in its order; role and reject/cancel reason after them
        w = csv.DictWriter(fh, fieldnames=["order_id", "tag", "type", "side", "qty", "price", "trigger",
                                           "created_bar", "final_status", "status_path", "role", "reason"])
        w.writeheader()
        w.writerows(rows)
    with open(out / "trades.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trade", "side", "entry_bar", "entry_ts", "exit_bar", "exit_ts", "qty", "entry_price",
                    "exit_price", "pnl", "fees"])
        for k, t in enumerate(trades, 1):
            w.writerow([k, t.side, t.entry_bar, iso(int(ts[t.entry_bar])), t.exit_bar, iso(int(ts[t.exit_bar])),
                        _num(t.qty), _num(t.entry_price), _num(t.exit_price), _num(t.pnl), _num(t.fees)])
    with open(out / "equity.csv", "w", newline="") as fh:
        fh.write("bar,ts,equity\n")
        idx = np.arange(start, start + len(equity))
        fh.writelines(f"{b},{iso(int(ts[b]))},{e:.6f}\n" for b, e in zip(idx.tolist(), equity.tolist()))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "equity.svg").write_text(equity_svg(equity, report))


def write_rejections(path: Path, ts_open: np.ndarray, rejections: Sequence[Rejection]) -> None:
    """One row per refused intent (by sizing and checks, by the exchange when sent, or its attached
    protection refused at the fill); written even when empty so tools can rely on the file."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["bar", "ts", "kind", "tag", "reason", "where"])
        w.writerows(rejection_rows(ts_open, rejections))


def rejection_rows(ts_open: np.ndarray, rejections: Sequence[Rejection]) -> list[list[Any]]:
    return [[r.bar, iso(int(ts_open[r.bar])), r.kind, r.tag or "", r.reason, r.where] for r in rejections]


def equity_svg(equity: np.ndarray, report: dict[str, Any], width: int = 900, height: int = 320) -> str:
    """A small self-contained SVG line chart of the equity curve (no plotting library needed)."""
    pad = 40
    if len(equity) == 0:
        equity = np.array([report["metrics"]["initial_equity"]])
    step = max(1, len(equity) // 1500)
    ys = equity[::step]
    lo, hi = float(ys.min()), float(ys.max())
    span = hi - lo or 1.0
    xs = np.linspace(pad, width - 10, len(ys)) if len(ys) > 1 else np.array([pad])
    pts = " ".join(f"{x:.1f},{height - pad - (y - lo) / span * (height - 2 * pad):.1f}" for x, y in zip(xs, ys))
    title = f"{report['play']} equity ({report['data']['label']})"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="monospace" font-size="12">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            f'<text x="{pad}" y="20">{_xml(title)}</text>\n'
            f'<text x="2" y="{pad}">{hi:.0f}</text><text x="2" y="{height - pad}">{lo:.0f}</text>\n'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.2" points="{pts}"/>\n</svg>\n')


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_report(r: dict[str, Any]) -> str:
    m = r["metrics"]
    lines = [
        f"playdeck backtest: {r['play']}  ({r['symbol']} exec {r['exec']})",
        f"data        {r['data']['label']}: {r['data']['bars']} exec bars {r['data']['from']} .. {r['data']['to']}"
        + (f" ({r['data']['filled_gaps']} missing {r['data']['filled_tf']} "
           f"bar{'s' if r['data']['filled_gaps'] != 1 else ''} of the file filled flat)"
           if r["data"].get("filled_gaps") else ""),
        f"readiness   first tradable bar {r['ready_bar']}",
        f"net PnL     {m['net_pnl']:+.2f} USDT   return {m['return_pct']:+.2f}%",
        f"equity      {m['initial_equity']:.2f} -> {m['final_equity']:.2f} USDT",
        f"drawdown    max {m['max_drawdown_pct']:.2f}% ({m['max_drawdown_usdt']:.2f} USDT)",
        f"sharpe      {m['sharpe']:.2f} (annualised from {r['exec']} bars)",
        f"trades      {m['trades']}   win rate "
        f"{'n/a' if m['win_rate_pct'] is None else format(m['win_rate_pct'], '.1f') + '%'}   profit factor "
        f"{'n/a' if m['profit_factor'] is None else m['profit_factor']}",
        # next to the trades, because it is the one part of net PnL that none of them holds
        *([open_line(r["open_position"])] if r.get("open_position") else []),
        f"exposure    {m['exposure_pct']:.1f}% of bars in a position",
        f"fees        {m['fees']:.2f} USDT over {m['fills']} fills",
        "orders      " + (", ".join(f"{k} {v}" for k, v in sorted(r["orders_by_status"].items())) or "none"),
        "rejected    " + (", ".join(f"{k}: {v}" for k, v in sorted(r["rejected_by_reason"].items())) or "none"),
        "not modelled: funding and liquidation (v1)",
    ]
    if r.get("out"):
        lines.append(f"written     {r['out']}")
    return "\n".join(lines)


def open_line(p: dict[str, Any]) -> str:
    """The report line of a position still open at the end of the data (see `open_position`)."""
    return (f"open        {p['side']} {_num(p['qty'])} @ {p['entry_price']:.2f} since bar {p['entry_bar']}, "
            f"unrealized {p['unrealized_pnl']:+.2f} USDT (not in trades)")


def status_counts(orders) -> dict[str, int]:
    # `_value_` is what `.value` returns, without the enum property's call per order.
    return dict(Counter(rec.path[-1]._value_ for rec in orders.values()))
