"""Backtest results: equity curve, round-trip trades, the metrics and the text of the report.

Everything is derived from the run's fills and post-fill snapshots with numpy; nothing here runs
per bar in Python. The files of a run are written by `artifacts`.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from playdeck.runtime.backtest.numtext import num
from playdeck.runtime.data.bars import Bars, tf_minutes
from playdeck.runtime.data.csv_import import format_ts
from playdeck.runtime.execution.orders import Fill, Instrument
from playdeck.runtime.execution.trading_state import Trade, TradingState


iso = format_ts  # the one UTC ISO 8601 form of a time, for the report and the files


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

    trades.csv also gives it as its last round trip (`end_trade`); this is the same position as the
    exchange holds it: its size and average entry now, the PnL it realized on partial closes, the
    fees so far, so net PnL = the closed trades' PnL + realized_pnl - fees + unrealized_pnl (+ funding).
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


def end_trade(state: TradingState, last_bar: int, last_close: float) -> Trade | None:
    """The position still open when the run ends, as the last round trip (exit_reason `end`, 7.6):
    closed on paper at the last close of the run, in its last bar, without an exit fee. Its qty and
    prices are a round trip's (all it entered; the average exit of what was closed and of the rest
    at `last_close`), so (exit - entry) x qty is still its gross PnL, and its pnl is the realized
    part + the unrealized part - the fees so far: what it adds to net PnL. None when the run ends flat.

    Made here, from the TradingState, and not by the simulator: nothing was filled.
    """
    t = state.open_trade
    qty, avg, _ = state.position
    if qty == 0.0 or t is None:
        return None
    rest = abs(qty)
    unrealized = qty * (last_close - avg)
    return Trade(t.side, t.entry_bar, last_bar, float(f"{t.in_qty:.12g}"), t.in_val / t.in_qty,
                 (t.out_val + rest * last_close) / (t.out_qty + rest), t.pnl + unrealized - t.fees, t.fees, "end")


def run_trades(state: TradingState, last_bar: int, last_close: float) -> list[Trade]:
    """trades.csv's rows: the closed round trips, then the `end` row of a position still open."""
    end = end_trade(state, last_bar, last_close)
    return state.trades if end is None else [*state.trades, end]


def _sig(v: float) -> float:
    # 10 significant digits like the files' numbers (`numtext.num`), so report.json shows 0.3 and not 0.30000000000000004
    return float(f"{v:.10g}")


# ---------------------------------------------------------------------------------------- metrics
YEAR_MS = 365 * 86_400_000  # a year of calendar time: 365 days, the year Sharpe's bar count is of
Ratio = float | str | None  # a number, "inf" (something over nothing), or None (undefined)


def bar_returns(equity: np.ndarray, initial: float) -> np.ndarray:
    """The simple return of every bar of the curve: equity[k] / equity[k-1] - 1, the first bar against
    the starting equity. A bar that starts at equity 0 returns 0: the account was wiped out and nothing
    is left to gain or lose (not 0/0)."""
    prev = np.concatenate([[initial], equity[:-1]])
    out = np.zeros(len(equity))
    np.divide(equity - prev, prev, out=out, where=prev > 0)
    return out


def _over(a: float, b: float) -> Ratio:
    """a / b for a ratio whose denominator measures risk (>= 0): a positive `a` over no risk is "inf",
    nothing over nothing 0.0 (a curve that never moved)."""
    if b > 0:
        return a / b
    return "inf" if a > 0 else 0.0


def sharpe_ratio(rets: np.ndarray, per_year: float) -> float:
    """Mean over the population standard deviation (ddof 0) of per-bar returns, times sqrt(bars a
    year); no risk-free rate. 0 for a curve that never moved (and with fewer than two bars)."""
    sd = float(np.std(rets)) if len(rets) > 1 else 0.0
    return float(np.mean(rets) / sd * math.sqrt(per_year)) if sd > 0 else 0.0


def sortino_ratio(rets: np.ndarray, per_year: float) -> Ratio:
    """Like `sharpe_ratio`, over the downside deviation instead: the root mean square of the negative
    returns, the others counting as 0 (target 0, divided by all the bars, ddof 0). "inf" when the curve
    rose and never fell, 0 when it never moved."""
    if len(rets) < 2:
        return 0.0
    down = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
    ratio = _over(float(np.mean(rets)), down)
    return ratio if isinstance(ratio, str) else ratio * math.sqrt(per_year)


