"""The top line: which Play trades what where, in which mode, at which bar, and how it is doing."""
from __future__ import annotations

import math

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from playdeck.tui.formats import bar_time, colour, money, signed_money
from playdeck.tui.snapshot import ConsoleSnapshot


class SessionHeader(Static):
    # The mode's colour comes from console.tcss, like every colour of the console.
    COMPONENT_CLASSES = {"mode--warming-up", "mode--trading", "mode--paused", "mode--killed", "mode--finished",
                         "header--label", "header--gain", "header--loss"}

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        self.update(self.line(snap))

    def line(self, snap: ConsoleSnapshot | None) -> Text:
        if snap is None:
            return Text("loading the Play and its data ...")
        s, r = snap.session, snap.replay
        label = colour(self, "header--label")
        mode = s.mode.value
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {snap.play} ", style="bold")
        text.append(f"{snap.symbol} {snap.exec_tf} ")
        text.append("on ", style=label)
        text.append(f"{snap.backend}  ")
        text.append(f" {mode.upper()} ", style=colour(self, f"mode--{mode.replace(' ', '-')}"))
        when = "not started" if s.bar < 0 else f"{bar_time(s.ts)} UTC"
        text.append(f"  {when} ")
        text.append(f"bar {max(s.bar, 0)}/{r.bars - 1}  ", style=label)
        text.append("equity ", style=label)
        text.append(f"{money(s.equity)}  ")
        text.append("PnL today ", style=label)
        text.append(signed_money(snap.pnl_today),
                    style=colour(self, "header--gain" if snap.pnl_today >= 0 else "header--loss"))
        if r.pace == "venue":
            text.append("  the venue's clock", style=label)  # a running venue: no speed of ours
        else:
            text.append(f"  {r.pace} ", style=label)
            text.append(speed_text(r.speed))
        if r.held and not r.finished:
            text.append(" (held)", style=label)
        return text


def speed_text(speed: float) -> str:
    if math.isinf(speed):
        return "max"
    return f"{speed:g} bar/s" if speed == 1 else f"{speed:g} bars/s"
