"""BybitRest: Bybit's V5 REST API through pybit, as playdeck uses it (bybit-v5.md, "playdeck's decisions").

- pybit's `HTTP` is built for mainnet, testnet or demo, and `session.endpoint` is set afterwards when
  an endpoint is given (the emulator on loopback); `session.client.trust_env` is off for loopback so no
  proxy setting reaches it.
- pybit makes one attempt (`max_retries=1`, no retry codes): playdeck owns pacing and retries. Every
  request goes through the `RateLimiter` (each endpoint's window, the venue's headers believed) and
  the one retry policy (`errors.retrying`, tenacity): backoff with jitter for what can succeed later;
  a 10006 blocks its endpoint in the limiter until the venue's reset (every caller of it waits, and
  the retry acquires again); a 10002 expires the clock, so the next attempt measures it before pybit
  signs anew; what cannot change (10001, 110007, 110072, ...) raises at once as a `BybitFailure`.
  A retried request is sent with the caller's params unchanged: a create keeps its orderLinkId, so
  a create whose reply was lost comes back as 110072 and the caller adopts the order.
- Every request is signed with the venue's time (`ClockSync`, measured at start, every few minutes
  and after a 10002). pybit 5.17 signs with `_helpers.generate_timestamp()`, looked up in that module
  at each signing (`_http_manager._prepare_headers`); that function is replaced once by one reading
  the clock of the `BybitRest` whose request is being signed (a context variable, set in the worker
  thread), so other pybit users in the process keep the local clock.
- pybit is synchronous (requests): each request runs in a worker thread (`asyncio.to_thread`), so the
  event loop, the streams and the console never wait for a round trip.
Keys are never logged, put in an error message or returned (`classify` masks them).
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter
from typing import Any, Awaitable, Callable

import attrs
from tenacity import RetryCallState

from playdeck.runtime.bybit.clock import ClockSync
from playdeck.runtime.bybit.errors import ATTEMPTS, BybitFailure, classify, retrying
from playdeck.runtime.bybit.limiter import RateLimiter

__all__ = ["BybitRest", "Retry"]

log = logging.getLogger(__name__)

# The clock of the BybitRest whose request is being signed in this thread (None: pybit's own clock).
_SIGNING_CLOCK: contextvars.ContextVar[ClockSync | None] = contextvars.ContextVar("bybit_signing_clock",
                                                                                   default=None)


def _sign_with_venue_time() -> None:
    """Point pybit's timestamps at `_SIGNING_CLOCK` (once per process)."""
    from pybit import _helpers, _http_manager

    original = _helpers.generate_timestamp
    if getattr(original, "__playdeck__", False):
        return

    def generate_timestamp() -> int:
        clock = _SIGNING_CLOCK.get()
        return original() if clock is None else clock.now_ms()

    generate_timestamp.__playdeck__ = True  # type: ignore[attr-defined]
    # 5.17 looks it up as `_helpers.generate_timestamp`; a pybit that imported the name into its HTTP
    # module would look it up there, so that binding is replaced too.
    for module in (_helpers, _http_manager):
        if getattr(module, "generate_timestamp", None) is original:
            module.generate_timestamp = generate_timestamp


# pybit's method for each endpoint (bybit-v5.md 1.5), so the limiter can count per endpoint
ENDPOINTS = {
    "get_server_time": "/v5/market/time", "get_kline": "/v5/market/kline",
    "get_instruments_info": "/v5/market/instruments-info", "get_tickers": "/v5/market/tickers",
    "place_order": "/v5/order/create", "amend_order": "/v5/order/amend", "cancel_order": "/v5/order/cancel",
    "cancel_all_orders": "/v5/order/cancel-all", "get_open_orders": "/v5/order/realtime",
    "get_order_history": "/v5/order/history", "get_executions": "/v5/execution/list",
    "get_positions": "/v5/position/list", "set_trading_stop": "/v5/position/trading-stop",
    "set_leverage": "/v5/position/set-leverage", "get_wallet_balance": "/v5/account/wallet-balance",
}
SERVER_TIME = "get_server_time"


@attrs.frozen
class Retry:
    """One request about to be sent again: after which attempt, why, and how long it waits first
    (for a 10006, until the venue's reset)."""

    endpoint: str
    attempt: int  # the attempt that failed (1: the first)
    attempts: int  # the most this request may make
    failure: BybitFailure
    wait_s: float

    def __str__(self) -> str:
        return (f"{self.endpoint}: attempt {self.attempt} of {self.attempts} failed ({self.failure}); "
                f"again in {self.wait_s:.2f} s")


