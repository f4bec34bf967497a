"""Reconciliation: when it last ran and what it found, every drift event, the counts. The
simulator is its own book, and the pane says so rather than showing an empty success."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from playdeck.runtime.execution.venue_status import ReconciliationSnapshot
from playdeck.tui.formats import NA, bar_time, colour
from playdeck.tui.snapshot import ConsoleSnapshot

DRIFT_ROWS = 5  # the newest drift events shown here


class ReconciliationPane(Static):
    COMPONENT_CLASSES = {"pane--label", "pane--na", "pane--warning"}

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def on_mount(self) -> None:
        self.border_title = "Reconciliation"

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is not None:
            self.update(self.body(snap.reconciliation))

    def _value(self, text: str | None) -> Text:
        return Text(NA, style=colour(self, "pane--na")) if text is None else Text(text)

    def body(self, r: ReconciliationSnapshot) -> Group:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style=colour(self, "pane--label"), no_wrap=True)
        grid.add_column()
        grid.add_row("venue", r.venue)
        grid.add_row("last run", self._value(None if r.last_run_ts is None else f"{bar_time(r.last_run_ts)} UTC"))
        grid.add_row("result", self._value(r.result))
        grid.add_row("runs", self._value(None if r.runs is None else str(r.runs)))
        grid.add_row("drift events", self._value(None if r.drift_count is None else str(r.drift_count)))
        parts: list = [grid]
        if r.note:
            parts.append(Text(r.note, style=colour(self, "pane--na")))
        warn = colour(self, "pane--warning")
        earlier = (r.drift_count if r.drift_count is not None else len(r.drift)) - min(len(r.drift), DRIFT_ROWS)
        if earlier > 0:
            parts.append(Text(f"{earlier} earlier drift event{'s' * (earlier != 1)} (the journal has them all)",
                              style=colour(self, "pane--na")))
        for d in r.drift[-DRIFT_ROWS:]:
            parts.append(Text(f"{bar_time(d.ts)} {d.what}: ours {d.local}, venue {d.exchange}; {d.action}",
                              style=warn))
        return Group(*parts)
