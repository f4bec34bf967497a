"""BybitRest's retries against the emulator over loopback (pybit and requests are real; only the
sleeps and the limiter's clock are fakes in most tests, so a wait is recorded instead of waited):
10006 waits for the venue's reset in the rate limiter, 10002 measures the clock again and signs
anew, 10016 / 502 back off with growing jittered waits, what cannot change (10001, 110007) raises
after one request, a create whose reply is lost is sent again with the same orderLinkId and ends in
110072, attempts run out with the last failure's reason, and keys never reach a failure or the log."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterator

import pytest
from pybit.exceptions import InvalidRequestError

from emulator_kit import bars_from, http, start
from playdeck.runtime.bybit.client import BybitRest, Retry
from playdeck.runtime.bybit.clock import ClockSync
from playdeck.runtime.bybit.emulator import BackgroundEmulator, RateLimitSpec
from playdeck.runtime.bybit.errors import BACKOFF_FIRST_S, BybitFailure, classify

B = (100.0, 100.5, 99.5, 100.0)
KEY, SECRET = "k3y-of-the-rest-tests", "s3cret-of-the-rest-tests"
CREATE, TIME, POSITIONS, WALLET = ("/v5/order/create", "/v5/market/time", "/v5/position/list",
                                   "/v5/account/wallet-balance")


class FakeTime:
    """The client's sleep and the limiter's clock: a sleep is recorded and moves the clock at once."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def waits(self) -> list[float]:
        return [s for s in self.slept if s > 0]


@pytest.fixture
def bg() -> Iterator[BackgroundEmulator]:
    emulator = start(bars_from([B] * 4), start_bar=0, key=KEY, secret=SECRET, lost_reply_hold_s=3.0)
    yield emulator
    emulator.stop()


def rest_on(bg: BackgroundEmulator, fake: FakeTime | None = None, notes: list[Retry] | None = None,
            **kw: Any) -> BybitRest:
    timing: dict[str, Any] = {} if fake is None else {"sleep": fake.sleep, "monotonic": fake.monotonic}
    return BybitRest(key=kw.pop("key", KEY), secret=kw.pop("secret", SECRET), endpoint=bg.url,
                     timeout=kw.pop("timeout", 5.0), on_retry=None if notes is None else notes.append,
                     **timing, **kw)


def limit(link: str, qty: str = "1", price: str = "98") -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": qty, "price": price,
            "orderLinkId": link}


def fault(bg: BackgroundEmulator, name: str, *args: Any) -> None:
    assert bg.emu is not None
    bg.call(getattr(bg.emu, name), *args)


# ------------------------------------------------------------------------------------------ 10006
def test_a_burst_of_10006_waits_for_each_reset_in_the_limiter_then_succeeds(bg):
    fake, notes = FakeTime(), []
    rest = rest_on(bg, fake, notes)
    blocked: list[float] = []
    rest.on_retry = lambda note: (notes.append(note), blocked.append(rest.limiter.blocked_for(CREATE, fake.now)))

    async def go() -> dict[str, Any]:
        await rest.sync_clock()
        fault(bg, "fail_next", 10006, 3)
        return await rest.create(**limit("burst"))

    assert asyncio.run(go())["orderLinkId"] == "burst"
    assert [n.failure.code for n in notes] == [10006, 10006, 10006] and rest.retries == 3
    # the emulator's reset is one second after each refusal: the limiter held the endpoint that long,
    # and each retry slept until then before it was sent (no backoff on top)
    assert blocked == pytest.approx([1.0] * 3, abs=0.1)
    assert [n.wait_s for n in notes] == pytest.approx(blocked, abs=0.01)
    assert fake.waits() == pytest.approx(blocked, abs=0.01)
    assert rest.sent[CREATE] == 4
    assert rest.limiter.blocked_for(CREATE, fake.now) == 0.0


def test_a_burst_of_creates_on_the_real_clock_is_paced_so_the_venue_refuses_none() -> None:
    """Bybit counts a request when it arrives, the limiter when it lets it go: with its margin, a
    burst of 40 concurrent creates goes out at the order endpoint's pace and none meets a 10006."""
    with start(bars_from([B] * 4), start_bar=0, key=KEY, secret=SECRET, limits=RateLimitSpec(enabled=True)) as venue:
        rest = rest_on(venue)

        async def burst() -> list[dict[str, Any]]:
            return await asyncio.gather(*(rest.call("place_order", category="linear", **limit(f"burst-{k}"))
                                          for k in range(40)))

        began = time.monotonic()
        answers = asyncio.run(burst())
        took = time.monotonic() - began
    assert len({a["orderId"] for a in answers}) == 40
    assert rest.retries == 0 and rest.sent[CREATE] == 40
    assert took >= 3.0  # four windows of ten: the pace was kept, not the venue's patience tried


