"""A fixed replay for the console's tests: ema_pullback on 60,000 synthetic minutes (seed 9), 4,000
15m bars. Its readiness is bar 3199 and its first order is sent at the close of bar 3525, so the
visible replay starts at 3513; at bar 3691 it is long 0.451 in two layers with a stop_loss that was
amended (Submitted → Untriggered → PendingAmend → Untriggered), a take_profit and a
partial_close working, and a refused scale in its history."""
from __future__ import annotations

import math

from paths import ROOT_DIR
from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import exec_bars, prepare
from playdeck.runtime.data.synthetic import generate
from playdeck.tui.replay import Replay

MINUTES = generate(60_000, seed=9)
PLAY = ROOT_DIR / "plays" / "ema_pullback.yml"
ENTRY_WORKING = 3526  # a limit entry rests (New), flat
LONG = 3530  # long 0.282: stop_loss Untriggered, take_profit New
AMENDED = 3691  # see the module docstring
AMENDED_STOP = "stop_loss-sim-8"


def replay_of(play=PLAY, hold_at: int | None = None, speed: float = math.inf, minutes=MINUTES) -> Replay:
    plan = lower(compile_file(play).ir)
    bars = exec_bars(minutes, plan.play.market.exec_tf)
    # Orders name the Play line they came from: relative, so the pictures are the same on every machine.
    where = str(play.relative_to(ROOT_DIR))
    return Replay(plan, prepare(plan, bars, where=where, keep_events=True), bars, speed=speed, hold_at=hold_at)


async def until(pilot, condition, what: str = "the condition", polls: int = 400) -> None:
    """Let the app and its replay run until `condition()` holds (a bounded number of turns of the
    event loop, not a time)."""
    for _ in range(polls):
        if condition():
            await pilot.pause()  # and let the screen draw what made it true
            return
        await pilot.pause()
    raise AssertionError(f"never reached: {what}")


async def held_at(pilot, bar: int) -> None:
    app = pilot.app

    def there() -> bool:
        s = app.snapshot
        return s is not None and s.replay.held and s.session.bar == bar

    await until(pilot, there, f"the replay held at bar {bar}")
