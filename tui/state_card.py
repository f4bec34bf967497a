"""One state of the order state machine and the edges that leave it: `event -> target`, from the
one `TRANSITIONS` table. The states the selected order visited, the state it is in, and the edges
it took are marked (classes and bold), so the graph shows the order's own way through it."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from playdeck.runtime.execution.order_state import TRANSITIONS
from playdeck.runtime.execution.orders import OrderStatus
from playdeck.tui.formats import STATE_CLASSES, colour, state_class

Edge = tuple[OrderStatus, str, OrderStatus]  # (from, event, to)


def edges_from(state: OrderStatus) -> list[tuple[str, OrderStatus]]:
    """The (event, target) pairs leaving `state`, in the table's order."""
    return [(e.value, new) for (old, e), new in TRANSITIONS.items() if old is state]


class StateCard(Static):
    COMPONENT_CLASSES = set(STATE_CLASSES) | {"card--event", "card--taken"}

    def __init__(self, state: OrderStatus, **kwargs) -> None:
        super().__init__(classes=f"state-card {state_class(state)}-card", **kwargs)
        self.state = state

    def on_mount(self) -> None:
        self.border_title = self.state.value
        if self.state.is_in_flight:
            self.border_subtitle = "in flight"
        if self.state.is_final:
            # A final state has no edges to list: its name is the card (titles would be cut short
            # in a row of six).
            self.border_title = "final"

    def show(self, visited: frozenset[OrderStatus], taken: frozenset[Edge], current: OrderStatus | None) -> None:
        """Mark the card for an order that visited `visited`, took the edges `taken`, and is in `current`."""
        self.set_class(self.state in visited, "visited")
        self.set_class(self.state is current, "current")
        edges = edges_from(self.state)
        if not edges:
            self.update(Text(self.state.value, style=colour(self, state_class(self.state))))
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        event_style = colour(self, "card--event")
        taken_style = colour(self, "card--taken")
        pad = max(len(event) for event, _ in edges)  # targets aligned within the card
        for k, (event, target) in enumerate(edges):
            took = (self.state, event, target) in taken
            if k:
                text.append("\n")
            text.append("● " if took else "  ", style=taken_style)
            text.append(f"{event:<{pad}} ", style=taken_style if took else event_style)
            text.append("-> ", style="dim")
            target_style = colour(self, state_class(target))
            text.append(target.value, style=target_style + taken_style if took else target_style)
        self.update(text)
