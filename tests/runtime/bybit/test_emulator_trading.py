"""The trading endpoints through pybit's own methods: the shapes of every result (golden files), the
numbers in them (fills, fees, the position, the wallet), funding and liquidation as Bybit reports
them, and bad input: each refused with Bybit's code and message while the emulator keeps serving."""
from __future__ import annotations

from typing import Any

import pytest
from pybit.exceptions import InvalidRequestError

from emulator_kit import ACCOUNT, T0, PrivateStream, bars_from, flush, golden, http, start
from playdeck.runtime.bybit.emulator import AccountSpec

B = (100.0, 100.5, 99.5, 100.0)
DOWN = (100.0, 100.2, 98.0, 99.0)


def order(**kw: Any) -> dict[str, Any]:
    return {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "1",
            "price": "95", **kw}


# -------------------------------------------------------------------------------- shapes and numbers
@pytest.fixture(scope="module")
def traded():
    """A long of 2 bought at the open of bar 1 (100 + 10 bps), a resting limit, a stop, a stop-loss."""
    bg = start(bars_from([B, B, DOWN, B, B]), start_bar=0)
    api = http(bg.url)
    created = api.place_order(**order(orderType="Market", qty="2", orderLinkId="entry", price=None))
    bg.advance(1)
    api.place_order(**order(orderLinkId="dip", price="90"))
    api.place_order(**order(orderLinkId="breakout", orderType="Market", triggerPrice="110", triggerDirection=1,
                            price=None))
    api.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Full", positionIdx=0, stopLoss="95")
    bg.advance(1)  # bar 2 closes at 99
    yield bg, api, created
    bg.stop()


def test_create_answers_the_ids(traded, json_snapshot):
    _, _, created = traded
    assert set(created["result"]) == {"orderId", "orderLinkId"} and created["result"]["orderLinkId"] == "entry"
    assert golden(created) == json_snapshot


def test_open_orders_list_the_resting_the_conditional_and_the_stop_loss(traded, json_snapshot):
    _, api, _ = traded
    reply = api.get_open_orders(category="linear", symbol="BTCUSDT")
    listed = reply["result"]["list"]
    assert [(o["orderLinkId"], o["orderStatus"], o["stopOrderType"]) for o in listed] == [
        ("", "Untriggered", "StopLoss"), ("breakout", "Untriggered", "Stop"), ("dip", "New", "UNKNOWN")]
    stops = api.get_open_orders(category="linear", symbol="BTCUSDT", orderFilter="StopOrder")["result"]["list"]
    assert {o["orderLinkId"] for o in stops} == {"", "breakout"}
    assert golden(reply) == json_snapshot


def test_history_holds_every_order_and_one_by_its_link_id(traded, json_snapshot):
    _, api, _ = traded
    reply = api.get_order_history(category="linear", symbol="BTCUSDT", orderLinkId="entry")
    (entry,) = reply["result"]["list"]
    assert (entry["orderStatus"], entry["cumExecQty"], entry["avgPrice"], entry["leavesQty"]) == \
        ("Filled", "2.000", "100.1", "0.000")
    assert entry["cumExecFee"] == "0.1001"  # 2 x 100.1 x 0.05%
    assert len(api.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]) == 4
    assert golden(reply) == json_snapshot


def test_executions_carry_bybits_fields(traded, json_snapshot):
    _, api, _ = traded
    reply = api.get_executions(category="linear", symbol="BTCUSDT")
    (fill,) = reply["result"]["list"]
    assert (fill["execType"], fill["execPrice"], fill["execQty"], fill["execFee"], fill["isMaker"], fill["seq"]) == \
        ("Trade", "100.1", "2.000", "0.1001", False, 1)
    assert fill["feeRate"] == "0.0005" and fill["orderLinkId"] == "entry"
    assert golden(reply) == json_snapshot


