"""A venue for rule tables: commands through the `ExecutionBackend` protocol, time and events through
`VenueClock`, everything read back from the `TradingState` the venue's events build.

The section-5 tables (tests/runtime/sim/test_sim_rules.py) are written against `Venue`, never a
simulator's insides, so the same rows can run on any venue that speaks the protocols: the simulator
here, the Bybit emulator next. Commands run to completion in a private event loop (the simulator
never suspends; a networked venue does).
"""
from __future__ import annotations

import asyncio
from typing import Any

from playdeck.runtime.execution.executor import Executor
from playdeck.runtime.execution.orders import (
    FILL,
    Instrument,
    OrderRecord,
    OrderRequest,
    OrderResult,
    OrderStatus,
    ProtectionSpec,
)
from playdeck.runtime.execution.trading_state import TradingState
from playdeck.runtime.sim.backend import DetailBars, SimBackend
from playdeck.runtime.sim.exchange import SimExchange

MINUTE = 60_000


class _Fill:
    """`F` below: arithmetic on it spells a price of the fill, e.g. `F - 2` is `("-", "fill", 2.0)`."""

    def __init__(self, expr: Any = FILL) -> None:
        self.expr = expr

    def _op(self, op: str, a: Any, b: Any) -> _Fill:
        return _Fill((op, _expr(a), _expr(b)))

    def __add__(self, other: Any) -> _Fill:
        return self._op("+", self, other)

    def __radd__(self, other: Any) -> _Fill:
        return self._op("+", other, self)

    def __sub__(self, other: Any) -> _Fill:
        return self._op("-", self, other)

    def __rsub__(self, other: Any) -> _Fill:
        return self._op("-", other, self)

    def __mul__(self, other: Any) -> _Fill:
        return self._op("*", self, other)

    def __rmul__(self, other: Any) -> _Fill:
        return self._op("*", other, self)

    def __truediv__(self, other: Any) -> _Fill:
        return self._op("/", self, other)


def _expr(v: Any) -> Any:
    return v.expr if isinstance(v, _Fill) else float(v)


F = _Fill()


def protection(kind: str, value: Any, where: str = "") -> ProtectionSpec:
    """An attached stop_loss / take_profit / trail: `value` is `F` arithmetic or a number."""
    return ProtectionSpec(kind, _expr(value), where)


def path_text(rec: OrderRecord) -> str:
    """An order's status path as the console shows it: without the leading Submitted."""
    return ">".join(s.value for s in rec.path[1:]) or rec.path[0].value


class Venue:
    """One symbol on a venue, driven bar by bar; reads are the TradingState's."""

    def __init__(self, instrument: Instrument, step_ms: int = MINUTE, detail: DetailBars | None = None,
                 **config: Any) -> None:
        """`step_ms`: the length of a bar (bar k opens at k x step_ms, epoch 0 a funding instant);
        `detail`: the bar magnifier's bars."""
        self.step_ms = step_ms
        self.exchange = SimExchange(instrument, **config)
        self.backend = SimBackend(self.exchange, detail=detail)
        self.state = TradingState(instrument, config["equity"], keep_events=True)
        self.executor = Executor(self.backend, self.state)
        self.last_close = float("nan")
        self._seen = 0
        self._loop = asyncio.new_event_loop()

    # ------------------------------------------------------------------ time (VenueClock)
    def bar_closed(self, bar: int, o: float, h: float, l: float, c: float) -> None:
        self.backend.bar_closed(bar, bar * self.step_ms, o, h, l, c)
        self.last_close = c
        self.executor.sync()

    def _at(self, bar: int, close: float) -> None:
        # Commands are sent at the close of `bar` (the table says which); nothing is matched here.
        self.backend.at_close(bar, bar * self.step_ms, close)
        self.last_close = close

    # ------------------------------------------------------------------ commands (ExecutionBackend)
    def _run(self, coro: Any) -> Any:
        result = self._loop.run_until_complete(coro)
        self.executor.sync()
        return result

    def submit(self, order: OrderRequest, bar: int, close: float) -> OrderResult:
        self._at(bar, close)
        return self._run(self.backend.submit_order(order))

    def amend(self, client_id: str, bar: int, **kw: Any) -> OrderResult:
        self.backend.bar = bar
        return self._run(self.backend.amend_order(client_id, **kw))

    def cancel(self, client_id: str, bar: int) -> bool:
        self.backend.bar = bar
        return self._run(self.backend.cancel_order(client_id))

    def cancel_all(self, bar: int) -> int:
        self.backend.bar = bar
        return self._run(self.backend.cancel_all())

    def set_protection(self, kind: str, value: float, bar: int, close: float, percent: bool = False) -> OrderResult:
        self._at(bar, close)
        return self._run(self.backend.set_protection(kind, value, percent=percent))

    # ------------------------------------------------------------------ reads (TradingState)
    @property
    def orders(self) -> dict[str, OrderRecord]:
        return self.state.orders

    @property
    def working(self) -> dict[str, OrderRecord]:
        return self.state.open

    @property
    def has_pending(self) -> bool:
        return bool(self.state.open)

    def open_orders(self) -> list[OrderRecord]:
        return list(self.state.open.values())

    def order_by_tag(self, tag: str) -> OrderRecord | None:
        return self.state.pending_by_tag.get(tag)

    def protection(self, kind: str) -> OrderRecord | None:
        return self.state.protection.get(kind)

    def tag_filled(self, tag: str) -> bool:
        return self.state.tag_filled(tag)

    def status_path(self, client_id: str) -> tuple[OrderStatus, ...]:
        return tuple(self.state.orders[client_id].path)

    @property
    def position_qty(self) -> float:
        return self.state.qty

    @property
    def avg_entry(self) -> float:
        return self.state.avg_entry

    @property
    def layers(self) -> int:
        return self.state.layers

    @property
    def reduced(self) -> bool:
        return self.state.reduced

    @property
    def position_opened_bar(self) -> int | None:
        return self.state.opened_bar

    @property
    def first_entry_price(self) -> float:
        return self.state.first_entry_price

    @property
    def first_entry_qty(self) -> float:
        return self.state.first_entry_qty

    @property
    def first_stop_price(self) -> float:
        return self.state.first_stop_price

    @property
    def realized_pnl(self) -> float:
        return self.state.realized_pnl

    @property
    def fees_paid(self) -> float:
        return self.state.fees_paid

    @property
    def cash(self) -> float:
        return self.state.cash

    def equity(self, price: float | None = None) -> float:
        return self.state.equity(self.last_close if price is None else price)

    def drain_events(self) -> list[Any]:
        """The events the state applied since the last call (what the venue reported)."""
        events = self.state.events[self._seen:]
        self._seen = len(self.state.events)
        return events