class BybitRest:
    def __init__(self, *, key: str | None, secret: str | None, endpoint: str | None = None, demo: bool = False,
                 testnet: bool = False, limiter: RateLimiter | None = None, clock: ClockSync | None = None,
                 timeout: float = 10.0, attempts: int = ATTEMPTS,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_retry: Callable[[Retry], None] | None = None) -> None:
        from pybit.unified_trading import HTTP

        self.session = HTTP(testnet=testnet, demo=demo, api_key=key, api_secret=secret, timeout=timeout,
                            max_retries=1, return_response_headers=True)
        self.session.retry_codes = {-1}  # a set holding no real code: every failure reaches playdeck
        if endpoint is not None:
            self.session.endpoint = endpoint.rstrip("/")
            if endpoint.startswith(("http://127.", "http://localhost")):
                self.session.client.trust_env = False
        self._hide = tuple(s for s in (key, secret) if s)  # masked in every failure's text
        self.limiter = limiter or RateLimiter()
        self.clock = clock or ClockSync()
        _sign_with_venue_time()
        self.attempts = attempts  # per request, unless a call says otherwise
        self._sleep = sleep
        self._monotonic = monotonic
        self.on_retry = on_retry
        self._clock_lock = asyncio.Lock()  # one measurement at a time; the others wait for it
        self.retries = 0  # requests sent again (the console's health pane)
        self.sent: Counter[str] = Counter()  # requests sent, by endpoint path (lost ones too)
        self.last_headers: dict[str, str] = {}

    async def sync_clock(self) -> None:
        """Measure the venue's clock now (`/v5/market/time`, retried like any request)."""
        async with self._clock_lock:
            await self.call(SERVER_TIME)

    async def call(self, method: str, /, *, attempts: int | None = None, **params: Any) -> dict[str, Any]:
        """`result` of pybit's `method` with `params` (Bybit's own field names), paced and retried (at
        most `attempts` sends; the client's `attempts` when None). The last failure is raised as a
        `BybitFailure` carrying how many attempts were made."""
        endpoint = ENDPOINTS.get(method, method)
        most = self.attempts if attempts is None else attempts
        tried = 0
        try:
            async for attempt in retrying(attempts=most, sleep=self._sleep,
                                          before_sleep=lambda state: self._note_retry(endpoint, most, state)):
                with attempt:
                    tried = attempt.retry_state.attempt_number
                    return await self._attempt(method, params)
        except BybitFailure as failure:
            if tried > 1:
                raise attrs.evolve(failure, attempts=tried) from None
            raise
        raise AssertionError("tenacity ended without a result or a failure")

    def _note_retry(self, endpoint: str, most: int, state: RetryCallState) -> None:
        """Between two attempts: count, log and report the retry (the reason and the wait)."""
        failure = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(failure, BybitFailure)
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        if failure.code == 10006:
            wait = max(wait, self.limiter.blocked_for(endpoint, self._monotonic()))
        self.retries += 1
        note = Retry(endpoint, state.attempt_number, most, failure, wait)
        log.warning("Bybit request retried: %s", note)
        if self.on_retry is not None:
            self.on_retry(note)

    async def _attempt(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One attempt: measure the clock first if it is due, then send; a failure comes out as a
        BybitFailure (anything else is a bug and is raised as it is)."""
        endpoint = ENDPOINTS.get(method, method)
        try:
            if method != SERVER_TIME and self.clock.stale():
                async with self._clock_lock:
                    if self.clock.stale():  # not measured meanwhile by another caller
                        await self._request(SERVER_TIME, {})
            return await self._request(method, params)
        except Exception as exc:  # noqa: BLE001 (classify raises again what is no failure of Bybit)
            headers = getattr(exc, "resp_headers", None)
            if headers:
                self.last_headers = dict(headers)
            failure = classify(exc, self._hide)
        if failure.code == 10006 and failure.reset_ms is not None:
            # every request to this endpoint (this caller's retry and everyone else's) waits for it
            self.limiter.block(endpoint, self._on_monotonic(failure.reset_ms))
        elif failure.code == 10002:
            self.clock.expire()
        raise failure  # outside the except: pybit's exception (and its request) is not kept as context

    async def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request: its turn from the limiter, pybit in a worker thread, the headers believed. The
        server time's answer is also a measurement of the venue's clock."""
        endpoint = ENDPOINTS.get(method, method)
        wait = self.limiter.acquire(endpoint, self._monotonic())
        if wait > 0:
            await self._sleep(wait)
        self.sent[endpoint] += 1
        sent_ms = self.clock.local_ms()
        # `**params` hands pybit a copy: what it casts and drops (None, whole floats) is its copy, so a
        # retry sends exactly what the caller gave
        body, _elapsed, headers = await asyncio.to_thread(self._signed, method, params)
        received_ms = self.clock.local_ms()
        self.last_headers = dict(headers)
        limit, remaining, reset = (headers.get("X-Bapi-Limit"), headers.get("X-Bapi-Limit-Status"),
                                   headers.get("X-Bapi-Limit-Reset-Timestamp"))
        # the reset is on the venue's clock; the limiter counts on ours
        reset_ms = round(self._on_monotonic(int(reset)) * 1000) if remaining == "0" and reset else None
        self.limiter.observe(endpoint, self._monotonic(), limit=int(limit) if limit else None,
                             remaining=int(remaining) if remaining else None, reset_ms=reset_ms)
        result = body.get("result") or {}
        if method == SERVER_TIME:
            server_ms = (int(result["timeNano"]) // 1_000_000 if "timeNano" in result
                         else int(result["timeSecond"]) * 1000)
            self.clock.update(server_ms, sent_ms, received_ms)
        return result

    def _signed(self, method: str, params: dict[str, Any]) -> Any:
        # runs in the worker thread, in a copy of the caller's context: the clock is this client's
        _SIGNING_CLOCK.set(self.clock)
        return getattr(self.session, method)(**params)

    def _on_monotonic(self, venue_ms: int) -> float:
        """A venue timestamp (ms) as a moment of the limiter's clock (seconds)."""
        return self._monotonic() + (venue_ms - self.clock.now_ms()) / 1000

    # ------------------------------------------------------------------ the endpoints playdeck uses
    async def server_time(self) -> dict[str, Any]:
        """The venue's time (and, on the way, a measurement of the clock)."""
        return await self.call(SERVER_TIME)

    async def instrument(self, symbol: str) -> dict[str, Any]:
        found = (await self.call("get_instruments_info", category="linear", symbol=symbol)).get("list") or []
        if not found:
            raise BybitFailure(10001, f"params error: symbol invalid: {symbol}")
        return found[0]

    async def klines(self, symbol: str, interval: str, *, start: int | None = None, end: int | None = None,
                     limit: int = 1000) -> list[list[str]]:
        """Klines oldest first (Bybit sends them newest first)."""
        got = await self.call("get_kline", category="linear", symbol=symbol, interval=interval, start=start,
                              end=end, limit=limit)
        return list(reversed(got.get("list") or []))

    async def create(self, **fields: Any) -> dict[str, Any]:
        return await self.call("place_order", category="linear", **fields)

    async def amend(self, **fields: Any) -> dict[str, Any]:
        return await self.call("amend_order", category="linear", **fields)

    async def cancel(self, symbol: str, order_link_id: str) -> dict[str, Any]:
        return await self.call("cancel_order", category="linear", symbol=symbol, orderLinkId=order_link_id)

    async def cancel_all(self, symbol: str) -> list[dict[str, Any]]:
        return (await self.call("cancel_all_orders", category="linear", symbol=symbol)).get("list") or []

    async def open_orders(self, symbol: str) -> list[dict[str, Any]]:
        return await self._pages("get_open_orders", symbol=symbol, limit=50)

    async def order(self, symbol: str, order_link_id: str) -> dict[str, Any] | None:
        """One order by its orderLinkId, open or finished (realtime with openOnly=1 covers recent ones)."""
        for method, extra in (("get_open_orders", {"openOnly": 0}), ("get_open_orders", {"openOnly": 1}),
                              ("get_order_history", {})):
            got = (await self.call(method, category="linear", symbol=symbol, orderLinkId=order_link_id,
                                   **extra)).get("list") or []
            if got:
                return got[0]
        return None

    async def executions(self, symbol: str, start_ms: int | None = None) -> list[dict[str, Any]]:
        return await self._pages("get_executions", symbol=symbol, startTime=start_ms, limit=100)

    async def position(self, symbol: str) -> dict[str, Any]:
        got = (await self.call("get_positions", category="linear", symbol=symbol)).get("list") or []
        return got[0] if got else {"symbol": symbol, "side": "", "size": "0", "avgPrice": "0"}

    async def wallet(self) -> dict[str, Any]:
        got = (await self.call("get_wallet_balance", accountType="UNIFIED", coin="USDT")).get("list") or []
        return got[0] if got else {}

    async def trading_stop(self, **fields: Any) -> dict[str, Any]:
        return await self.call("set_trading_stop", category="linear", tpslMode="Full", positionIdx=0, **fields)

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        try:
            await self.call("set_leverage", category="linear", symbol=symbol, buyLeverage=f"{leverage:g}",
                            sellLeverage=f"{leverage:g}")
        except BybitFailure as failure:
            if failure.code != 110043:  # leverage not modified: it already is
                raise

    async def _pages(self, method: str, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            got = await self.call(method, category="linear", cursor=cursor, **params)
            out.extend(got.get("list") or [])
            cursor = got.get("nextPageCursor") or None
            if cursor is None:
                return out
