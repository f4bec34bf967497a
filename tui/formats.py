"""How the console writes numbers, times and order states: one spelling for every pane.

Pure functions of values (no widgets, no clock), so a pane's text is a function of its snapshot and
the SVG snapshots stay byte-for-byte the same from run to run.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Callable

from rich.style import Style
from rich.text import Text

from playdeck.runtime.execution.orders import OrderSnapshot, OrderStatus

NA = "n/a"  # a value the venue does not have (never a made-up zero)
ARROW = " → "  # between the states of a path


def bar_time(ts_ms: int) -> str:
    """A bar's open time in UTC to the minute: `2025-01-01 05:15`."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def clock_time(ts_ms: int) -> str:
    """Time of day in UTC, for axes and compact rows: `05:15`."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%H:%M")


def money(value: float) -> str:
    """USDT with thousands and cents: `10,012.34`; NaN is n/a."""
    return NA if value != value else f"{value:,.2f}"


def signed_money(value: float) -> str:
    """A change in USDT, its sign always written: `+12.34`, `-0.50`."""
    return NA if value != value else f"{value:+,.2f}"


def price(value: float | None) -> str:
    """A price as the venue writes it (up to the tick's decimals; 0.1 for the bundled BTCUSDT)."""
    if value is None or value != value:
        return "-"
    return f"{value:,.{_decimals(value)}f}"


def qty(value: float) -> str:
    """A quantity without float noise: `0.083`, `1.5`."""
    if value != value:
        return "-"
    return f"{value:.8f}".rstrip("0").rstrip(".") or "0"


def _decimals(value: float) -> int:
    # Enough to show a tick of the price's order of magnitude: BTC at 60,000 has one, a coin at
    # 0.0123 five; a screen needs a stable width per magnitude, not the float's repr.
    size = abs(value)
    if size == 0.0 or math.isinf(size):
        return 2
    return max(1, min(8, 4 - int(math.floor(math.log10(size)))))


def order_price(o: OrderSnapshot) -> str:
    """Limit price and/or trigger: `61,000.0`, `@ 60,500.0` (a trigger), `60,400.0 @ 60,500.0`."""
    if o.trigger is not None and o.price is not None:
        return f"{price(o.price)} @ {price(o.trigger)}"
    if o.trigger is not None:
        return f"@ {price(o.trigger)}"
    if o.price is not None:
        return price(o.price)
    return "-"  # a market order


def order_type(o: OrderSnapshot) -> str:
    return o.request.type.value


def side_and_type(o: OrderSnapshot) -> str:
    """`buy limit`, `sell stop`: one column for both, so the state path gets the room."""
    return f"{o.request.side.value} {o.request.type.value}"


def filled_of(o: OrderSnapshot) -> str:
    """`0.1/0.451`: filled of the order's quantity."""
    return f"{qty(o.filled_qty)}/{qty(o.qty)}"


def tag(o: OrderSnapshot) -> str:
    """The Play's tag; for an untagged order what it is for when that is not a plain entry
    (stop_loss, take_profit, trail, close, partial_close, scale, liquidation)."""
    if o.request.tag is not None:
        return o.request.tag
    role = o.request.role.value
    return "-" if role == "entry" else role


def state_class(status: OrderStatus) -> str:
    """The component class that colours a status (styles in console.tcss): state--pendingcancel, ..."""
    return f"state--{status.value.lower()}"


STATE_CLASSES = frozenset(state_class(s) for s in OrderStatus)


def path_plain(path: tuple[OrderStatus, ...]) -> str:
    return ARROW.join(s.value for s in path)


def path_text(path: tuple[OrderStatus, ...], style_of: Callable[[str], Style]) -> Text:
    """`Submitted → New → Filled`, each state in its colour (`style_of` a widget's component style)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for k, status in enumerate(path):
        if k:
            text.append(ARROW, style="dim")
        text.append(status.value, style=style_of(state_class(status)))
    return text


def colour(widget: Any, component: str) -> Style:
    """The colours console.tcss gives a widget's component class, and nothing else: a state's colour
    over a table's zebra stripe or cursor keeps that row's background."""
    return widget.get_component_rich_style(component, partial=True)


def colours(widget: Any) -> Callable[[str], Style]:
    return lambda component: colour(widget, component)
