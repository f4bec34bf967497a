"""The order state machine drawn from `TRANSITIONS`: a card per state with the edges leaving it,
laid out as orders move (sent, waiting for a trigger, resting, in flight, final), with the selected
order's way through it marked: the states it visited, the edges it took, where it is now."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from playdeck.runtime.execution.orders import OrderStatus as S
from playdeck.tui.formats import path_plain
from playdeck.tui.snapshot import ConsoleSnapshot, OrderDetail
from playdeck.tui.state_card import Edge, StateCard

# Rows of the drawing: where an order starts, where it waits, rests and asks, where it ends.
LAYOUT = (
    (S.SUBMITTED, S.UNTRIGGERED, S.TRIGGERED),
    (S.NEW, S.PARTIALLY_FILLED),
    (S.PENDING_AMEND, S.PENDING_CANCEL),
)
FINAL = (S.FILLED, S.CANCELLED, S.PARTIALLY_FILLED_CANCELED, S.REJECTED, S.DEACTIVATED, S.EXPIRED)


def order_way(d: OrderDetail | None) -> tuple[frozenset[S], frozenset[Edge], S | None]:
    """The states an order visited, the edges it took (by the events its transitions name; from
    its path alone when its transitions are unknown), and the state it is in."""
    if d is None:
        return frozenset(), frozenset(), None
    path = d.order.path
    if d.transitions:
        taken = frozenset((t.old, t.event, t.new) for t in d.transitions if t.old is not None)
    else:
        from playdeck.runtime.execution.order_state import TRANSITIONS
        taken = frozenset((a, e.value, b) for a, b in zip(path, path[1:])
                          for (old, e), new in TRANSITIONS.items() if old is a and new is b)
    return frozenset(path), taken, path[-1]


class StateMachineScreen(Screen):
    BINDINGS = [Binding("escape,s", "app.pop_screen", "Back")]

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self) -> None:
        super().__init__()
        self._shown: object = False  # the OrderDetail last drawn (False: none yet)

    def compose(self) -> ComposeResult:
        yield Static(id="machine-title")
        with VerticalScroll(id="machine"):
            for row in LAYOUT:
                with Grid(classes=f"machine-row machine-row-{len(row)}"):
                    for state in row:
                        yield StateCard(state)
            with Horizontal(id="final-states"):
                for state in FINAL:
                    yield StateCard(state)
        yield Footer()

    def on_mount(self) -> None:
        self._draw(None if self.snapshot is None else self.snapshot.selected)

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is not None and self.is_mounted and snap.selected != self._shown:  # else on_mount draws
            self._draw(snap.selected)

    def _draw(self, d: OrderDetail | None) -> None:
        self._shown = d
        if d is None:
            title = "Order state machine: no order selected (select one in the orders tables to see its way)"
        else:
            title = f"Order state machine: {d.order.client_id}  {path_plain(d.order.path)}"
        self.query_one("#machine-title", Static).update(title)
        visited, taken, current = order_way(d)
        for card in self.query(StateCard):
            card.show(visited, taken, current)
