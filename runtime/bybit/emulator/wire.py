"""The JSON shapes the emulator speaks, with Bybit's field names (bybit-v5.md 2 and 5).

Rules, from bybit-v5.md:
- numbers inside `result` are strings: prices on the instrument's tick (`60000.1` at a 0.1 tick),
  quantities on its step (`0.010` at 0.001), and values the tick cannot hold (an average price, a
  fill moved by slippage, fees, PnL) with up to 8 decimals and no trailing zeros;
- REST timestamps are ms strings; in WebSocket kline items `start`/`end`/`timestamp` are numbers,
  and every push carries a number (`ts` public, `creationTime` private); fields inside private
  items keep their REST types (`createdTime` a string, `seq` a number, `isMaker` a bool);
- a price field without a value (no trigger, no take-profit) is zero on the tick (`0.0`), an
  unfilled order's `avgPrice` is `"0"`, unset enums are `UNKNOWN`, as in Bybit's examples.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from playdeck.runtime.bybit.emulator.config import InstrumentSpec
from playdeck.runtime.execution.orders import step_decimals
from playdeck.runtime.bybit.emulator.records import VenueOrder

__all__ = ["Formats", "PositionView", "WalletPart", "envelope", "instrument_item", "order_item",
           "position_item", "wallet_item"]


def envelope(result: Any, now_ms: int, code: int = 0, msg: str = "OK") -> dict[str, Any]:
    """Bybit's response envelope; errors keep its shape with an empty result."""
    return {"retCode": code, "retMsg": msg, "result": result if code == 0 else {}, "retExtInfo": {},
            "time": now_ms}


def plain(x: float, max_dp: int = 8) -> str:
    """A number with up to `max_dp` decimals, trailing zeros dropped (`0.071409`, `-25.06`, `5`)."""
    if x != x or math.isinf(x):
        return "0"
    text = f"{x:.{max_dp}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class Formats:
    """Number formatting for one instrument."""

    def __init__(self, spec: InstrumentSpec) -> None:
        self.tick = spec.tick
        self.step = spec.qty_step
        self.price_dp = step_decimals(spec.tick)
        self.qty_dp = step_decimals(spec.qty_step)
        self.zero_price = f"{0:.{self.price_dp}f}"

    def price(self, x: float | None) -> str:
        """A price: on the tick when it is on the tick, else as it is (slippage, averages)."""
        if x is None or x != x:
            return self.zero_price
        on_tick = f"{x:.{self.price_dp}f}"
        if abs(float(on_tick) - x) <= 1e-9 * max(1.0, abs(x)):
            return on_tick
        return plain(x)

    def qty(self, x: float) -> str:
        text = f"{abs(x):.{self.qty_dp}f}"
        if abs(float(text) - abs(x)) > 1e-12 * max(1.0, abs(x)):
            text = plain(abs(x))
        return text

    def avg(self, x: float | None) -> str:
        return "0" if x is None or x != x or x == 0.0 else self.price(x)


