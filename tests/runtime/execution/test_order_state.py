from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playdeck.runtime.execution.order_state import (
    EVENTS,
    INITIAL,
    TRANSITIONS,
    Ev,
    IllegalTransition,
    OrderStateMachine,
    advance,
    end_event,
    path_to,
)
from playdeck.runtime.execution.orders import OrderRecord, OrderRequest, OrderRole, OrderType, Side, TimeInForce
from playdeck.runtime.execution.orders import OrderStatus as S

# The edges DESIGN.md and the simulator rely on, written out independently of the table.
REQUIRED_EDGES = [(old, Ev(event), new) for old, event, new in [
    (S.SUBMITTED, "accept", S.NEW),
    (S.SUBMITTED, "accept_conditional", S.UNTRIGGERED),
    (S.SUBMITTED, "reject", S.REJECTED),
    (S.SUBMITTED, "fill", S.FILLED),
    (S.SUBMITTED, "fill_partial", S.PARTIALLY_FILLED),
    (S.UNTRIGGERED, "trigger", S.TRIGGERED),
    (S.TRIGGERED, "accept", S.NEW),
    (S.TRIGGERED, "fill", S.FILLED),
    (S.UNTRIGGERED, "deactivate", S.DEACTIVATED),
    (S.NEW, "fill_partial", S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, "fill", S.FILLED),
    (S.NEW, "fill", S.FILLED),
    (S.NEW, "cancel", S.CANCELLED),
    (S.PARTIALLY_FILLED, "cancel", S.PARTIALLY_FILLED_CANCELED),
    (S.NEW, "expire", S.EXPIRED),
    (S.PARTIALLY_FILLED, "expire", S.EXPIRED),
    (S.UNTRIGGERED, "expire", S.EXPIRED),
    (S.PENDING_CANCEL, "fill", S.FILLED),  # the cancel raced a fill and lost
    (S.NEW, "amend", S.PENDING_AMEND),
    (S.PENDING_AMEND, "amend_ack", S.NEW),
    (S.UNTRIGGERED, "amend", S.PENDING_AMEND),
    (S.PENDING_AMEND, "amend_ack_conditional", S.UNTRIGGERED),
    (S.NEW, "cancel_request", S.PENDING_CANCEL),
    (S.PENDING_CANCEL, "cancel", S.CANCELLED),
    (S.UNTRIGGERED, "cancel_request", S.PENDING_CANCEL),
    (S.PENDING_CANCEL, "deactivate", S.DEACTIVATED),
    (S.PENDING_CANCEL, "expire", S.EXPIRED),
]]

FINAL = {S.FILLED, S.CANCELLED, S.PARTIALLY_FILLED_CANCELED, S.REJECTED, S.DEACTIVATED, S.EXPIRED}
TABLE_STATES = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())


@pytest.mark.parametrize(("current", "event", "new"), [(s, e, n) for (s, e), n in TRANSITIONS.items()])
def test_every_edge_in_the_table_applies(current: S, event: Ev, new: S) -> None:
    assert OrderStateMachine.apply(current, event) is new
    assert OrderStateMachine.can(current, event)


@pytest.mark.parametrize(("current", "event", "new"), REQUIRED_EDGES)
def test_the_designed_edges_exist(current: S, event: Ev, new: S) -> None:
    assert TRANSITIONS[(current, event)] is new


@pytest.mark.parametrize("current", list(S))
def test_every_move_not_in_the_table_raises_naming_both_states(current: S) -> None:
    for event in sorted(EVENTS, key=lambda e: e.value):
        if (current, event) in TRANSITIONS:
            continue
        with pytest.raises(IllegalTransition) as info:
            OrderStateMachine.apply(current, event, "o-1")
        text = str(info.value)
        assert current.value in text
        assert repr(event.value) in text
        assert "o-1" in text
        # ... and where the event would normally lead
        targets = {n for (_, e), n in TRANSITIONS.items() if e == event}
        assert any(t.value in text for t in targets)
        assert info.value.current is current and info.value.event == event


def test_unknown_event_raises() -> None:
    with pytest.raises(IllegalTransition, match="unknown event 'explode'"):
        OrderStateMachine.apply(S.NEW, "explode")


def test_final_statuses_have_no_way_out_and_match_the_enum() -> None:
    assert {s for s in S if s.is_final} == FINAL
    for status in FINAL:
        assert OrderStateMachine.events_from(status) == ()
    for status in set(S) - FINAL:
        assert status.is_open
        assert OrderStateMachine.events_from(status), f"{status} is a dead end"


def test_every_status_is_reachable_from_submitted() -> None:
    seen = {INITIAL}
    frontier = [INITIAL]
    while frontier:
        status = frontier.pop()
        for event in OrderStateMachine.events_from(status):
            new = TRANSITIONS[(status, event)]
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(S)


def test_in_flight_statuses() -> None:
    assert {s for s in S if s.is_in_flight} == {S.SUBMITTED, S.PENDING_AMEND, S.PENDING_CANCEL}


def walk(events: tuple[str, ...]) -> list[S]:
    path = [INITIAL]
    for event in events:
        advance(path, Ev(event), "o-1")
    return path


