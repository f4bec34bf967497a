"""Signed requests are checked as Bybit checks them: the rule on the clock (sans-I/O, a fake clock),
then through pybit against the server: an unknown key, a wrong secret, a stale timestamp, a call
sent without signing; each with Bybit's code and message, and the emulator goes on serving."""
from __future__ import annotations

import json

import pytest
from pybit.exceptions import InvalidRequestError

from emulator_kit import auth_args, http, start, walk_bars
from playdeck.runtime.bybit.emulator import DEFAULT_KEY, DEFAULT_SECRET
from playdeck.runtime.bybit.emulator.auth import check_rest, check_ws, sign
from playdeck.runtime.bybit.emulator.errors import BybitError

NOW = 1_767_000_000_000
KEY, SECRET = "k", "s"


def headers(ts: int, payload: str, recv: int = 5000, key: str = KEY, secret: str = SECRET) -> dict[str, str]:
    return {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": str(ts), "X-BAPI-RECV-WINDOW": str(recv),
            "X-BAPI-SIGN": sign(secret, f"{ts}{key}{recv}{payload}")}


@pytest.mark.parametrize("offset, ok", [
    (-5000, True),  # server_time - recv_window <= timestamp
    (-5001, False),
    (999, True),  # timestamp < server_time + 1000
    (1000, False),
    (0, True),
])
def test_the_timestamp_rule_on_a_fake_clock(offset, ok):
    h = headers(NOW + offset, "category=linear")
    if ok:
        check_rest(h, "category=linear", NOW, KEY, SECRET)
        return
    with pytest.raises(BybitError) as e:
        check_rest(h, "category=linear", NOW, KEY, SECRET)
    assert e.value.code == 10002
    assert e.value.msg == ("invalid request, please check your server timestamp or recv_window param. "
                           f"req_timestamp[{NOW + offset}],server_timestamp[{NOW}],recv_window[5000]")


def test_the_signature_is_over_the_payload_exactly_as_received():
    payload = '{"category": "linear", "symbol": "BTCUSDT"}'
    check_rest(headers(NOW, payload), payload, NOW, KEY, SECRET)
    reordered = '{"symbol": "BTCUSDT", "category": "linear"}'  # the same object, other bytes
    with pytest.raises(BybitError) as e:
        check_rest(headers(NOW, payload), reordered, NOW, KEY, SECRET)
    assert e.value.code == 10004
    assert e.value.msg == f"error sign! origin_string[{NOW}{KEY}5000{reordered}]"


def test_the_key_is_checked_before_the_clock_and_the_signature():
    with pytest.raises(BybitError) as e:
        check_rest(headers(NOW - 10**6, "", key="other"), "", NOW, KEY, SECRET)
    assert (e.value.code, e.value.msg) == (10003, "API key is invalid.")
    with pytest.raises(BybitError) as e:
        check_rest({}, "", NOW, KEY, SECRET)
    assert e.value.code == 10003


def test_stream_auth_needs_the_key_a_future_expiry_and_its_signature():
    assert check_ws(auth_args(KEY, SECRET, expires=NOW + 1), NOW, KEY, SECRET)
    assert not check_ws(auth_args(KEY, SECRET, expires=NOW), NOW, KEY, SECRET)  # expired on arrival
    assert not check_ws(auth_args(KEY, "wrong", expires=NOW + 1000), NOW, KEY, SECRET)
    assert not check_ws(auth_args("other", SECRET, expires=NOW + 1000), NOW, KEY, SECRET)
    assert not check_ws(["k", "soon", "x"], NOW, KEY, SECRET) and not check_ws("k", NOW, KEY, SECRET)


# ------------------------------------------------------------------------------------ over pybit
@pytest.fixture(scope="module")
def emu():
    bg = start(walk_bars(50), start_bar=20)
    yield bg
    bg.stop()


def positions(api):
    return api.get_positions(category="linear", symbol="BTCUSDT")


def test_a_good_signature_passes_for_get_and_post(emu):
    api = http(emu.url)
    assert positions(api)["retCode"] == 0
    # GET with several parameters: pybit sorts them and signs the string it sends
    assert api.get_open_orders(category="linear", symbol="BTCUSDT", openOnly=0, limit=5)["retCode"] == 0
    assert api.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="5", sellLeverage="5")["retCode"] == 0


def test_an_unknown_key_is_10003(emu):
    with pytest.raises(InvalidRequestError) as e:
        positions(http(emu.url, key="not-a-key"))
    assert (e.value.status_code, e.value.message) == (10003, "API key is invalid.")


def test_a_wrong_secret_is_10004_naming_the_string_the_server_signed(emu):
    api = http(emu.url, secret="not-the-secret")
    with pytest.raises(InvalidRequestError) as e:
        api.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.1")
    assert e.value.status_code == 10004
    body = json.dumps({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market", "qty": "0.1"})
    message = e.value.message
    assert message.startswith("error sign! origin_string[") and message.endswith(f"{DEFAULT_KEY}5000{body}]")
    with pytest.raises(InvalidRequestError) as e:
        positions(api)
    assert e.value.message.endswith(f"{DEFAULT_KEY}5000category=linear&symbol=BTCUSDT]")


def test_a_stale_timestamp_is_10002_and_the_next_good_request_passes(emu):
    # The server's clock runs 10 s ahead: pybit's timestamp is older than recv_window (5 s).
    emu.call(emu.emu.skew_clock, 10_000)
    try:
        with pytest.raises(InvalidRequestError) as e:
            positions(http(emu.url))
        assert e.value.status_code == 10002
        assert e.value.message.startswith("invalid request, please check your server timestamp or recv_window "
                                          "param. req_timestamp[")
        assert e.value.message.endswith(",recv_window[5000]")
        assert positions(http(emu.url, recv_window=20_000))["retCode"] == 0  # a wider window admits it
    finally:
        emu.call(emu.emu.skew_clock, 0)
    assert positions(http(emu.url))["retCode"] == 0


def test_a_private_call_sent_unsigned_is_10003(emu):
    api = http(emu.url)
    with pytest.raises(InvalidRequestError) as e:
        # pybit's own request path, told not to sign (a client that forgot to)
        api._submit_request(method="GET", path=f"{emu.url}/v5/position/list",
                            query={"category": "linear", "symbol": "BTCUSDT"}, auth=False)
    assert (e.value.status_code, e.value.message) == (10003, "API key is invalid.")
    assert positions(api)["retCode"] == 0


def test_the_secret_is_never_needed_for_market_data(emu):
    assert http(emu.url, key=None, secret=None).get_server_time()["retCode"] == 0
    assert DEFAULT_SECRET == "emulator-secret"
