"""OHLCV bars as numpy columns, timeframe arithmetic, resampling and the no-lookahead MTF map.

Every timestamp is epoch milliseconds UTC of the bar's *open*. A bar of timeframe `tf` opened at
`t` closes at `t + tf_ms(tf)`. Higher timeframes are always built from the exec bars (see
`resample`), aligned to UTC epoch boundaries (a 4h bar opens at 00:00, 04:00, ... UTC; a 1d bar at
00:00 UTC), so every timeframe agrees with the exec data it came from.
"""

from __future__ import annotations

import attrs
import numpy as np

from playdeck.dsl.vocabulary import TIMEFRAMES, is_multiple, tf_minutes, tf_ms

# The timeframe words are dsl.vocabulary's; they are re-exported here for the data room's modules.
__all__ = ["COLUMNS", "FUNDING_RATE", "MAX_FUNDING_RATE", "PRICE_COLUMNS", "TIMEFRAMES", "Bars", "exec_close_index",
           "is_multiple", "resample", "slice_time", "tf_minutes", "tf_ms"]


PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
COLUMNS: tuple[str, ...] = ("ts_open", "open", "high", "low", "close", "volume")
# The optional column of funding rates (PLAY-LANGUAGE.md 7.3): not in COLUMNS, which every series has.
FUNDING_RATE = "funding_rate"
# A funding rate beyond +-5% per interval is a typo (a percentage written as a number), not a market:
# Bybit caps its rates far below that. The importer refuses one; Bars itself does not check values.
MAX_FUNDING_RATE = 0.05


def _float_column(values: object) -> np.ndarray:
    # asarray keeps a float64 memmap memory-mapped (no copy); other inputs are converted once.
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"bar columns must be 1-D, got shape {arr.shape}")
    return arr


def _optional_float_column(values: object) -> np.ndarray | None:
    return None if values is None else _float_column(values)


def _int_column(values: object) -> np.ndarray:
    arr = np.asarray(values, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"bar columns must be 1-D, got shape {arr.shape}")
    return arr


@attrs.frozen(eq=False)
class Bars:
    """One symbol's bars of one timeframe, column-wise.

    `partial_last` marks a trailing bar whose time span is not fully covered by the data it was
    built from (a resampled bucket still forming). Such a bar is kept, so a console can draw it,
    but it has not closed: `exec_close_index` never makes it visible. `n_complete` counts the
    bars that have closed.

    `funding_rate` is the data's funding rate on each bar (float64, NaN where a row gave none), or
    None when the data has no such column at all; the simulator settles funding from it (7.3).
    A resampled (coarser) series carries none: see `resample`.
    """

    symbol: str
    tf: str
    ts_open: np.ndarray = attrs.field(converter=_int_column)
    open: np.ndarray = attrs.field(converter=_float_column)
    high: np.ndarray = attrs.field(converter=_float_column)
    low: np.ndarray = attrs.field(converter=_float_column)
    close: np.ndarray = attrs.field(converter=_float_column)
    volume: np.ndarray = attrs.field(converter=_float_column)
    synthetic: bool = False
    partial_last: bool = False
    # Last, and keyword-only in spirit: positional constructions of the six columns stay valid.
    funding_rate: np.ndarray | None = attrs.field(default=None, converter=_optional_float_column)

    def __attrs_post_init__(self) -> None:
        tf_minutes(self.tf)  # validates the timeframe name
        n = len(self.ts_open)
        for name in PRICE_COLUMNS + ("volume",):
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, ts_open has {n}")
        if self.funding_rate is not None and len(self.funding_rate) != n:
            raise ValueError(f"column {FUNDING_RATE} has {len(self.funding_rate)} rows, ts_open has {n}")
        if self.partial_last and n == 0:
            raise ValueError("partial_last set on empty bars")

    def __len__(self) -> int:
        return len(self.ts_open)

    @property
    def n_complete(self) -> int:
        """Number of leading bars that have closed (all of them unless `partial_last`)."""
        return len(self.ts_open) - int(self.partial_last)

    @property
    def ts_close(self) -> np.ndarray:
        """Close time of each bar (= open time + one bar), epoch ms."""
        return self.ts_open + tf_ms(self.tf)

    def column(self, name: str) -> np.ndarray:
        """A column by name: ts_open, open, high, low, close or volume."""
        if name not in COLUMNS:
            raise KeyError(f"unknown bar column {name!r}; expected one of {', '.join(COLUMNS)}")
        return getattr(self, name)

    def take(self, start: int, stop: int) -> Bars:
        """Bars[start:stop] as views; the partial flag survives only if the last bar is kept."""
        n = len(self)
        start, stop, _ = slice(start, stop).indices(n)
        stop = max(stop, start)
        return attrs.evolve(
            self,
            ts_open=self.ts_open[start:stop],
            open=self.open[start:stop],
            high=self.high[start:stop],
            low=self.low[start:stop],
            close=self.close[start:stop],
            volume=self.volume[start:stop],
            partial_last=self.partial_last and stop == n and stop > start,
            funding_rate=None if self.funding_rate is None else self.funding_rate[start:stop],
        )


