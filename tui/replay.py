"""The console's runtime side: a Session replaying recorded bars at a visible pace, the operator's
commands applied between bars, and a `ConsoleSnapshot` published after each bar.

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

import asyncio
import enum
import math
import time
from collections import deque
from typing import Any, Callable

import attrs
import numpy as np

from playdeck.compiler import ir
from playdeck.compiler.lower import ExecutionPlan
from playdeck.runtime.backtest.run import Backtest, BacktestError, detail_bars, exec_bars, funding_series, prepare
from playdeck.runtime.data.bars import Bars
from playdeck.runtime.strategy.session import Mode, Session
from playdeck.tui.snapshot import (ConsoleSnapshot, OrderDetail, ReplayStatus, market_window, position_entries,
                                   price_scale_features, trade_stats)

__all__ = ["Command", "OperatorCommand", "Replay", "SPEEDS", "first_order_bar", "load_replay"]

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, math.inf)  # bars per second
DEFAULT_SPEED = 4.0
LEAD = 12  # visible bars before the first order: the run-up is seen, and it comes within seconds
WINDOW = 120  # bars in the market window
EQUITY_POINTS = 2000  # visible bars kept for the equity curve
PUBLISH_EVERY_S = 1 / 30  # at high speed, at most this often (a screen cannot show more)
DAY_MS = 86_400_000
FAST_CHUNK = 512  # bars run at full speed between two looks at the screen and the commands
HISTORY = 200  # log lines, finished orders and trades a snapshot carries


class Command(enum.Enum):
    TOGGLE_PAUSE = "pause/resume"
    CANCEL = "cancel"  # arg: client id
    FLATTEN = "flatten"
    KILL = "kill"
    RECONCILE = "reconcile"
    FASTER = "faster"
    SLOWER = "slower"
    SELECT = "select"  # arg: client id or None: whose transitions the snapshots carry
    STEP = "step"  # arg: bars to move the hold point on


@attrs.frozen
class OperatorCommand:
    kind: Command
    arg: Any = None


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


class Replay:
    def __init__(self, plan: ExecutionPlan, bt: Backtest, bars: Bars, *, speed: float = DEFAULT_SPEED,
                 visible_from: int | None = None, hold_at: int | None = None, backend: str = "sim",
                 publish: Callable[[ConsoleSnapshot], None] | None = None) -> None:
        """`visible_from`: the first bar shown at `speed` (default: LEAD bars before the first order,
        see `first_order_bar`); `hold_at`: stop after this bar until a STEP command moves it."""
        self.plan = plan
        self.session = Session(bt.engine, history=HISTORY)
        self.bars = bars
        self.speed = speed
        self.backend = backend
        self.publish = publish
        self.hold_at = hold_at
        n = len(bars)
        if visible_from is None:
            first = first_order_bar(plan, bars)
            visible_from = (first if first is not None else self.session.ready_bar) - LEAD
        self.visible_from = min(max(0, visible_from), n)
        self._ts = np.asarray(bars.ts_open)
        self._arrays = (self._ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
        self._features = price_scale_features(bars.close, _feature_series(plan, bt))
        self._commands: asyncio.Queue[OperatorCommand] | None = None  # made in run()'s loop
        self._early: list[OperatorCommand] = []  # sent before run() started
        self._selected: str | None = None
        self._equity_curve: deque[tuple[int, float]] = deque(maxlen=EQUITY_POINTS)
        self._day = -1
        self._day_start_equity = plan.play.account.equity
        self._last_equity = plan.play.account.equity
        self._finished = False
        self._held = False
        self._last_publish = -math.inf

    # ------------------------------------------------------------------ the app's side
    def send(self, command: OperatorCommand) -> None:
        """Queue an operator's command; it runs between bars, in the order sent."""
        if self._commands is None:
            self._early.append(command)
        else:
            self._commands.put_nowait(command)

    def snapshot(self) -> ConsoleSnapshot:
        s = self.session
        snap = s.snapshot()
        bar = s.bar_index
        state = s.state
        selected = None
        if self._selected is not None:
            rec = state.orders.get(self._selected)
            if rec is not None:
                selected = OrderDetail(rec.snapshot(), s.transitions(rec.order_id), not rec.status.is_final)
        market = self.plan.play.market
        return ConsoleSnapshot(
            play=self.plan.play.name, symbol=market.symbol, exec_tf=market.exec_tf, backend=self.backend,
            initial_equity=self.plan.play.account.equity, session=snap,
            market=market_window(*self._arrays, self._features, state.fills, max(bar, 0), WINDOW),
            entries=position_entries(state.fills, state.position.qty, self._ts), selected=selected,
            health=s.health(), reconciliation=s.reconciliation(),
            replay=ReplayStatus(bar, len(self.bars), self.speed, self.visible_from, self._held, self._finished),
            pnl_today=self._last_equity - self._day_start_equity, trade_stats=trade_stats(state.trades),
            equity_curve=tuple(self._equity_curve),
            trade_times=tuple((int(self._ts[t.entry_bar]), int(self._ts[t.exit_bar])) for t in snap.trades))

    # ------------------------------------------------------------------ the task
    async def run(self) -> None:
        """Replay every bar, then keep serving commands (flatten, kill ...) until cancelled. Once:
        the session cannot go back to bar 0."""
        if self._commands is not None:
            raise RuntimeError("a Replay runs once")
        self._commands = asyncio.Queue()
        for c in self._early:
            self._commands.put_nowait(c)
        self._early.clear()
        s = self.session
        n = len(self.bars)
        loop = asyncio.get_running_loop()
        last = loop.time()  # when the last visible bar was shown
        i = 0
        while i < n:
            while self.hold_at is not None and i > self.hold_at:
                self._held = True
                self._publish(force=True)
                await self._run(await self._commands.get())
            self._held = False
            await s.bar(i)
            self._after_bar(i)
            i += 1
            if i < self.visible_from:
                # Warm-up and the quiet start at full speed; a yield (and the commands) every chunk
                # keeps the screen alive during a long warm-up.
                if i % FAST_CHUNK == 0:
                    await self._run_queued()
                    self._publish(force=True)
                    await asyncio.sleep(0)
                continue
            self._publish(force=self.speed <= 1 / PUBLISH_EVERY_S)
            # At most one bar behind: after a stall (or the warm-up) the replay does not race to catch up.
            last = max(last, loop.time() - (0.0 if math.isinf(self.speed) else 1.0 / self.speed))
            last = await self._wait_next(last)
        s.finish()
        self._finished = self._held = True
        self._publish(force=True)
        while True:  # the data ended: the operator can still cancel, flatten, kill
            await self._run(await self._commands.get())

    def _after_bar(self, i: int) -> None:
        state = self.session.state
        equity = state.equity(float(self.bars.close[i]))
        day = int(self._ts[i]) // DAY_MS
        if day != self._day:
            # PnL today counts from the last close before this day began (the first bar: the start).
            self._day_start_equity = self._last_equity
            self._day = day
        self._last_equity = equity
        if i >= self.visible_from:
            self._equity_curve.append((i, equity))

    async def _wait_next(self, last: float) -> float:
        """Wait until the next bar is due (1/speed after `last`), running commands as they come;
        the deadline is read again after each, so `+` or `-` is felt at once. Returns when the bar
        was due."""
        loop = asyncio.get_running_loop()
        await self._run_queued()
        while True:
            due = last + (0.0 if math.isinf(self.speed) else 1.0 / self.speed)
            left = due - loop.time()
            if left <= 0:
                await asyncio.sleep(0)  # let the screen and the commands in even at full speed
                return due
            try:
                command = await asyncio.wait_for(self._commands.get(), left)
            except TimeoutError:
                return due
            await self._run(command)

    async def _run_queued(self) -> None:
        while not self._commands.empty():
            await self._run(self._commands.get_nowait())

    async def _run(self, c: OperatorCommand) -> None:
        s = self.session
        try:
            await self._do(c)
        except Exception as e:  # an operator's command must never end the replay; it is said in the log
            s.log.append(f"bar {s.bar_index}: error: {c.kind.value} failed: {type(e).__name__}: {e}")
        self._publish(force=True)

    async def _do(self, c: OperatorCommand) -> None:
        s = self.session
        kind = c.kind
        if kind is Command.TOGGLE_PAUSE:
            if s.mode is Mode.TRADING:
                s.pause()
            elif s.mode is Mode.PAUSED:
                s.resume()
            else:
                s.log.append(f"bar {s.bar_index}: pause: not trading ({s.mode.value})")
        elif kind is Command.CANCEL:
            await s.cancel(c.arg)
        elif kind is Command.FLATTEN:
            await s.flatten()
        elif kind is Command.KILL:
            await s.kill()
        elif kind is Command.RECONCILE:
            await s.reconcile()
        elif kind is Command.FASTER:
            self.speed = next((v for v in SPEEDS if v > self.speed), SPEEDS[-1])
        elif kind is Command.SLOWER:
            self.speed = next((v for v in reversed(SPEEDS) if v < self.speed), SPEEDS[0])
        elif kind is Command.SELECT:
            self._selected = c.arg
        elif kind is Command.STEP:
            base = self.hold_at if self.hold_at is not None else s.bar_index
            self.hold_at = base + int(c.arg)
        else:
            raise ValueError(f"unknown command {kind}")

    def _publish(self, force: bool = False) -> None:
        if self.publish is None:
            return
        now = time.monotonic()
        # At speeds past what a screen shows, skip snapshots (what is drawn at a hold point, or
        # after a command, is always published, so tests and the operator see the latest).
        if not force and now - self._last_publish < PUBLISH_EVERY_S:
            return
        self._last_publish = now
        self.publish(self.snapshot())


def _feature_series(plan: ExecutionPlan, bt: Backtest) -> list[tuple[str, np.ndarray]]:
    """Every feature (each output of a multi-output one) on the exec bars, by name."""
    series = bt.engine.series
    out = []
    for f in plan.features:
        for field in f.fields or (None,):
            name = f.name if field is None else f"{f.name}.{field}"
            out.append((name, series.exec(ir.FeatureRef(f.name, field, f.tf, f.expr.type))))
    return out