def cagr_pct(initial: float, final: float, span_ms: float) -> float | str:
    """Compound annual growth, in percent, of `initial` to `final` over `span_ms` of calendar time
    (YEAR_MS a year): (final / initial) ^ (1 / years) - 1. -100 for a run that ends at 0; "inf"
    past a float (a short run's gain raised to a large power)."""
    if final <= 0.0:
        return -100.0
    exponent = math.log(final / initial) / (span_ms / YEAR_MS)
    if exponent > 700.0:  # exp(709.8) is the largest float
        return "inf"
    return math.expm1(exponent) * 100.0


def calmar_ratio(cagr: float | str, max_drawdown_pct: float) -> Ratio:
    """CAGR over the max drawdown (both in percent). "inf" for a gain without a drawdown."""
    if cagr == "inf":
        return "inf"
    return _over(float(cagr), max_drawdown_pct)


def duration_text(seconds: float) -> str:
    """`1d 3h 20m 5s` (zero parts left out, rounded to the second; `0s` for none)."""
    s = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, s = divmod(s, size)
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts) or "0s"


def _round(v: Ratio, digits: int) -> Ratio:
    return v if v is None or isinstance(v, str) else round(v, digits)


def metrics(equity: np.ndarray, qty: np.ndarray, initial: float, fills: list[Fill], trades: list[Trade],
            tf: str, *, first_open: float | None = None, last_close: float | None = None,
            span_ms: float | None = None, liquidations: int = 0, insurance: float = 0.0,
            funding_paid: float = 0.0, funding_received: float = 0.0) -> dict[str, Any]:
    """The report's numbers (README, "How the metrics are measured"). `trades` are trades.csv's rows,
    the `end` row of a position still open included; `first_open` and `last_close` are the prices of
    the run's first and last bar (buy and hold; None: n/a); `span_ms` the calendar time from the first
    bar's open to the last bar's close (by default one exec bar per equity value)."""
    n = len(equity)
    final = float(equity[-1]) if n else initial
    peak = np.maximum.accumulate(np.concatenate([[initial], equity]))[1:] if n else np.array([initial])
    dd = (peak - equity) / peak if n else np.zeros(1)
    rets = bar_returns(equity, initial) if n else np.zeros(0)
    per_year = 365 * 24 * 60 / tf_minutes(tf)
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl <= 0]
    gross_loss = -sum(losses)
    max_dd_pct = round(float(dd.max()) * 100, 4) if n else 0.0
    if span_ms is None:
        span_ms = max(n, 1) * tf_minutes(tf) * 60_000
    cagr = cagr_pct(initial, final, span_ms)
    held = [t.exit_bar - t.entry_bar for t in trades]
    hold_bars = sum(held) / len(held) if held else None
    return {
        "initial_equity": initial,
        "final_equity": round(final, 6),
        "net_pnl": round(final - initial, 6),
        "return_pct": round((final / initial - 1) * 100, 4),
        "max_drawdown_pct": max_dd_pct,
        "max_drawdown_usdt": round(float((peak - equity).max()), 6) if n else 0.0,
        "sharpe": round(sharpe_ratio(rets, per_year), 4),
        "trades": len(trades),
        "win_rate_pct": round(len(wins) / len(trades) * 100, 2) if trades else None,  # no trades: undefined
        "profit_factor": (round(sum(wins) / gross_loss, 4) if gross_loss > 0 else (None if not wins else "inf")),
        "exposure_pct": round(float(np.mean(qty != 0)) * 100, 2) if len(qty) else 0.0,
        "fees": round(sum(f.fee for f in fills), 6),
        "fills": len(fills),
        "buy_and_hold_pct": (None if first_open is None or last_close is None
                             else round((last_close / first_open - 1) * 100, 4)),
        "cagr_pct": _round(cagr, 4),
        "sortino": _round(sortino_ratio(rets, per_year), 4),
        "calmar": _round(calmar_ratio(cagr, max_dd_pct), 4),
        "expectancy": round(sum(t.pnl for t in trades) / len(trades), 6) if trades else None,
        "avg_holding_bars": None if hold_bars is None else round(hold_bars, 4),
        "avg_holding": None if hold_bars is None else duration_text(hold_bars * tf_minutes(tf) * 60),
        "liquidations": liquidations,
        "insurance_cover": round(insurance, 6),
        "funding_paid": round(funding_paid, 6),
        "funding_received": round(funding_received, 6),
    }


# ---------------------------------------------------------------------------------------- text
def _big(v: float, sign: str = "") -> str:
    # CAGR compounds a short run's gain over a year: the figures can run to dozens of digits
    return f"{v:{sign}.2f}" if abs(v) < 1e9 else f"{v:{sign}.3e}"


def _ratio_text(v: Ratio) -> str:
    return "n/a" if v is None else v if isinstance(v, str) else _big(v)


def _pct_text(v: float | str | None) -> str:
    return "n/a" if v is None else f"+{v}%" if isinstance(v, str) else _big(v, "+") + "%"


