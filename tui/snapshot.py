"""What the console draws, as one frozen value: the Session's snapshot plus what a screen needs
around it (the recent bars and features, the position's layers, the selected order's history, the
venue's health and reconciliation, the replay's pace).

The replay builds a `ConsoleSnapshot` from the runtime's own reads and posts it; widgets only
render it. The helpers here are pure functions of arrays and records, tested on their own.
"""
from __future__ import annotations

import math
from typing import Sequence

import attrs
import numpy as np

from playdeck.runtime.execution.orders import Fill, OrderSnapshot
from playdeck.runtime.execution.trading_state import Trade
from playdeck.runtime.execution.venue_status import HealthSnapshot, ReconciliationSnapshot
from playdeck.runtime.strategy.session import SessionSnapshot, Transition

__all__ = ["ConsoleSnapshot", "Entry", "FillMark", "MarketWindow", "OrderDetail", "ReplayStatus", "TradeStats",
           "market_window", "position_entries", "price_scale_features", "trade_stats"]


@attrs.frozen
class FillMark:
    bar: int
    side: str  # buy | sell
    price: float
    qty: float


@attrs.frozen
class MarketWindow:
    """The last exec bars up to the session's bar, with the Play's price-scale features and fills."""

    first_bar: int
    ts: tuple[int, ...]
    open: tuple[float, ...]
    high: tuple[float, ...]
    low: tuple[float, ...]
    close: tuple[float, ...]
    volume: tuple[float, ...]
    features: tuple[tuple[str, tuple[float, ...]], ...]  # (name, values; NaN while warming up)
    fills: tuple[FillMark, ...]

    def __len__(self) -> int:
        return len(self.ts)


@attrs.frozen
class Entry:
    """One layer of the open position: a fill that opened it or added to it (its part that did)."""

    bar: int
    ts: int
    side: str
    qty: float
    price: float
    tag: str | None


@attrs.frozen
class OrderDetail:
    order: OrderSnapshot
    transitions: tuple[Transition, ...]
    working: bool


@attrs.frozen
class ReplayStatus:
    bar: int  # the last bar the session has closed (-1 before the first)
    bars: int  # in the data
    speed: float  # visible bars per second; inf: as fast as it goes
    visible_from: int  # bars before it ran at full speed (warm-up and the quiet start)
    held: bool  # waiting at a hold point (a test's fixed point), bars do not advance
    finished: bool  # the data ended
    pace: str = "replay"  # replay: the simulator, lockstep: the in-process emulator (both at `speed`);
    # venue: a running venue's own clock (`speed` means nothing there)


@attrs.frozen
class TradeStats:
    count: int
    wins: int
    net_pnl: float  # of the closed trades, fees included
    best: float
    worst: float

    @property
    def win_rate(self) -> float:
        return math.nan if self.count == 0 else self.wins / self.count


@attrs.frozen
class ConsoleSnapshot:
    play: str
    symbol: str
    exec_tf: str
    backend: str  # sim | emulator | demo | live
    initial_equity: float
    session: SessionSnapshot
    market: MarketWindow
    entries: tuple[Entry, ...]
    selected: OrderDetail | None  # the order the operator selected, with its transitions
    health: HealthSnapshot
    reconciliation: ReconciliationSnapshot
    replay: ReplayStatus
    pnl_today: float  # equity now minus equity at the last close before 00:00 UTC of this bar's day
    trade_stats: TradeStats
    equity_curve: tuple[tuple[int, float], ...]  # (bar, equity at its close), the recent visible bars
    trade_times: tuple[tuple[int, int], ...]  # (entry, exit) bar open times of session.trades, in order

    @property
    def working_ids(self) -> tuple[str, ...]:
        return tuple(o.client_id for o in self.session.working)


def market_window(ts: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray, v: np.ndarray,
                  features: Sequence[tuple[str, np.ndarray]], fills: Sequence[Fill], end: int,
                  width: int) -> MarketWindow:
    """Bars [end - width + 1, end] (those that exist) with their features and the fills inside them."""
    last = min(end, len(c) - 1)
    first = max(0, last - width + 1)
    sl = slice(first, last + 1)
    marks = []
    # Fills are in bar order: walk back from the newest until the window's start.
    for f in reversed(fills):
        if f.bar < first:
            break
        if f.bar <= last:
            marks.append(FillMark(f.bar, f.side.value, f.price, f.qty))
    marks.reverse()
    return MarketWindow(first, tuple(int(x) for x in ts[sl]), *(tuple(map(float, a[sl])) for a in (o, h, l, c, v)),
                        tuple((name, tuple(map(float, arr[sl]))) for name, arr in features), tuple(marks))


def price_scale_features(close: np.ndarray, candidates: Sequence[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """The features worth drawing over the price: numeric series whose typical value is within a
    factor 2 of the typical close (EMAs, bands, pivots), not oscillators or volatility (RSI, ATR),
    which would flatten the price line to the bottom of the chart."""
    typical = float(np.nanmedian(close)) if len(close) else math.nan
    out = []
    for name, arr in candidates:
        values = np.asarray(arr)
        if values.dtype.kind != "f" or len(values) != len(close):
            continue  # a condition (bool) or a series of another timeframe
        known = values[~np.isnan(values)]
        if len(known) and typical > 0 and 0.5 <= float(np.median(known)) / typical <= 2.0:
            out.append((name, values))
    return out


def position_entries(fills: Sequence[Fill], qty: float, ts_of_bar: np.ndarray) -> tuple[Entry, ...]:
    """The layers of the position `qty` (signed) from the fills, oldest first: the fills on its side
    since it opened, each with the part that opened or added (the first may have closed an opposite
    position before it opened this one). Walks back from the newest fill, undoing each, until the
    position did not exist yet."""
    if qty == 0.0:
        return ()
    sign = 1.0 if qty > 0 else -1.0
    after = qty
    found: list[Entry] = []
    for f in reversed(fills):
        before = after - f.side.sign * f.qty
        # Float noise of the undo must not keep a closed position alive: a step is >= 1e-8 here.
        if abs(before) < 1e-9:
            before = 0.0
        if f.side.sign == sign:
            opened = f.qty if sign * before > 0 else sign * after  # it opened the position: its part on our side
            found.append(Entry(f.bar, int(ts_of_bar[f.bar]), f.side.value, round(opened, 12), f.price, f.tag))
        if sign * before <= 0:
            break  # the position did not exist before this fill
        after = before
    found.reverse()
    return tuple(found)


def trade_stats(trades: Sequence[Trade]) -> TradeStats:
    pnls = [t.pnl for t in trades]
    return TradeStats(len(pnls), sum(1 for p in pnls if p > 0), math.fsum(pnls),
                      max(pnls) if pnls else math.nan, min(pnls) if pnls else math.nan)