def test_the_position_has_its_average_marks_and_protection(traded, json_snapshot):
    _, api, _ = traded
    reply = api.get_positions(category="linear", symbol="BTCUSDT")
    (p,) = reply["result"]["list"]
    assert (p["side"], p["size"], p["avgPrice"], p["markPrice"], p["stopLoss"], p["leverage"]) == \
        ("Buy", "2.000", "100.1", "99.0", "95.0", "3")
    assert p["unrealisedPnl"] == "-2.2"  # 2 x (99 - 100.1)
    assert p["curRealisedPnl"] == p["cumRealisedPnl"] == "-0.1001"
    assert p["positionIM"] == "66.73333333"  # 200.2 / 3
    assert p["liqPrice"] == ""  # 10,000 USDT covers a long of 2 at any price
    assert api.get_positions(category="linear", settleCoin="USDT")["result"]["list"][0]["size"] == "2.000"
    assert golden(reply) == json_snapshot


def test_the_wallet_follows_fills_and_fees(traded, json_snapshot):
    _, api, _ = traded
    reply = api.get_wallet_balance(accountType="UNIFIED")
    (account,) = reply["result"]["list"]
    assert account["totalWalletBalance"] == "9999.8999"  # 10,000 - 0.1001
    assert account["totalPerpUPL"] == "-2.2" and account["totalEquity"] == "9997.6999"
    assert account["coin"][0]["totalOrderIM"] == "30"  # the resting limit: 1 x 90 / 3 (stops take none)
    assert api.get_wallet_balance(accountType="UNIFIED", coin="BTC")["result"]["list"][0]["coin"] == []
    assert golden(reply) == json_snapshot


def test_amend_and_cancel_answer_the_ids(json_snapshot):
    with start(bars_from([B, B]), start_bar=0) as bg:
        api = http(bg.url)
        api.place_order(**order(orderLinkId="moved"))
        replies = [api.amend_order(category="linear", symbol="BTCUSDT", orderLinkId="moved", price="94", qty="2"),
                   api.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="moved")]
        assert [r["result"]["orderLinkId"] for r in replies] == ["moved", "moved"]
        (moved,) = api.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]
        assert (moved["price"], moved["qty"], moved["orderStatus"]) == ("94.0", "2.000", "Cancelled")
        assert golden(replies) == json_snapshot


def test_cancel_all_answers_the_list_and_clears_the_book(traded, json_snapshot):
    bg, api, _ = traded
    reply = api.cancel_all_orders(category="linear", symbol="BTCUSDT", orderFilter="Order")
    assert [o["orderLinkId"] for o in reply["result"]["list"]] == ["dip"] and reply["result"]["success"] == "1"
    assert golden(reply) == json_snapshot
    everything = api.cancel_all_orders(category="linear", settleCoin="USDT")["result"]["list"]
    assert len(everything) == 2
    assert api.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"] == []
    assert api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]["stopLoss"] == "0.0"


def test_leverage_and_trading_stop_answer_an_empty_result(json_snapshot):
    with start(bars_from([B, B, B]), start_bar=0) as bg:
        api = http(bg.url)
        api.place_order(**order(orderType="Market", price=None))
        bg.advance(1)
        replies = [api.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="5", sellLeverage="5"),
                   api.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Full", positionIdx=0,
                                        takeProfit="110", stopLoss="90", trailingStop="0")]
        assert [r["result"] for r in replies] == [{}, {}]
        p = api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
        assert (p["leverage"], p["takeProfit"], p["stopLoss"], p["trailingStop"]) == ("5", "110.0", "90.0", "0.0")
        api.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Full", positionIdx=0, takeProfit="0")
        p = api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
        assert (p["takeProfit"], p["stopLoss"]) == ("0.0", "90.0")
        assert golden(replies) == json_snapshot


def test_a_round_trip_realises_its_pnl_in_the_wallet_and_the_position():
    with start(bars_from([B, B, (100, 103, 99.8, 102), B]), start_bar=0) as bg:
        api = http(bg.url)
        api.place_order(**order(orderType="Market", price=None))  # in at 100.1, fee 0.05005
        bg.advance(1)
        api.place_order(**order(side="Sell", price="102", qty="0", reduceOnly=True, closeOnTrigger=True))
        bg.advance(1)  # out at 102 as a maker: +1.9, fee 0.0204
        p = api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
        assert (p["side"], p["size"], p["avgPrice"]) == ("", "0", "0")
        assert p["cumRealisedPnl"] == "1.82955"  # 1.9 - 0.05005 - 0.0204
        wallet = api.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
        assert wallet["totalWalletBalance"] == wallet["totalEquity"] == "10001.82955"
        closing = api.get_executions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
        assert (closing["closedSize"], closing["execPnl"], closing["isMaker"]) == ("1.000", "1.9", True)


