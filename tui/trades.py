"""The trades / PnL screen: the run's figures, the equity curve and every closed trade."""
from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from playdeck.tui.equity_chart import EquityChart
from playdeck.tui.formats import money, signed_money
from playdeck.tui.snapshot import ConsoleSnapshot
from playdeck.tui.trades_table import TradesTable


def summary(snap: ConsoleSnapshot) -> Table:
    s, t = snap.session, snap.trade_stats
    grid = Table.grid(padding=(0, 2))
    for _ in range(6):
        grid.add_column(no_wrap=True)
    ret = (s.equity / snap.initial_equity - 1.0) * 100.0
    rate = "-" if t.count == 0 else f"{t.win_rate * 100:.0f}%"
    grid.add_row("equity", money(s.equity), "return", f"{ret:+.2f}%", "PnL today", signed_money(snap.pnl_today))
    grid.add_row("realized", signed_money(s.realized_pnl), "unrealized", signed_money(s.upnl), "fees", money(-s.fees))
    grid.add_row("trades", str(t.count), "won", f"{t.wins} ({rate})", "funding", signed_money(s.funding))
    grid.add_row("net of trades", signed_money(t.net_pnl), "best", "-" if t.count == 0 else signed_money(t.best),
                 "worst", "-" if t.count == 0 else signed_money(t.worst))
    return grid


class TradesScreen(Screen):
    BINDINGS = [Binding("escape,t", "app.pop_screen", "Back")]

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def compose(self) -> ComposeResult:
        yield Static(id="trades-summary")
        yield EquityChart(id="equity")
        yield TradesTable(id="trades")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#trades-summary").border_title = "Trades and PnL"
        self._draw(self.snapshot)

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if self.is_mounted:  # before that, on_mount draws what is there
            self._draw(snap)

    def _draw(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None:
            return
        self.query_one("#trades-summary", Static).update(summary(snap))
        self.query_one(EquityChart).snapshot = snap
        self.query_one(TradesTable).snapshot = snap
