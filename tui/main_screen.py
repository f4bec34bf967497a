"""The main screen: header, market, position, reconciliation, health, orders, history and log.

It gets the app's latest snapshot and hands it down to each pane; selecting an order in either
table is said upwards as `OrderSelected`, choosing one (Enter) as `OrderChosen`."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import DescendantFocus
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from playdeck.tui.header import SessionHeader
from playdeck.tui.health import HealthPane
from playdeck.tui.last_bars import LastBars
from playdeck.tui.log_pane import LogPane
from playdeck.tui.market import MarketChart
from playdeck.tui.order_history import FinishedOrders
from playdeck.tui.orders import OrderTable, WorkingOrders
from playdeck.tui.position import PositionPane
from playdeck.tui.reconciliation import ReconciliationPane
from playdeck.tui.snapshot import ConsoleSnapshot

PANES = (SessionHeader, MarketChart, LastBars, PositionPane, ReconciliationPane, HealthPane, WorkingOrders,
         FinishedOrders, LogPane)


class MainScreen(Screen):
    class OrderSelected(Message):
        """The operator moved to an order (None: no order under the cursor)."""

        def __init__(self, client_id: str | None) -> None:
            super().__init__()
            self.client_id = client_id

    class OrderChosen(Message):
        """Enter on an order: show it in full."""

        def __init__(self, client_id: str) -> None:
            super().__init__()
            self.client_id = client_id

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self) -> None:
        super().__init__()
        self._selected: str | None = None  # last said upwards

    def compose(self) -> ComposeResult:
        yield SessionHeader(id="header")
        with Horizontal(id="top"):
            with Vertical(id="market"):
                yield MarketChart(id="chart")
                yield LastBars(id="last-bars")
            with Vertical(id="side"):
                yield PositionPane(id="position")
                yield ReconciliationPane(id="reconciliation")
                yield HealthPane(id="health")
        with Horizontal(id="bottom"):
            with Vertical(id="orders"):
                yield WorkingOrders(id="working", classes="order-states")
                yield FinishedOrders(id="finished", classes="order-states")
            yield LogPane(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(WorkingOrders).focus()
        self._draw(self.snapshot)

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if self.is_mounted:  # before that, on_mount draws what is there
            self._draw(snap)

    def _draw(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None:
            return
        for pane in PANES:
            self.query_one(pane).snapshot = snap
        # Rows come and go under the cursor (an order fills, a new one arrives): the order under
        # the focused table's cursor is the selected one.
        if isinstance(self.focused, OrderTable):
            self._select(self.focused.selected_id)

    def _select(self, client_id: str | None) -> None:
        if client_id != self._selected:
            self._selected = client_id
            self.post_message(self.OrderSelected(client_id))

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if isinstance(event.data_table, OrderTable) and event.data_table.has_focus:
            self._select(event.row_key.value)

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, OrderTable) and event.row_key.value is not None:
            self._select(event.row_key.value)
            self.post_message(self.OrderChosen(event.row_key.value))

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        # Tab to the other table: its order under the cursor is the selected one now.
        if isinstance(event.widget, OrderTable):
            self._select(event.widget.selected_id)
