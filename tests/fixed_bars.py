"""Fixed bars for golden artifacts: a pure-Python, seeded random walk written as a CSV.

Not numpy's generator (the bundled synthetic set depends on numpy's random streams, which numpy may
change between releases): `random.Random(seed).random()` is the Mersenne Twister, the same on every
Python, and everything else here is plain float arithmetic, so the file is byte-identical anywhere.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
STEP_MS = 300_000  # 5m: the finest exec timeframe of the example Plays
N_BARS = 20_160  # 70 days: past the longest warm-up (ema_pullback, 33 days) with room to trade


def fixed_rows(n: int = N_BARS, seed: int = 4) -> list[str]:
    """CSV lines (header first) of `n` 5-minute BTCUSDT-like bars on a 0.1 tick."""
    rng = random.Random(seed)
    rows = ["timestamp,open,high,low,close,volume"]
    price = 60_000.0
    vol = 0.0012  # per-bar return scale; drifts slowly so calm and busy stretches alternate
    drift = 0.0
    for k in range(n):
        u1, u2 = rng.random() or 1e-12, rng.random()
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)  # Box-Muller
        vol = min(0.004, max(0.0004, vol * math.exp(0.05 * (rng.random() - 0.5))))
        drift = 0.999 * drift + 0.00002 * (rng.random() - 0.5)
        o = price
        c = o * math.exp(drift + vol * z)
        wick_up, wick_down = rng.random() * vol * o * 0.8, rng.random() * vol * o * 0.8
        h, l = max(o, c) + wick_up, min(o, c) - wick_down
        o, h, l, c = (round(x, 1) for x in (o, h, l, c))
        h, l = max(h, o, c), min(l, o, c)
        volume = round(20.0 + 200.0 * rng.random() * (vol / 0.0012), 3)
        rows.append(f"{START_MS + k * STEP_MS},{o:.1f},{h:.1f},{l:.1f},{c:.1f},{volume:.3f}")
        price = c
    return rows


def write_fixed_csv(path: Path) -> Path:
    path.write_text("\n".join(fixed_rows()) + "\n")
    return path
