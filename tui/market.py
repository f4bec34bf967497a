"""The price chart: the recent exec bars' closes, the Play's price-scale features, and the fills."""
from __future__ import annotations

import math

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from playdeck.tui.formats import clock_time
from playdeck.tui.snapshot import ConsoleSnapshot, MarketWindow

TICKS = 6  # time labels on the x axis


class MarketChart(PlotextPlot):
    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._drawn: tuple[int, int, int] | None = None  # (first bar, last bar, fills) last drawn

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None or not len(snap.market):
            return
        m = snap.market
        key = (m.first_bar, m.first_bar + len(m) - 1, len(m.fills))
        if key == self._drawn:
            return  # commands between bars change nothing here: no redraw
        self._drawn = key
        draw(self.plt, m, f"{snap.symbol} {snap.exec_tf}")
        self.refresh()


def draw(plt, m: MarketWindow, title: str) -> None:
    """Plot the window on a plotext figure: x is the bar number, labelled by the time of day."""
    plt.clear_data()
    x = list(range(m.first_bar, m.first_bar + len(m)))
    plt.plot(x, list(m.close), label="close", marker="braille")
    for name, values in m.features:
        # Warm-up NaNs are left out: plotext would draw them as a line to zero.
        xs = [b for b, v in zip(x, values) if not math.isnan(v)]
        if xs:
            plt.plot(xs, [v for v in values if not math.isnan(v)], label=name, marker="braille")
    buys = [(f.bar, f.price) for f in m.fills if f.side == "buy"]
    sells = [(f.bar, f.price) for f in m.fills if f.side == "sell"]
    if buys:
        plt.scatter([b for b, _ in buys], [p for _, p in buys], marker="▲", color="green", label="buy")
    if sells:
        plt.scatter([b for b, _ in sells], [p for _, p in sells], marker="▼", color="red", label="sell")
    step = max(1, len(x) // TICKS)
    ticks = x[::step]
    plt.xticks(ticks, [clock_time(m.ts[b - m.first_bar]) for b in ticks])
    plt.title(title)