# ---------------------------------------------------------------------------- funding and liquidation
def test_funding_is_an_execution_paid_from_the_wallet():
    hour = 3_600_000
    rows = [B] * 12
    with start(bars_from(rows, start_ms=T0 + hour, step_ms=hour), start_bar=0) as bg:
        api = http(bg.url)
        api.place_order(**order(orderType="Market", price=None, qty="10"))
        stream = PrivateStream(bg.private_url)
        try:
            bg.advance(8)  # bar 7 opens at 08:00, a funding instant
            flush(bg)
            stream.read(quiet=0.1)
        finally:
            stream.close()
        execs = api.get_executions(category="linear", symbol="BTCUSDT", execType="Funding")["result"]["list"]
        (funding,) = execs
        # a long of 10 at the open 100 pays 10 x 100 x 0.01%
        assert (funding["execFee"], funding["feeRate"], funding["execQty"], funding["side"], funding["orderId"]) == \
            ("0.1", "0.0001", "10.000", "Buy", "")
        p = api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
        assert p["cumRealisedPnl"] == "-0.6005"  # the entry's fee 0.5005 and the funding 0.1
        pushed = stream.items("execution")
        assert [e["execType"] for e in pushed] == ["Trade", "Funding"]
        assert stream.items("wallet")[-1]["totalWalletBalance"] == "9999.3995"


def test_a_liquidation_cancels_the_orders_first_then_is_a_bust_trade():
    rows = [B, B, (100, 100.5, 60, 62), B]
    with start(bars_from(rows), start_bar=0) as bg:
        api = http(bg.url)
        stream = PrivateStream(bg.private_url, ("order", "execution"))
        try:
            api.place_order(**order(orderType="Market", price=None, qty="290"))
            bg.advance(1)
            api.place_order(**order(side="Sell", price="120", qty="1", orderLinkId="tp", reduceOnly=True))
            p = api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
            assert p["liqPrice"] == "66.0"
            bg.advance(1)
            flush(bg)
            stream.read(quiet=0.1)
        finally:
            stream.close()
        events = [(m["topic"], m["data"][0].get("orderStatus") or m["data"][0]["execType"],
                   m["data"][0].get("cancelType", "")) for m in stream.pushes if m.get("topic")]
        tail = events[-4:]
        assert tail[0] == ("order", "Cancelled", "CancelAllBeforeLiq")
        assert ("execution", "BustTrade", "") in tail
        bust = api.get_executions(category="linear", symbol="BTCUSDT", execType="BustTrade")["result"]["list"][0]
        assert (bust["execPrice"], bust["execQty"], bust["side"], bust["createType"]) == \
            ("66.0", "290.000", "Sell", "CreateByLiq")
        p = api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
        assert p["size"] == "0"
        assert api.get_order_history(category="linear", symbol="BTCUSDT",
                                     orderLinkId="tp")["result"]["list"][0]["cancelType"] == "CancelAllBeforeLiq"


# ------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def quiet():
    bg = start(bars_from([B] * 5), start_bar=0)
    yield bg, http(bg.url)
    bg.stop()


def refused(call, *args, **kw) -> tuple[int, str]:
    with pytest.raises(InvalidRequestError) as e:
        call(*args, **kw)
    return e.value.status_code, e.value.message


