"""What Bybit reports, read at the edge: order, execution, position and wallet items (REST lists and
the private topics share their field names, bybit-v5.md 2.3, 2.4 and 5.5) as typed values.

Numbers arrive as strings (`"0.010"`), empty values as `""` or `"0"`, unset enums as `"UNKNOWN"`;
times as ms strings in REST and inside private items. Everything past this module is numbers.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from playdeck.runtime.execution.orders import OrderStatus, Side

__all__ = ["ExecutionReport", "OrderReport", "PositionReport", "WalletReport", "execution_report",
           "order_report", "position_report", "wallet_report"]


def _num(item: dict[str, Any], key: str) -> float:
    v = item.get(key)
    if v in (None, ""):
        return 0.0
    return float(v)


def _opt(item: dict[str, Any], key: str) -> float | None:
    v = _num(item, key)
    return v if v != 0.0 else None


def _side(text: str) -> Side:
    return Side.BUY if text == "Buy" else Side.SELL


class OrderReport(NamedTuple):
    order_id: str
    order_link_id: str
    side: Side
    order_type: str  # Market | Limit
    qty: float
    price: float | None
    trigger: float | None
    status: OrderStatus  # Bybit's; Cancelled with cum_exec_qty > 0 is PartiallyFilledCanceled here
    cum_exec_qty: float
    avg_price: float | None
    reduce_only: bool
    close_on_trigger: bool
    reject_reason: str
    cancel_type: str
    updated_ms: int


class ExecutionReport(NamedTuple):
    exec_id: str
    order_id: str
    order_link_id: str
    side: Side
    qty: float
    price: float
    fee: float  # positive when paid
    is_maker: bool
    exec_type: str  # Trade | Funding | BustTrade | AdlTrade ...
    exec_time: int
    fee_rate: float
    mark_price: float | None


class PositionReport(NamedTuple):
    qty: float  # signed: > 0 long, < 0 short
    avg_price: float | None
    liq_price: float | None
    mark_price: float | None
    unrealised_pnl: float
    cum_realised_pnl: float
    take_profit: float | None
    stop_loss: float | None
    trailing_stop: float | None


class WalletReport(NamedTuple):
    equity: float
    wallet_balance: float
    available: float


def order_report(item: dict[str, Any]) -> OrderReport:
    status = OrderStatus(item["orderStatus"])
    cum = _num(item, "cumExecQty")
    if status is OrderStatus.CANCELLED and cum > 0.0:
        # Bybit linear says Cancelled for an order cancelled after a partial fill (bybit-v5.md)
        status = OrderStatus.PARTIALLY_FILLED_CANCELED
    return OrderReport(str(item.get("orderId", "")), str(item.get("orderLinkId", "")), _side(item["side"]),
                       str(item.get("orderType", "")), _num(item, "qty"), _opt(item, "price"),
                       _opt(item, "triggerPrice"), status, cum, _opt(item, "avgPrice"),
                       bool(item.get("reduceOnly", False)), bool(item.get("closeOnTrigger", False)),
                       str(item.get("rejectReason", "")), str(item.get("cancelType", "")),
                       int(item.get("updatedTime") or 0))


def execution_report(item: dict[str, Any]) -> ExecutionReport:
    return ExecutionReport(str(item["execId"]), str(item.get("orderId", "")), str(item.get("orderLinkId", "")),
                           _side(item.get("side", "Buy")), _num(item, "execQty"), _num(item, "execPrice"),
                           _num(item, "execFee"), bool(item.get("isMaker", False)), str(item.get("execType", "Trade")),
                           int(item.get("execTime") or 0), _num(item, "feeRate"), _opt(item, "markPrice"))


def position_report(item: dict[str, Any]) -> PositionReport:
    size = _num(item, "size")
    side = item.get("side", "")
    qty = size if side == "Buy" else -size if side == "Sell" else 0.0
    # REST names the average entry avgPrice, the position topic entryPrice (bybit-v5.md 5.5)
    avg = _opt(item, "avgPrice") or _opt(item, "entryPrice")
    return PositionReport(qty, avg if qty != 0.0 else None, _opt(item, "liqPrice"), _opt(item, "markPrice"),
                          _num(item, "unrealisedPnl"), _num(item, "cumRealisedPnl"), _opt(item, "takeProfit"),
                          _opt(item, "stopLoss"), _opt(item, "trailingStop"))


def wallet_report(item: dict[str, Any]) -> WalletReport:
    coins = [c for c in item.get("coin") or [] if c.get("coin") == "USDT"]
    usdt = coins[0] if coins else {}
    return WalletReport(_num(usdt, "equity") or _num(item, "totalEquity"),
                        _num(usdt, "walletBalance") or _num(item, "totalWalletBalance"),
                        _num(item, "totalAvailableBalance"))
