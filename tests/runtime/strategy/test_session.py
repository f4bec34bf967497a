"""A Session runs the engine one closed bar at a time with an operator's commands in between: bar by
bar it must do exactly what the backtest's loop does, and pause, cancel, flatten and kill must do
what they say."""
from __future__ import annotations

import asyncio

import pytest

from paths import ROOT_DIR
from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import exec_bars, prepare, run_engine
from playdeck.runtime.data.synthetic import generate
from playdeck.runtime.execution.orders import OrderStatus
from playdeck.runtime.strategy.session import Mode, Session

PLAYS = sorted((ROOT_DIR / "plays").glob("*.yml"))
MINUTES = generate(60_000, seed=9)


def session_for(path, keep_events: bool = False):
    plan = lower(compile_file(path).ir)
    bars = exec_bars(MINUTES, plan.play.market.exec_tf)
    return Session(prepare(plan, bars, keep_events=keep_events).engine), plan, bars


@pytest.mark.parametrize("path", PLAYS, ids=[p.stem for p in PLAYS])
def test_bar_by_bar_the_session_does_what_the_backtest_does(path) -> None:
    session, plan, bars = session_for(path)

    async def go() -> None:
        for i in range(len(bars)):
            await session.bar(i)

    asyncio.run(go())
    bt = prepare(plan, bars)
    run_engine(bt)
    assert session.state.fills == bt.state.fills
    assert [(r.client_id, r.path) for r in session.state.orders.values()] == \
        [(r.client_id, r.path) for r in bt.state.orders.values()]
    assert session.state.cash == bt.state.cash and session.mode is Mode.TRADING


def test_paused_the_blocks_send_nothing_while_orders_already_working_still_fill() -> None:
    session, _, bars = session_for(ROOT_DIR / "plays" / "ema_cross.yml")

    async def go() -> None:
        i = 0
        while not session.state.open:  # run until an order is working
            await session.bar(i)
            i += 1
        session.pause()
        sent = len(session.state.orders)
        for k in range(i, i + 300):
            await session.bar(k)
        assert len(session.state.orders) == sent  # nothing new was sent
        assert session.state.fills  # the working one filled all the same
        assert session.snapshot().mode is Mode.PAUSED
        session.resume()
        for k in range(i + 300, len(bars)):
            await session.bar(k)
        assert len(session.state.orders) > sent

    asyncio.run(go())


def test_cancel_flatten_and_kill() -> None:
    session, _, bars = session_for(ROOT_DIR / "plays" / "ema_pullback.yml")

    async def go() -> None:
        i = 0
        while session.state.position.qty == 0.0 or not session.state.open:
            await session.bar(i)
            i += 1
        working = next(iter(session.state.open))
        assert await session.cancel(working)
        assert session.state.orders[working].path[-1] in (OrderStatus.CANCELLED, OrderStatus.DEACTIVATED)
        await session.kill()
        await session.bar(i)  # the close fills at the next open
        snap = session.snapshot()
        assert snap.mode is Mode.KILLED and snap.position_qty == 0.0 and snap.working == ()
        orders = len(session.state.orders)
        for k in range(i + 1, len(bars)):
            await session.bar(k)
        assert len(session.state.orders) == orders  # killed: nothing more is ever sent
        assert any("KILLED" in line for line in snap.log)

    asyncio.run(go())
