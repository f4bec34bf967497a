"""Finished orders, newest first, with the same columns and state paths as the working ones."""
from __future__ import annotations

from typing import Sequence

from playdeck.runtime.execution.orders import OrderSnapshot
from playdeck.tui.orders import OrderTable
from playdeck.tui.snapshot import ConsoleSnapshot

ROWS = 100  # of the session's recent finished orders


class FinishedOrders(OrderTable):
    def on_mount(self) -> None:
        self.border_title = "Order history"

    def orders(self, snap: ConsoleSnapshot) -> Sequence[OrderSnapshot]:
        return snap.session.finished[::-1][:ROWS]
