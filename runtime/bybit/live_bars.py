"""LiveBars: a live run's exec bars, growing by each closed bar, as `Bars` without copying them all
again each time (numpy columns with room to grow; `bars()` is a view of the filled part)."""
from __future__ import annotations

import numpy as np

from playdeck.runtime.data.bars import Bars, tf_ms

__all__ = ["BarGap", "LiveBars"]


class BarGap(ValueError):
    """A closed bar that does not follow the last one held: the venue's klines have a hole."""


class LiveBars:
    def __init__(self, symbol: str, tf: str, capacity: int = 1024) -> None:
        self.symbol, self.tf = symbol, tf
        self._step = tf_ms(tf)
        self.ts: list[int] = []  # open times, for lookups by time
        self._ts = np.empty(capacity, dtype=np.int64)
        self._cols = np.empty((5, capacity))  # open, high, low, close, volume
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> int:
        """Append a closed bar (one already held is skipped: its index, or -1 before the first);
        returns its index. A bar that skips a slot is a `BarGap`."""
        n = self._n
        if n and ts <= self.ts[-1]:
            k = (ts - self.ts[0]) // self._step
            return int(k) if 0 <= k < n and self.ts[k] == ts else -1
        if n and ts != self.ts[-1] + self._step:
            raise BarGap(f"bars skip from {self.ts[-1]} to {ts} (epoch ms): a gap in the venue's klines")
        if n == len(self._ts):
            self._ts = np.concatenate([self._ts, np.empty(n, dtype=np.int64)])
            self._cols = np.concatenate([self._cols, np.empty((5, n))], axis=1)
        self._ts[n] = ts
        self._cols[:, n] = (o, h, l, c, v)
        self.ts.append(ts)
        self._n = n + 1
        return n

    def bars(self) -> Bars:
        n = self._n
        o, h, l, c, v = self._cols[:, :n]
        return Bars(self.symbol, self.tf, self._ts[:n], o, h, l, c, v)

    def row(self, i: int) -> tuple[int, float, float, float, float]:
        o, h, l, c, _ = self._cols[:, i].tolist()
        return self.ts[i], o, h, l, c
