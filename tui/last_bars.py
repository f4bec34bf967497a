"""The last exec bars as numbers, newest first."""
from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import DataTable

from playdeck.tui.formats import bar_time, price, qty
from playdeck.tui.snapshot import ConsoleSnapshot

ROWS = 6


class LastBars(DataTable):
    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def on_mount(self) -> None:
        self.cursor_type = "none"
        self.add_columns("bar", "open time", "open", "high", "low", "close", "volume")

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None or not self.columns:
            return
        m = snap.market
        rows = []
        for k in range(len(m) - 1, max(len(m) - 1 - ROWS, -1), -1):
            rows.append((str(m.first_bar + k), bar_time(m.ts[k]), price(m.open[k]), price(m.high[k]), price(m.low[k]),
                         price(m.close[k]), qty(round(m.volume[k], 3))))
        self.clear()
        self.add_rows(rows)
