"""The position: side, size, its layers with their entry prices, average entry, unrealized and
realized PnL, and the stop_loss / take_profit / trail in force."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from playdeck.tui.formats import bar_time, colour, money, price, qty, signed_money
from playdeck.tui.snapshot import ConsoleSnapshot

PROTECTION_KINDS = ("stop_loss", "take_profit", "trail")


class PositionPane(Static):
    COMPONENT_CLASSES = {"position--long", "position--short", "position--flat", "position--label",
                         "position--gain", "position--loss"}

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def on_mount(self) -> None:
        self.border_title = "Position"

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is not None:
            self.update(self.body(snap))

    def _pnl(self, value: float) -> Text:
        return Text(signed_money(value), style=colour(self, 
            "position--gain" if value >= 0 else "position--loss"))

    def body(self, snap: ConsoleSnapshot) -> Group:
        s = snap.session
        label = colour(self, "position--label")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style=label, no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(style=label, no_wrap=True)
        grid.add_column(no_wrap=True)
        q = s.position_qty
        if q == 0.0:
            side = Text("FLAT", style=colour(self, "position--flat"))
        else:
            kind = "long" if q > 0 else "short"
            side = Text(f"{kind.upper()} {qty(abs(q))}", style=colour(self, f"position--{kind}"))
        grid.add_row("side", side, "layers", str(s.layers))
        grid.add_row("avg entry", price(s.avg_entry) if q != 0.0 else "-", "close", price(s.close))
        grid.add_row("unrealized", self._pnl(s.upnl), "realized", self._pnl(s.realized_pnl))
        grid.add_row("fees", money(-s.fees), "funding", signed_money(s.funding))
        # Layers and protection get full-width rows of their own: a layer's line is long.
        rest = Table.grid(padding=(0, 1))
        rest.add_column(style=label, no_wrap=True, min_width=11)
        rest.add_column(no_wrap=True, overflow="ellipsis")
        for n, e in enumerate(snap.entries, 1):
            tagged = "" if e.tag is None else f"  {e.tag}"
            when = bar_time(e.ts)[5:]  # month-day and time: the year is in the header
            rest.add_row(f"layer {n}", f"{e.side} {qty(e.qty)} @ {price(e.price)}  {when}{tagged}")
        levels = dict(s.protection)
        for kind in PROTECTION_KINDS:
            level = levels.get(kind)
            rest.add_row(kind, "-" if level is None else price(level))
        return Group(grid, rest)
