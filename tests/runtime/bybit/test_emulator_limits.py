"""Rate limits as Bybit documents them: rolling windows per UID and endpoint (sans-I/O, a fake clock),
then through pybit: the three `X-Bapi-Limit*` headers on every response, 10006 with a reset in the
future (pybit's own retry sleeps until it and succeeds), and the per-IP limit's HTTP 403."""
from __future__ import annotations

import time

import pytest
from pybit.exceptions import FailedRequestError, InvalidRequestError

from emulator_kit import bars_from, http, start
from playdeck.runtime.bybit.emulator import RateLimitSpec
from playdeck.runtime.bybit.emulator.config import UID_LIMITS
from playdeck.runtime.bybit.emulator.ratelimit import RateLimits, RollingWindow

B = (100.0, 100.5, 99.5, 100.0)


def test_a_rolling_second_admits_the_limit_then_frees_as_requests_age():
    w = RollingWindow(10, 1000)
    got = [w.hit(t) for t in range(0, 100, 10)]  # ten requests at 0, 10, ..., 90 ms
    assert [a.remaining for a in got] == list(range(9, -1, -1)) and all(a.allowed for a in got)
    refused = w.hit(500)
    assert (refused.allowed, refused.remaining, refused.reset_ms) == (False, 0, 1000)  # when the first one ages out
    assert not w.hit(999).allowed
    assert w.hit(1000).allowed  # the request of t=0 has left the window (it is rolling, not a fixed second)
    assert not w.hit(1005).allowed and w.hit(1010).allowed


def test_limits_are_per_endpoint_and_off_when_disabled():
    limits = RateLimits(RateLimitSpec())
    for _ in range(10):
        assert limits.uid("1", "/v5/order/create", 0).allowed
    assert not limits.uid("1", "/v5/order/create", 1).allowed
    assert limits.uid("1", "/v5/order/cancel", 1).allowed  # its own window
    assert limits.uid("1", "/v5/order/realtime", 1).limit == 50
    off = RateLimits(RateLimitSpec(enabled=False))
    assert all(off.uid("1", "/v5/order/create", 0).allowed for _ in range(100))
    assert UID_LIMITS["/v5/position/list"] == 50 and UID_LIMITS["/v5/position/trading-stop"] == 10


def test_the_ip_limit_is_600_in_5_seconds():
    limits = RateLimits(RateLimitSpec())
    assert all(limits.ip("127.0.0.1", t).allowed for t in range(600))
    assert not limits.ip("127.0.0.1", 600).allowed
    assert limits.ip("127.0.0.2", 600).allowed
    assert limits.ip("127.0.0.1", 5000).allowed


# ------------------------------------------------------------------------------------- over pybit
@pytest.fixture(scope="module")
def limited():
    bg = start(bars_from([B, B]), start_bar=0, limits=RateLimitSpec())
    yield bg
    bg.stop()


def order(link: str) -> dict:
    return {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "1",
            "price": "90", "orderLinkId": link}


def test_every_response_carries_the_three_headers(limited):
    api = http(limited.url, return_response_headers=True)
    _, _, h = api.get_positions(category="linear", symbol="BTCUSDT")
    assert h["X-Bapi-Limit"] == "50" and 0 <= int(h["X-Bapi-Limit-Status"]) < 50
    assert abs(int(h["X-Bapi-Limit-Reset-Timestamp"]) - time.time() * 1000) < 60_000
    _, _, h = api.get_server_time()
    assert h["X-Bapi-Limit"] == "600"  # market data: the per-IP figures
    with pytest.raises(InvalidRequestError) as e:
        api.get_positions(category="linear")
    assert e.value.resp_headers["X-Bapi-Limit"] == "50"


def test_the_eleventh_create_in_a_second_is_10006_with_a_reset_ahead(limited):
    api = http(limited.url, return_response_headers=True)
    statuses = []
    for k in range(10):
        _, _, h = api.place_order(**order(f"r{k}"))
        statuses.append(int(h["X-Bapi-Limit-Status"]))
    assert statuses == list(range(9, -1, -1))
    with pytest.raises(InvalidRequestError) as e:
        api.place_order(**order("r10"))
    answered = time.time() * 1000
    assert (e.value.status_code, e.value.message) == (10006, "Too many visits!")
    h = e.value.resp_headers
    reset = int(h["X-Bapi-Limit-Reset-Timestamp"])
    assert h["X-Bapi-Limit"] == "10" and h["X-Bapi-Limit-Status"] == "0"
    assert reset > answered - 5  # in the future when sent
    assert api.get_open_orders(category="linear", symbol="BTCUSDT")[0]["retCode"] == 0  # another endpoint
    assert len(api.get_open_orders(category="linear", symbol="BTCUSDT", limit=50)[0]["result"]["list"]) == 10
    # pybit's own retry on 10006 sleeps until the reset and then gets through
    patient = http(limited.url)
    patient.retry_codes = {10006}
    patient.max_retries = 3
    for k in range(11, 13):
        assert patient.place_order(**order(f"r{k}"))["retCode"] == 0


def test_over_the_ip_limit_is_http_403():
    with start(bars_from([B, B]), start_bar=0, limits=RateLimitSpec(ip_limit=5)) as bg:
        api = http(bg.url)
        for _ in range(5):
            api.get_server_time()
        with pytest.raises(FailedRequestError) as e:
            api.get_server_time()
        assert e.value.status_code == 403
