"""Every status change of one order: bar, time, from, to, the state machine's event, the reason."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from playdeck.tui.formats import STATE_CLASSES, bar_time, colours, state_class
from playdeck.tui.snapshot import OrderDetail


class TransitionTable(DataTable):
    COMPONENT_CLASSES = set(STATE_CLASSES)

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("bar", "time (UTC)", "from", "to", "event", "reason")

    def show(self, d: OrderDetail | None) -> None:
        self.clear()
        if d is None:
            return
        style = colours(self)
        for t in d.transitions:
            old = Text("-") if t.old is None else Text(t.old.value, style=style(state_class(t.old)))
            self.add_row(str(t.bar), bar_time(t.ts), old, Text(t.new.value, style=style(state_class(t.new))),
                         t.event or "submit", t.reason)