def headline(r: dict[str, Any]) -> list[str]:
    """What a run must say before anything else: a liquidation, refused protection, then its result."""
    m = r["metrics"]
    lines = []
    liq = r.get("liquidations") or []
    if liq:
        first = liq[0]
        text = f"LIQUIDATED at bar {first['bar']} ({first['ts']})"
        if len(liq) > 1:
            text += f", the first of {len(liq)} liquidations"
        if m["final_equity"] <= 0.0:
            text += ": equity 0, nothing left to trade"
        lines.append(text)
    refused = r.get("protection_refused") or {}
    if refused.get("total"):
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(refused["by_kind"].items()))
        n = refused["total"]
        # a refused stop leaves a position unprotected: said up front, not only in the rejected counts
        lines.append(f"{n} protection order{'s' if n != 1 else ''} refused ({kinds}), see rejections.csv")
    # the run's own result only: buy & hold (the market's) is further down, so a run that lost everything
    # in a rising market shows no gain here
    lines.append(f"net PnL     {m['net_pnl']:+.2f} USDT   return {m['return_pct']:+.2f}%   CAGR "
                 f"{_pct_text(m.get('cagr_pct'))}")
    return lines


def format_report(r: dict[str, Any]) -> str:
    m = r["metrics"]
    lines = [
        f"playdeck backtest: {r['play']}  ({r['symbol']} exec {r['exec']})",
        *headline(r),
        f"data        {r['data']['label']}: {r['data']['bars']} exec bars {r['data']['from']} .. {r['data']['to']}"
        + (f" ({r['data']['filled_gaps']} missing {r['data']['filled_tf']} "
           f"bar{'s' if r['data']['filled_gaps'] != 1 else ''} of the file filled flat)"
           if r["data"].get("filled_gaps") else ""),
        f"readiness   first tradable bar {r['ready_bar']}",
        f"equity      {m['initial_equity']:.2f} -> {m['final_equity']:.2f} USDT",
        f"buy & hold  {_pct_text(m.get('buy_and_hold_pct'))} (the run's first open to its last close)",
        f"drawdown    max {m['max_drawdown_pct']:.2f}% ({m['max_drawdown_usdt']:.2f} USDT)",
        f"sharpe      {m['sharpe']:.2f}   sortino {_ratio_text(m.get('sortino'))} (annualised from {r['exec']} bars)"
        f"   calmar {_ratio_text(m.get('calmar'))}",
        f"trades      {m['trades']}   win rate "
        f"{'n/a' if m['win_rate_pct'] is None else format(m['win_rate_pct'], '.1f') + '%'}   profit factor "
        f"{'n/a' if m['profit_factor'] is None else m['profit_factor']}   expectancy "
        f"{'n/a' if m.get('expectancy') is None else format(m['expectancy'], '+.2f') + ' USDT'}",
        # next to the trades, because it is their last row (exit_reason end)
        *([open_line(r["open_position"])] if r.get("open_position") else []),
        *([f"holding     avg {m['avg_holding_bars']:.2f} {r['exec']} bars ({m['avg_holding']})"]
          if m.get("avg_holding_bars") is not None else []),
        f"exposure    {m['exposure_pct']:.1f}% of bars in a position",
        f"fees        {m['fees']:.2f} USDT over {m['fills']} fills",
        f"funding     paid {m.get('funding_paid', 0.0):.2f} USDT, received {m.get('funding_received', 0.0):.2f} USDT"
        f" ({r.get('funding', {}).get('payments', 0)} payments)",
        f"liquidated  {m.get('liquidations', 0)} time{'s' if m.get('liquidations', 0) != 1 else ''}"
        + (f" (the insurance fund covered {m['insurance_cover']:.2f} USDT)" if m.get("insurance_cover") else ""),
        "orders      " + (", ".join(f"{k} {v}" for k, v in sorted(r["orders_by_status"].items())) or "none"),
        "rejected    " + (", ".join(f"{k}: {v}" for k, v in sorted(r["rejected_by_reason"].items())) or "none"),
    ]
    if r.get("out"):
        lines.append(f"written     {r['out']}")
    return "\n".join(lines)


def open_line(p: dict[str, Any]) -> str:
    """The report line of a position still open at the end of the data (see `open_position`)."""
    return (f"open        {p['side']} {num(p['qty'])} @ {p['entry_price']:.2f} since bar {p['entry_bar']}, "
            f"unrealized {p['unrealized_pnl']:+.2f} USDT (the last trade, exit_reason end)")


def status_counts(orders) -> dict[str, int]:
    # `_value_` is what `.value` returns, without the enum property's call per order.
    return dict(Counter(rec.path[-1]._value_ for rec in orders.values()))
