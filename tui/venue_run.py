"""The console on a venue: `playdeck run` (the same LiveRun, BybitBackend and journal) with the
console's commands and snapshots around it.

Two paces. On the in-process emulator (`--backend emulator` without `--endpoint`) the run is in
lockstep, as `playdeck run` is there, and the console sets the pace as it does for a replay: the
warm-up and the quiet bars before the Play's first order at full speed, then `speed` bars a second,
the emulator stepped fill by fill in between. On a running venue (`--endpoint`, demo, live) the
venue's clock rules: the run follows its streams in its own task, the operator's commands wait for
the run's lock (never inside a bar's work), and the screen is refreshed after each bar and every
second (the health pane's ages move while no bar closes).

Quitting ends the run at a bar boundary: its requests are answered and journalled, the streams
closed, the report and files written to the run's folder (`report`, `out_dir`, `journal_path`).
Orders still working stay working at the venue, and in the journal a restart reads back.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any, AsyncContextManager, Callable, Sequence

import attrs
import numpy as np

from playdeck.compiler.lower import ExecutionPlan
from playdeck.runtime.bybit.runner import LiveRun, RunConfig, emulator_bars, emulator_for, live_run
from playdeck.runtime.data.bars import Bars, tf_ms
from playdeck.tui.driver import DEFAULT_SPEED, LEAD, Command, OperatorCommand, SessionDriver, feature_series
from playdeck.tui.replay import first_order_bar
from playdeck.tui.snapshot import ConsoleSnapshot, price_scale_features

__all__ = ["VenueRun"]

REFRESH_S = 1.0  # a running venue: the screen is redrawn at least this often
# The run's own lines the log pane leaves out: the session logs each intent itself, and an order's
# every change is in the orders pane (fills, drift, reconnects, refusals and errors stay).
_NOT_LOGGED = re.compile(r"^bar -?\d+: (intent|order) ")


class VenueRun(SessionDriver):
    def __init__(self, cfg: RunConfig, plan: ExecutionPlan, *, speed: float = DEFAULT_SPEED,
                 hold_at: int | None = None, visible_from: int | None = None,
                 publish: Callable[[ConsoleSnapshot], None] | None = None, bars: Bars | None = None,
                 emulator_options: dict[str, Any] | None = None) -> None:
        """`cfg` as for `playdeck run` (its `echo` is the console's log; events are kept for the
        order transitions). `visible_from` (lockstep only): the first bar shown at `speed`, default
        LEAD bars before the Play's first order on the emulator's data; `hold_at` as for a replay.
        `bars` (lockstep only): the emulator's exec bars when the caller has read them already."""
        super().__init__(plan, speed=speed, hold_at=hold_at, backend=cfg.backend, publish=publish)
        self.lockstep = cfg.backend == "emulator" and cfg.endpoint is None
        self.pace = "lockstep" if self.lockstep else "venue"
        self.cfg = attrs.evolve(cfg, echo=self._echo, keep_events=True)
        self.emulator_options = emulator_options or {}
        self._bars = bars
        self._visible_from = visible_from
        self._early_lines: list[str] = []
        self._features_for = -1
        self._features: list[tuple[str, np.ndarray]] = []
        self.live: LiveRun | None = None
        self.emu: Any | None = None
        self.report: dict[str, Any] | None = None
        self.error: BaseException | None = None  # what ended the run, when something did
        self.out_dir: str | None = None
        self.journal_path: str | None = None

    # ------------------------------------------------------------------ what the driver asks
    def bar_count(self) -> int:
        if self.lockstep and self.emu is not None:
            return int(self.emu.venue.n_bars)
        return 0 if self.live is None else len(self.live.bars)

    def market(self) -> tuple[Sequence[np.ndarray], list[tuple[str, np.ndarray]]]:
        run = self.live
        assert run is not None and run.engine is not None
        bars = run.bars.bars()
        if self._features_for != len(bars):  # the features grow with the bars; read once a bar
            self._features = price_scale_features(bars.close, feature_series(self.plan, run.engine))
            self._features_for = len(bars)
        return (np.asarray(bars.ts_open), bars.open, bars.high, bars.low, bars.close, bars.volume), self._features

    def bar_ts(self) -> np.ndarray:
        # a fill at a live venue may be in the bar still forming: one open time past the last bar
        ts = np.asarray(self.market()[0][0])
        return np.append(ts, ts[-1] + tf_ms(self.plan.play.market.exec_tf)) if len(ts) else ts

    def bar_close(self, i: int) -> tuple[int, float]:
        ts, _, _, _, close = self.live.bars.row(i)
        return int(ts), float(close)

    def command_guard(self) -> AsyncContextManager[Any]:
        # Lockstep: commands run in the run's own task between steps. A venue's run has its own
        # task: a command waits until the bar in progress is done.
        if self.lockstep or self.live is None:
            return super().command_guard()
        return self.live.lock

    # ------------------------------------------------------------------ the task
    async def run(self) -> None:
        """Start the run (connect, warm up, reconcile), trade until stopped (or, in lockstep, to the
        end of the emulator's data, then serve commands until stopped), then finish it."""
        self._start()
        try:
            await self._run_venue()
        except Exception as e:  # said by the app now, and by the command line after the screen is gone
            self.error = e
            raise
        self._finished = True
        self._publish(force=True)

    async def _run_venue(self) -> None:
        cfg = self.cfg
        if self.lockstep:
            if self._bars is None:
                self._bars = emulator_bars(cfg, self.plan)
            self.emu = await emulator_for(cfg, self.plan, self._bars, **self.emulator_options)
        try:
            async with live_run(cfg, self.plan, self.emu) as run:
                self.live = run
                self.session = run.session
                self.out_dir, self.journal_path = str(run.out_dir), str(run.journal_path)
                for line in self._early_lines:
                    self.session.log.append(line)
                self._early_lines.clear()
                self.visible_from = self._first_visible(run)
                if self.lockstep:
                    await self._run_lockstep(run)
                else:
                    await self._run_streaming(run)
                run.stopping.set()
                await run.stop_streams()
                self.report = run.finish()
        finally:
            if self.emu is not None:
                await self.emu.stop()

    def _first_visible(self, run: LiveRun) -> int:
        if not self.lockstep:
            return run.session.trade_from  # the bars before are history, read at once
        if self._visible_from is not None:
            return self._visible_from
        first = first_order_bar(self.plan, self._bars)
        return max(0, (first if first is not None else run.engine.ready_bar) - LEAD)

    async def _run_lockstep(self, run: LiveRun) -> None:
        run.on_bar = self.after_bar
        await run.warm_bars()

        async def close_next() -> int | None:
            while True:  # steps until one closes a bar (the fills inside it are answered on the way)
                step = await run.step_once()
                if step["end"]:
                    return None
                if step["closed"]:
                    return run.last_bar

        run.on_bar = None  # paced() follows each bar it closes itself
        if await self.paced(lambda: run.last_bar + 1, close_next):
            await self.serve_after_the_end()

    async def _run_streaming(self, run: LiveRun) -> None:
        def bar_done(i: int) -> None:
            self.after_bar(i)
            self._publish(force=i >= self.visible_from)

        run.on_bar = bar_done
        follow = asyncio.create_task(run.run_streaming())
        try:
            while not self._stopping:
                getter = asyncio.create_task(self._commands.get())
                done, _ = await asyncio.wait({getter, follow}, timeout=REFRESH_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await self._run(getter.result())
                else:
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                if follow in done:
                    follow.result()  # the run stopped itself: a stream refused for good, an error
                    break
                self._publish(force=True)
        finally:
            run.stopping.set()
            await asyncio.gather(follow, return_exceptions=True)

    async def _do(self, c: OperatorCommand) -> None:
        if c.kind in (Command.FASTER, Command.SLOWER) and not self.lockstep:
            self.session.log.append(f"bar {self.session.bar_index}: {c.kind.value}: the venue's clock sets the pace")
            return
        await super()._do(c)

    # ------------------------------------------------------------------ the run's lines
    def _echo(self, line: str) -> None:
        if _NOT_LOGGED.match(line):
            return
        if self.session is None:
            self._early_lines.append(line)  # the warm-up and the journal's read-back come first
        else:
            self.session.log.append(line)
