"""FeedStore: the bars of every timeframe a plan uses, with O(1) no-lookahead access from exec bars.

Built once before the bar loop. For each timeframe it holds the bars (numpy columns), a
`ts_close -> index` dict, and the exec -> timeframe map from `exec_close_index`: at exec bar i
the engine may read timeframe bar `index_at_exec(tf, i)` and nothing newer. Timeframes can be
named by their alias from the Play (`htf`) or by themselves (`4h`).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import attrs
import numpy as np

from playdeck.runtime.data.bars import Bars, exec_close_index, is_multiple, resample, tf_ms


@attrs.define(eq=False)
class TimeframeFeed:
    """One timeframe's bars and its maps to and from the exec bars."""

    bars: Bars
    exec_map: np.ndarray  # exec bar i -> latest closed bar index at i's close, or -1
    _close_index: dict[int, int] | None = None

    @property
    def close_index(self) -> dict[int, int]:
        """ts_close (epoch ms) -> bar index. Built on first use: a backtest never needs it, and for a
        million bars it costs more than the whole bar loop."""
        if self._close_index is None:
            ts_close = (self.bars.ts_open + tf_ms(self.bars.tf)).tolist()
            # The forming (partial) bar has not closed: it gets no close-time entry.
            self._close_index = {t: i for i, t in enumerate(ts_close[: self.bars.n_complete])}
        return self._close_index


def _build_feed(exec_bars: Bars, bars: Bars) -> TimeframeFeed:
    return TimeframeFeed(bars=bars, exec_map=exec_close_index(exec_bars, bars))


class FeedStore:
    """Exec bars plus higher timeframes, keyed by timeframe (and optional aliases)."""

    def __init__(self, exec_bars: Bars, extra: Mapping[str, Bars] | None = None,
                 aliases: Mapping[str, str] | None = None) -> None:
        """`extra` maps timeframe -> bars of that timeframe (already built); `aliases` name -> timeframe."""
        self.exec_tf = exec_bars.tf
        self.symbol = exec_bars.symbol
        self._feeds: dict[str, TimeframeFeed] = {exec_bars.tf: _build_feed(exec_bars, exec_bars)}
        for tf, bars in (extra or {}).items():
            if bars.tf != tf:
                raise ValueError(f"bars given for {tf} are {bars.tf} bars")
            if not is_multiple(tf, exec_bars.tf):
                raise ValueError(f"timeframe {tf} is not a whole multiple of the exec timeframe {exec_bars.tf}")
            if bars.symbol != exec_bars.symbol:
                raise ValueError(f"{tf} bars are {bars.symbol}, exec bars are {exec_bars.symbol}")
            self._feeds[tf] = _build_feed(exec_bars, bars)
        self._aliases: dict[str, str] = dict(aliases or {})
        for name, tf in self._aliases.items():
            if tf not in self._feeds:
                raise ValueError(f"alias {name} refers to {tf}, which has no bars")

    @classmethod
    def build(cls, exec_bars: Bars, timeframes: Mapping[str, str] | Iterable[str] = ()) -> FeedStore:
        """Resample `exec_bars` into each timeframe; a mapping (e.g. {"htf": "4h"}) also sets aliases."""
        if isinstance(timeframes, Mapping):
            aliases, tfs = dict(timeframes), list(timeframes.values())
        else:
            aliases, tfs = {}, list(timeframes)
        extra = {tf: resample(exec_bars, tf) for tf in dict.fromkeys(tfs) if tf != exec_bars.tf}
        return cls(exec_bars, extra, aliases)

    def resolve(self, tf: str) -> str:
        """The timeframe behind an alias (a timeframe resolves to itself); KeyError if unknown."""
        tf = self._aliases.get(tf, tf)
        if tf not in self._feeds:
            raise KeyError(f"no bars for timeframe {tf!r}; have {', '.join(self._feeds)}")
        return tf

    def __len__(self) -> int:
        return len(self._feeds[self.exec_tf].bars)

    @property
    def timeframes(self) -> tuple[str, ...]:
        """Timeframes held, exec first."""
        return tuple(self._feeds)

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def feed(self, tf: str) -> TimeframeFeed:
        return self._feeds[self.resolve(tf)]

    def bars(self, tf: str | None = None) -> Bars:
        """Bars of `tf` (exec when None)."""
        return self._feeds[self.exec_tf if tf is None else self.resolve(tf)].bars

    def array(self, tf: str, field: str) -> np.ndarray:
        """A column (`ts_open open high low close volume`) of one timeframe's own bars."""
        return self.feed(tf).bars.column(field)

    def exec_map(self, tf: str) -> np.ndarray:
        """exec bar index -> index of the latest closed `tf` bar (-1 before the first)."""
        return self.feed(tf).exec_map

    def index_at_exec(self, tf: str, i: int) -> int:
        """Index of the latest `tf` bar closed at the close of exec bar i, or -1."""
        return int(self.feed(tf).exec_map[i])

    def index_at_close(self, tf: str, ts_close: int) -> int | None:
        """Index of the `tf` bar closing at `ts_close` (epoch ms), None if no bar closes then."""
        return self.feed(tf).close_index.get(int(ts_close))

    def series_on_exec(self, tf: str, values: np.ndarray) -> np.ndarray:
        """Map a series computed on `tf` bars onto exec bars, forward-filled without lookahead.

        Exec bar i sees values[index_at_exec(tf, i)]: the value of the latest `tf` bar closed by
        then. Before the first closed bar a float series is NaN and a bool series False (a
        condition that cannot be known is not true).
        """
        feed = self.feed(tf)
        values = np.asarray(values)
        if len(values) != len(feed.bars):
            raise ValueError(f"series has {len(values)} values, {feed.bars.tf} has {len(feed.bars)} bars")
        idx = feed.exec_map
        if len(values) == 0:
            fill = False if values.dtype == np.bool_ else np.nan
            return np.full(len(idx), fill, dtype=bool if values.dtype == np.bool_ else np.float64)
        out = values[np.maximum(idx, 0)]
        if values.dtype == np.bool_:
            out[idx < 0] = False
        else:
            out = out.astype(np.float64, copy=False)
            out[idx < 0] = np.nan
        return out
