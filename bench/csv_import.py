"""Benchmark: importing a 1,000,000-row one-minute CSV (epoch-ms timestamps, about 53 MB).

Times `import_csv` on the same file three ways, best of `--runs` each: the pyarrow fast path (what
a plain numeric file takes), numpy's `loadtxt` (what such a file took before the fast path, and
what takes a file pyarrow declines), and, with `--remembered`, a backtest's second load of the same
`--data` file, which maps the arrays it remembered in the cache instead of parsing.
Usage: python bench/csv_import.py [--runs N] [--rows N] [--remembered]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def write_file(path: Path, rows: int) -> None:
    from playdeck.runtime.data import synthetic

    bars = synthetic.generate(rows, seed=3)
    with path.open("w") as f:
        f.write("timestamp,open,high,low,close,volume\n")
        for row in zip(bars.ts_open.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
                       bars.close.tolist(), bars.volume.tolist()):
            f.write("%d,%r,%r,%r,%r,%r\n" % row)


def best(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--remembered", action="store_true", help="also time a remembered --data file")
    args = ap.parse_args()
    from playdeck.runtime.data import csv_import, sources

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars_1m.csv"
        write_file(path, args.rows)
        size = path.stat().st_size / 1e6
        import pyarrow  # noqa: F401  (imported once, as a process importing many files would)

        fast = csv_import._parse_arrow
        arrow = best(lambda: csv_import.import_csv(path, "BTCUSDT", None), args.runs)
        csv_import._parse_arrow = lambda data, where: None
        try:
            loadtxt = best(lambda: csv_import.import_csv(path, "BTCUSDT", None), args.runs)
        finally:
            csv_import._parse_arrow = fast
        print(f"import of {args.rows:,} rows ({size:.0f} MB), best of {args.runs}:")
        print(f"  pyarrow fast path  {arrow:6.3f} s")
        print(f"  numpy loadtxt      {loadtxt:6.3f} s  ({loadtxt / arrow:.1f}x the fast path)")
        if args.remembered:
            cache = Path(folder) / "cache"
            sources.load_bars("BTCUSDT", str(path), None, str(cache), "1m")  # parses and remembers
            mapped = best(lambda: sources.load_bars("BTCUSDT", str(path), None, str(cache), "1m"), args.runs)
            print(f"  remembered --data  {mapped:6.3f} s  (mapped from the cache)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
