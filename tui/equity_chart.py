"""Equity at each visible bar's close: how the run is going, at a glance."""
from __future__ import annotations

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from playdeck.tui.snapshot import ConsoleSnapshot


class EquityChart(PlotextPlot):
    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._drawn: tuple | None = None

    def on_mount(self) -> None:
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None or not snap.equity_curve:
            return
        curve = snap.equity_curve
        key = (curve[0], curve[-1], len(curve))
        if key == self._drawn:
            return
        self._drawn = key
        plt = self.plt
        plt.clear_data()
        plt.plot([b for b, _ in curve], [e for _, e in curve], marker="braille", label="equity")
        plt.hline(snap.initial_equity)  # where the account started
        bars = [b for b, _ in curve]
        ticks = bars[:: max(1, len(bars) // 6)]
        plt.xticks(ticks, [str(b) for b in ticks])  # bar numbers, as the trades table counts them
        plt.title(f"equity (USDT) over the last {len(curve)} visible bars")
        self.refresh()
