"""The emulator's venue, sans-I/O: per symbol a `SimExchange` and its bars, the bar clock, Bybit's
ids and sequence numbers, order lookups by orderId / orderLinkId, and the queue of private pushes.

Nothing here reads a clock or touches a socket: every command takes `now_ms` (the API clock, the
server's wall clock in practice) and the server (server.py) sends what `drain_pushes()` returns.

The bar clock. The venue is always "at the close of" its current bar `bar`. A command arriving now
is sent to the simulator at that close (`submit(order, bar, close[bar])`), so it can first fill in
bar + 1: exactly when the backtester sends an order made at the close of `bar`. `advance(now_ms)`
then matches bar + 1 for every symbol (funding at its open, the bar's path, expiry of IOC / FOK,
trailing stops at its close), and `bar` becomes bar + 1.

From simulator events to Bybit. After every command and every bar the venue drains the simulator's
events in the order they happened and turns them into Bybit's records and pushes:
- an `OrderEvent` moves the order's Bybit status (records.bybit_status) and pushes an `order` item,
  except for the local in-flight states (PendingAmend, PendingCancel) and Submitted; orders the
  simulator makes itself (position protection, a liquidation) get an orderId when they appear; a
  protection order the simulator refuses is never a Bybit order and is not shown;
- a `Fill` is an execution (execType `Trade`, or `BustTrade` for a liquidation) pushed with the
  order's next status, so `leavesQty` is known;
- funding (a `CashFlow`) is an execution with execType `Funding`, execFee the amount paid;
- the position is pushed after every command (Bybit pushes one on every create, amend and cancel)
  and after every bar that filled or paid funding; the wallet after every fill or funding.
So a liquidation reads as Bybit's: the orders it cancels (`CancelAllBeforeLiq`) first, then the
venue's order and its `BustTrade` execution.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from playdeck.runtime.bybit.emulator.config import EmulatorConfig, InstrumentSpec, Market
from playdeck.runtime.bybit.emulator.errors import BybitError, MSG_SYMBOL
from playdeck.runtime.bybit.emulator.records import VenueOrder, bybit_status
from playdeck.runtime.bybit.emulator.wire import (
    Formats,
    PositionView,
    WalletPart,
    order_item,
    plain,
    position_item,
    wallet_item,
)
from playdeck.runtime.execution.orders import (
    CashFlow,
    Fill,
    OrderEvent,
    OrderRole,
    OrderStatus,
    OrderType,
    RefusalCode,
    Side,
)
from playdeck.runtime.sim.exchange import FUNDING_MS, SimExchange

__all__ = ["Push", "SymbolBook", "Venue"]

_S = OrderStatus
_IN_FLIGHT = (_S.SUBMITTED, _S.PENDING_AMEND, _S.PENDING_CANCEL)
_STOP_ORDER_TYPE = {OrderRole.STOP_LOSS: "StopLoss", OrderRole.TAKE_PROFIT: "TakeProfit",
                    OrderRole.TRAIL: "TrailingStop"}
_CREATE_TYPE = {OrderRole.STOP_LOSS: "CreateByStopLoss", OrderRole.TAKE_PROFIT: "CreateByTakeProfit",
                OrderRole.TRAIL: "CreateByTrailingStop", OrderRole.LIQUIDATION: "CreateByLiq"}


class Push(NamedTuple):
    """One private push: the topic family (order, execution, position, wallet) and its item."""

    topic: str
    item: dict[str, Any]


def new_order_id() -> str:
    return str(uuid.uuid4())


class SymbolBook:
    """One symbol: its simulator, its bars, its Bybit-side orders and executions, and the position
    figures only Bybit reports (realised PnL with fees and funding, leverage, seq)."""

    def __init__(self, market: Market, config: EmulatorConfig, start_bar: int) -> None:
        acc = config.account
        spec = market.spec
        bars = market.bars
        self.spec: InstrumentSpec = spec
        self.symbol = spec.symbol
        self.bars = bars
        self.fmt = Formats(spec)
        rates = None if bars.funding_rate is None else (np.asarray(bars.ts_open), np.asarray(bars.funding_rate))
        self.ex = SimExchange(spec.instrument(), maker_fee=acc.maker_fee, taker_fee=acc.taker_fee,
                              slippage_bps=acc.slippage_bps, intrabar=acc.intrabar, equity=acc.equity,
                              leverage=acc.leverage, mmr=acc.mmr, funding=acc.funding, funding_rates=rates)
        # The exchange is at the close of start_bar before it has matched any bar: margin, marks and
        # post-only checks read this close (what SimBackend.at_close does for a skipped bar).
        self.ex.last_close = float(bars.close[start_bar])
        self.orders: list[VenueOrder] = []  # every order shown, in creation order
        self.by_id: dict[str, VenueOrder] = {}
        self.by_client: dict[str, VenueOrder] = {}
        self.executions: list[dict[str, Any]] = []  # REST items, oldest first
        self.exec_times: list[int] = []
        self.pending_exec: dict[str, dict[str, Any]] = {}  # a fill waiting for its order's status
        self.cum_realised = 0.0
        self.cur_realised = 0.0
        self.position_seq = 0
        self.position_created = 0
        self.position_updated = 0
        self.qty = 0.0  # the position as the fills seen so far left it (for closedSize)
        # Where this symbol's exchange is: at the close of `bar`, or, while the venue walks bar
        # `bar` fill by fill (`Venue.walk`), paused after a fill at the path's price `walk_at`.
        self.bar = start_bar
        self.walk_at: float | None = None

    def command_point(self) -> tuple[int, float | None]:
        """(bar, at) for a command arriving now: at the close of `bar` (at None), or inside bar
        `bar` at the path's price `at` while a walk is paused there (SimExchange.submit's `at`)."""
        return self.bar, self.walk_at

    @property
    def price_now(self) -> float:
        """The last price a command is judged against: the path's price mid-walk, else the close."""
        return self.walk_at if self.walk_at is not None else self.ex.last_close

    @property
    def leverage(self) -> float:
        return self.ex.leverage

    def close(self, bar: int) -> float:
        return float(self.bars.close[bar])


