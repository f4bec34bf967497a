"""What the console's runtime side does whatever the venue: it owns a Session, takes the operator's
commands (queued, run between bars), keeps the day's PnL and the equity curve, paces the visible
bars, and publishes a frozen `ConsoleSnapshot` after each bar.

No Textual here. The app runs `run()` as its own task, hands it commands with `send()` and asks it
to `stop()` before quitting; the driver calls `publish(snapshot)` and never waits for a screen, so
a slow screen skips snapshots (the app's message replaces an unread one) and never slows the engine.

Two drivers: `Replay` (tui/replay.py) replays recorded bars through the simulator; `VenueRun`
(tui/venue_run.py) is `playdeck run` on the emulator, Bybit demo or live. Both close bars with
`paced()` when they set the pace themselves (the simulator, the lockstep emulator): the warm-up and
the quiet bars before the Play's first order at full speed, then `speed` bars a second, stopping
after `hold_at` until a STEP command moves it (the fixed points of the console's tests).
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import time
from collections import deque
from typing import Any, AsyncContextManager, Callable, Sequence

import attrs
import numpy as np

from playdeck.compiler import ir
from playdeck.compiler.lower import ExecutionPlan
from playdeck.runtime.strategy.engine import Engine
from playdeck.runtime.strategy.session import Mode, Session
from playdeck.tui.snapshot import (ConsoleSnapshot, OrderDetail, ReplayStatus, market_window, position_entries,
                                   trade_stats)

__all__ = ["Command", "DEFAULT_SPEED", "HISTORY", "LEAD", "OperatorCommand", "SPEEDS", "SessionDriver",
           "feature_series"]

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, math.inf)  # bars per second
DEFAULT_SPEED = 4.0
LEAD = 12  # visible bars before the first order: the run-up is seen, and it comes within seconds
WINDOW = 120  # bars in the market window
EQUITY_POINTS = 2000  # visible bars kept for the equity curve
PUBLISH_EVERY_S = 1 / 30  # at high speed, at most this often (a screen cannot show more)
DAY_MS = 86_400_000
FAST_CHUNK = 512  # bars run at full speed between two looks at the screen and the commands
HISTORY = 200  # log lines, finished orders and trades a snapshot carries
STOP_WAIT_S = 30.0  # how long `stop()` lets the bar in progress end before cancelling it


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
    STOP = "stop"  # the app is quitting: end `run()` at the next bar boundary (sent by `stop()`)


@attrs.frozen
class OperatorCommand:
    kind: Command
    arg: Any = None


class SessionDriver:
    """The common part of the console's drivers (see the module docstring). A subclass sets
    `session` (before `run()` starts), closes bars, and says where the bars and features are."""

    pace = "replay"  # how the header names the pace: replay (simulator), lockstep (emulator), venue

    def __init__(self, plan: ExecutionPlan, *, speed: float = DEFAULT_SPEED, hold_at: int | None = None,
                 backend: str = "sim", publish: Callable[[ConsoleSnapshot], None] | None = None) -> None:
        self.plan = plan
        self.session: Session | None = None
        self.speed = speed
        self.backend = backend
        self.publish = publish
        self.hold_at = hold_at
        self.visible_from = 0  # bars before it run at full speed
        self._commands: asyncio.Queue[OperatorCommand] | None = None  # made in run()'s loop
        self._early: list[OperatorCommand] = []  # sent before run() started
        self._selected: str | None = None
        self._equity_curve: deque[tuple[int, float]] = deque(maxlen=EQUITY_POINTS)
        self._day = -1
        self._day_start_equity = plan.play.account.equity
        self._last_equity = plan.play.account.equity
        self._finished = False
        self._held = False
        self._stopping = False
        self._task: asyncio.Task[Any] | None = None
        self._last_publish = -math.inf

    # ------------------------------------------------------------------ what a subclass says
    def bar_count(self) -> int:
        """Bars of the data (a replay) or known so far (a venue)."""
        raise NotImplementedError

    def market(self) -> tuple[Sequence[np.ndarray], list[tuple[str, np.ndarray]]]:
        """(ts, open, high, low, close, volume) of the exec bars, and the price-scale features."""
        raise NotImplementedError

    def bar_ts(self) -> np.ndarray:
        """Open time of each bar a fill or trade can name (a live fill may be in the forming bar)."""
        return np.asarray(self.market()[0][0])

    def command_guard(self) -> AsyncContextManager[Any]:
        """Held while an operator's command runs (a venue's run lock: not inside a bar's work)."""
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ the app's side
    def send(self, command: OperatorCommand) -> None:
        """Queue an operator's command; it runs between bars, in the order sent."""
        if self._commands is None:
            self._early.append(command)
        else:
            self._commands.put_nowait(command)

    async def stop(self) -> None:
        """End `run()` at the next bar boundary and wait for it (at most STOP_WAIT_S, then it is
        cancelled): a bar's requests are answered and journalled before the app goes away."""
        self._stopping = True
        self.send(OperatorCommand(Command.STOP))  # wakes a wait for the next bar or a command
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def snapshot(self) -> ConsoleSnapshot:
        s = self.session
        assert s is not None, "a snapshot needs a session"
        snap = s.snapshot()
        bar = s.bar_index
        state = s.state
        selected = None
        if self._selected is not None:
            rec = state.orders.get(self._selected)
            if rec is not None:
                selected = OrderDetail(rec.snapshot(), s.transitions(rec.order_id, rec.client_id),
                                       not rec.status.is_final)
        arrays, features = self.market()
        ts = self.bar_ts()
        market = self.plan.play.market
        return ConsoleSnapshot(
            play=self.plan.play.name, symbol=market.symbol, exec_tf=market.exec_tf, backend=self.backend,
            initial_equity=self.plan.play.account.equity, session=snap,
            market=market_window(*arrays, features, state.fills, max(bar, 0), WINDOW),
            entries=position_entries(state.fills, state.position.qty, ts), selected=selected,
            health=s.health(), reconciliation=s.reconciliation(),
            replay=ReplayStatus(bar, self.bar_count(), self.speed, self.visible_from, self._held, self._finished,
                                self.pace),
            pnl_today=self._last_equity - self._day_start_equity, trade_stats=trade_stats(state.trades),
            equity_curve=tuple(self._equity_curve),
            trade_times=tuple((int(ts[t.entry_bar]), int(ts[t.exit_bar])) for t in snap.trades))

    # ------------------------------------------------------------------ the task
    def _start(self) -> None:
        if self._commands is not None:
            raise RuntimeError(f"a {type(self).__name__} runs once")
        self._task = asyncio.current_task()
        self._commands = asyncio.Queue()
        for c in self._early:
            self._commands.put_nowait(c)
        self._early.clear()

    async def paced(self, next_bar: Callable[[], int], close_next: Callable[[], Any]) -> bool:
        """Close bars with `close_next()` (the index of the bar it closed, None at the end of the
        data) at the console's pace; `next_bar()` is the bar it would close next. Returns True at the
        end of the data, False when stopped."""
        loop = asyncio.get_running_loop()
        last = loop.time()  # when the last visible bar was shown
        while not self._stopping:
            while self.hold_at is not None and next_bar() > self.hold_at and not self._stopping:
                self._held = True
                self._publish(force=True)
                await self._run(await self._commands.get())
            self._held = False
            if self._stopping:
                break
            i = await close_next()
            if i is None:
                return True
            self.after_bar(i)
            if i + 1 < self.visible_from:
                # Warm-up and the quiet start at full speed; a yield (and the commands) every chunk
                # keeps the screen alive during a long warm-up.
                if (i + 1) % FAST_CHUNK == 0:
                    await self._run_queued()
                    self._publish(force=True)
                    await asyncio.sleep(0)
                continue
            self._publish(force=self.speed <= 1 / PUBLISH_EVERY_S)
            # At most one bar behind: after a stall (or the warm-up) the pace does not race to catch up.
            last = max(last, loop.time() - (0.0 if math.isinf(self.speed) else 1.0 / self.speed))
            last = await self._wait_next(last)
        return False

    async def serve_after_the_end(self) -> None:
        """The data ended: the session is finished, and the operator can still cancel, flatten, kill."""
        self.session.finish()
        self._finished = self._held = True
        self._publish(force=True)
        while not self._stopping:
            await self._run(await self._commands.get())

    def after_bar(self, i: int) -> None:
        """Bar i has closed: the day's PnL and the equity curve follow it."""
        ts, close = self.bar_close(i)
        equity = self.session.state.equity(close)
        day = ts // DAY_MS
        if day != self._day:
            # PnL today counts from the last close before this day began (the first bar: the start).
            self._day_start_equity = self._last_equity
            self._day = day
        self._last_equity = equity
        if i >= self.visible_from:
            self._equity_curve.append((i, equity))

    def bar_close(self, i: int) -> tuple[int, float]:
        """(open time, close) of bar i."""
        arrays, _ = self.market()
        return int(arrays[0][i]), float(arrays[4][i])

    async def _wait_next(self, last: float) -> float:
        """Wait until the next bar is due (1/speed after `last`), running commands as they come;
        the deadline is read again after each, so `+` or `-` is felt at once. Returns when the bar
        was due."""
        loop = asyncio.get_running_loop()
        await self._run_queued()
        while not self._stopping:
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
        return last

    async def _run_queued(self) -> None:
        while not self._commands.empty() and not self._stopping:
            await self._run(self._commands.get_nowait())

    async def _run(self, c: OperatorCommand) -> None:
        s = self.session
        if c.kind is Command.STOP:
            self._stopping = True
            return
        try:
            async with self.command_guard():
                await self._do(c)
        except Exception as e:  # an operator's command must never end the run; it is said in the log
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
        if self.publish is None or self.session is None:
            return
        now = time.monotonic()
        # At speeds past what a screen shows, skip snapshots (what is drawn at a hold point, or
        # after a command, is always published, so tests and the operator see the latest).
        if not force and now - self._last_publish < PUBLISH_EVERY_S:
            return
        self._last_publish = now
        self.publish(self.snapshot())


def feature_series(plan: ExecutionPlan, engine: Engine) -> list[tuple[str, np.ndarray]]:
    """Every feature (each output of a multi-output one) on the exec bars, by name."""
    series = engine.series
    out = []
    for f in plan.features:
        for field in f.fields or (None,):
            name = f.name if field is None else f"{f.name}.{field}"
            out.append((name, series.exec(ir.FeatureRef(f.name, field, f.tf, f.expr.type))))
    return out
