"""Benchmark: the bar magnifier's cost (PLAY-LANGUAGE.md 7.5), as a user meets it.

A year of synthetic one-minute bars (the bundled set) under a 15m Play with protected limit entries,
run twice as whole `playdeck backtest` processes side by side: `intrabar: worst_case` (off) and
`intrabar: 1m` (on: fills found by walking each 15m bar's minutes, but only where an order works or
the position's liquidation price is in reach). Prints both times, their ratio, and how many fills
each found and how many of them a detail bar decided. Usage: python bench/magnifier.py [--repeat K]
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLAY = """
play: magnifier_bench
description: Protected pullback entries on 15m bars, to time the bar magnifier.
market: {{symbol: BTCUSDT, exec: 15m}}
account: {{equity: 10000, leverage: 3, slippage_bps: 2, intrabar: {intrabar}}}
features:
  fast: ema(close, 21)
  slow: ema(close, 55)
  atr: atr(14)
blocks: |
  block entries:
    when flat and fast crosses_above slow:
      limit buy risk 1% at close - 0.5 * atr expire 3 bars as entry
        stop_loss fill - 2 * atr
        take_profit fill + 3 * atr
    when flat and fast crosses_below slow:
      limit sell risk 1% at close + 0.5 * atr expire 3 bars as short_entry
        stop_loss fill + 2 * atr
        take_profit fill - 3 * atr
"""


def run(play: Path, out: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "playdeck.tui.cli", "backtest", str(play), "--out", str(out),
                           "--no-progress"], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"playdeck backtest failed: {done.stderr}")
    return elapsed, json.loads((out / "report.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = {}
        for name, intrabar in (("off", "worst_case"), ("on", "1m")):
            play = folder / f"magnifier_{name}.yml"
            play.write_text(PLAY.format(intrabar=intrabar))
            best = None
            for k in range(args.repeat):
                elapsed, report = run(play, folder / f"out-{name}-{k}")
                best = elapsed if best is None else min(best, elapsed)
            with open(folder / f"out-{name}-0" / "fills.csv", newline="") as fh:
                rows = list(csv.DictReader(fh))
            detailed = sum(1 for r in rows if r.get("detail_ts"))
            results[name] = (best, report["metrics"]["fills"], detailed)
    (off, off_fills, _), (on, on_fills, detailed) = results["off"], results["on"]
    print(f"magnifier off  a year of 1m data under a 15m Play: {off:.2f} s whole process ({off_fills} fills)")
    print(f"magnifier on   the same with intrabar: 1m:         {on:.2f} s whole process ({on_fills} fills, "
          f"{detailed} with a detail bar)")
    print(f"cost           {on / off:.2f}x the time without it (best of {args.repeat})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