CREATE_ERRORS = [
    ({"side": None}, 10001, "params error: side is required"),
    ({"side": "buy"}, 10001, "params error: side invalid"),
    ({"orderType": "Stop"}, 10001, "params error: orderType invalid"),
    ({"qty": None}, 10001, "Qty invalid"),
    ({"qty": "0.0015"}, 10001, "Qty invalid"),
    ({"qty": "abc"}, 10001, "Qty invalid"),
    ({"qty": "-1"}, 10001, "Qty invalid"),
    ({"qty": "0"}, 10001, "Qty invalid"),
    ({"qty": "1200"}, 10001, "The number of contracts exceeds maximum limit allowed"),
    ({"qty": "600", "orderType": "Market", "price": None}, 10001,
     "The number of contracts exceeds maximum limit allowed"),
    ({"price": None}, 10001, "params error: price is required for a Limit order"),
    ({"price": "95.05"}, 10001, "params error: price invalid"),
    ({"price": "9999999"}, 110003, "Order price exceeds the allowable range."),
    ({"symbol": "DOGEUSDT"}, 10001, "params error: symbol invalid"),
    ({"symbol": None}, 10001, "params error: symbol is required"),
    ({"category": "spot"}, 10001, "params error: category spot is not served (only linear)"),
    ({"positionIdx": 1}, 10001, "position idx not match position mode"),
    ({"orderLinkId": "x" * 37}, 10001, "params error: orderLinkId invalid"),
    ({"timeInForce": "GTX"}, 10001, "params error: timeInForce invalid"),
    ({"triggerPrice": "105"}, 10001, "params error: triggerDirection invalid"),
    ({"triggerPrice": "95", "triggerDirection": 1}, 110092,
     "expect Rising, but trigger_price[95.0] <= current[100.0]??LastPrice"),
    ({"side": "Sell", "triggerPrice": "105", "triggerDirection": 2}, 110093,
     "expect Falling, but trigger_price[105.0] >= current[100.0]??LastPrice"),
    ({"qty": "0.04"}, 110094, "Order does not meet minimum order value 5USDT"),
    ({"qty": "400", "orderType": "Market", "price": None}, 110007, "ab not enough for new order"),
    ({"side": "Sell", "reduceOnly": True}, 110017, "current position is zero, cannot fix reduce-only order qty"),
    ({"stopLoss": "90", "reduceOnly": True}, 10001,
     "params error: take profit / stop loss cannot be set on a reduce-only order"),
]


@pytest.mark.parametrize("change, code, message", CREATE_ERRORS, ids=[str(c[0]) for c in CREATE_ERRORS])
def test_a_bad_create_is_refused_with_bybits_code(quiet, change, code, message):
    bg, api = quiet
    params = {k: v for k, v in order(**change).items() if v is not None}
    assert refused(api.place_order, **params) == (code, message)
    assert api.get_server_time()["retCode"] == 0  # still serving
    assert api.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"] == []


def test_a_duplicate_link_id_is_110072_also_for_a_finished_order(quiet):
    bg, api = quiet
    api.place_order(**order(orderLinkId="once"))
    assert refused(api.place_order, **order(orderLinkId="once")) == (110072, "OrderLinkedID is duplicate")
    api.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="once")
    assert refused(api.place_order, **order(orderLinkId="once"))[0] == 110072


def test_amend_and_cancel_of_what_is_not_open_are_110001(quiet):
    bg, api = quiet
    assert refused(api.cancel_order, category="linear", symbol="BTCUSDT", orderLinkId="nobody") == \
        (110001, "order not exists or too late to cancel")
    assert refused(api.amend_order, category="linear", symbol="BTCUSDT", orderId="nobody", price="96")[0] == 110001
    api.place_order(**order(orderLinkId="gone"))
    api.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="gone")
    assert refused(api.cancel_order, category="linear", symbol="BTCUSDT", orderLinkId="gone")[0] == 110001
    api.place_order(**order(orderLinkId="same"))
    assert refused(api.amend_order, category="linear", symbol="BTCUSDT", orderLinkId="same", price="95") == \
        (10001, "The order remains unchanged as the parameters entered match the existing ones.")
    assert refused(api.amend_order, category="linear", symbol="BTCUSDT", orderLinkId="same", price="95.01") == \
        (10001, "params error: price invalid")
    assert api.amend_order(category="linear", symbol="BTCUSDT", orderLinkId="same", price="96")["retCode"] == 0
    api.cancel_all_orders(category="linear", symbol="BTCUSDT")


