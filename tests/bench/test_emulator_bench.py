"""bench/emulator.py measures what it says: every create is answered and every one's `order` message
is seen on the private stream (its figures are printed, never asserted)."""
from __future__ import annotations

import re
import subprocess
import sys

from paths import ROOT_DIR


def test_the_emulator_bench_runs_and_sees_every_order_message():
    r = subprocess.run([sys.executable, str(ROOT_DIR / "bench" / "emulator.py"), "--orders", "30"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT_DIR)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "emulator over loopback, pybit HTTP, 30 order creates (rate limits off)"
    assert re.match(r"  create round trips: [\d,]+/s   median [\d.]+ ms   p99 [\d.]+ ms$", lines[1])
    assert "(30 of 30 seen)" in lines[2]
