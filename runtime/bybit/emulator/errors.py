"""Bybit's error codes and messages as the emulator answers them (bybit-v5.md 3), and the mapping
from the simulator's refusals to them.

Messages are Bybit's where the docs or the field show them; where they show none (the 10001 field
messages for a price off its tick, a bad side, ...) the message names the field the way Bybit's
field messages do. A refused request is always HTTP 200 with the envelope.
"""

from __future__ import annotations

from playdeck.runtime.execution.orders import Refusal, RefusalCode

__all__ = ["BybitError", "refusal_error"]


class BybitError(Exception):
    """An API error: `code` is Bybit's retCode, `msg` its retMsg."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{msg} ({code})")
        self.code = code
        self.msg = msg


# Documented or field messages (bybit-v5.md 3, docs/v5/error.mdx).
MSG_BAD_REQUEST = "Request parameter error."
MSG_SYMBOL = "params error: symbol invalid"
MSG_QTY = "Qty invalid"
MSG_MIN_QTY = "The number of contracts exceeds minimum limit allowed"
MSG_MAX_QTY = "The number of contracts exceeds maximum limit allowed"
MSG_ZERO_POSITION = "can not set tp/sl/ts for zero position"
MSG_NOT_EXISTS = "order not exists or too late to cancel"
MSG_PRICE_RANGE = "Order price exceeds the allowable range."
MSG_MARGIN = "ab not enough for new order"
MSG_REDUCE_FLAT = "current position is zero, cannot fix reduce-only order qty"
MSG_REDUCE = "orderQty will be truncated to zero"
MSG_TOO_MANY = "Not allowed to have more than 500 active orders."
MSG_TOO_MANY_STOPS = "The number of stop orders exceeds the maximum allowable limit"
MSG_LEVERAGE_SAME = "leverage not modified"
MSG_DUPLICATE = "OrderLinkedID is duplicate"
MSG_NOT_MODIFIED = "not modified"
MSG_RATE = "Too many visits!"
MSG_SYSTEM = "System error. Please try again later."
MSG_KEY = "API key is invalid."
MSG_POSITION_IDX = "position idx not match position mode"


def min_notional_msg(min_notional: float) -> str:
    return f"Order does not meet minimum order value {min_notional:g}USDT"


def trigger_msg(rising: bool, trigger: str, current: str) -> str:
    """110092 / 110093: a trigger on the wrong side of the last price for its direction."""
    if rising:
        return f"expect Rising, but trigger_price[{trigger}] <= current[{current}]??LastPrice"
    return f"expect Falling, but trigger_price[{trigger}] >= current[{current}]??LastPrice"


def param_error(field: str) -> BybitError:
    """10001 for one bad or missing field, in the shape of Bybit's field messages."""
    return BybitError(10001, f"params error: {field} invalid")


# RefusalCode -> retCode where the enum's own `.bybit` is none (0). POST_ONLY_WOULD_TAKE is no
# error at all on Bybit (the order is made and ends Cancelled), so it never reaches this table.
_CODE_OVERRIDES = {
    RefusalCode.DUPLICATE_ORDER_ID: 10001,
}

_MESSAGES = {
    RefusalCode.INSUFFICIENT_MARGIN: MSG_MARGIN,
    RefusalCode.REDUCE_ONLY_NOTHING: MSG_REDUCE_FLAT,
    RefusalCode.REDUCE_ONLY_WRONG_SIDE: MSG_REDUCE,
    RefusalCode.DUPLICATE_CLIENT_ID: MSG_DUPLICATE,
    RefusalCode.TOO_MANY_ORDERS: MSG_TOO_MANY,
    RefusalCode.TOO_MANY_CONDITIONALS: MSG_TOO_MANY_STOPS,
    RefusalCode.BELOW_MIN_QTY: MSG_MIN_QTY,
    RefusalCode.NO_POSITION: MSG_ZERO_POSITION,
    RefusalCode.NOT_OPEN: MSG_NOT_EXISTS,
}


def refusal_code(code: RefusalCode) -> int:
    return _CODE_OVERRIDES.get(code, code.bybit) or 10001


def refusal_error(refusal: Refusal) -> BybitError:
    """The API error for a refusal of the simulator: Bybit's code and, where Bybit has one, its
    message; otherwise the simulator's own text (which names the numbers)."""
    code = refusal.code
    return BybitError(refusal_code(code), _MESSAGES.get(code, refusal.text))
