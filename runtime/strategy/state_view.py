"""What a condition sees at the close of a bar: the position, orders and equity, read lazily.

One `StateView` is made per evaluated bar; the state words of the language are its attributes
(`position.r` is `pos_r`). It reads the exchange state of the backend, so sim and live agree.
"""
from __future__ import annotations

import math
from typing import Any

from playdeck.runtime.execution.orders import Order, OrderStatus

NAN = math.nan


class StateView:
    __slots__ = ("ex", "bar", "close", "tag_prices")

    def __init__(self, ex: Any, bar: int, close: float, tag_prices: dict[str, float]):
        self.ex = ex
        self.bar = bar
        self.close = close
        self.tag_prices = tag_prices

    @property
    def flat(self) -> bool:
        return self.ex.position_qty == 0.0

    @property
    def long(self) -> bool:
        return self.ex.position_qty > 0.0

    @property
    def short(self) -> bool:
        return self.ex.position_qty < 0.0

    @property
    def equity(self) -> float:
        return self.ex.cash + self.pos_upnl

    @property
    def pos_size(self) -> float:
        """Signed, as Pine's strategy.position_size: negative when short."""
        return self.ex.position_qty

    @property
    def pos_entry(self) -> float:
        return self.ex.avg_entry if self.ex.position_qty != 0.0 else NAN

    @property
    def pos_layers(self) -> float:
        return float(self.ex.layers) if self.ex.position_qty != 0.0 else 0.0

    @property
    def pos_upnl(self) -> float:
        q = self.ex.position_qty
        return 0.0 if q == 0.0 else q * (self.close - self.ex.avg_entry)

    @property
    def pos_r(self) -> float:
        """Unrealized PnL over the initial risk |first entry - first stop_loss| x the first entry's
        qty (what the position risked when it opened); NaN without a stop."""
        q = self.ex.position_qty
        risk = abs(self.ex.first_entry_price - self.ex.first_stop_price) * self.ex.first_entry_qty
        if q == 0.0 or not risk > 0.0:
            return NAN
        return self.pos_upnl / risk

    @property
    def pos_bars(self) -> float:
        opened = self.ex.position_opened_bar
        # closed bars since it opened: its entry bar has closed once the blocks see it (1 there)
        return NAN if opened is None or self.ex.position_qty == 0.0 else float(self.bar - opened + 1)

    @property
    def pos_reduced(self) -> bool:
        return bool(self.ex.reduced) and self.ex.position_qty != 0.0

    def pending_order(self, tag: str) -> Order | None:
        return self.ex.order_by_tag(tag)

    def order_status(self, order_id: str) -> OrderStatus:
        return self.ex.status(order_id)

    def tag(self, tag: str, attr: str) -> Any:
        if attr == "pending":
            return self.ex.order_by_tag(tag) is not None
        if attr == "filled":
            return self.ex.tag_filled(tag)
        return self.tag_prices.get(tag, NAN)
