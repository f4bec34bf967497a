"""Benchmark: backtest the EMA-cross Play on 1,000,000 one-minute bars; prints bars per second.

End to end means: compile, lower, feature jobs, condition arrays, the bar loop, the simulator and
the report metrics. Loading the bars is excluded. The Play's exec timeframe is set to 1m here so
every one of the 1,000,000 bars is an exec bar.

Side by side, in the same run, backtesting.py (the `bench` extra) runs the same logic on the same
bars: EMA fast/slow cross, long on the up-cross and short on the down-cross, market orders at the
next open. The ratio is printed. Its per-order warnings ("insufficient margin") are silenced: printing
tens of thousands of them would slow the reference down and flood the output.

A third figure calibrates the machine: the same logic written by hand as one plain-Python function
(`floor_run`: no engine, no events, no state machine, nothing general), which is about as fast as
pure Python can do this workload here.

Last, the whole-process comparison (bench/whole_process.py): `playdeck backtest` as a user runs it,
on a CSV of the same number of bars, against a backtesting.py script reading that CSV, each its own
process; wall time, ratios, peak RSS and the engine's cost per order, each beside its target.
Usage: python bench/backtest.py [--bars N] [--repeat K] [--skip-reference] [--skip-process]
"""
from __future__ import annotations

import argparse
import gc
import math
import re
import sys
import time
import resource
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PLAY = ROOT / "plays" / "ema_cross.yml"


def play_text(as_written: bool) -> str:
    text = PLAY.read_text()
    if as_written:
        return text
    text = re.sub(r"(?m)^(\s*exec:\s*)\S+", r"\g<1>1m", text)
    return re.sub(r"exec: \w+\b", "exec: 1m", text)  # flow-style market: {exec: 15m}


def playdeck_run(bars, as_written: bool = False) -> tuple[float, dict, int]:
    from playdeck.compiler import compile_text
    from playdeck.compiler.lower import lower
    from playdeck.runtime.backtest.run import build_report, exec_bars, prepare, run_engine

    text = play_text(as_written)
    t0 = time.perf_counter()
    plan = lower(compile_text(text, str(PLAY)).ir)
    bars = exec_bars(bars, plan.play.market.exec_tf)  # 1m data -> the Play's exec bars (as written)
    bt = prepare(plan, bars)
    result = run_engine(bt)
    report = build_report(bt, bars, result)
    return time.perf_counter() - t0, report, len(result.fills)


def floor_run(bars) -> tuple[float, list[tuple[int, float, float, float, float]]]:
    """The Play's logic by hand, as one function: EMA fast/slow crosses, close and reverse at the next
    open with 50% of equity, qty rounded down to 0.001, 2 bps slippage, the taker fee and funding
    (0.01% per 8 h at the open of the bar after each instant). It keeps
    only a list of fill tuples and a list of refusals. A lower bound for pure Python, not a product."""
    from playdeck.runtime.data.indicators import ema

    was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        close = np.asarray(bars.close, dtype=np.float64)
        fast_n, slow_n = ema_lengths()
        fast, slow = ema(close, fast_n), ema(close, slow_n)
        above = fast > slow
        up = np.zeros(len(close), dtype=bool)
        down = np.zeros(len(close), dtype=bool)
        up[1:] = above[1:] & ~above[:-1] & ~np.isnan(slow[:-1])
        down[1:] = ~above[1:] & (fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])
        fills, refused = _floor_loop(np.flatnonzero(up | down).tolist(), up.tobytes(),
                                     bars.open.tolist(), close.tolist(), np.asarray(bars.ts_open))
        return time.perf_counter() - t0, fills  # (bar, signed qty, price, fee, realized)
    finally:
        if was:
            gc.enable()


FUNDING_MS, FUNDING_RATE = 8 * 3_600_000, 0.0001  # every 8 h, Bybit's baseline 0.01%


