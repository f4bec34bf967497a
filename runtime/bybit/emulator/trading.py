"""The trading endpoints on the venue, sans-I/O: each takes the request's fields and `now_ms` and
returns Bybit's `result`, or raises `BybitError`.

Mapping to the simulator (README, "The Bybit emulator", says where this differs from Bybit):
- `/v5/order/create` -> an `OrderRequest` sent at the close of the current bar: orderLinkId is the
  client id (the orderId when none is given); `triggerPrice` makes a Market order a STOP and a Limit
  order a STOP_LIMIT; `reduceOnly` -> reduce_only (role partial_close: capped at the position);
  qty "0" with reduceOnly + closeOnTrigger -> role close (the whole position when it fills);
  `takeProfit` / `stopLoss` -> protection attached to the order (set on the position when it fills);
  no bar expiry (playdeck's own: a live backend sends it as a cancel).
- `/v5/position/trading-stop` -> `SimExchange.set_protection`: position-level, one of each, cleared
  when the position closes (Bybit's Full mode). The language's rules hold: the take-profit is a
  maker limit at its level and the trail ratchets at bar closes (PLAY-LANGUAGE.md 6).
Checks the simulator does not make are made here first, in Bybit's terms: the field grid (qty
step, tick), the instrument's limits (max qty, price range, min notional), triggerDirection.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from playdeck.runtime.bybit.emulator.errors import (
    MSG_DUPLICATE,
    MSG_LEVERAGE_SAME,
    MSG_MAX_QTY,
    MSG_MIN_QTY,
    MSG_NOT_EXISTS,
    MSG_NOT_MODIFIED,
    MSG_POSITION_IDX,
    MSG_PRICE_RANGE,
    MSG_QTY,
    MSG_ZERO_POSITION,
    BybitError,
    min_notional_msg,
    param_error,
    refusal_error,
    trigger_msg,
)
from playdeck.runtime.bybit.emulator.params import (
    ORDER_LINK_ID,
    as_bool,
    as_int,
    decimal,
    on_grid,
    require_linear,
    text,
)
from playdeck.runtime.bybit.emulator.records import VenueOrder
from playdeck.runtime.bybit.emulator.venue import SymbolBook, Venue
from playdeck.runtime.execution.orders import (
    OrderRequest,
    OrderRole,
    OrderType,
    ProtectionSpec,
    RefusalCode,
    Side,
    TimeInForce,
)
from playdeck.runtime.sim.protection import wrong_side

__all__ = ["amend_order", "cancel_all", "cancel_order", "create_order", "set_leverage", "trading_stop"]

TRIGGER_BY = ("LastPrice", "MarkPrice", "IndexPrice")  # one price stands for all three here
TIFS = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PostOnly": TimeInForce.POST_ONLY}
MSG_UNCHANGED = "The order remains unchanged as the parameters entered match the existing ones."


def _price(book: SymbolBook, p: dict[str, Any], name: str, *, zero_is_none: bool = False) -> float | None:
    """A price field on the tick and inside the instrument's price range."""
    d = decimal(p, name)
    if d is None or (zero_is_none and d == 0):
        return None
    spec = book.spec
    if d <= 0 or not on_grid(d, spec.tick):
        raise param_error(name)
    if d < Decimal(repr(spec.min_price)) or d > Decimal(repr(spec.max_price)):
        raise BybitError(110003, MSG_PRICE_RANGE)
    return float(d)


def _qty(book: SymbolBook, d: Decimal, *, market: bool, reduce_only: bool) -> float:
    spec = book.spec
    if d <= 0 or not on_grid(d, spec.qty_step):
        raise BybitError(10001, MSG_QTY)
    qty = float(d)
    if qty < spec.min_qty:
        raise BybitError(10001, MSG_MIN_QTY)
    if not reduce_only and qty > (spec.max_mkt_qty if market else spec.max_qty):
        raise BybitError(10001, MSG_MAX_QTY)
    return qty


def _check_trigger(book: SymbolBook, direction: int, trigger: float) -> None:
    """110092 / 110093: a trigger must lie on the side of the last price its direction says."""
    last = book.price_now
    f = book.fmt
    if direction == 1 and not trigger > last:
        raise BybitError(110092, trigger_msg(True, f.price(trigger), f.price(last)))
    if direction == 2 and not trigger < last:
        raise BybitError(110093, trigger_msg(False, f.price(trigger), f.price(last)))