# ------------------------------------------------------------------------------------------ orders
def order_item(o: VenueOrder, f: Formats, *, ws: bool = False) -> dict[str, Any]:
    """An order as /v5/order/realtime and /history list it; with `ws`, as the `order` topic pushes it
    (plus `category`, `closedPnl`, `feeCurrency`)."""
    rec = o.rec
    assert rec is not None
    qty = rec.qty
    done = o.status not in ("New", "PartiallyFilled", "Untriggered", "Triggered")
    leaves = 0.0 if done else max(qty - o.cum_qty, 0.0)
    price = rec.price if o.order_type == "Limit" else None
    item: dict[str, Any] = {
        "orderId": o.order_id,
        "orderLinkId": o.link_id,
        "blockTradeId": "",
        "symbol": o.symbol,
        "price": f.price(price) if price is not None else "0",
        "qty": f.qty(qty),
        "side": o.side,
        "isLeverage": "",
        "positionIdx": 0,
        "orderStatus": o.status,
        "createType": o.create_type,
        "cancelType": o.cancel_type,
        "rejectReason": o.reject_reason,
        "avgPrice": f.avg(rec.avg_price if o.cum_qty > 0 else None),
        "leavesQty": f.qty(leaves),
        "leavesValue": plain(leaves * (price if price is not None else (rec.trigger or 0.0))),
        "cumExecQty": f.qty(o.cum_qty),
        "cumExecValue": plain(o.cum_value),
        "cumExecFee": plain(o.cum_fee),
        "timeInForce": o.tif,
        "orderType": o.order_type,
        "stopOrderType": o.stop_order_type or "UNKNOWN",
        "orderIv": "",
        "triggerPrice": f.price(rec.trigger),
        "takeProfit": f.price(o.take_profit),
        "stopLoss": f.price(o.stop_loss),
        "tpTriggerBy": "LastPrice" if o.take_profit is not None else "UNKNOWN",
        "slTriggerBy": "LastPrice" if o.stop_loss is not None else "UNKNOWN",
        "triggerDirection": o.trigger_direction,
        "triggerBy": o.trigger_by or "UNKNOWN",
        "lastPriceOnCreated": f.price(o.last_price_on_created),
        "reduceOnly": o.reduce_only,
        "closeOnTrigger": o.close_on_trigger,
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "tpslMode": "Full" if (o.take_profit is not None or o.stop_loss is not None
                               or o.stop_order_type in ("StopLoss", "TakeProfit", "TrailingStop")) else "",
        "tpLimitPrice": "",
        "slLimitPrice": "",
        "placeType": "",
        "createdTime": str(o.created_ms),
        "updatedTime": str(o.updated_ms),
        "cumFeeDetail": {"USDT": plain(o.cum_fee)} if o.cum_fee else {},
    }
    if ws:
        item["category"] = "linear"
        item["closedPnl"] = plain(o.closed_pnl)
        item["feeCurrency"] = "USDT"
    return item


# ----------------------------------------------------------------------------------- positions
class PositionView(NamedTuple):
    """One symbol's position as the venue computes it for /v5/position/list and the `position` topic."""

    symbol: str
    qty: float  # signed
    avg: float  # NaN when flat
    mark: float
    leverage: float
    liq: float | None
    im: float
    mm: float
    take_profit: float | None
    stop_loss: float | None
    trailing_stop: float | None
    upnl: float
    cur_realised: float
    cum_realised: float
    seq: int
    created_ms: int
    updated_ms: int


def position_item(p: PositionView, f: Formats, *, ws: bool = False) -> dict[str, Any]:
    """A position row. REST names the entry `avgPrice`, the `position` topic `entryPrice` (5.5)."""
    flat = p.qty == 0.0
    value = 0.0 if flat else abs(p.qty) * p.avg
    item: dict[str, Any] = {
        "positionIdx": 0,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": p.symbol,
        "side": "" if flat else ("Buy" if p.qty > 0 else "Sell"),
        "size": "0" if flat else f.qty(p.qty),  # an empty position's size is "0" (bybit-v5.md 2.4)
        "avgPrice": "0" if flat else f.avg(p.avg),
        "positionValue": plain(value),
        "tradeMode": 0,
        "positionStatus": "Normal",
        "autoAddMargin": 0,
        "adlRankIndicator": 0 if flat else 2,
        "leverage": plain(p.leverage),
        "breakEvenPrice": "0" if flat else f.avg(p.avg),
        "positionBalance": plain(p.im),
        "markPrice": f.price(p.mark),
        "liqPrice": "" if p.liq is None else f.price(p.liq),
        "bustPrice": "",
        "positionMM": plain(p.mm),
        "positionMMByMp": plain(p.mm),
        "positionIM": plain(p.im),
        "positionIMByMp": plain(p.im),
        "tpslMode": "Full",
        "takeProfit": f.price(p.take_profit),
        "stopLoss": f.price(p.stop_loss),
        "trailingStop": f.price(p.trailing_stop),
        "unrealisedPnl": plain(p.upnl),
        "curRealisedPnl": plain(p.cur_realised),
        "cumRealisedPnl": plain(p.cum_realised),
        "seq": p.seq,
        "isReduceOnly": False,
        "mmrSysUpdateTime": "",
        "leverageSysUpdatedTime": "",
        "sessionAvgPrice": "",
        "createdTime": str(p.created_ms),
        "updatedTime": str(p.updated_ms),
    }
    if ws:
        item["entryPrice"] = item.pop("avgPrice")
        item["category"] = "linear"
        item["openTime"] = 0 if flat else p.created_ms
    return item


