"""Backtest results: equity curve, round-trip trades, the metrics and the text of the report.

Everything is derived from the run's fills and post-fill snapshots with numpy; nothing here runs
per bar in Python. The files of a run are written by `artifacts`.
"""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import numpy as np

from playdeck.runtime.backtest.numtext import num
from playdeck.runtime.data.bars import Bars, tf_minutes
from playdeck.runtime.execution.orders import Fill, Instrument
from playdeck.runtime.execution.trading_state import Trade, TradingState


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def equity_curve(bars: Bars, snapshots, initial: float, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Equity and position qty at the close of every bar in [start, end)."""
    n = end - start
    close = np.asarray(bars.close[start:end], dtype=np.float64)
    if not snapshots:
        return np.full(n, initial), np.zeros(n)
    sb = np.array([s[0] for s in snapshots], dtype=np.int64)
    # A bar holds the state of the last snapshot at or before it (before the first: flat, the initial
    # cash), so the snapshots cut the bars into runs of one state each: repeated, not searched per bar
    # (a million bars then take four arrays, not ten).
    cuts = np.clip(np.concatenate([[0], sb - start, [n]]), 0, n)
    runs = np.diff(cuts)
    qty = np.repeat(np.array([0.0] + [s[1] for s in snapshots], dtype=np.float64), runs)
    equity = close - np.repeat(np.nan_to_num(np.array([0.0] + [s[2] for s in snapshots], dtype=np.float64)), runs)
    equity *= qty
    equity += np.repeat(np.array([initial] + [s[3] for s in snapshots], dtype=np.float64), runs)
    return equity, qty


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
    # 10 significant digits like the files' numbers (`numtext.num`), so report.json shows 0.3 and not 0.30000000000000004
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
    return (f"open        {p['side']} {num(p['qty'])} @ {p['entry_price']:.2f} since bar {p['entry_bar']}, "
            f"unrealized {p['unrealized_pnl']:+.2f} USDT (not in trades)")


def status_counts(orders) -> dict[str, int]:
    # `_value_` is what `.value` returns, without the enum property's call per order.
    return dict(Counter(rec.path[-1]._value_ for rec in orders.values()))
