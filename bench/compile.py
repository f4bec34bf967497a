"""Benchmark: compile time of every example Play, against the 20 ms target.

Compiling means what `playdeck check` does for one file: read it, parse the YAML with positions,
check the settings, parse the features and blocks, resolve names and types, collect the feature
jobs. The grammar is built once before timing (it is cached for the life of the process).
Prints the median over `--runs` compiles of each Play (the target is judged on it) and the best
run, which shows how much of the median is noise from other processes on the machine.
Usage: python bench/compile.py [--runs N] [PLAY ...]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 20.0


def compile_ms(path: Path, runs: int) -> tuple[float, float]:
    """(median, best) compile time of `path` in milliseconds."""
    from playdeck.compiler import compile_file

    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        compile_file(path)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("plays", nargs="*", help="Play files (default: plays/*.yml)")
    args = ap.parse_args()
    from playdeck.compiler import compile_file
    from playdeck.dsl.parser import _lark

    paths = [Path(p) for p in args.plays] or sorted((ROOT / "plays").glob("*.yml"))
    _lark()  # build the grammar outside the timing
    for p in paths:
        compile_file(p)  # and warm the imports and caches the first compile touches
    width = max(len(p.name) for p in paths)
    worst = 0.0
    print(f"{'play':<{width}}  median of {args.runs}  best   under {TARGET_MS:g} ms?")
    for p in paths:
        ms, best = compile_ms(p, args.runs)
        worst = max(worst, ms)
        print(f"{p.name:<{width}}  {ms:>8.2f} ms  {best:>5.2f} ms  {'yes' if ms < TARGET_MS else 'NO'}")
    print(f"slowest {worst:.2f} ms: target {'met' if worst < TARGET_MS else 'NOT met'} for every Play")
    return 0


if __name__ == "__main__":
    sys.exit(main())
