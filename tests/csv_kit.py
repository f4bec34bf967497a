"""Small OHLCV CSV files for the command-line and data tests: a seeded random walk of bars from
2025-01-01, written as a user's generic CSV (epoch ms, `timestamp,open,high,low,close,volume`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def walk_csv(path: Path, n: int, *, seed: int, price: float = 100.0, step_ms: int = 60_000,
             skip: range = range(0), newest_first: bool = False) -> Path:
    """`n` bars `step_ms` apart from T0 starting at `price` (wicks a tenth of a unit at 100, a unit
    at 60,000); the bars numbered in `skip` left out (a gap); newest first when asked."""
    rng = np.random.default_rng(seed)
    close = np.round(price * np.exp(np.cumsum(rng.normal(0, 0.002, n))), 1)
    open_ = np.concatenate([[price], close[:-1]])
    wick = 0.1 if price < 1000 else 1
    rows = [f"{T0 + k * step_ms},{o},{max(o, c) + wick:.1f},{min(o, c) - wick:.1f},{c},1.5"
            for k, (o, c) in enumerate(zip(open_.tolist(), close.tolist())) if k not in skip]
    if newest_first:
        rows.reverse()
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path