class Venue:
    """Every symbol the emulator serves, on one bar clock. See the module docstring."""

    def __init__(self, config: EmulatorConfig, now_ms: int,
                 order_ids: Callable[[], str] = new_order_id) -> None:
        markets = config.markets
        tf = markets[0].bars.tf
        n = len(markets[0].bars)
        for m in markets[1:]:
            if m.bars.tf != tf:
                raise ValueError(f"{m.spec.symbol} has {m.bars.tf} bars and {markets[0].spec.symbol} {tf}: "
                                 "every data file must have the same timeframe")
            if len(m.bars) != n or not np.array_equal(m.bars.ts_open, markets[0].bars.ts_open):
                raise ValueError(f"the bars of {m.spec.symbol} and {markets[0].spec.symbol} do not line up: "
                                 "every data file must have bars at the same times")
        if n < 2:
            raise ValueError("the emulator needs at least two bars of data")
        start = config.start_bar
        if start is None:
            start = min(1000, n - 2)
        if not 0 <= start < n:
            raise ValueError(f"start bar {start} is outside the data (0 .. {n - 1})")
        self.config = config
        self.tf = tf
        self.n_bars = n
        self.bar = start
        self.data_ms = int(markets[0].bars.ts_open[1] - markets[0].bars.ts_open[0])
        self.books: dict[str, SymbolBook] = {m.spec.symbol: SymbolBook(m, config, start) for m in markets}
        self.by_link: dict[str, VenueOrder] = {}  # orderLinkIds are unique across the account
        self._order_ids = order_ids
        self._exec_seq = 0
        self._order_seq = 0
        self._pushes: list[Push] = []
        self.started_ms = now_ms
        # per symbol, the path prices a walk passed since `take_walk_points` (the market a lockstep
        # client sees between two steps, as it would see tickers)
        self.walk_points: dict[str, list[float]] = {}

    def take_walk_points(self) -> dict[str, list[float]]:
        # emptied in place: a walk in progress keeps appending to its symbol's list
        points = {s: p[:] for s, p in self.walk_points.items() if p}
        for p in self.walk_points.values():
            p.clear()
        return points

    # ------------------------------------------------------------------ lookups
    def book(self, symbol: str | None) -> SymbolBook:
        book = self.books.get(symbol or "")
        if book is None:
            raise BybitError(10001, MSG_SYMBOL)
        return book

    def find_order(self, book: SymbolBook, order_id: str | None, link_id: str | None) -> VenueOrder | None:
        """An order by orderId (which wins when both are given, as on Bybit), else by orderLinkId."""
        if order_id is not None:
            o = book.by_id.get(order_id)
            return o
        if link_id is not None:
            o = self.by_link.get(link_id)
            return o if o is not None and o.symbol == book.symbol else None
        raise BybitError(10001, "params error: orderId or orderLinkId is required")

    def ts(self, bar: int) -> int:
        """The open time (ms) of data bar `bar`."""
        return int(next(iter(self.books.values())).bars.ts_open[bar])

    @property
    def at_end(self) -> bool:
        return self.bar >= self.n_bars - 1

    def new_order_id(self) -> str:
        return self._order_ids()

    def drain_pushes(self) -> list[Push]:
        pushes = self._pushes
        self._pushes = []
        return pushes

    # ------------------------------------------------------------------ the bar clock
    def advance(self, now_ms: int) -> bool:
        """Match the next bar for every symbol (False, and nothing done, at the end of the data)."""
        if self.at_end:
            return False
        for _ in self.walk(lambda: now_ms):
            pass
        self.take_walk_points()  # nobody steps through this bar: its path is not kept
        return True

    def walk(self, now_ms: Callable[[], int]) -> Iterator[tuple[str, float]]:
        """`advance`, pausing after every fill (a generator of (symbol, path price)): while it waits,
        commands to that symbol are sent inside the bar at that price, as a client's answer to a
        fill reaches Bybit while the market goes on. Each symbol's bar is walked in turn: funding at
        its open, its path, its close. The venue's bar (market data) moves once every symbol is done."""
        if self.at_end:
            return
        i = self.bar + 1
        for book in self.books.values():
            b = book.bars
            o, h, l, c = float(b.open[i]), float(b.high[i]), float(b.low[i]), float(b.close[i])
            ts = int(b.ts_open[i])
            ex = book.ex
            book.bar = i
            points = self.walk_points.setdefault(book.symbol, [])
            ex.open_bar(i, ts, o)
            for at in ex.walk_bar(i, ts, o, h, l, c, points=points):
                book.walk_at = at
                self.absorb(book, now_ms(), command=False)
                yield book.symbol, at
            book.walk_at = None
            ex.close_bar(i, h, l, c)
            self.absorb(book, now_ms(), command=False)
        self.bar = i

    def next_funding(self, book: SymbolBook) -> tuple[int, float]:
        """The next funding instant after the current bar's close and its rate (the data's, else the
        account's), as the simulator will settle it."""
        close_ts = self.ts(self.bar) + self.data_ms
        instant = -(-close_ts // FUNDING_MS) * FUNDING_MS
        rate = book.ex.funding
        rates = book.bars.funding_rate
        if rates is not None:
            # the data's latest known rate (a bar after the current one is never read)
            k = min(int(np.searchsorted(book.bars.ts_open, instant, side="right")) - 1, self.bar)
            if k >= 0 and rates[k] == rates[k]:
                rate = float(rates[k])
        return instant, rate

    # ------------------------------------------------------------------ simulator events -> Bybit
    def absorb(self, book: SymbolBook, now_ms: int, *, command: bool) -> None:
        """Turn the simulator's events since the last drain into Bybit records and pushes. After a
        command the position is pushed whatever happened (as Bybit does)."""
        moved = False  # a fill or funding changed the position or the wallet
        for ev in book.ex.drain_events():
            if isinstance(ev, OrderEvent):
                self._order_event(book, ev, now_ms)
            elif isinstance(ev, Fill):
                self._fill(book, ev, now_ms)
                moved = True
            elif isinstance(ev, CashFlow):
                if ev.kind == "funding":
                    self._funding(book, ev, now_ms)
                moved = True
            # Refused: a protection the venue would not place when its entry filled. Bybit shows no
            # order for it; the position simply has no such level (the Rejected record stays hidden).
        if moved or command:
            book.position_seq += 1
            book.position_updated = now_ms
            self._pushes.append(Push("position", position_item(self.position_view(book), book.fmt, ws=True)))
        if moved:
            self._pushes.append(Push("wallet", self.wallet()))

    def _order_event(self, book: SymbolBook, ev: OrderEvent, now_ms: int) -> None:
        new = ev.new
        o = book.by_client.get(ev.client_id)
        if new is _S.SUBMITTED:
            if o is None:
                # An order the simulator made itself: protection, or a liquidation.
                o = self._venue_made(book, ev, now_ms)
            rec = book.ex.orders.get(ev.client_id)
            o.rec = rec
            return
        if o is None:
            return
        if new is _S.REJECTED:
            if ev.code is RefusalCode.POST_ONLY_WOULD_TAKE:
                # Bybit makes the order and cancels it at once (bybit-v5.md 2.3).
                self._set_status(book, o, "Cancelled", now_ms, reject="EC_PostOnlyWillTakeLiquidity")
            else:
                self._forget(book, o)  # refused at the API (an error code), or hidden protection
            return
        if new in _IN_FLIGHT:
            return
        status = bybit_status(new)
        assert status is not None
        pending = book.pending_exec.pop(o.client_id, None)
        if pending is not None:
            # The fill that made this status: its leavesQty is now known.
            done = new is _S.FILLED
            pending["leavesQty"] = book.fmt.qty(0.0 if done else max(o.rec.qty - o.cum_qty, 0.0))
            book.executions.append(pending)
            book.exec_times.append(int(pending["execTime"]))
            self._pushes.append(Push("execution", dict(pending, category="linear")))
        cancel_type, reject = _end_reasons(new, ev)
        self._set_status(book, o, status, now_ms, cancel=cancel_type, reject=reject)

    def _set_status(self, book: SymbolBook, o: VenueOrder, status: str, now_ms: int, *, cancel: str | None = None,
                    reject: str | None = None) -> None:
        o.status = status
        o.updated_ms = now_ms
        if cancel is not None:
            o.cancel_type = cancel
        if reject is not None:
            o.reject_reason = reject
        if o.order_id not in book.by_id:
            self._show(book, o)
        self._pushes.append(Push("order", order_item(o, book.fmt, ws=True)))

    def push_order(self, book: SymbolBook, o: VenueOrder) -> None:
        """Push an order whose Bybit fields changed without a status change (its attached TP/SL)."""
        self._pushes.append(Push("order", order_item(o, book.fmt, ws=True)))

    def _venue_made(self, book: SymbolBook, ev: OrderEvent, now_ms: int) -> VenueOrder:
        req = ev.values
        assert req is not None
        role = req.role
        limit = req.type is OrderType.LIMIT
        o = VenueOrder(
            order_id=self.new_order_id(), link_id="", client_id=ev.client_id, symbol=book.symbol,
            side="Buy" if req.side is Side.BUY else "Sell", order_type="Limit" if limit else "Market",
            tif="GTC" if limit else "IOC",
            trigger_direction=0 if req.trigger is None else (1 if req.side is Side.BUY else 2),
            trigger_by="" if req.trigger is None else "LastPrice",
            reduce_only=True, close_on_trigger=role is not OrderRole.TAKE_PROFIT,
            stop_order_type=_STOP_ORDER_TYPE.get(role, ""), create_type=_CREATE_TYPE.get(role, "CreateByUser"),
            take_profit=None, stop_loss=None, created_ms=now_ms,
            last_price_on_created=book.ex.last_close, updated_ms=now_ms)
        self.register(book, o)
        return o

    def register(self, book: SymbolBook, o: VenueOrder) -> None:
        """A user's order, before it is sent to the simulator (so its events find it)."""
        self._order_seq += 1
        o.seq = self._order_seq
        book.by_client[o.client_id] = o

    def _show(self, book: SymbolBook, o: VenueOrder) -> None:
        book.orders.append(o)
        book.by_id[o.order_id] = o
        if o.link_id:
            self.by_link[o.link_id] = o

    def _forget(self, book: SymbolBook, o: VenueOrder) -> None:
        if book.by_client.get(o.client_id) is o:
            del book.by_client[o.client_id]

    def _fill(self, book: SymbolBook, fill: Fill, now_ms: int) -> None:
        o = book.by_client[fill.client_id]
        f = book.fmt
        qty, price, fee = fill.qty, fill.price, fill.fee
        before = book.qty
        sign = fill.side.sign
        closed = min(qty, abs(before)) if before * sign < 0 else 0.0
        after = round(before + sign * qty, f.qty_dp)
        book.qty = 0.0 if abs(after) < book.spec.qty_step / 2 else after
        net = fill.realized_pnl - fee
        book.cum_realised += net
        if before == 0.0 or (book.qty != 0.0 and book.qty * before < 0):
            # A new position (fresh, or the new side of a flip): its own PnL starts with its share of the fee.
            book.cur_realised = -fee * (qty - closed) / qty
            book.position_created = now_ms
        else:
            book.cur_realised += net
        o.cum_qty = round(o.cum_qty + qty, f.qty_dp)
        o.cum_value += qty * price
        o.cum_fee += fee
        if closed > 0.0:
            o.closed_pnl += net
        self._exec_seq += 1
        rec = o.rec
        assert rec is not None
        book.pending_exec[o.client_id] = {
            "symbol": book.symbol,
            "orderId": o.order_id,
            "orderLinkId": o.link_id,
            "side": o.side,
            "orderPrice": f.price(rec.price) if o.order_type == "Limit" else "0",
            "orderQty": f.qty(rec.qty),
            "leavesQty": "0",
            "orderType": o.order_type,
            "stopOrderType": o.stop_order_type or "UNKNOWN",
            "createType": o.create_type,
            "execId": str(uuid.uuid4()),
            "execPrice": f.price(price),
            "execQty": f.qty(qty),
            "execValue": plain(qty * price),
            "execFee": plain(fee),
            "feeRate": plain(fee / (qty * price) if qty * price else 0.0),
            "feeCurrency": "USDT",
            "execType": "BustTrade" if fill.role is OrderRole.LIQUIDATION else "Trade",
            "execTime": str(now_ms),
            "isMaker": fill.liquidity == "maker",
            "markPrice": f.price(book.close(self.bar)),
            "indexPrice": "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "tradeIv": "",
            "markIv": "",
            "closedSize": f.qty(closed),
            "execPnl": plain(fill.realized_pnl),
            "extraFees": "",
            "isLeverage": "",
            "marketUnit": "",
            "seq": self._exec_seq,
        }

    def _funding(self, book: SymbolBook, flow: CashFlow, now_ms: int) -> None:
        f = book.fmt
        book.cum_realised += flow.amount
        book.cur_realised += flow.amount
        self._exec_seq += 1
        item = {
            "symbol": book.symbol, "orderId": "", "orderLinkId": "",
            "side": "Buy" if flow.qty > 0 else "Sell",
            "orderPrice": "0", "orderQty": "0", "leavesQty": "0", "orderType": "UNKNOWN",
            "stopOrderType": "UNKNOWN", "createType": "",
            "execId": str(uuid.uuid4()),
            "execPrice": f.price(flow.price), "execQty": f.qty(flow.qty),
            "execValue": plain(abs(flow.qty) * flow.price),
            # Bybit's fee sign: positive is paid. The funding instant is the data's time; the
            # execution happens now on the API clock like every other one.
            "execFee": plain(-flow.amount), "feeRate": plain(flow.rate, 8), "feeCurrency": "USDT",
            "execType": "Funding", "execTime": str(now_ms), "isMaker": False,
            "markPrice": f.price(flow.price), "indexPrice": "", "underlyingPrice": "", "blockTradeId": "",
            "tradeIv": "", "markIv": "", "closedSize": "0", "execPnl": plain(flow.amount), "extraFees": "",
            "isLeverage": "", "marketUnit": "", "seq": self._exec_seq,
        }
        book.executions.append(item)
        book.exec_times.append(now_ms)
        self._pushes.append(Push("execution", dict(item, category="linear")))

    # ------------------------------------------------------------------ positions and the wallet
    def position_view(self, book: SymbolBook) -> PositionView:
        ex = book.ex
        q, avg, _ = ex.position
        mark = ex.last_close
        value = abs(q) * (avg if q else 0.0)
        protection = {kind: ex.protection(kind) for kind in ("stop_loss", "take_profit", "trail")}
        sl, tp, trail = protection["stop_loss"], protection["take_profit"], protection["trail"]
        return PositionView(
            symbol=book.symbol, qty=q, avg=avg, mark=mark, leverage=ex.leverage,
            liq=ex.liquidation_price() if q else None,
            im=value / ex.leverage if q else 0.0, mm=abs(q) * mark * ex.mmr if q else 0.0,
            take_profit=None if tp is None else tp.price,
            stop_loss=None if sl is None else sl.trigger,
            trailing_stop=None if trail is None else _trail_distance(trail),
            upnl=ex.upnl(), cur_realised=book.cur_realised, cum_realised=book.cum_realised,
            seq=book.position_seq, created_ms=book.position_created or self.started_ms,
            updated_ms=book.position_updated or self.started_ms)

    def wallet_parts(self) -> list[WalletPart]:
        parts = []
        for book in self.books.values():
            ex = book.ex
            q, avg, _ = ex.position
            mark = ex.last_close
            order_im = 0.0
            for rec in ex.working.values():
                if rec.reduce_only or rec.type.is_conditional and rec.path[-1] is _S.UNTRIGGERED:
                    continue  # conditionals take no margin until they trigger (bybit-v5.md 2.3)
                ref = rec.price if rec.price is not None else mark
                order_im += (rec.qty - rec.filled_qty) * ref / ex.leverage
            parts.append(WalletPart(cash=ex.cash, upnl=ex.upnl(), position_im=abs(q) * avg / ex.leverage if q else 0.0,
                                    order_im=order_im, mm=abs(q) * mark * ex.mmr if q else 0.0,
                                    cum_realised=book.cum_realised))
        return parts

    def wallet(self) -> dict[str, Any]:
        return wallet_item(self.wallet_parts())

    def iter_orders(self, books: list[SymbolBook]) -> Iterator[VenueOrder]:
        for book in books:
            yield from book.orders


def _trail_distance(rec: Any) -> float:
    d = rec.trail_distance
    if d == d:
        return d
    # a percentage trail: its distance now, from the best price since it was set
    return rec.trail_extreme * rec.trail_pct if not math.isnan(rec.trail_pct) else 0.0


def _end_reasons(new: OrderStatus, ev: OrderEvent) -> tuple[str | None, str | None]:
    """Bybit's cancelType and rejectReason for an order that ended (None: leave as it is)."""
    if new not in (_S.CANCELLED, _S.PARTIALLY_FILLED_CANCELED, _S.DEACTIVATED, _S.EXPIRED):
        return None, None
    reason = ev.reason
    if reason == "CancelAllBeforeLiq":
        return "CancelAllBeforeLiq", None
    if "EC_NoImmediateQtyToFill" in reason:
        return "UNKNOWN", "EC_NoImmediateQtyToFill"
    if "EC_CancelForNoFullFill" in reason:
        return "UNKNOWN", "EC_CancelForNoFullFill"
    if reason == "position closed":
        # what belonged to the position: its TP/SL are cleared, reduce-only orders cancelled
        return "CancelByTpSlTsClear" if new is _S.DEACTIVATED else "CancelByReduceOnly", None
    if reason.startswith("reduce-only"):
        return "CancelByReduceOnly", None
    return "CancelByUser", None
