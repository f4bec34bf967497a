"""What the console reads of a Session besides its snapshot: each order's status changes with their
bars and reasons, the operator's reconcile, and the venue's health and reconciliation status (the
simulator has neither a stream nor anything to reconcile against, and says so)."""
from __future__ import annotations

import asyncio

from paths import ROOT_DIR
from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import exec_bars, prepare
from playdeck.runtime.data.synthetic import generate
from playdeck.runtime.execution.orders import OrderStatus
from playdeck.runtime.execution.venue_status import (SIMULATOR_HEALTH, SIMULATOR_RECONCILIATION, HealthSnapshot,
                                                     ReconciliationSnapshot)
from playdeck.runtime.strategy.session import Session

MINUTES = generate(60_000, seed=9)


def run_session(play: str, keep_events: bool = True, bars: int | None = None) -> Session:
    plan = lower(compile_file(ROOT_DIR / "plays" / f"{play}.yml").ir)
    exec_ = exec_bars(MINUTES, plan.play.market.exec_tf)
    session = Session(prepare(plan, exec_, keep_events=keep_events).engine)

    async def go() -> None:
        for i in range(len(exec_) if bars is None else bars):
            await session.bar(i)

    asyncio.run(go())
    return session


def test_every_order_has_its_path_as_transitions_with_bars_times_and_reasons() -> None:
    session = run_session("ema_pullback")
    ts = session.engine.feeds.bars().ts_open
    orders = list(session.state.orders.values())
    assert any(r.status is OrderStatus.REJECTED for r in orders)  # the Play has refused creates
    for rec in orders:
        changes = session.transitions(rec.order_id)
        assert tuple(t.new for t in changes) == tuple(rec.path)
        assert changes[0].old is None and changes[0].event == "" and changes[0].bar == rec.request.created_bar
        assert all(a.new is b.old for a, b in zip(changes, changes[1:]))
        assert [t.bar for t in changes] == sorted(t.bar for t in changes)
        assert all(t.ts == int(ts[t.bar]) for t in changes)
        if rec.status is OrderStatus.REJECTED:
            assert changes[-1].event == "reject" and changes[-1].reason == rec.reason != ""


def test_transitions_follow_an_order_as_it_moves() -> None:
    session = run_session("ema_pullback", bars=0)

    async def go() -> int:
        i = 0
        while not session.state.open:  # until an order works
            await session.bar(i)
            i += 1
        return i

    i = asyncio.run(go())
    working = next(iter(session.state.open.values()))
    before = session.transitions(working.order_id)
    assert before[-1].new in (OrderStatus.NEW, OrderStatus.UNTRIGGERED)

    async def more() -> None:
        for k in range(i, len(session)):
            await session.bar(k)

    asyncio.run(more())
    assert working.status.is_final
    after = session.transitions(working.order_id)
    assert after[:len(before)] == before and tuple(t.new for t in after) == tuple(working.path)


def test_without_kept_events_there_are_no_transitions_to_show() -> None:
    session = run_session("ema_cross", keep_events=False, bars=200)
    rec = next(iter(session.state.orders.values()))
    assert session.transitions(rec.order_id) == ()


def test_reconcile_on_the_simulator_changes_nothing_and_says_there_is_no_venue() -> None:
    session = run_session("ema_cross", bars=300)
    paths = [(r.client_id, tuple(r.path)) for r in session.state.orders.values()]
    cash, position = session.state.cash, session.state.position

    status = asyncio.run(session.reconcile())

    assert status is SIMULATOR_RECONCILIATION and status.last_run_ts is None
    assert [(r.client_id, tuple(r.path)) for r in session.state.orders.values()] == paths
    assert (session.state.cash, session.state.position) == (cash, position)
    assert session.log[-1] == "bar 299: reconcile: no venue to reconcile"


def test_health_and_reconciliation_come_from_a_venue_that_has_them() -> None:
    session = run_session("ema_cross", bars=50)
    assert session.health() is SIMULATOR_HEALTH and session.health().stream is None
    live = HealthSnapshot("demo", stream="connected", reconnects=2, last_message_age_s=0.4, clock_offset_ms=-12.0)
    checked = ReconciliationSnapshot("demo", last_run_ts=1_735_689_600_000, result="in sync", runs=3)
    # A venue with a stream and a reconciler offers both; the Session passes them on as they are.
    session.venue.health = lambda: live
    session.venue.reconciliation = lambda: checked
    assert session.health() is live and session.reconciliation() is checked
    asyncio.run(session.reconcile())
    assert session.log[-1] == "bar 49: reconcile: in sync"
