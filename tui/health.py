"""Health of the connection to the venue: the stream and its reconnects, the last message's age,
the rate-limit budget used per endpoint, the clock offset, retries and the journal. A value the
venue does not have is written n/a (the simulator has no stream, no limits, no journal)."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from playdeck.runtime.execution.venue_status import HealthSnapshot
from playdeck.tui.formats import NA, colour
from playdeck.tui.snapshot import ConsoleSnapshot


class HealthPane(Static):
    COMPONENT_CLASSES = {"pane--label", "pane--na", "pane--warning", "stream--connected", "stream--reconnecting",
                         "stream--disconnected"}

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def on_mount(self) -> None:
        self.border_title = "Health"

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is not None:
            self.update(self.body(snap.health))

    def _value(self, text: str | None, style: str | None = None) -> Text:
        if text is None:
            return Text(NA, style=colour(self, "pane--na"))
        return Text(text, style=colour(self, style) if style is not None else "")

    def body(self, h: HealthSnapshot) -> Group:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style=colour(self, "pane--label"), no_wrap=True)
        grid.add_column()
        stream = None if h.stream is None else h.stream + ("" if h.reconnects is None else f" ({h.reconnects} reconnects)")
        grid.add_row("stream", self._value(stream, None if h.stream is None else f"stream--{h.stream}"))
        grid.add_row("last message", self._value(None if h.last_message_age_s is None
                                                 else f"{h.last_message_age_s:.1f} s ago"))
        grid.add_row("clock offset", self._value(None if h.clock_offset_ms is None else f"{h.clock_offset_ms:+.0f} ms"))
        grid.add_row("retries", self._value(None if h.retries is None else str(h.retries)))
        journal = None
        if h.journal_bytes is not None:
            journal = f"{h.journal_bytes / 1e6:.1f} MB" + ("" if h.journal_path is None else f" {h.journal_path}")
        value = self._value(journal)
        value.overflow = "fold"  # a long path wraps: its end, the file's name, is what tells journals apart
        grid.add_row("journal", value)
        if h.rate_limits is None:
            grid.add_row("rate limits", self._value(None))
        else:
            for b in h.rate_limits:
                # Past 80% of a window's budget the next burst may be refused (10006): said in colour.
                near = b.limit > 0 and b.used >= 0.8 * b.limit
                grid.add_row(b.endpoint, self._value(f"{b.used}/{b.limit} per {b.window_s:g} s",
                                                     "pane--warning" if near else None))
        parts: list = [grid]
        if h.note:
            parts.append(Text(h.note, style=colour(self, "pane--na")))
        return Group(*parts)
