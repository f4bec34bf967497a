"""Backtest results: equity curve, round-trip trades, the metrics and the text of the report.

Everything is derived from the run's fills and post-fill snapshots with numpy; nothing here runs
per bar in Python. The files of a run are written by `artifacts`.
"""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import attrs
import numpy as np

from playdeck.runtime.backtest.numtext import num
from playdeck.runtime.data.bars import Bars, tf_minutes
from playdeck.runtime.execution.orders import Fill


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


@attrs.frozen
class Trade:
    side: str
    entry_bar: int
    exit_bar: int
    qty: float
    entry_price: float
    exit_price: float
    pnl: float  # realized, net of fees
    fees: float


@attrs.frozen
class _Open:
    """What the fills leave open at the end: the remainder of the trade `round_trips` could not close."""

    side: str
    entry_bar: int
    qty: float  # the size now, after any partial reductions (a Trade's qty is all it entered)
    entry_price: float  # the exchange's avg_entry: each add re-weights it at the size then, a reduction keeps it
    realized_pnl: float  # gross PnL of the partial reductions so far
    fees: float  # entry fees, reduction fees and the opening share of a flip's fee
    peak: float = 0.0  # the largest size the trade had: the scale of the float noise in `qty`


def round_trips(fills: list[Fill]) -> list[Trade]:
    """Group fills into trades: flat -> position -> flat (a flip closes one trade and opens the next)."""
    return _walk(fills)[0]


def _walk(fills: list[Fill]) -> tuple[list[Trade], _Open | None]:
    """The closed trades and the open remainder, in one pass (shared so both agree on flips and fee splits)."""
    trades: list[Trade] = []
    pos = 0.0
    # The open trade's running sums, as locals (one pass over every fill of a long run).
    is_open = False
    side = ""
    entry_bar = 0
    in_qty = in_val = out_qty = out_val = pnl = fees = peak = 0.0
    avg = 0.0  # the position's average entry as the exchange keeps it (a reduction keeps it)
    for f in fills:
        fqty = f.qty
        price = f.price
        remaining = fqty * f.side.sign
        # Sums of float quantities leave dust (58999.2 - 0.3 - 58998.9 is 3.6e-12, not 0): what is
        # that small next to the quantities in play is zero, or dust would open a trade of its own.
        dust = 1e-12 * max(1.0, fqty, peak)
        while abs(remaining) > dust:
            if not is_open:
                is_open = True
                side = "long" if remaining > 0 else "short"
                entry_bar = f.bar
                in_qty = in_val = out_qty = out_val = pnl = fees = peak = 0.0
            same_dir = (pos >= 0 and remaining > 0) or (pos <= 0 and remaining < 0)
            if same_dir:
                part = remaining
            else:
                part = -pos if abs(remaining) > abs(pos) else remaining
            share = abs(part) / fqty if fqty else 1.0
            fee = f.fee * share
            if same_dir:
                in_qty += abs(part)
                in_val += abs(part) * price
                avg = (avg * abs(pos) + price * abs(part)) / (abs(pos) + abs(part))
            else:
                out_qty += abs(part)
                out_val += abs(part) * price
                pnl += f.realized_pnl  # a fill has one closing part, which realizes all of it
            fees += fee
            pos += part
            peak = max(peak, abs(pos))
            remaining -= part
            if abs(pos) <= dust:
                pos = 0.0
                # qty is all that was entered (= all that was exited), so that with the two average
                # prices it gives the trade's gross PnL: (exit - entry) x qty for a long
                trades.append(Trade(side, entry_bar, f.bar, float(f"{in_qty:.12g}"),  # without the float dust
                                    in_val / in_qty, out_val / max(out_qty, 1e-18), pnl - fees, fees))
                is_open = False
    rest = _Open(side, entry_bar, abs(pos), avg, pnl, fees, peak) if is_open else None
    return trades, rest


def open_position(fills: list[Fill], last_close: float) -> dict[str, Any] | None:
    """The position the fills leave open, valued at `last_close`; None when they end flat.

    It is in the equity curve and net PnL but in no trade, so the report states it on its own:
    net PnL = sum of trade PnLs + realized_pnl - fees + unrealized_pnl.
    """
    rest = _walk(fills)[1]
    if rest is None:
        return None
    sign = 1.0 if rest.side == "long" else -1.0
    # What is left after adding and removing large quantities carries their float noise (0.05 out
    # of 1e6-size parts is 0.05000000726): snap it to a grid just above that noise.
    grid = 10.0 ** math.ceil(math.log10(max(rest.peak, 1.0) * 1e-12))
    qty = round(rest.qty / grid) * grid
    return {
        "side": rest.side,
        "qty": _sig(qty),
        "entry_bar": rest.entry_bar,
        "entry_price": _sig(rest.entry_price),
        "last_close": last_close,
        "unrealized_pnl": round(sign * qty * (last_close - rest.entry_price), 6),
        "realized_pnl": round(rest.realized_pnl, 6),
        "fees": round(rest.fees, 6),
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
    return dict(Counter(rec.path.statuses[-1]._value_ for rec in orders.values()))