def test_position_settings_refused_as_bybit_refuses_them(quiet):
    bg, api = quiet
    stop = {"category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full", "positionIdx": 0}
    assert refused(api.set_trading_stop, **stop, stopLoss="90") == (10001, "can not set tp/sl/ts for zero position")
    assert refused(api.set_trading_stop, **stop) == (34040, "not modified")
    assert refused(api.set_trading_stop, **{**stop, "tpslMode": "Partial"}, stopLoss="90")[0] == 10001
    lev = {"category": "linear", "symbol": "BTCUSDT"}
    assert refused(api.set_leverage, **lev, buyLeverage="3", sellLeverage="3") == (110043, "leverage not modified")
    assert refused(api.set_leverage, **lev, buyLeverage="3", sellLeverage="4")[0] == 10001
    assert refused(api.set_leverage, **lev, buyLeverage="101", sellLeverage="101")[0] == 10001
    assert refused(api.cancel_all_orders, category="linear") == \
        (10001, "params error: symbol, baseCoin or settleCoin is required")
    assert refused(api.get_positions, category="linear")[0] == 10001
    assert refused(api.get_wallet_balance, accountType="CONTRACT") == \
        (10001, "params error: accountType only support UNIFIED")
    assert refused(api.get_order_history, category="linear", symbol="BTCUSDT", startTime=T0,
                   endTime=T0 + 8 * 86_400_000)[0] == 10001


def test_protection_on_the_wrong_side_and_the_same_value_again():
    with start(bars_from([B, B, B]), start_bar=0) as bg:
        api = http(bg.url)
        api.place_order(**order(orderType="Market", price=None))
        bg.advance(1)
        stop = {"category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full", "positionIdx": 0}
        assert refused(api.set_trading_stop, **stop, stopLoss="101") == \
            (110093, "expect Falling, but trigger_price[101.0] >= current[100.0]??LastPrice")
        assert refused(api.set_trading_stop, **stop, takeProfit="99", stopLoss="95")[0] == 110092
        p = api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
        assert (p["stopLoss"], p["takeProfit"]) == ("0.0", "0.0")  # nothing of a refused request was set
        api.set_trading_stop(**stop, stopLoss="95")
        assert refused(api.set_trading_stop, **stop, stopLoss="95") == (34040, "not modified")


def test_at_most_500_active_orders_and_10_conditional():
    with start(bars_from([B, B]), start_bar=0, account=AccountSpec(equity=10**9, leverage=ACCOUNT.leverage)) as bg:
        api = http(bg.url)
        for k in range(10):
            api.place_order(**order(orderType="Market", price=None, triggerPrice=f"{110 + k}", triggerDirection=1))
        assert refused(api.place_order, **order(orderType="Market", price=None, triggerPrice="130",
                                                triggerDirection=1)) == \
            (110009, "The number of stop orders exceeds the maximum allowable limit")
        for k in range(490):
            api.place_order(**order(price=f"{90 - k * 0.1:.1f}"))
        assert refused(api.place_order, **order(price="20")) == \
            (110020, "Not allowed to have more than 500 active orders.")
        assert len(api.cancel_all_orders(category="linear", symbol="BTCUSDT")["result"]["list"]) == 500
        assert api.place_order(**order())["retCode"] == 0


def test_two_symbols_trade_on_their_own_margin_and_the_wallet_reports_the_sum():
    eth = bars_from([(50.0, 50.2, 49.8, 50.0)] * 3, symbol="ETHUSDT")
    with start(bars_from([B] * 3), eth, start_bar=0) as bg:
        api = http(bg.url)
        api.place_order(**order(orderType="Market", price=None, qty="1"))
        api.place_order(**order(symbol="ETHUSDT", side="Sell", orderType="Market", price=None, qty="2",
                                orderLinkId="eth-short"))
        bg.advance(1)
        sizes = {p["symbol"]: (p["side"], p["size"], p["avgPrice"])
                 for p in api.get_positions(category="linear", settleCoin="USDT")["result"]["list"]}
        assert sizes == {"BTCUSDT": ("Buy", "1.000", "100.1"), "ETHUSDT": ("Sell", "2.000", "49.95")}
        wallet = api.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
        # 2 x 10,000 less the fees 0.05005 and 0.04995
        assert wallet["totalWalletBalance"] == "19999.9"
        eth_orders = api.get_order_history(category="linear", symbol="ETHUSDT")["result"]["list"]
        assert [o["orderLinkId"] for o in eth_orders] == ["eth-short"]
        both = api.get_order_history(category="linear", settleCoin="USDT")["result"]["list"]
        assert len(both) == 2
        assert len(api.cancel_all_orders(category="linear", baseCoin="ETH")["result"]["list"]) == 0
        kline = api.get_kline(category="linear", symbol="ETHUSDT", interval="1", limit=1)["result"]["list"][0]
        assert kline[4] == "50.0"
