"""What a condition sees at the close of a bar: the position, orders and equity, read lazily.

One `StateView` is made per evaluated bar; the state words of the language are its attributes
(`position.r` is `pos_r`). It reads the `TradingState` the venue's events built, so sim and live
read the same.
"""
from __future__ import annotations

import math
from typing import Any

from playdeck.runtime.execution.orders import OrderRecord, OrderStatus
from playdeck.runtime.execution.trading_state import TradingState

NAN = math.nan


class StateView:
    __slots__ = ("state", "bar", "close")

    def __init__(self, state: TradingState, bar: int, close: float):
        self.state = state
        self.bar = bar
        self.close = close

    @property
    def flat(self) -> bool:
        return self.state.position.qty == 0.0

    @property
    def long(self) -> bool:
        return self.state.position.qty > 0.0

    @property
    def short(self) -> bool:
        return self.state.position.qty < 0.0

    @property
    def equity(self) -> float:
        return self.state.cash + self.pos_upnl

    @property
    def pos_size(self) -> float:
        """Signed, as Pine's strategy.position_size: negative when short."""
        return self.state.position.qty

    @property
    def pos_entry(self) -> float:
        pos = self.state.position
        return pos.avg_entry if pos.qty != 0.0 else NAN

    @property
    def pos_layers(self) -> float:
        pos = self.state.position
        return float(pos.layers) if pos.qty != 0.0 else 0.0

    @property
    def pos_upnl(self) -> float:
        q, avg, _ = self.state.position
        return 0.0 if q == 0.0 else q * (self.close - avg)

    @property
    def pos_r(self) -> float:
        """Unrealized PnL over the initial risk |first entry - first stop_loss| x the first entry's
        qty (what the position risked when it opened); NaN without a stop."""
        st = self.state
        risk = abs(st.first_entry_price - st.first_stop_price) * st.first_entry_qty
        if st.position.qty == 0.0 or not risk > 0.0:
            return NAN
        return self.pos_upnl / risk

    @property
    def pos_bars(self) -> float:
        st = self.state
        opened = st.opened_bar
        # closed bars since it opened: its entry bar has closed once the blocks see it (1 there)
        return NAN if opened is None or st.position.qty == 0.0 else float(self.bar - opened + 1)

    @property
    def pos_reduced(self) -> bool:
        st = self.state
        return bool(st.reduced) and st.position.qty != 0.0

    def pending_order(self, tag: str) -> OrderRecord | None:
        return self.state.pending_by_tag.get(tag)

    def order_status(self, client_id: str) -> OrderStatus:
        return self.state.status(client_id)

    def tag(self, tag: str, attr: str) -> Any:
        if attr == "pending":
            return tag in self.state.pending_by_tag
        if attr == "filled":
            return tag in self.state.filled_tags
        return self.state.tag_prices.get(tag, NAN)
