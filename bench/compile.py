"""Benchmark: compile time of every example Play, against the 20 ms target.

Compiling means what `playdeck check` does for one file: read it, parse the YAML with positions,
check the settings, parse the features and blocks, resolve names and types, collect the feature
jobs. The grammar is built once before timing (it is cached for the life of the process).
Prints the median over `--runs` compiles of each Play (the target is judged on it) and the best
run, which shows how much of the median is noise from other processes on the machine.

Then the scaling case: one Play of `--many` (10,000) features, and one of as many blocks, each
compiled once, also with a mistake in every feature or block (so with as many diagnostics, rendered).
Compile time must grow in proportion to the Play; it grew with its square while every feature
split the whole file into lines again (22.6 s for 10,000 features on the project's 2-core machine).
Usage: python bench/compile.py [--runs N] [--many N] [PLAY ...]
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


def many_play(n: int, what: str, mistake: bool = False) -> str:
    """A Play of `n` features (`what` = "features") or `n` blocks; with `mistake`, each reads an
    unknown name one letter from a known one."""
    head = "play: many\nmarket:\n  symbol: BTCUSDT\n  exec: 15m\nfeatures:\n"
    name = "clse" if mistake else "close"
    if what == "features":
        feats = "".join(f"  f{i}: ema({name}, {i % 50 + 2}) - sma(close, {i % 30 + 2})\n" for i in range(n))
        return head + feats + "blocks: |\n  block main:\n    when flat:\n      market buy qty 1\n"
    cases = "".join(f"  block b{i}:\n    when flat and fast > {name} + {i}:\n      market buy qty 1\n"
                    for i in range(n))
    return head + "  fast: ema(close, 9)\nblocks: |\n" + cases


def many_seconds(text: str) -> tuple[float, int]:
    """(seconds, diagnostics) to compile `text` and render its diagnostics, if any."""
    from playdeck.compiler import compile_text
    from playdeck.dsl.diagnostics import PlayError

    t0 = time.perf_counter()
    try:
        compile_text(text, "many.yml")
        found = 0
    except PlayError as e:
        e.render()
        found = len(e.diagnostics)
    return time.perf_counter() - t0, found


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--many", type=int, default=10_000, help="features (and blocks) of the scaling case; 0: skip it")
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
    if args.many > 0:
        print(f"\nscaling: one compile of a Play of {args.many:,} ...")
        for what in ("features", "blocks"):
            for mistake in (False, True):
                seconds, found = many_seconds(many_play(args.many, what, mistake))
                label = f"{what}, {'each with a mistake' if mistake else 'all fine'}"
                print(f"  {label:<28} {seconds:6.2f} s" + (f"  ({found:,} diagnostics rendered)" if found else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