def _position_idx(p: dict[str, Any], *, required: bool = False) -> None:
    idx = as_int(p, "positionIdx", None, low=0, high=2)
    if idx is None and required:
        raise BybitError(10001, "params error: positionIdx is required")
    if idx not in (None, 0):
        raise BybitError(10001, MSG_POSITION_IDX)  # one-way mode only


def create_order(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_linear(p)
    book = v.book(text(p, "symbol", required=True))
    side = text(p, "side", required=True)
    if side not in ("Buy", "Sell"):
        raise param_error("side")
    otype = text(p, "orderType", required=True)
    if otype not in ("Market", "Limit"):
        raise param_error("orderType")
    market = otype == "Market"
    qty_d = decimal(p, "qty", message=MSG_QTY)
    if qty_d is None:
        raise BybitError(10001, MSG_QTY)
    _position_idx(p)
    tif = text(p, "timeInForce") or "GTC"
    if tif not in TIFS:
        raise param_error("timeInForce")
    if market:
        tif = "IOC"  # Bybit: market orders always use IOC
    link = text(p, "orderLinkId") or ""
    if link and not ORDER_LINK_ID.fullmatch(link):
        raise param_error("orderLinkId")
    reduce_only = as_bool(p, "reduceOnly")
    close_on_trigger = as_bool(p, "closeOnTrigger")
    price = None if market else _price(book, p, "price")
    if not market and price is None:
        raise BybitError(10001, "params error: price is required for a Limit order")
    trigger = _price(book, p, "triggerPrice", zero_is_none=True)
    direction = as_int(p, "triggerDirection", 0) or 0
    trigger_by = text(p, "triggerBy") or "LastPrice"
    if trigger is not None:
        if direction not in (1, 2):
            raise param_error("triggerDirection")
        if trigger_by not in TRIGGER_BY:
            raise param_error("triggerBy")
        if (direction == 1) != (side == "Buy"):
            # The language's stops buy on a rise and sell on a fall; the other two are not matched here.
            raise BybitError(10001, f"params error: triggerDirection {direction} with side {side} is not "
                                    "served by the emulator (Buy triggers on a rise, Sell on a fall)")
    else:
        direction = 0
    take_profit = _price(book, p, "takeProfit", zero_is_none=True)
    stop_loss = _price(book, p, "stopLoss", zero_is_none=True)
    mode = text(p, "tpslMode")
    if mode not in (None, "Full"):
        raise BybitError(10001, f"params error: tpslMode {mode} is not served by the emulator (Full only)")
    if reduce_only and (take_profit is not None or stop_loss is not None):
        raise BybitError(10001, "params error: take profit / stop loss cannot be set on a reduce-only order")

    close_all = qty_d == 0
    if close_all and not (reduce_only and close_on_trigger):
        raise BybitError(10001, MSG_QTY)
    position = book.ex.position.qty
    qty = abs(position) if close_all else _qty(book, qty_d, market=market, reduce_only=reduce_only)
    if link and link in v.by_link:
        raise BybitError(110072, MSG_DUPLICATE)
    if trigger is not None:
        _check_trigger(book, direction, trigger)
    last = book.price_now
    if not reduce_only:
        ref = price if price is not None else (trigger if trigger is not None else last)
        if qty * ref < book.spec.min_notional:
            raise BybitError(110094, min_notional_msg(book.spec.min_notional))

    if trigger is not None:
        kind = OrderType.STOP if market else OrderType.STOP_LIMIT
    else:
        kind = OrderType.MARKET if market else OrderType.LIMIT
    role = OrderRole.CLOSE if close_all else OrderRole.PARTIAL_CLOSE if reduce_only else OrderRole.ENTRY
    attached = tuple(ProtectionSpec(k, x) for k, x in (("take_profit", take_profit), ("stop_loss", stop_loss))
                     if x is not None)
    order_id = v.new_order_id()
    client_id = link or order_id
    o = VenueOrder(order_id=order_id, link_id=link, client_id=client_id, symbol=book.symbol, side=side,
                   order_type=otype, tif=tif, trigger_direction=direction,
                   trigger_by=trigger_by if trigger is not None else "", reduce_only=reduce_only,
                   close_on_trigger=close_on_trigger, stop_order_type="Stop" if trigger is not None else "",
                   create_type="CreateByUser", take_profit=take_profit, stop_loss=stop_loss, created_ms=now_ms,
                   last_price_on_created=last, updated_ms=now_ms)
    v.register(book, o)
    # A market order is GTC to the simulator (it fills at the next open, as a backtest's does);
    # Bybit reports it IOC.
    bar, at = book.command_point()
    request = OrderRequest(client_id, Side.BUY if side == "Buy" else Side.SELL, kind, qty, price, trigger,
                           TimeInForce.GTC if market else TIFS[tif], reduce_only, role, None, bar, None, attached)
    result = book.ex.submit(request, bar, last, at=at)
    post_only = result.refusal is not None and result.refusal.code is RefusalCode.POST_ONLY_WOULD_TAKE
    v.absorb(book, now_ms, command=result.accepted or post_only)
    if not result.accepted and not post_only:
        assert result.refusal is not None
        raise refusal_error(result.refusal)
    return {"orderId": order_id, "orderLinkId": link}


def _open_order(v: Venue, book: SymbolBook, p: dict[str, Any], missing: str) -> VenueOrder:
    o = v.find_order(book, text(p, "orderId"), text(p, "orderLinkId"))
    if o is None or o.client_id not in book.ex.working:
        raise BybitError(110001, missing)
    return o


def amend_order(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_linear(p)
    book = v.book(text(p, "symbol", required=True))
    o = _open_order(v, book, p, "order not exists or too late to replace")
    rec = o.rec
    assert rec is not None
    qty_d = decimal(p, "qty", message=MSG_QTY)
    qty = None if qty_d is None else _qty(book, qty_d, market=o.order_type == "Market", reduce_only=o.reduce_only)
    if qty is not None and qty <= o.cum_qty:
        raise BybitError(110063, "The number of contracts modified cannot be less than or equal to the filled quantity")
    price = _price(book, p, "price")
    trigger = _price(book, p, "triggerPrice")
    if price is not None and o.order_type != "Limit":
        raise param_error("price")
    if trigger is not None:
        if o.trigger_direction == 0:
            raise param_error("triggerPrice")
        _check_trigger(book, o.trigger_direction, trigger)
    tp_d, sl_d = decimal(p, "takeProfit"), decimal(p, "stopLoss")
    take_profit = o.take_profit if tp_d is None else _price(book, p, "takeProfit", zero_is_none=True)
    stop_loss = o.stop_loss if sl_d is None else _price(book, p, "stopLoss", zero_is_none=True)
    new = (rec.qty if qty is None else qty, rec.price if price is None else price,
           rec.trigger if trigger is None else trigger, take_profit, stop_loss)
    if new == (rec.qty, rec.price, rec.trigger, o.take_profit, o.stop_loss):
        raise BybitError(10001, MSG_UNCHANGED)
    attached = tuple(ProtectionSpec(k, x) for k, x in (("take_profit", take_profit), ("stop_loss", stop_loss))
                     if x is not None)
    bar, at = book.command_point()
    result = book.ex.amend(o.client_id, bar, qty=qty, price=price, trigger=trigger, attached=attached, at=at)
    if not result.accepted:
        assert result.refusal is not None
        raise refusal_error(result.refusal)
    o.take_profit, o.stop_loss = take_profit, stop_loss
    if (qty, price, trigger) == (None, None, None):
        # Only the attached TP/SL changed: the simulator had nothing to answer; Bybit does.
        o.updated_ms = now_ms
        v.push_order(book, o)
    v.absorb(book, now_ms, command=True)
    return {"orderId": o.order_id, "orderLinkId": o.link_id}


def cancel_order(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_linear(p)
    book = v.book(text(p, "symbol", required=True))
    o = _open_order(v, book, p, MSG_NOT_EXISTS)
    book.ex.cancel(o.client_id, book.bar, "CancelByUser")
    v.absorb(book, now_ms, command=True)
    return {"orderId": o.order_id, "orderLinkId": o.link_id}


def books_for(v: Venue, p: dict[str, Any]) -> list[SymbolBook]:
    """The symbols a request names by `symbol` > `baseCoin` > `settleCoin` (one is required on linear)."""
    symbol = text(p, "symbol")
    if symbol is not None:
        return [v.book(symbol)]
    base = text(p, "baseCoin")
    if base is not None:
        return [b for b in v.books.values() if b.symbol[:-4] == base]
    settle = text(p, "settleCoin")
    if settle is not None:
        return list(v.books.values()) if settle == "USDT" else []
    raise BybitError(10001, "params error: symbol, baseCoin or settleCoin is required")


def cancel_all(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_linear(p)
    books = books_for(v, p)
    flt = text(p, "orderFilter")
    if flt not in (None, "Order", "StopOrder", "OpenOrder"):
        raise param_error("orderFilter")
    stop_type = text(p, "stopOrderType")
    done: list[dict[str, str]] = []
    for book in books:
        for client_id in list(book.ex.working):
            o = book.by_client.get(client_id)
            if o is None or len(done) >= 500:
                continue
            if flt in ("Order", "OpenOrder") and o.is_conditional:
                continue
            if flt == "StopOrder" and (not o.is_conditional or (stop_type == "Stop" and o.stop_order_type != "Stop")):
                continue
            book.ex.cancel(client_id, book.bar, "CancelByUser")
            done.append({"orderId": o.order_id, "orderLinkId": o.link_id})
        v.absorb(book, now_ms, command=True)
    return {"list": done, "success": "1"}


def trading_stop(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """Set, move or cancel ("0") the position's take-profit, stop-loss and trailing stop."""
    require_linear(p)
    book = v.book(text(p, "symbol", required=True))
    mode = text(p, "tpslMode", required=True)
    if mode != "Full":
        raise BybitError(10001, f"params error: tpslMode {mode} is not served by the emulator (Full only)")
    _position_idx(p, required=True)
    for name in ("tpOrderType", "slOrderType"):
        if text(p, name) not in (None, "Market"):
            raise BybitError(10001, f"params error: {name} must be Market in Full mode")
    for name in ("tpTriggerBy", "slTriggerBy"):
        if text(p, name) not in (None, *TRIGGER_BY):
            raise param_error(name)
    active = decimal(p, "activePrice")
    if active is not None and active != 0:
        raise BybitError(10001, "params error: activePrice is not served by the emulator")
    wanted = {"take_profit": decimal(p, "takeProfit"), "stop_loss": decimal(p, "stopLoss"),
              "trail": decimal(p, "trailingStop")}
    if all(d is None for d in wanted.values()):
        raise BybitError(34040, MSG_NOT_MODIFIED)
    ex = book.ex
    pos = ex.position.qty
    if pos == 0.0:
        raise BybitError(10001, MSG_ZERO_POSITION)
    last = book.price_now
    bar, at = book.command_point()
    names = {"take_profit": "takeProfit", "stop_loss": "stopLoss", "trail": "trailingStop"}
    values: dict[str, float] = {}
    for kind, d in wanted.items():
        if d is None:
            continue
        value = 0.0 if d == 0 else _price(book, p, names[kind])
        assert value is not None
        if value and kind != "trail":
            refusal = wrong_side(kind, pos > 0, value, last)
            if refusal is not None:  # checked for every field before anything changes
                rising = refusal.code is RefusalCode.TRIGGER_MUST_RISE
                raise BybitError(110092 if rising else 110093,
                                 trigger_msg(rising, book.fmt.price(value), book.fmt.price(last)))
        values[kind] = value
    changed = False
    for kind, value in values.items():
        existing = ex.protection(kind)
        if value == 0.0:
            if existing is not None:
                ex.cancel(existing.client_id, bar, "CancelByUser")
                changed = True
            continue
        if existing is not None and _level(kind, existing) == value:
            continue
        result = ex.set_protection(kind, value, bar, last, at=at)
        if not result.accepted:
            v.absorb(book, now_ms, command=changed)
            assert result.refusal is not None
            raise refusal_error(result.refusal)
        changed = True
    v.absorb(book, now_ms, command=changed)
    if not changed:
        raise BybitError(34040, MSG_NOT_MODIFIED)
    return {}


def _level(kind: str, rec: Any) -> float:
    if kind == "take_profit":
        return rec.price
    if kind == "trail":
        return rec.trail_distance
    return rec.trigger


def set_leverage(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_linear(p)
    book = v.book(text(p, "symbol", required=True))
    buy, sell = decimal(p, "buyLeverage"), decimal(p, "sellLeverage")
    if buy is None:
        raise BybitError(10001, "params error: buyLeverage is required")
    if sell is None:
        raise BybitError(10001, "params error: sellLeverage is required")
    if buy != sell:
        raise BybitError(10001, "params error: buyLeverage must equal sellLeverage in one-way mode")
    spec = book.spec
    if not (Decimal(repr(spec.min_leverage)) <= buy <= Decimal(repr(spec.max_leverage))) \
            or not on_grid(buy, spec.leverage_step):
        raise BybitError(10001, f"params error: leverage {buy} is outside {spec.min_leverage:g} .. "
                                f"{spec.max_leverage:g} or off its step {spec.leverage_step:g}")
    if float(buy) == book.ex.leverage:
        raise BybitError(110043, MSG_LEVERAGE_SAME)
    book.ex.leverage = float(buy)  # a public setting of the exchange: its margin check reads it
    v.absorb(book, now_ms, command=True)
    return {}
