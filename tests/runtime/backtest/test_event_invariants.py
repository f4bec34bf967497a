"""Every status change is an event: the event stream of a real backtest of every example Play agrees
with each order's recorded status path and with the shared transition table (runtime/order_state.py).

Per order: the first event is None -> Submitted, at the bar it was created; each event starts where
the previous one ended; the chain of `new` statuses is the order's StatusPath; each step is a move
some event of TRANSITIONS makes. No event names an order the book does not hold, and every order in
the book has at least its Submitted event.
"""
from __future__ import annotations

from paths import ROOT_DIR

from collections import defaultdict

import pytest

from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import exec_bars, prepare, run_engine
from playdeck.runtime.execution.order_state import INITIAL, TRANSITIONS
from playdeck.runtime.execution.orders import OrderStatus
from playdeck.runtime.data.synthetic import generate

PLAYS = sorted(ROOT_DIR.joinpath("plays").glob("*.yml"))

# 1m bars resampled to each Play's exec timeframe (as `playdeck backtest` does): 200,000 minutes is
# about 139 days, on which every example Play trades (asserted below, not assumed).
MINUTES = 200_000
SEED = 7

# (old, new) -> the events that make that move, from the shared table.
MOVES: dict[tuple[OrderStatus, OrderStatus], set[str]] = defaultdict(set)
for (_old, _event), _new in TRANSITIONS.items():
    MOVES[(_old, _new)].add(_event)

_BASE = None


def minute_bars():
    global _BASE
    if _BASE is None:
        _BASE = generate(MINUTES, seed=SEED)
    return _BASE


@pytest.fixture(scope="module", params=PLAYS, ids=[p.stem for p in PLAYS])
def backtest(request):
    plan = lower(compile_file(request.param).ir)
    bars = exec_bars(minute_bars(), plan.play.market.exec_tf)
    bt = prepare(plan, bars, where=str(request.param), keep_events=True)
    result = run_engine(bt)
    return request.param, bt, result


def test_the_play_trades_on_this_data(backtest):
    """Otherwise the invariants below would hold of a run with nothing in it."""
    path, bt, result = backtest
    assert result.fills, f"{path.name} made no fill on {MINUTES} synthetic minutes (seed {SEED})"
    assert bt.state.orders and result.events


def test_every_event_names_an_order_of_the_book(backtest):
    _, bt, result = backtest
    unknown = [e for e in result.events if e.client_id not in bt.state.orders]
    assert unknown == []


def test_the_mirror_built_from_events_is_the_venues_book(backtest):
    """TradingState learns only from events; at the end it must hold what the simulator holds."""
    _, bt, _ = backtest
    venue, mirror = bt.exchange.orders, bt.state.orders
    assert list(venue) == list(mirror)
    for client_id, rec in venue.items():
        seen = mirror[client_id]
        assert (seen.order_id, seen.path, seen.qty, seen.price, seen.trigger, seen.filled_qty, seen.reason) == \
            (rec.order_id, rec.path, rec.qty, rec.price, rec.trigger, rec.filled_qty, rec.reason), client_id
    assert list(bt.state.open) == list(bt.exchange.working)
    assert bt.state.position == bt.exchange.position
    assert (bt.state.cash, bt.state.fees_paid, bt.state.realized_pnl) == \
        (bt.exchange.cash, bt.exchange.fees_paid, bt.exchange.realized_pnl)


def test_every_order_has_its_submitted_event_first_at_its_creation_bar(backtest):
    _, bt, result = backtest
    first = {}
    for e in result.events:
        first.setdefault(e.client_id, e)
    for client_id, rec in bt.state.orders.items():
        assert client_id in first, f"order {client_id} ({rec.path}) has no event"
        e = first[client_id]
        assert (e.old, e.new) == (None, INITIAL), f"order {client_id}: first event {e}"
        created = rec.request.created_bar
        assert e.bar == created, f"order {client_id}: first event {e}, created {created}"


def test_each_orders_events_chain_and_spell_its_status_path(backtest):
    _, bt, result = backtest
    by_order = defaultdict(list)
    for e in result.events:
        by_order[e.client_id].append(e)
    for client_id, rec in bt.exchange.orders.items():
        events = by_order[client_id]
        for prev, e in zip(events, events[1:]):
            assert e.old == prev.new, f"order {client_id}: {prev} then {e}"
            assert e.bar >= prev.bar, f"order {client_id}: {prev} then {e}"
        assert [e.new for e in events] == rec.path, \
            f"order {client_id}: events {[(e.old, e.new, e.bar) for e in events]} vs path {rec.path}"


def test_each_step_is_a_move_of_the_transition_table(backtest):
    _, bt, result = backtest
    illegal = [e for e in result.events if e.old is not None and not MOVES.get((e.old, e.new))]
    assert illegal == []
    # ... and only the first event of an order comes from nowhere
    seen: set[str] = set()
    for e in result.events:
        assert (e.old is None) == (e.client_id not in seen), f"{e}"
        seen.add(e.client_id)


def test_the_event_stream_is_in_bar_order_and_every_fill_has_its_event(backtest):
    _, bt, result = backtest
    bars = [e.bar for e in result.events]
    assert bars == sorted(bars)
    filled_at = {(e.order_id, e.bar) for e in result.events
                 if e.new in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)}
    missing = [f for f in result.fills if (f.order_id, f.bar) not in filled_at]
    assert missing == []