def test_a_10006_blocks_its_endpoint_for_every_caller_and_no_other(bg):
    fake = FakeTime()
    rest = rest_on(bg, fake)

    async def go() -> None:
        await rest.sync_clock()
        fault(bg, "fail_next", 10006, 1)
        with pytest.raises(BybitFailure) as e:
            await rest.create(**limit("first"), attempts=1)
        assert (e.value.code, e.value.attempts) == (10006, 1) and e.value.reset_ms is not None
        assert rest.limiter.blocked_for(CREATE, fake.now) == pytest.approx(1.0, abs=0.1)
        await rest.position("BTCUSDT")  # another endpoint goes at once
        assert fake.waits() == []
        await rest.create(**limit("second"))  # another caller of create waits for the reset first
        assert fake.waits() == pytest.approx([1.0], abs=0.1)

    asyncio.run(go())
    assert rest.retries == 0 and rest.sent[CREATE] == 2


def test_a_10006_is_waited_out_on_the_real_clock(bg):
    notes: list[Retry] = []
    rest = rest_on(bg, notes=notes)

    async def go() -> float:
        await rest.sync_clock()
        fault(bg, "fail_next", 10006, 1)
        t0 = time.monotonic()
        await rest.position("BTCUSDT")
        return time.monotonic() - t0

    took = asyncio.run(go())
    (note,) = notes
    assert note.failure.reset_ms is not None
    assert took >= 0.9
    assert rest.clock.now_ms() >= note.failure.reset_ms - 50  # the venue's clock is past its reset


def test_the_venues_headers_saying_none_left_do_not_block_the_endpoint_for_ages():
    # the last request of a full window is answered `X-Bapi-Limit-Status: 0` with a reset timestamp on
    # the venue's clock: the limiter must hold it on its own clock (a second at most), not forever
    with start(bars_from([B] * 4), start_bar=0, key=KEY, secret=SECRET, limits=RateLimitSpec()) as bg:
        rest = rest_on(bg)

        async def go() -> None:
            for k in range(10):
                await rest.create(**limit(f"w{k}"))

        asyncio.run(go())
        assert rest.last_headers["X-Bapi-Limit-Status"] == "0"
        assert rest.limiter.blocked_for(CREATE, time.monotonic()) <= 1.0


# ------------------------------------------------------------------------------------ the clock
def test_a_10002_from_a_skewed_venue_clock_resyncs_and_later_requests_sign_with_it(bg):
    notes: list[Retry] = []
    rest = rest_on(bg, FakeTime(), notes)

    async def go() -> None:
        await rest.sync_clock()
        assert abs(rest.clock.offset_ms) < 1_000
        fault(bg, "skew_clock", 30_000)  # the venue's clock jumps: our timestamps are 30 s behind it
        await rest.position("BTCUSDT")
        assert [n.failure.code for n in notes] == [10002]
        assert rest.clock.offset_ms == pytest.approx(30_000, abs=1_000)
        assert (rest.sent[POSITIONS], rest.sent[TIME]) == (2, 2)
        # later requests are signed with the measured clock: one request each, no more retries
        await rest.wallet()
        await rest.open_orders("BTCUSDT")
        await rest.create(**limit("after-skew"))

    asyncio.run(go())
    assert rest.retries == 1
    assert (rest.sent[WALLET], rest.sent["/v5/order/realtime"], rest.sent[CREATE], rest.sent[TIME]) == (1, 1, 1, 2)


def test_pybit_signs_with_the_clients_clock_and_only_the_clients(bg):
    fault(bg, "skew_clock", 30_000)  # 30 s is far outside the 5 s recv_window
    rest = rest_on(bg, FakeTime())
    asyncio.run(rest.position("BTCUSDT"))
    # measured at start, then signed with it: the first signed request was accepted
    assert (rest.sent[TIME], rest.sent[POSITIONS], rest.retries) == (1, 1, 0)
    # a pybit session of its own in the same process still signs with the local clock
    with pytest.raises(InvalidRequestError) as e:
        http(bg.url, key=KEY, secret=SECRET).get_positions(category="linear", symbol="BTCUSDT")
    assert e.value.status_code == 10002


def test_concurrent_first_calls_measure_the_clock_once(bg):
    rest = rest_on(bg, FakeTime())

    async def go() -> None:
        await asyncio.gather(*(rest.position("BTCUSDT") for _ in range(5)))

    asyncio.run(go())
    assert (rest.sent[TIME], rest.sent[POSITIONS]) == (1, 5)


def test_the_clock_is_measured_again_every_few_minutes(bg):
    jump = [0]
    clock = ClockSync(lambda: int(time.time() * 1000) + jump[0], refresh_ms=300_000)
    rest = rest_on(bg, FakeTime(), clock=clock)

    async def go() -> None:
        for _ in range(3):
            await rest.position("BTCUSDT")
        assert rest.sent[TIME] == 1
        # five minutes pass on the local clock (and only there: it ran fast): the next call measures
        # the venue again first, and signs right
        jump[0] = 300_000
        await rest.position("BTCUSDT")

    asyncio.run(go())
    assert (rest.sent[TIME], rest.sent[POSITIONS], rest.retries) == (2, 4, 0)
    assert clock.offset_ms == pytest.approx(-300_000, abs=1_000)


