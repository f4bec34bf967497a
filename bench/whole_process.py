"""Whole-process benchmark: `playdeck backtest` against a backtesting.py script, each its own process,
as a user meets them: start-up, reading the same CSV, the backtest, and (playdeck) writing its files.

The bench writes N one-minute bars (epoch ms CSV, default 1,000,000) and a Play that is always in
the market: long after the SMA 10 crosses above the SMA 30, short after it crosses below, each flip a
`close` and a 1-unit market order filled at the next open, the taker fee on every fill, no slippage
(backtesting.py slips only entries, so none on either side keeps the fills the same). bench/bt_sma_flip.py
trades the same rule. Printed: wall time of each process (playdeck twice on the same file: the
second run may read the data from a cache), the ratios, peak RSS of each (from its own rusage), and
the engine's cost per order (the bar loop alone, in this process, on the same bars). The ratios are
of wall times, as a user waits for them; CPU time is printed beside them because on a shared
machine the wall time also holds the waits for a core.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
FAST, SLOW = 10, 30
TAKER = 0.00055
CASH = 10_000_000  # so that a 1-unit order is never refused for margin on either side
SEED = 7
TARGET_FIRST, TARGET_CACHED = 10.0, 20.0  # x backtesting.py's whole process
TARGET_US_PER_ORDER = 10.0
TARGET_RSS_MIB = 253.0  # for 1,000,000 bars


def play_text() -> str:
    return f"""play: sma_flip
description: Always in the market; flips on an SMA {FAST}/{SLOW} cross with 1-unit market orders.
market:
  symbol: BTCUSDT
  exec: 1m
account:
  equity: {CASH}
  leverage: 1
  fees: {{maker: 0.0002, taker: {TAKER}}}
  slippage_bps: 0
features:
  fast: sma(close, {FAST})
  slow: sma(close, {SLOW})
blocks: |
  block flip:
    when short and fast crosses_above slow:
      close
      market buy qty 1
    when flat and fast crosses_above slow:
      market buy qty 1
    when long and fast crosses_below slow:
      close
      market sell qty 1
    when flat and fast crosses_below slow:
      market sell qty 1
"""


def write_csv(bars, path: Path) -> Path:
    """timestamp (epoch ms),open,high,low,close,volume: the generic layout both sides read."""
    table = np.column_stack([np.asarray(bars.ts_open, dtype=np.float64), bars.open, bars.high, bars.low,
                             bars.close, bars.volume])
    with open(path, "w") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        np.savetxt(fh, table, fmt=["%d", "%.1f", "%.1f", "%.1f", "%.1f", "%.3f"], delimiter=",")
    return path


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last n (NaN before): the reference's rolling mean, up to float rounding."""
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = np.lib.stride_tricks.sliding_window_view(x, n).mean(axis=1)
    return out


