"""Readers and a writer of one cache entry in separate processes, as a backtest and `data import`
run side by side: every read must be one whole import, never the synthetic set, never an error.

Found by fuzzing: replacing an entry deleted the old folder before renaming the new one into place,
so a backtest starting in between found nothing imported for BTCUSDT and silently ran on the
synthetic year, and one reading while the folder was swapped took columns of two imports
("cache entry is damaged").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MIN = 60_000
SWAPS = 40  # imports by the writer, alternating the two files


def write_csv(path: Path, n: int, base: float) -> None:
    """n 1m bars whose closes are base, base + 1, ...: each file's bars are told apart by them."""
    rows = [f"{T0 + k * MIN},{base + k},{base + k + 0.5},{base + k - 0.5},{base + k},1" for k in range(n)]
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")


READER = '''
import json, sys, time
from pathlib import Path
import numpy as np
from playdeck.runtime.data.sources import load_bars

cache, done, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
expected = {400: 100.0, 300: 5000.0}  # rows -> first close, as the test wrote the files
seen = {"a": 0, "b": 0, "synthetic": 0, "mixed": 0, "errors": []}
while True:
    finished = done.exists()  # looked at before the read: the last read comes after the last swap
    try:
        bars = load_bars("BTCUSDT", None, None, cache, "15m").bars
    except Exception as exc:
        seen["errors"].append(f"{type(exc).__name__}: {exc}")
    else:
        n = len(bars)
        if bars.synthetic:
            seen["synthetic"] += 1
        elif n in expected and bars.tf == "1m" and np.array_equal(
                bars.close, expected[n] + np.arange(n)) and np.array_equal(bars.high, bars.close + 0.5):
            seen["a" if n == 400 else "b"] += 1
        else:
            seen["mixed"] += 1
    ready.touch()
    if finished:
        break
print(json.dumps(seen))
'''

WRITER = '''
import contextlib, io, sys
from pathlib import Path
from playdeck.tui.cli import main

cache, a, b, swaps, done = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
for k in range(swaps):
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["data", "import", b if k % 2 == 0 else a, "--symbol", "BTCUSDT", "--tf", "1m",
                     "--cache-dir", cache])
    if code != 0:
        sys.exit(f"import {k} failed with {code}")
done.touch()
'''


def test_readers_see_one_whole_import_while_a_writer_replaces_it(tmp_path: Path):
    cache, done = tmp_path / "cache", tmp_path / "done"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(a, 400, 100.0)
    write_csv(b, 300, 5000.0)
    run = [sys.executable, "-c"]
    assert subprocess.run([*run, WRITER, str(cache), str(a), str(a), "1", str(tmp_path / "first")],
                          timeout=120).returncode == 0  # A is cached before anyone reads
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    readers = [subprocess.Popen([*run, READER, str(cache), str(done), str(r)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for r in ready]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):  # both are reading before the writer starts
            assert time.monotonic() < deadline and all(p.poll() is None for p in readers), "a reader did not start"
            time.sleep(0.02)
        writer = subprocess.run([*run, WRITER, str(cache), str(a), str(b), str(SWAPS), str(done)],
                                capture_output=True, text=True, timeout=120)
        assert writer.returncode == 0, writer.stderr
        results = [p.communicate(timeout=120) for p in readers]
    finally:
        for p in readers:
            p.kill()
    seen = []
    for (out, err), p in zip(results, readers):
        assert p.returncode == 0, err
        seen.append(json.loads(out))
    for s in seen:
        assert s["errors"] == [] and s["synthetic"] == 0 and s["mixed"] == 0, s
    # Not vacuous: the readers read while the entry changed, and saw both imports.
    assert sum(s["a"] for s in seen) > 0 and sum(s["b"] for s in seen) > 0, seen
    # The replaced versions are gone: one link and the version it points at are left (and the lock).
    version = os.readlink(cache / "market" / "BTCUSDT" / "1m")
    assert sorted(p.name for p in (cache / "market" / "BTCUSDT").iterdir()) == sorted([".lock", "1m", version])
    assert np.array_equal(np.load(cache / "market" / "BTCUSDT" / "1m" / "close.npy"), 100.0 + np.arange(400))