def resample(bars: Bars, tf: str) -> Bars:
    """Build `tf` bars from finer `bars`: open=first, high=max, low=min, close=last, volume=sum.

    Buckets are aligned to UTC epoch multiples of `tf` and contain whatever source bars fall in
    them, so a gap in the source shortens a bucket instead of shifting later ones. The last bucket
    is flagged `partial_last` when the data ends before the bucket's close. A leading bucket that
    starts before the data (data from 00:30 for 1h bars) is dropped: its open, high, low and volume
    would not be the period's, and an indicator must not warm up on a bar that never was.

    The result has no `funding_rate`. 7.3 takes the rate of the bar that starts at a funding instant,
    else of the last bar before it; on bars of 12h or 1d several instants fall inside one bar, and
    where a source bar is missing "the last before" is the last source bar, not the bucket's first:
    no one value per coarser bar gives what the source bars give. So the simulator is handed the
    source data's own times and rates (see runtime/backtest/run.py), and a coarser series carries
    none rather than one that reads right and is not. A `tf` equal to the data's returns the data.
    """
    src_ms, dst_ms = tf_ms(bars.tf), tf_ms(tf)
    if dst_ms % src_ms != 0:
        raise ValueError(f"cannot resample {bars.tf} bars to {tf}: {tf} is not a multiple of {bars.tf}")
    n = len(bars)
    if dst_ms == src_ms:
        return attrs.evolve(bars, tf=tf)
    if n == 0:
        return attrs.evolve(bars, tf=tf, funding_rate=None)
    bucket = bars.ts_open // dst_ms
    # Index of the first source bar of each bucket; reduceat reduces each [start_k, start_k+1).
    starts = np.concatenate(([0], np.flatnonzero(bucket[1:] != bucket[:-1]) + 1))
    if int(bars.ts_open[0]) > int(bucket[0]) * dst_ms:
        starts = starts[1:]  # the data begins inside the first bucket
        if len(starts) == 0:
            return attrs.evolve(bars.take(0, 0), tf=tf, funding_rate=None)  # not one whole bucket
    ends = np.concatenate((starts[1:], [n])) - 1
    last_close = int(bars.ts_open[-1]) + src_ms
    ts_open = bucket[starts] * dst_ms
    return Bars(
        symbol=bars.symbol,
        tf=tf,
        ts_open=ts_open,
        open=bars.open[starts],
        high=np.maximum.reduceat(bars.high, starts),
        low=np.minimum.reduceat(bars.low, starts),
        close=bars.close[ends],
        volume=np.add.reduceat(bars.volume, starts),
        synthetic=bars.synthetic,
        partial_last=bool(last_close < int(ts_open[-1]) + dst_ms) or bars.partial_last,
    )


def exec_close_index(exec_bars: Bars, htf_bars: Bars) -> np.ndarray:
    """For each exec bar i, the index of the latest `htf_bars` bar closed at the close of bar i, else -1.

    This is the multi-timeframe forward-fill map with no lookahead: an htf bar becomes visible at
    the exec bar whose close time reaches the htf bar's close time (the last exec bar of its
    bucket) and stays visible until the next one closes. A partial trailing htf bar never becomes
    visible; neither does any htf bar whose close lies after the last exec bar's close.
    """
    exec_close = exec_bars.ts_open + tf_ms(exec_bars.tf)
    htf_close = htf_bars.ts_open + tf_ms(htf_bars.tf)
    if len(htf_close) > 1 and np.any(htf_close[1:] <= htf_close[:-1]):
        raise ValueError("htf bars must be strictly increasing in time")
    if htf_bars is exec_bars:
        # The exec timeframe itself: with strictly increasing closes (checked above) bar i sees
        # bar i, which is what the search below would find, at a fraction of its cost.
        idx = np.arange(len(exec_close), dtype=np.int64)
    else:
        # side="right": an htf bar closing exactly at this exec bar's close is visible now.
        idx = np.searchsorted(htf_close, exec_close, side="right").astype(np.int64) - 1
    if htf_bars.partial_last:
        # Time alone would reveal the forming bar once exec data passes its close; the flag wins.
        np.minimum(idx, htf_bars.n_complete - 1, out=idx)
    return idx


def slice_time(bars: Bars, from_ms: int | None = None, to_ms: int | None = None) -> Bars:
    """Bars whose open time t satisfies from_ms <= t < to_ms (either bound may be None)."""
    start = 0 if from_ms is None else int(np.searchsorted(bars.ts_open, from_ms, side="left"))
    stop = len(bars) if to_ms is None else int(np.searchsorted(bars.ts_open, to_ms, side="left"))
    return bars.take(start, max(start, stop))