def record(path: list[S]) -> OrderRecord:
    request = OrderRequest("o-1", Side.BUY, OrderType.LIMIT, 1.0, 100.0, None, TimeInForce.GTC, False,
                           OrderRole.ENTRY, None, 0, None)
    rec = OrderRecord(request, "sim-1")
    rec.path = path
    return rec


def test_advance_appends_the_new_status() -> None:
    path = walk(("accept", "fill_partial", "fill"))
    assert path == [S.SUBMITTED, S.NEW, S.PARTIALLY_FILLED, S.FILLED]


@pytest.mark.parametrize(
    ("events", "venue"),
    [
        (("accept", "amend", "amend_ack", "fill"), "New>Filled"),
        (("accept", "cancel_request", "cancel"), "New>Cancelled"),
        (("accept_conditional", "amend", "amend_ack_conditional", "cancel_request", "deactivate"),
         "Untriggered>Deactivated"),
        (("accept_conditional", "trigger", "fill"), "Untriggered>Triggered>Filled"),
        (("reject",), "Rejected"),
        ((), "Submitted"),
    ],
)
def test_the_venue_path_shows_bybit_statuses_only(events: tuple[str, ...], venue: str) -> None:
    # orders.csv's path: the in-flight requests (Submitted, PendingAmend, PendingCancel) are left out
    assert record(walk(events)).venue_path() == venue


def test_a_path_is_unchanged_by_an_illegal_move() -> None:
    path = walk(("accept_conditional",))
    with pytest.raises(IllegalTransition):
        advance(path, Ev.FILL_PARTIAL)  # an untriggered stop cannot fill before it triggers
    assert path == [S.SUBMITTED, S.UNTRIGGERED]


@pytest.mark.parametrize(("current", "filled", "event", "ends"), [
    (S.UNTRIGGERED, 0.0, Ev.DEACTIVATE, S.DEACTIVATED),
    (S.NEW, 0.0, Ev.CANCEL, S.CANCELLED),
    (S.PARTIALLY_FILLED, 0.5, Ev.CANCEL_PARTIAL, S.PARTIALLY_FILLED_CANCELED),
    (S.TRIGGERED, 0.0, Ev.CANCEL, S.CANCELLED),
])
def test_end_event_decides_how_an_unfilled_order_ends(current: S, filled: float, event: Ev, ends: S) -> None:
    assert end_event(current, filled) is event
    assert TRANSITIONS[(current, event)] is ends


def test_events_are_an_enum_and_moves_need_one() -> None:
    assert {e.value for e in Ev} >= {"accept", "fill", "cancel", "deactivate", "expire", "amend"}
    with pytest.raises(IllegalTransition):
        OrderStateMachine.apply(S.NEW, "fill")  # a string is not an event


def test_edges_lists_the_table_for_drawing() -> None:
    edges = list(OrderStateMachine.edges())
    assert len(edges) == len(TRANSITIONS)
    assert (S.PENDING_CANCEL, Ev.FILL, S.FILLED) in edges


@settings(deadline=None)
@given(st.lists(st.sampled_from(sorted(EVENTS, key=lambda e: e.value)), max_size=40))
def test_random_event_sequences_stay_inside_the_table(events: list[Ev]) -> None:
    path = [INITIAL]
    for event in events:
        before = list(path)
        if OrderStateMachine.can(path[-1], event):
            old = path[-1]
            new = advance(path, event)
            assert TRANSITIONS[(old, event)] is new
        else:
            with pytest.raises(IllegalTransition):
                advance(path, event)
            assert path == before
        assert path[-1] in TABLE_STATES
    # Once final, always final: nothing after a final status was accepted.
    for i, status in enumerate(path):
        if status.is_final:
            assert i == len(path) - 1


@pytest.mark.parametrize(("current", "target", "events"), [
    (S.SUBMITTED, S.NEW, [Ev.ACCEPT]),
    (S.SUBMITTED, S.FILLED, [Ev.FILL]),  # the fill came before the ack
    (S.UNTRIGGERED, S.FILLED, [Ev.TRIGGER, Ev.FILL]),
    (S.UNTRIGGERED, S.NEW, [Ev.TRIGGER, Ev.ACCEPT]),  # a stop-limit now resting
    (S.SUBMITTED, S.DEACTIVATED, [Ev.ACCEPT_CONDITIONAL, Ev.DEACTIVATE]),
    (S.PENDING_CANCEL, S.FILLED, [Ev.FILL]),  # the cancel lost the race
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED_CANCELED, [Ev.CANCEL]),
    (S.NEW, S.NEW, []),
    (S.FILLED, S.NEW, None),  # nothing leaves a final status
])
def test_path_to_finds_the_fewest_legal_events(current: S, target: S, events) -> None:
    assert path_to(current, target) == events


@settings(deadline=None)
@given(st.sampled_from(list(S)), st.sampled_from(list(S)))
def test_every_path_found_is_legal(current: S, target: S) -> None:
    events = path_to(current, target)
    if events is None:
        return
    path = [current]
    for ev in events:
        advance(path, ev)
    assert path[-1] is target