# -------------------------------------------------------------------------------------- wallet
class WalletPart(NamedTuple):
    """One symbol's margin account (each symbol has its own; the wallet reports the sum)."""

    cash: float
    upnl: float
    position_im: float
    order_im: float
    mm: float
    cum_realised: float


def wallet_item(parts: list[WalletPart]) -> dict[str, Any]:
    """A `list` entry of /v5/account/wallet-balance and an item of the `wallet` topic: one USDT coin,
    every symbol's margin summed. USDT counts 1:1 as USD."""
    cash = sum(p.cash for p in parts)
    upnl = sum(p.upnl for p in parts)
    pim = sum(p.position_im for p in parts)
    oim = sum(p.order_im for p in parts)
    mm = sum(p.mm for p in parts)
    cum = sum(p.cum_realised for p in parts)
    equity = cash + upnl
    available = max(equity - pim - oim, 0.0)
    return {
        "accountType": "UNIFIED",
        "accountIMRate": plain((pim + oim) / equity if equity > 0 else 0.0, 4),
        "accountIMRateByMp": plain((pim + oim) / equity if equity > 0 else 0.0, 4),
        "accountMMRate": plain(mm / equity if equity > 0 else 0.0, 4),
        "accountMMRateByMp": plain(mm / equity if equity > 0 else 0.0, 4),
        "accountLTV": "0",
        "totalEquity": plain(equity),
        "totalWalletBalance": plain(cash),
        "totalMarginBalance": plain(equity),
        "totalAvailableBalance": plain(available),
        "totalPerpUPL": plain(upnl),
        "totalInitialMargin": plain(pim + oim),
        "totalInitialMarginByMp": plain(pim + oim),
        "totalMaintenanceMargin": plain(mm),
        "totalMaintenanceMarginByMp": plain(mm),
        "coin": [{
            "coin": "USDT",
            "equity": plain(equity),
            "usdValue": plain(equity),
            "walletBalance": plain(cash),
            "availableToWithdraw": "",
            "availableToBorrow": "",
            "borrowAmount": "0",
            "accruedInterest": "0",
            "totalOrderIM": plain(oim),
            "totalPositionIM": plain(pim),
            "totalPositionMM": plain(mm),
            "unrealisedPnl": plain(upnl),
            "cumRealisedPnl": plain(cum),
            "bonus": "0",
            "collateralSwitch": True,
            "marginCollateral": True,
            "locked": "0",
            "spotHedgingQty": "0",
            "spotBorrow": "0",
        }],
    }


# --------------------------------------------------------------------------------- instruments
def instrument_item(spec: InstrumentSpec, launch_ms: int) -> dict[str, Any]:
    f = Formats(spec)
    base = spec.symbol[:-4]
    return {
        "symbol": spec.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": base,
        "quoteCoin": "USDT",
        "launchTime": str(launch_ms),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(f.price_dp),
        "leverageFilter": {
            "minLeverage": plain(spec.min_leverage),
            "maxLeverage": f"{spec.max_leverage:.2f}",
            "leverageStep": plain(spec.leverage_step),
        },
        "priceFilter": {
            "minPrice": f.price(spec.min_price),
            "maxPrice": f.price(spec.max_price),
            "tickSize": f.price(spec.tick),
        },
        "lotSizeFilter": {
            "maxOrderQty": f.qty(spec.max_qty),
            "minOrderQty": f.qty(spec.min_qty),
            "qtyStep": f.qty(spec.qty_step),
            "postOnlyMaxOrderQty": f.qty(spec.max_qty),
            "maxMktOrderQty": f.qty(spec.max_mkt_qty),
            "minNotionalValue": plain(spec.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": "USDT",
        "copyTrading": "none",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "symbolType": "",
    }