def _floor_loop(cands, up, opens, closes, ts):
    pos, cash, avg = 0.0, 10_000.0, math.nan
    fills, refused = [], []
    last = len(opens) - 1
    instant = -(-int(ts[0]) // FUNDING_MS) * FUNDING_MS  # the first funding instant of the data
    times = ts.tolist()

    def funding_until(bar: int) -> float:
        # Funding of every instant up to the open of `bar`: the position pays at the open of the
        # first bar starting at or after the instant (it is the same position: no fill in between).
        nonlocal instant
        paid = 0.0
        while instant <= times[bar]:
            if pos:
                k = int(np.searchsorted(ts, instant))
                paid -= pos * opens[k] * FUNDING_RATE
            instant += FUNDING_MS
        return paid

    for i in cands:
        if i >= last:
            break
        cash += funding_until(i)
        close = closes[i]
        if up[i]:
            want = (("close", 0), ("market", 1)) if pos < 0 else (("market", 1),) if pos == 0 else ()
        else:
            want = (("close", 0), ("market", -1)) if pos > 0 else (("market", -1),) if pos == 0 else ()
        orders = []
        for kind, side in want:
            if kind == "close":
                q = -pos
            else:
                equity = cash + pos * (close - avg) if pos else cash
                q = math.floor(0.5 * equity / close * 1000.0) / 1000.0 * side
            if abs(q) < 0.001:
                refused.append((i, kind, "qty below min_qty"))
            else:
                orders.append(q)
        price = opens[i + 1]
        cash += funding_until(i + 1)
        for q in orders:
            px = price * (1.0002 if q > 0 else 0.9998)
            fee = abs(q) * px * 0.00055
            realized = 0.0
            if pos and (pos > 0) != (q > 0):
                realized = min(abs(q), abs(pos)) * (px - avg) * (1.0 if pos > 0 else -1.0)
                pos = round(pos + q, 3)
                avg = math.nan if pos == 0 else px
            else:
                avg = px if pos == 0 else (avg * abs(pos) + px * abs(q)) / (abs(pos) + abs(q))
                pos = round(pos + q, 3)
            cash += realized - fee
            fills.append((i + 1, q, px, fee, realized))
    return fills, refused


def ema_lengths() -> tuple[int, int]:
    from playdeck.compiler import compile_file

    lengths = sorted(int(j.indicator.params[0]) for j in compile_file(PLAY).ir.jobs if j.indicator.fn == "ema")
    return lengths[0], lengths[-1]


def reference_run(bars) -> tuple[float, int] | None:
    try:
        import pandas as pd
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover
    except ImportError:
        print("backtesting.py is not installed: pip install -e '.[bench]' (make bench does)")
        return None
    fast_n, slow_n = ema_lengths()

    def ema(x, n):
        return pd.Series(x).ewm(span=n, adjust=False).mean().to_numpy()

    class EmaCross(Strategy):
        def init(self):
            self.fast = self.I(ema, self.data.Close, fast_n)
            self.slow = self.I(ema, self.data.Close, slow_n)

        def next(self):
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy(size=0.5)
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell(size=0.5)

    df = pd.DataFrame({"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
                       "Volume": bars.volume}, index=pd.to_datetime(np.asarray(bars.ts_open), unit="ms"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = Backtest(df, EmaCross, cash=10_000_000, commission=0.00055, finalize_trades=True).run()
        return time.perf_counter() - t0, int(stats["# Trades"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for playdeck and the floor")
    ap.add_argument("--exec-as-written", action="store_true",
                    help="run the Play at its own exec timeframe on the 1m bars (the reference and the floor "
                         "then run on the same resampled bars); the target is judged on the default 1m run")
    ap.add_argument("--play", default=None)
    ap.add_argument("--skip-process", action="store_true", help="leave out the whole-process comparison")
    args = ap.parse_args()
    global PLAY
    PLAY = Path(args.play) if args.play else PLAY
    sys.path.insert(0, str(ROOT))
    from playdeck.runtime.data.synthetic import generate

    bars = generate(args.bars, seed=7)  # data load: excluded from the timing
    playdeck_run(generate(5_000, seed=1))  # warm imports and the grammar
    # Best of --repeat runs (as timeit does): this shared machine's noise only ever adds time.
    seconds, report, fills = min((playdeck_run(bars, args.exec_as_written) for _ in range(args.repeat)),
                                 key=lambda r: r[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux reports KiB)
    rate = args.bars / seconds
    print(f"playdeck      {args.bars:,} bars in {seconds:.3f} s = {rate:,.0f} bars/s end to end "
          f"({fills} fills, {report['metrics']['trades']} trades, "
          f"{sum(report['rejected_by_reason'].values())} refused intents, peak RSS {peak / 2**20:.0f} MiB incl. the data)")
    if args.exec_as_written:
        print("target        judged on the default run (exec 1m: every one of the bars is an exec bar)")
    else:
        print(f"target        2,000,000 bars/s: {'met' if rate >= 2_000_000 else 'NOT met'}")
    if fills:
        # the loop skips bars where nothing can happen, so the cost follows the orders, not the bars
        print(f"per fill      {seconds / fills * 1e6:,.0f} us end to end (intents, sizing, the book, events)")
    if args.exec_as_written:
        from playdeck.runtime.backtest.run import exec_bars

        bars = exec_bars(bars, report["exec"])  # what playdeck ran on: the reference gets the same bars
        print(f"as written    exec {report['exec']}: {len(bars):,} exec bars from the {args.bars:,} 1m bars")
    floor_seconds, floor_fills = min((floor_run(bars) for _ in range(args.repeat)), key=lambda r: r[0])
    floor_fills = len(floor_fills)
    print(f"floor         {args.bars:,} bars in {floor_seconds:.3f} s = {args.bars / floor_seconds:,.0f} bars/s "
          f"({floor_fills} fills): the same logic hand-written in plain Python, no engine; "
          f"playdeck takes {seconds / floor_seconds:.1f}x as long")
    if not args.skip_reference:
        ref = reference_run(bars)
        if ref is not None:
            ref_seconds, ref_trades = ref
            ratio = ref_seconds / seconds
            print(f"backtesting.py {args.bars:,} bars in {ref_seconds:.3f} s = {args.bars / ref_seconds:,.0f} bars/s "
                  f"({ref_trades} trades)")
            print(f"ratio         playdeck is {ratio:.1f}x faster (the engine alone, both in this process; the "
                  "targets against backtesting.py are judged on whole processes, below)")
    if not args.skip_process:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from whole_process import report as whole_process_report

        whole_process_report(args.bars, skip_reference=args.skip_reference)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
