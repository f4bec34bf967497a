"""The session's log: intents as the blocks sent them, refusals with their reasons, errors, and
the operator's commands; each kind in its colour, the newest at the bottom."""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import RichLog

from playdeck.tui.driver import HISTORY
from playdeck.tui.formats import colour
from playdeck.tui.snapshot import ConsoleSnapshot


def line_kind(line: str) -> str:
    """What a log line is about, for its colour (the Session writes `bar N: <what>`)."""
    what = line.split(": ", 1)[-1]
    if what.startswith("error") or ": error" in line:
        return "log--error"
    if what.startswith("refused"):
        return "log--refused"
    if what.startswith(("paused", "resumed", "KILLED", "flatten", "cancel", "reconcile", "pause")):
        return "log--operator"
    return "log--intent"


LINES = HISTORY  # the session's log length


class LogPane(RichLog):
    COMPONENT_CLASSES = {"log--error", "log--refused", "log--operator", "log--intent"}

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self, **kwargs) -> None:
        # As many lines as the session keeps: what is shown is then exactly its log, however many
        # snapshots a busy screen skipped.
        super().__init__(wrap=True, markup=False, max_lines=LINES, min_width=20, **kwargs)
        self._shown: tuple[str, ...] = ()

    def on_mount(self) -> None:
        self.border_title = "Log"

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None or snap.session.log == self._shown:
            return
        log = snap.session.log
        # The session keeps its last lines: write only those after the ones already shown when
        # they still overlap, else start again.
        old = self._shown
        start = 0
        if old:
            for k in range(min(len(log), len(old)), 0, -1):
                if log[:k] == old[len(old) - k:]:
                    start = k
                    break
            else:
                self.clear()
        self._shown = log
        for line in log[start:]:
            self.write(Text(line, style=colour(self, line_kind(line))))
