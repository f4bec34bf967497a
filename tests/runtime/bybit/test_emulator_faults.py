"""Every fault of the control API (`/_emulator/...`), observed as a client sees it through pybit or
websockets: streams closed, private pushes lost, slow answers, forced 10006 / 10002 / 10016 / HTTP
502, a create carried out whose reply never comes, a limit filled in parts over bars (and cancelled
after a part), a skewed clock, a restart that keeps orders and positions; and the bar controls."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from websockets.exceptions import ConnectionClosed

from emulator_kit import ACCOUNT, PrivateStream, bars_from, flush, http, recv_json, start, ws_connect
from playdeck.runtime.execution.orders import Instrument, OrderRequest, OrderRole, OrderType, Side, TimeInForce
from playdeck.runtime.sim.exchange import SimExchange

B = (100.0, 100.5, 99.5, 100.0)
DIP = (100.0, 100.5, 97.5, 99.5)  # reaches a buy limit at 98


def control(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    session = requests.Session()
    session.trust_env = False
    r = session.post(f"{url}/_emulator/{path}", json=body or {}, timeout=10) if path != "state" else \
        session.get(f"{url}/_emulator/state", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def control_error(url: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
    r = requests.post(f"{url}/_emulator/{path}", json=body, timeout=10)
    return r.status_code, r.json()["error"]


def limit(link: str, price: str = "98", qty: str = "1") -> dict[str, Any]:
    return {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": qty,
            "price": price, "orderLinkId": link}


@pytest.fixture
def emu():
    bg = start(bars_from([B] * 4 + [DIP] * 4 + [B] * 4), start_bar=0, lost_reply_hold_s=30.0)
    yield bg
    bg.stop()


def test_state_advance_pause_and_resume_through_the_control_api(emu):
    state = control(emu.url, "state")["state"]
    assert (state["bar"], state["bars"], state["timeframe"], state["paused"], state["end"]) == \
        (0, 12, "1m", True, False)
    moved = control(emu.url, "advance", {"bars": 3})
    assert moved["advanced"] == 3 and moved["state"]["bar"] == 3 and moved["state"]["closes"] == {"BTCUSDT": 100.0}
    assert control(emu.url, "advance", {"bars": 50})["advanced"] == 8
    assert control(emu.url, "state")["state"]["end"] is True
    assert control_error(emu.url, "advance", {"bars": -1}) == (400, "bars must be >= 0")


def test_at_speed_the_bars_move_until_paused():
    with start(bars_from([B] * 400), start_bar=0, speed=100.0) as bg:
        def bar() -> int:
            return control(bg.url, "state")["state"]["bar"]
        deadline = time.time() + 20
        while bar() < 3:
            assert time.time() < deadline
            time.sleep(0.02)
        control(bg.url, "pause")
        held = bar()
        time.sleep(0.2)
        assert bar() in (held, held + 1)  # an advance under way when paused may still land
        held = bar()
        time.sleep(0.2)
        assert bar() == held
        control(bg.url, "resume")
        deadline = time.time() + 20
        while bar() < held + 3:
            assert time.time() < deadline
            time.sleep(0.02)


def test_closing_the_private_streams_leaves_the_public_ones(emu):
    private = PrivateStream(emu.private_url)
    public = ws_connect(emu.public_url)
    try:
        assert control(emu.url, "fault/close-stream", {"stream": "private"})["closed"] == 1
        with pytest.raises(ConnectionClosed) as e:
            private.ws.recv(timeout=5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1001
        public.send(json.dumps({"op": "ping"}))
        assert recv_json(public)["ret_msg"] == "pong"
        assert control(emu.url, "fault/close-stream", {"stream": "public"})["closed"] == 1
        with pytest.raises(ConnectionClosed):
            public.recv(timeout=5)
    finally:
        private.close()
        public.close()
    assert control_error(emu.url, "fault/close-stream", {"stream": "both"}) == (400, "stream must be public or private")


def test_dropped_private_pushes_never_arrive_and_the_next_ones_do(emu):
    stream = PrivateStream(emu.private_url, ("order", "position"))
    try:
        control(emu.url, "fault/drop-private", {"count": 1, "topic": "order"})
        api = http(emu.url)
        api.place_order(**limit("a"))
        api.place_order(**limit("b"))
        flush(emu)
        stream.read(quiet=0.1)
    finally:
        stream.close()
    assert [(p["topic"], p["data"][0].get("orderLinkId", "")) for p in stream.pushes] == [
        ("position", ""), ("order", "b"), ("position", "")]
    listed = http(emu.url).get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert {o["orderLinkId"] for o in listed} == {"a", "b"}  # the order exists: only its message was lost


def test_slow_answers_time_a_client_out_and_then_come_back(emu):
    control(emu.url, "fault/delay", {"ms": 1500})
    with pytest.raises(requests.exceptions.ReadTimeout):
        http(emu.url, timeout=0.5).get_server_time()
    control(emu.url, "fault/delay", {"ms": 0})
    assert http(emu.url, timeout=5).get_server_time()["retCode"] == 0


@pytest.mark.parametrize("code, message", [(10006, "Too many visits!"),
                                           (10016, "System error. Please try again later."),
                                           (10002, "invalid request, please check your server timestamp")])
def test_the_next_requests_answer_a_forced_code(emu, code, message):
    control(emu.url, "fault/error", {"code": code, "count": 2})
    api = http(emu.url)
    for _ in range(2):
        with pytest.raises(InvalidRequestError) as e:
            api.place_order(**limit("x"))
        assert e.value.status_code == code and e.value.message.startswith(message)
        if code == 10006:
            assert int(e.value.resp_headers["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000 - 5
    assert api.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"] == []  # nothing was done
    assert api.place_order(**limit("x"))["retCode"] == 0


def test_a_gateway_failure_is_http_502(emu):
    control(emu.url, "fault/error", {"code": 502, "count": 1})
    with pytest.raises(FailedRequestError) as e:
        http(emu.url).get_positions(category="linear", symbol="BTCUSDT")
    assert e.value.status_code == 502
    assert control_error(emu.url, "fault/error", {"code": 10005}) == \
        (400, "code must be one of 10006, 10002, 10016, 502, was 10005")


def test_a_lost_reply_times_the_client_out_but_the_order_exists(emu):
    control(emu.url, "fault/lose-reply", {"count": 1})
    with pytest.raises(requests.exceptions.ReadTimeout):
        http(emu.url, timeout=1).place_order(**limit("lost"))
    api = http(emu.url)
    (found,) = api.get_open_orders(category="linear", symbol="BTCUSDT", orderLinkId="lost")["result"]["list"]
    assert found["orderStatus"] == "New"
    with pytest.raises(InvalidRequestError) as e:  # sending it again: the earlier try got through
        api.place_order(**limit("lost"))
    assert e.value.status_code == 110072


def sim_split_path(parts: int, cancel_at: int | None) -> str:
    """The simulator's path for the same limit with the same fault."""
    ex = SimExchange(Instrument("BTCUSDT", 0.1, 0.001, 0.001), maker_fee=ACCOUNT.maker_fee,
                     taker_fee=ACCOUNT.taker_fee, slippage_bps=ACCOUNT.slippage_bps, equity=ACCOUNT.equity,
                     leverage=ACCOUNT.leverage)
    rows = [B] * 4 + [DIP] * 4 + [B] * 4
    ex.last_close = 100.0
    ex.split_next_fill(parts)
    ex.submit(OrderRequest("s", Side.BUY, OrderType.LIMIT, 3, 98.0, None, TimeInForce.GTC, False, OrderRole.ENTRY,
                           None, 0, None), 0, 100.0)
    for bar in range(1, len(rows)):
        o, h, l, c = rows[bar]
        ex.process_bar(bar, bar * 60_000, o, h, l, c)
        ex.close_bar(bar, h, l, c)
        if bar == cancel_at:
            ex.cancel("s", bar)
    return ex.orders["s"].venue_path().replace("PartiallyFilledCanceled", "Cancelled")