def flip_signals(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bars at whose close each side flips (up: go long, down: go short), by the rule both sides
    trade: fast > slow now and fast <= slow a bar before (and the mirror); NaN is no cross."""
    fast, slow = sma(close, FAST), sma(close, SLOW)
    up = np.zeros(len(close), dtype=bool)
    down = np.zeros(len(close), dtype=bool)
    with np.errstate(invalid="ignore"):
        up[1:] = (fast[1:] > slow[1:]) & (fast[:-1] <= slow[:-1])
        down[1:] = (fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])
    return up, down


class Measured(NamedTuple):
    seconds: float  # wall
    cpu: float  # user + system: on a shared machine, what the process itself used
    peak_rss: int  # bytes
    stdout: str


# Starts the command and reports its wall time and its own peak RSS (from wait4). It runs in a small
# launcher process because Linux counts, in a child's ru_maxrss, the RSS of the process it was forked
# from: measured from this bench (hundreds of MiB of bars), every child would seem that large.
LAUNCHER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - t0
proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss": usage.ru_maxrss * 1024,
               "code": proc.returncode}, fh)  # Linux gives ru_maxrss in KiB
"""


def timed_process(cmd: list[str]) -> Measured:
    """Wall time and peak RSS of one run of `cmd` (see LAUNCHER); RuntimeError when it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.json"
        r = subprocess.run([sys.executable, "-c", LAUNCHER, str(figures), *cmd], capture_output=True, text=True)
        got = json.loads(figures.read_text()) if figures.exists() else {"code": r.returncode}
        if r.returncode != 0 or got["code"] != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {got['code']}: {r.stderr.strip()}")
        return Measured(got["seconds"], got["cpu"], got["peak_rss"], r.stdout)


def playdeck_command(play: Path, data: Path, out: Path) -> list[str]:
    script = Path(sys.executable).with_name("playdeck")  # the console script a user runs
    head = [str(script)] if script.exists() else [sys.executable, "-m", "playdeck.tui.cli"]
    return [*head, "backtest", str(play), "--data", str(data), "--out", str(out), "--no-progress"]


def reference_command(data: Path) -> list[str]:
    return [sys.executable, str(HERE / "bt_sma_flip.py"), str(data), str(FAST), str(SLOW), str(TAKER), str(CASH)]


def engine_run(bars) -> tuple[float, int, list]:
    """The bar loop of the bench Play on `bars`, in this process: (seconds, orders, fills)."""
    from playdeck.compiler import compile_text
    from playdeck.compiler.lower import lower
    from playdeck.runtime.backtest.run import prepare, run_engine

    bt = prepare(lower(compile_text(play_text(), "sma_flip.yml").ir), bars)
    t0 = time.perf_counter()
    result = run_engine(bt)
    return time.perf_counter() - t0, len(bt.exchange.orders), result.fills


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(n_bars: int, skip_reference: bool = False, workdir: str | None = None) -> None:
    """Run the comparison and print each figure beside its target."""
    from playdeck.runtime.data.synthetic import generate

    bars = generate(n_bars, seed=SEED)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        data = write_csv(bars, root / "bars_1m.csv")
        play = root / "sma_flip.yml"
        play.write_text(play_text())
        print(f"whole process {n_bars:,} 1m bars from a CSV ({data.stat().st_size / 2**20:.0f} MiB), SMA {FAST}/{SLOW} "
              f"flip, market orders, files written (--out)")
        first = timed_process(playdeck_command(play, data, root / "run1"))
        second = timed_process(playdeck_command(play, data, root / "run2"))
        result = json.loads((root / "run1" / "report.json").read_text())
        m = result["metrics"]
        for label, run in (("first run ", first), ("second run", second)):
            print(f"  playdeck       {label} {run.seconds:6.2f} s (cpu {run.cpu:5.2f} s), peak RSS {run.peak_rss / 2**20:4.0f} MiB")
        print(f"  playdeck       {m['trades']:,} trades, {m['fills']:,} fills, final equity {m['final_equity']:,.2f}"
              + (" (a position still open)" if result.get("open_position") else ""))
        rss_mib = max(first.peak_rss, second.peak_rss) / 2**20
        scaled = rss_mib if n_bars == 1_000_000 else None
        print(f"  peak RSS       {rss_mib:.0f} MiB (target <= {TARGET_RSS_MIB:.0f} MiB for 1,000,000 bars: "
              f"{_verdict(rss_mib <= TARGET_RSS_MIB) if scaled is not None else 'judged at 1,000,000 bars'})")
        if not skip_reference:
            try:
                ref = timed_process(reference_command(data))
            except RuntimeError as e:
                print(f"  backtesting.py could not run ({e}); pip install -e '.[bench]' (make bench does)")
            else:
                got = json.loads(ref.stdout.splitlines()[-1])
                print(f"  backtesting.py            {ref.seconds:6.2f} s (cpu {ref.cpu:5.2f} s), peak RSS {ref.peak_rss / 2**20:4.0f} MiB "
                      f"({got['trades']:,} trades = {2 * got['trades']:,} fills, its last trade closed at the end; "
                      f"final equity {got['final_equity']:,.2f})")
                r1, r2 = ref.seconds / first.seconds, ref.seconds / second.seconds
                print(f"  ratio          first run {r1:.1f}x faster (target >= {TARGET_FIRST:g}x: {_verdict(r1 >= TARGET_FIRST)}), "
                      f"second run {r2:.1f}x (target >= {TARGET_CACHED:g}x: {_verdict(r2 >= TARGET_CACHED)})")
    seconds, orders, fills = engine_run(bars)
    us = seconds / max(orders, 1) * 1e6
    print(f"  engine         bar loop {seconds:.2f} s over {n_bars:,} bars for {orders:,} orders ({len(fills):,} fills) "
          f"= {us:.1f} us per order (target <= {TARGET_US_PER_ORDER:g} us: {_verdict(us <= TARGET_US_PER_ORDER)})")