# ---------------------------------------------------------------------------------- the backoff
@pytest.mark.parametrize("code", [10016, 502])
def test_server_errors_back_off_with_growing_jittered_waits(bg, code):
    fake, notes = FakeTime(), []
    rest = rest_on(bg, fake, notes)

    async def go() -> None:
        await rest.sync_clock()
        fault(bg, "fail_next", code, 4)
        await rest.wallet()

    asyncio.run(go())
    waits = [n.wait_s for n in notes]
    assert fake.waits() == waits and rest.sent[WALLET] == 5
    assert [n.attempt for n in notes] == [1, 2, 3, 4]
    assert all((n.failure.http if code == 502 else n.failure.code) == code for n in notes)
    base = [BACKOFF_FIRST_S * 2 ** k for k in range(4)]  # 0.25, 0.5, 1, 2 ...
    for wait, low in zip(waits, base):
        assert low <= wait <= low + BACKOFF_FIRST_S  # ... each plus up to 0.25 s of jitter
    assert waits == sorted(waits) and len(set(waits)) == 4


# --------------------------------------------------------------------- what is never sent again
@pytest.mark.parametrize("fields, code", [
    (limit("bad-qty", qty="abc"), 10001),  # a parameter error stays one
    (limit("too-big", qty="1000"), 110007),  # 98,000 USDT of order on 10,000 of equity at 3x
], ids=["10001", "110007"])
def test_what_cannot_change_raises_at_once_after_one_request(bg, fields, code):
    fake, notes = FakeTime(), []
    rest = rest_on(bg, fake, notes)
    with pytest.raises(BybitFailure) as e:
        asyncio.run(rest.create(**fields))
    assert (e.value.code, e.value.attempts, e.value.http, e.value.network) == (code, 1, None, False)
    assert rest.sent[CREATE] == 1 and notes == [] and fake.slept == []


def test_a_lost_create_reply_is_sent_again_with_the_same_orderLinkId_and_ends_in_110072(bg):
    fake, notes = FakeTime(), []
    rest = rest_on(bg, fake, notes, timeout=0.5)
    fields = limit("lost-once")
    given = dict(fields)

    async def go() -> None:
        await rest.sync_clock()
        fault(bg, "lose_replies", 1)  # the create is carried out; its reply never comes
        with pytest.raises(BybitFailure) as e:
            await rest.create(**fields)
        # the second send found the first one's order: the caller adopts it (110072 is not retried)
        assert (e.value.code, e.value.attempts) == (110072, 2)
        (found,) = [o for o in await rest.open_orders("BTCUSDT") if o["orderLinkId"] == "lost-once"]
        assert found["orderStatus"] == "New"

    asyncio.run(go())
    (note,) = notes
    assert note.failure.network and "timed out" in note.failure.message
    assert rest.sent[CREATE] == 2 and fields == given


def test_attempts_run_out_and_the_last_failure_is_raised_with_its_reason(bg):
    fake, notes = FakeTime(), []
    rest = rest_on(bg, fake, notes)

    async def go() -> None:
        await rest.sync_clock()
        fault(bg, "fail_next", 10016, 10)
        with pytest.raises(BybitFailure) as e:
            await rest.call("get_wallet_balance", attempts=3, accountType="UNIFIED")
        assert (e.value.code, e.value.attempts) == (10016, 3)
        assert str(e.value) == "Bybit 10016: System error. Please try again later. (after 3 attempts)"

    asyncio.run(go())
    assert rest.sent[WALLET] == 3 and len(notes) == 2 and rest.retries == 2


# ------------------------------------------------------------------------------------------ keys
def test_keys_never_reach_a_failure_or_the_log(bg, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = rest_on(bg, FakeTime(), secret="not-the-" + SECRET)
    with pytest.raises(BybitFailure) as e:
        asyncio.run(wrong.wallet())
    # Bybit's 10004 quotes the string it signed, and that string holds the key
    assert e.value.code == 10004 and e.value.message == "error sign! origin_string[<hidden>]"
    rest = rest_on(bg, FakeTime(), timeout=0.5)

    async def go() -> None:
        await rest.sync_clock()
        fault(bg, "fail_next", 10016, 1)
        fault(bg, "lose_replies", 1)
        with pytest.raises(BybitFailure):
            await rest.create(**limit("keys"))

    asyncio.run(go())
    assert "Bybit request retried" in caplog.text
    for text in (str(e.value), repr(e.value), caplog.text):
        assert KEY not in text and SECRET not in text


def test_classify_masks_the_signed_string_and_the_given_secrets():
    exc = InvalidRequestError(request="GET /v5/x: a=1", message=f"error sign! origin_string[1{KEY}5000a=[1]]",
                              status_code=10004, time="00:00:00", resp_headers={})
    assert classify(exc).message == "error sign! origin_string[<hidden>]"
    assert classify(TimeoutError(f"no reply for {SECRET}"), hide=(KEY, SECRET)).message == \
        "TimeoutError: no reply for <hidden>"
