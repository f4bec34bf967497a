"""One order in full: what was asked, where it stands, and every transition with its bar, time,
event and reason, in-flight states included. Follows the order live while it is open."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen

from playdeck.tui.order_facts import OrderFacts
from playdeck.tui.snapshot import ConsoleSnapshot, OrderDetail
from playdeck.tui.transition_table import TransitionTable


class OrderDetailScreen(ModalScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Close")]

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self) -> None:
        super().__init__()
        self._shown: OrderDetail | None | bool = False  # False: nothing drawn yet

    def compose(self) -> ComposeResult:
        with Vertical(id="order-detail"):
            yield OrderFacts(id="order-facts", classes="order-states")
            yield TransitionTable(id="transitions", classes="order-states")

    def on_mount(self) -> None:
        self.query_one("#order-detail").border_title = "Order"
        self.query_one("#order-detail").border_subtitle = "Esc to close"
        self._draw(self.snapshot)

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if self.is_mounted:  # before that, on_mount draws what is there
            self._draw(snap)

    def _draw(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None:
            return
        d = snap.selected
        if d == self._shown:
            return
        self._shown = d
        self.query_one(OrderFacts).show(d)
        self.query_one(TransitionTable).show(d)
