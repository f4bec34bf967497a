"""The facts of one order: what was asked, its fills, its status and path, where in the Play it came from."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from playdeck.tui.formats import (STATE_CLASSES, colour, colours, order_price, order_type, path_text, price, qty,
                                  state_class)
from playdeck.tui.snapshot import OrderDetail


class OrderFacts(Static):
    COMPONENT_CLASSES = set(STATE_CLASSES) | {"pane--label"}

    def show(self, d: OrderDetail | None) -> None:
        if d is None:
            self.update("no order selected")
            return
        o, req = d.order, d.order.request
        grid = Table.grid(padding=(0, 2))
        label = colour(self, "pane--label")
        grid.add_column(style=label, no_wrap=True)
        grid.add_column()
        grid.add_row("client id", f"{o.client_id}   (venue id {o.order_id})")
        at = order_price(o)
        grid.add_row("order", f"{order_type(o)} {req.side.value} {qty(o.qty)}" + ("" if at == "-" else f" {at}"))
        grid.add_row("tag", req.tag if req.tag is not None else "-")
        grid.add_row("time in force", f"{req.tif.value}{'  reduce-only' if req.reduce_only else ''}")
        grid.add_row("expires", "-" if req.expire_bar is None else f"at the close of bar {req.expire_bar}")
        grid.add_row("filled", f"{qty(o.filled_qty)}" + ("" if o.avg_price is None else f" @ {price(o.avg_price)}"))
        grid.add_row("status", Text(o.status.value, style=colour(self, state_class(o.status))))
        grid.add_row("path", path_text(o.path, colours(self)))
        if o.reason:
            grid.add_row("reason", o.reason)
        if req.origin:
            grid.add_row("from", req.origin)
        self.update(grid)
