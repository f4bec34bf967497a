"""Closed trades, newest first: side, entry and exit bars with their times, qty, prices, net PnL,
fees and what closed it."""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable

from playdeck.tui.formats import bar_time, colour, money, price, qty, signed_money
from playdeck.tui.snapshot import ConsoleSnapshot


class TradesTable(DataTable):
    COMPONENT_CLASSES = {"trade--gain", "trade--loss"}

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple | None = None

    def on_mount(self) -> None:
        self.add_columns("side", "entry (UTC)", "exit (UTC)", "bars", "qty", "entry", "exit", "net PnL", "return",
                         "fees", "exit reason")
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None or not self.columns or snap.session.trades == self._shown:
            return
        self._shown = snap.session.trades
        self.clear()
        for t, (entry_ts, exit_ts) in zip(reversed(snap.session.trades), reversed(snap.trade_times)):
            style = colour(self, "trade--gain" if t.pnl >= 0 else "trade--loss")
            self.add_row(t.side, bar_time(entry_ts), bar_time(exit_ts), str(t.exit_bar - t.entry_bar), qty(t.qty),
                         price(t.entry_price), price(t.exit_price), Text(signed_money(t.pnl), style=style),
                         Text(f"{t.return_pct:+.2f}%", style=style), money(t.fees), t.exit_reason)
