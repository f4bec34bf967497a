"""playdeck's orders in Bybit's words and back: the fields of `/v5/order/create`, the protection
kinds of `/v5/position/trading-stop`, and Bybit's retCodes as playdeck's refusal groups.

Pure functions, no I/O: the backend (backend.py) calls them; the tests read them as a table.
"""
from __future__ import annotations

from typing import Any

from playdeck.runtime.bybit.errors import BybitFailure
from playdeck.runtime.execution.orders import (
    Instrument,
    OrderRequest,
    OrderRole,
    OrderType,
    Refusal,
    RefusalCode,
    Side,
    TimeInForce,
)

__all__ = ["STOP_ORDER_ROLES", "create_fields", "num", "refusal_for", "side_text"]

# Bybit's stopOrderType of the orders it makes for a position's TP/SL (and trailing stop)
STOP_ORDER_ROLES = {"StopLoss": OrderRole.STOP_LOSS, "TakeProfit": OrderRole.TAKE_PROFIT,
                    "TrailingStop": OrderRole.TRAIL, "PartialStopLoss": OrderRole.STOP_LOSS,
                    "PartialTakeProfit": OrderRole.TAKE_PROFIT}

_TIF = {TimeInForce.GTC: "GTC", TimeInForce.POST_ONLY: "PostOnly", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}


def num(x: float, decimals: int) -> str:
    """A price or quantity as Bybit wants it: a decimal string on the instrument's grid."""
    return f"{x:.{decimals}f}"


def side_text(side: Side) -> str:
    return "Buy" if side is Side.BUY else "Sell"


def create_fields(order: OrderRequest, inst: Instrument, symbol: str) -> dict[str, Any]:
    """`/v5/order/create`'s fields for `order` (one-way mode, category linear).

    - the client id is the orderLinkId: a retry or a restart re-sends the same one, and Bybit's
      110072 then says the first one got through;
    - stops carry triggerDirection: a buy stop triggers on a rise (1), a sell stop on a fall (2);
    - `close` is qty "0" + reduceOnly + closeOnTrigger: the whole position when it executes, as the
      language's close is; partial_close and protection are reduceOnly.
    Attached protection is not sent here: it is placed when the entry fills, at its fill price.
    """
    price_dp = inst.price_decimals
    fields: dict[str, Any] = {
        "symbol": symbol,
        "side": side_text(order.side),
        "orderType": "Limit" if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else "Market",
        "orderLinkId": order.client_id,
        "positionIdx": 0,
    }
    if order.role is OrderRole.CLOSE or order.role is OrderRole.TRAIL:
        fields.update(qty="0", reduceOnly=True, closeOnTrigger=True)
    else:
        fields["qty"] = num(order.qty, inst.qty_decimals)
        if order.reduce_only or order.role is OrderRole.PARTIAL_CLOSE:
            fields["reduceOnly"] = True
    if order.price is not None and fields["orderType"] == "Limit":
        fields["price"] = num(order.price, price_dp)
        fields["timeInForce"] = _TIF[order.tif]
    if order.trigger is not None and order.type.is_conditional:
        fields["triggerPrice"] = num(order.trigger, price_dp)
        fields["triggerDirection"] = 1 if order.side is Side.BUY else 2
        fields["triggerBy"] = "LastPrice"
    return fields



# Bybit's retCode -> the refusal group it belongs to (section 3 of bybit-v5.md)
_CODES = {
    110007: RefusalCode.INSUFFICIENT_MARGIN, 110004: RefusalCode.INSUFFICIENT_MARGIN,
    110012: RefusalCode.INSUFFICIENT_MARGIN, 110044: RefusalCode.INSUFFICIENT_MARGIN,
    110045: RefusalCode.INSUFFICIENT_MARGIN,
    110017: RefusalCode.REDUCE_ONLY_NOTHING, 110072: RefusalCode.DUPLICATE_CLIENT_ID,
    110020: RefusalCode.TOO_MANY_ORDERS, 110009: RefusalCode.TOO_MANY_CONDITIONALS,
    110092: RefusalCode.TRIGGER_MUST_RISE, 110093: RefusalCode.TRIGGER_MUST_FALL,
    110094: RefusalCode.BELOW_MIN_NOTIONAL, 110003: RefusalCode.BAD_PRICE, 110001: RefusalCode.NOT_OPEN,
    10001: RefusalCode.BAD_REQUEST,
}


def refusal_for(failure: BybitFailure) -> Refusal:
    """A refused request as playdeck's Refusal: its group, and Bybit's own words with the code."""
    code = _CODES.get(failure.code, RefusalCode.BAD_REQUEST)
    if failure.code == 10001:
        text = failure.message.lower()
        if "qty" in text or "quantity" in text:
            code = RefusalCode.BAD_SIZE
        elif "price" in text:
            code = RefusalCode.BAD_PRICE
    if failure.code == 110017 and "side" in failure.message.lower():
        code = RefusalCode.REDUCE_ONLY_WRONG_SIDE
    return Refusal(code, f"{failure.message} ({failure.code})" if failure.code else str(failure))