@pytest.mark.parametrize("cancel_at", [None, 4], ids=["filled in parts", "cancelled after a part"])
def test_a_limit_fill_split_into_parts_over_bars(emu, cancel_at):
    stream = PrivateStream(emu.private_url, ("order", "execution"))
    try:
        api = http(emu.url)
        control(emu.url, "fault/split-fill", {"parts": 3})
        api.place_order(**limit("s", qty="3"))
        for bar in range(1, 12):
            emu.advance(1)
            if bar == cancel_at:
                api.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="s")
        flush(emu)
        stream.read(quiet=0.1)
    finally:
        stream.close()
    statuses = [o["orderStatus"] for o in stream.items("order")]
    execs = stream.items("execution")
    order = api.get_order_history(category="linear", symbol="BTCUSDT", orderLinkId="s")["result"]["list"][0]
    if cancel_at is None:
        assert statuses == ["New", "PartiallyFilled", "PartiallyFilled", "Filled"]
        assert [e["execQty"] for e in execs] == ["1.000", "1.000", "1.000"]
        assert (order["orderStatus"], order["cumExecQty"], order["leavesQty"]) == ("Filled", "3.000", "0.000")
    else:
        # Bybit linear: Cancelled with cumExecQty > 0 (playdeck records PartiallyFilledCanceled)
        assert statuses == ["New", "PartiallyFilled", "Cancelled"]
        assert (order["orderStatus"], order["cumExecQty"]) == ("Cancelled", "1.000")
    assert ">".join(dict.fromkeys(statuses)) == sim_split_path(3, cancel_at).replace("PartiallyFilled>PartiallyFilled",
                                                                                       "PartiallyFilled")
    assert control_error(emu.url, "fault/split-fill", {"parts": 1}) == (400, "parts must be at least 2")


def test_a_skewed_clock_moves_server_time_and_refuses_stale_signatures(emu):
    before = time.time() * 1000
    control(emu.url, "fault/skew", {"ms": 3_600_000})
    api = http(emu.url)
    assert int(api.get_server_time()["result"]["timeSecond"]) * 1000 >= before + 3_600_000 - 1000
    with pytest.raises(InvalidRequestError) as e:
        api.get_positions(category="linear", symbol="BTCUSDT")
    assert e.value.status_code == 10002
    control(emu.url, "fault/clear")
    assert api.get_positions(category="linear", symbol="BTCUSDT")["retCode"] == 0


def test_a_restart_drops_every_connection_and_keeps_orders_and_positions(emu):
    api = http(emu.url)
    api.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="1", orderLinkId="in")
    emu.advance(1)
    api.place_order(**limit("resting", price="90"))
    private = PrivateStream(emu.private_url)
    public = ws_connect(emu.public_url)
    try:
        control(emu.url, "fault/restart")
        for ws in (private.ws, public):
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=5)
    finally:
        private.close()
        public.close()
    # the same port serves again; the venue kept everything
    deadline = time.time() + 10
    while True:
        try:
            orders = api.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
            break
        except requests.exceptions.ConnectionError:
            assert time.time() < deadline
            time.sleep(0.05)
    assert [o["orderLinkId"] for o in orders] == ["resting"]
    assert api.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]["size"] == "1.000"
    again = PrivateStream(emu.private_url)
    again.close()
