"""Working orders, one row each: tag, type, side, qty, price/trigger, filled, and the state path as
it happened (in-flight states included), each state in its colour."""
from __future__ import annotations

from typing import Sequence

from textual.reactive import reactive
from textual.widgets import DataTable

from playdeck.runtime.execution.orders import OrderSnapshot
from playdeck.tui.formats import STATE_CLASSES, colours, filled_of, order_price, path_text, side_and_type, tag
from playdeck.tui.snapshot import ConsoleSnapshot

COLUMNS = ("tag", "order", "price", "filled", "state path")


class OrderTable(DataTable):
    """A table of orders keyed by client id, redrawn only when its rows change, keeping the cursor
    on the same order."""

    COMPONENT_CLASSES = set(STATE_CLASSES)

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple | None = None

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def orders(self, snap: ConsoleSnapshot) -> Sequence[OrderSnapshot]:
        raise NotImplementedError

    def row(self, o: OrderSnapshot) -> tuple:
        return (tag(o), side_and_type(o), order_price(o), filled_of(o), path_text(o.path, colours(self)))

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None:
            return
        orders = self.orders(snap)
        shown = tuple(o for o in orders)
        if shown == self._shown:
            return
        self._shown = shown
        keep = self.selected_id
        self.clear()
        for o in orders:
            self.add_row(*self.row(o), key=o.client_id)
        # The table the operator is in keeps the cursor on the same order as rows come and go;
        # another one starts again from its top row (the newest history).
        if keep is not None and keep in self.rows and self.has_focus:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    @property
    def selected_id(self) -> str | None:
        """The client id of the order under the cursor."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


class WorkingOrders(OrderTable):
    def on_mount(self) -> None:
        self.border_title = "Working orders"

    def orders(self, snap: ConsoleSnapshot) -> Sequence[OrderSnapshot]:
        return snap.session.working
