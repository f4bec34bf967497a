"""The console on the simulator: a Session replaying recorded bars at a visible pace, the operator's
commands applied between bars, and a `ConsoleSnapshot` published after each bar (what every
driver of the console shares, commands, snapshots and pacing, is in tui/driver.py).

No Textual here. The app owns a `Replay`, runs `run()` as its own task and hands it commands with
`send()`; the replay calls `publish(snapshot)` and never waits for a screen, so a slow screen
skips snapshots (the app's message replaces an unread one) and never slows the engine.

Pacing: the warm-up and the quiet bars before the Play's first order run at full speed (the
visible replay starts a few bars before that first order, found by a dry run of the same plan on
the same bars, so a Play whose readiness is 3,000 bars shows its first orders within seconds);
then `speed` bars a second. A hold point (`hold_at`) stops the bars after that bar while commands
still run: the fixed points of the console's tests, and where a replay waits once the data ends.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from playdeck.compiler.lower import ExecutionPlan
from playdeck.runtime.backtest.run import Backtest, BacktestError, detail_bars, exec_bars, funding_series, prepare
from playdeck.runtime.data.bars import Bars
from playdeck.runtime.strategy.session import Session
from playdeck.tui.driver import (DEFAULT_SPEED, HISTORY, LEAD, SPEEDS, Command, OperatorCommand, SessionDriver,
                                 feature_series)
from playdeck.tui.snapshot import ConsoleSnapshot, price_scale_features

__all__ = ["Command", "HISTORY", "OperatorCommand", "Replay", "SPEEDS", "first_order_bar", "load_replay"]


def load_replay(play_path: str, data: str | None = None, data_tf: str | None = None,
                gaps: str | None = None) -> tuple[ExecutionPlan, Backtest, Bars]:
    """Compile the Play and wire it to its data as `playdeck backtest` does (the same bars, magnifier
    and funding rates), with a TradingState that keeps its events (each order's transitions)."""
    from playdeck.compiler import compile_file
    from playdeck.compiler.lower import lower
    from playdeck.runtime.data.sources import load_bars

    plan = lower(compile_file(play_path).ir)
    market = plan.play.market
    loaded = load_bars(market.symbol, data, data_tf, None, market.exec_tf, gaps)
    bars = exec_bars(loaded.bars, market.exec_tf)
    bt = prepare(plan, bars, where=play_path, keep_events=True,
                 detail=detail_bars(loaded.bars, plan.play.account.magnifier), funding_rates=funding_series(loaded.bars))
    if bt.engine.ready_bar >= len(bars) - 1:
        raise BacktestError(f"the Play cannot trade on this data: its features are ready at bar "
                            f"{bt.engine.ready_bar}, and the data has {len(bars)} {market.exec_tf} bars")
    return plan, bt, bars


def first_order_bar(plan: ExecutionPlan, bars: Bars, chunk: int = 2048) -> int | None:
    """The bar at whose close the Play sends its first order on `bars`, from a dry run of the same
    plan (the Session does bar by bar what the engine does, so the replay's first order is this
    one); None when it never sends one. Runs in chunks and stops at the first order."""
    dry = prepare(plan, bars)
    engine = dry.engine
    start = engine.ready_bar
    while start < len(bars):
        _run_simulated(engine.run(start, start + chunk))
        if dry.state.orders:
            return min(r.request.created_bar for r in dry.state.orders.values())
        start += chunk
    return None


def _run_simulated(coro: Any) -> Any:
    """Run a coroutine over the simulator to its end without an event loop: the simulator answers
    without ever suspending (runtime/sim/backend.py), so one `send` finishes it. This works inside
    a running loop too (the app's), where asyncio.run cannot."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the simulated run suspended; it must not wait for anything")


class Replay(SessionDriver):
    def __init__(self, plan: ExecutionPlan, bt: Backtest, bars: Bars, *, speed: float = DEFAULT_SPEED,
                 visible_from: int | None = None, hold_at: int | None = None, backend: str = "sim",
                 publish: Callable[[ConsoleSnapshot], None] | None = None) -> None:
        """`visible_from`: the first bar shown at `speed` (default: LEAD bars before the first order,
        see `first_order_bar`); `hold_at`: stop after this bar until a STEP command moves it."""
        super().__init__(plan, speed=speed, hold_at=hold_at, backend=backend, publish=publish)
        self.session = Session(bt.engine, history=HISTORY)
        self.bars = bars
        n = len(bars)
        if visible_from is None:
            first = first_order_bar(plan, bars)
            visible_from = (first if first is not None else self.session.ready_bar) - LEAD
        self.visible_from = min(max(0, visible_from), n)
        self._ts = np.asarray(bars.ts_open)
        self._arrays = (self._ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
        self._features = price_scale_features(bars.close, feature_series(plan, bt.engine))
        self._next = 0  # the bar to close next

    def bar_count(self) -> int:
        return len(self.bars)

    def market(self) -> tuple[tuple[np.ndarray, ...], list[tuple[str, np.ndarray]]]:
        return self._arrays, self._features

    def bar_ts(self) -> np.ndarray:
        return self._ts

    def bar_close(self, i: int) -> tuple[int, float]:
        return int(self._ts[i]), float(self.bars.close[i])

    async def run(self) -> None:
        """Replay every bar, then keep serving commands (flatten, kill ...) until stopped. Once:
        the session cannot go back to bar 0."""
        self._start()
        if await self.paced(lambda: self._next, self._close_next):
            await self.serve_after_the_end()

    async def _close_next(self) -> int | None:
        i = self._next
        if i >= len(self.bars):
            return None
        await self.session.bar(i)
        self._next = i + 1
        return i
