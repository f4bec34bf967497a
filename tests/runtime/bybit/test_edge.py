"""The Bybit edge's sans-I/O parts, driven with a fake clock: per-endpoint rolling windows and the
venue's headers (RateLimiter), the clock offset (ClockSync), and which failures are retried."""
from __future__ import annotations

import pytest
from pybit.exceptions import FailedRequestError, InvalidRequestError

from playdeck.runtime.bybit.clock import ClockSync
from playdeck.runtime.bybit.errors import BybitFailure, classify, should_retry
from playdeck.runtime.bybit.limiter import IP_LIMIT, WINDOW_MARGIN, RateLimiter

CREATE = "/v5/order/create"


def test_ten_creates_go_at_once_and_the_eleventh_waits_for_the_window_to_roll() -> None:
    rl = RateLimiter()
    assert [rl.acquire(CREATE, 100.0) for _ in range(10)] == [0.0] * 10
    # the first of the ten leaves the window: Bybit's second and the margin for the way there
    assert rl.acquire(CREATE, 100.0) == pytest.approx(1.0 + WINDOW_MARGIN)
    assert 0.05 <= WINDOW_MARGIN <= 0.2  # more than a request's way varies, not much of the budget


def test_a_rolling_window_not_a_bucket() -> None:
    rl = RateLimiter()
    for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        assert rl.acquire(CREATE, t) == 0.0
    # 0.05 s after its window, the request sent at 0.0 has left it, the one at 0.1 not yet
    t = 1.05 + WINDOW_MARGIN
    assert rl.acquire(CREATE, t) == 0.0
    assert rl.acquire(CREATE, t) == pytest.approx(0.05)


def test_endpoints_have_their_own_windows() -> None:
    rl = RateLimiter()
    for _ in range(10):
        rl.acquire(CREATE, 0.0)
    assert rl.acquire("/v5/order/cancel", 0.0) == 0.0
    assert all(rl.acquire("/v5/order/realtime", 0.0) == 0.0 for _ in range(50))


def test_the_venues_headers_are_believed_when_they_say_less_is_left() -> None:
    rl = RateLimiter()
    rl.acquire(CREATE, 0.0)
    rl.observe(CREATE, 0.0, limit=10, remaining=2)  # another process of the key used 7 more
    assert [rl.acquire(CREATE, 0.0) for _ in range(2)] == [0.0, 0.0]
    assert rl.acquire(CREATE, 0.0) > 0.0


def test_a_10006_blocks_the_endpoint_until_its_reset_and_a_retry_re_acquires() -> None:
    rl = RateLimiter()
    rl.observe(CREATE, 10.0, remaining=0, reset_ms=12_500)
    assert rl.acquire(CREATE, 10.0) == pytest.approx(2.5)
    rl.block(CREATE, 20.0)
    assert rl.acquire(CREATE, 19.0) == pytest.approx(1.0)


def test_the_ip_limit_spans_every_endpoint() -> None:
    rl = RateLimiter(limits={})
    assert all(rl.acquire(f"/e{k}", 0.0) == 0.0 for k in range(IP_LIMIT))
    assert rl.acquire("/e0", 0.0) == pytest.approx(5.0)
    assert 500 <= IP_LIMIT < 600  # under Bybit's 600 per 5 s, with room for windows that do not line up


def test_clock_sync_takes_the_middle_of_the_round_trip() -> None:
    local = [1_000_000]
    clock = ClockSync(lambda: local[0], refresh_ms=60_000)
    assert clock.stale()
    clock.update(server_ms=1_003_050, sent_ms=1_000_000, received_ms=1_000_100)
    assert (clock.offset_ms, clock.round_trip_ms) == (3_000, 100)
    local[0] = 1_000_100
    assert clock.now_ms() == 1_003_100 and not clock.stale()
    local[0] = 1_060_100
    assert clock.stale()


def _invalid(code: int, headers: dict | None = None) -> InvalidRequestError:
    return InvalidRequestError(request="POST /v5/order/create", message=f"msg {code}", status_code=code,
                               time="00:00:00", resp_headers=headers or {})


@pytest.mark.parametrize(("exc", "retry"), [
    (_invalid(10006, {"X-Bapi-Limit-Reset-Timestamp": "1767000001000"}), True),
    (_invalid(10002), True),
    (_invalid(10016), True),
    (_invalid(10000), True),
    (_invalid(10001), False),  # the request is wrong: it stays wrong
    (_invalid(110007), False),  # not enough balance: sending it again will not change that
    (_invalid(110072), False),  # an earlier try got through: look it up, do not send again
    (_invalid(10003), False),
    (FailedRequestError("GET /x", "HTTP status code is not 200.", 502, "t", {}), True),
    (FailedRequestError("GET /x", "You have breached the IP rate limit", 403, "t", {}), False),
    (TimeoutError("read timed out"), True),
    (ConnectionResetError("reset"), True),
])
def test_what_is_retried(exc: BaseException, retry: bool) -> None:
    failure = classify(exc)
    assert isinstance(failure, BybitFailure) and should_retry(failure) is retry
    if isinstance(exc, InvalidRequestError) and exc.status_code == 10006:
        assert failure.reset_ms == 1767000001000


def test_a_bug_is_not_a_failure_of_bybit() -> None:
    with pytest.raises(KeyError):
        classify(KeyError("orderId"))


def test_a_10002_expires_the_clock_and_a_blocked_endpoint_says_for_how_long() -> None:
    local = [1_000_000]
    clock = ClockSync(lambda: local[0])
    clock.update(server_ms=1_030_050, sent_ms=1_000_000, received_ms=1_000_100)
    assert not clock.stale()
    clock.expire()
    assert clock.stale() and clock.offset_ms == 30_000  # measured again before the next signature
    rl = RateLimiter()
    assert rl.blocked_for(CREATE, 5.0) == 0.0
    rl.block(CREATE, 6.5)
    assert rl.blocked_for(CREATE, 5.0) == pytest.approx(1.5) and rl.blocked_for("/v5/order/cancel", 5.0) == 0.0
    rl.block("/v5/account/fee-rate", 7.0)  # not in the table, but the venue said wait
    assert rl.acquire("/v5/account/fee-rate", 5.0) == pytest.approx(2.0)
