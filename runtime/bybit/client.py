"""BybitRest: Bybit's V5 REST API through pybit, as playdeck uses it (bybit-v5.md, "playdeck's decisions").

- pybit's `HTTP` is built for mainnet, testnet or demo, and `session.endpoint` is set afterwards when
  an endpoint is given (the emulator on loopback); `session.client.trust_env` is off for loopback so no
  proxy setting reaches it.
- pybit makes one attempt (`max_retries=1`, no retry codes): playdeck owns pacing and retries. Every
  call goes through the `RateLimiter` (each endpoint's window, the venue's headers believed) and the
  one retry policy (`errors.should_retry`): backoff with jitter for what can succeed later, a
  10006 waits for its reset, a 10002 measures the clock again first; what cannot change (10001,
  110007, ...) raises at once as a `BybitFailure`.
- Every request is signed with the venue's time (`ClockSync`): pybit takes its timestamp from one
  function of its `_helpers` module, which this module points at the clock once.
- pybit is synchronous (requests): each call runs in a worker thread (`asyncio.to_thread`), so the
  event loop, the streams and the console never wait for a round trip.
Keys are never logged, put in an error message or returned.
"""
from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Awaitable, Callable

from playdeck.runtime.bybit.clock import ClockSync
from playdeck.runtime.bybit.errors import BybitFailure, classify, should_retry
from playdeck.runtime.bybit.limiter import RateLimiter

__all__ = ["BybitRest"]

_SYNCED: list[ClockSync] = []  # the clock pybit's timestamps come from (one venue per process)


def _point_pybit_at(clock: ClockSync) -> None:
    """pybit signs with `_helpers.generate_timestamp()`; make that the venue's time."""
    from pybit import _helpers

    _SYNCED[:] = [clock]
    if getattr(_helpers.generate_timestamp, "__playdeck__", False):
        return

    def venue_time() -> int:
        return _SYNCED[0].now_ms() if _SYNCED else int(time.time() * 1000)

    venue_time.__playdeck__ = True  # type: ignore[attr-defined]
    _helpers.generate_timestamp = venue_time


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


class BybitRest:
    def __init__(self, *, key: str | None, secret: str | None, endpoint: str | None = None, demo: bool = False,
                 testnet: bool = False, limiter: RateLimiter | None = None, clock: ClockSync | None = None,
                 timeout: float = 10.0, attempts: int = 5, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        from pybit.unified_trading import HTTP

        self.session = HTTP(testnet=testnet, demo=demo, api_key=key, api_secret=secret, timeout=timeout,
                            max_retries=1, return_response_headers=True)
        self.session.retry_codes = {-1}  # a set holding no real code: every failure reaches playdeck
        if endpoint is not None:
            self.session.endpoint = endpoint.rstrip("/")
            if endpoint.startswith(("http://127.", "http://localhost")):
                self.session.client.trust_env = False
        self.limiter = limiter or RateLimiter()
        self.clock = clock or ClockSync()
        _point_pybit_at(self.clock)
        self.attempts = attempts
        self._sleep = sleep
        self._monotonic = monotonic
        self.retries = 0  # requests sent again (the console's health pane)
        self.last_headers: dict[str, str] = {}

    async def sync_clock(self) -> None:
        """Measure the venue's clock (`/v5/market/time`), the round trip's middle as its moment."""
        sent = int(time.time() * 1000)
        result = await self._once("get_server_time", {})
        received = int(time.time() * 1000)
        self.clock.update(int(result["timeSecond"]) * 1000 if "timeNano" not in result
                          else int(result["timeNano"]) // 1_000_000, sent, received)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """`result` of pybit's `method` with `params` (Bybit's own field names), paced and retried."""
        if self.clock.stale() and method != "get_server_time":
            await self.sync_clock()
        delay = 0.2
        for attempt in range(1, self.attempts + 1):
            try:
                return await self._once(method, params)
            except Exception as exc:  # noqa: BLE001 (classify re-raises what is not a failure of Bybit)
                failure = classify(exc)
                if attempt == self.attempts or not should_retry(failure):
                    raise failure from None
                self.retries += 1
                endpoint = ENDPOINTS.get(method, method)
                if failure.code == 10006 and failure.reset_ms is not None:
                    # wait until the venue's reset (its clock), then acquire again
                    self.limiter.block(endpoint, self._monotonic() + max(0.0, (failure.reset_ms
                                                                               - self.clock.now_ms()) / 1000))
                elif failure.code == 10002:
                    await self.sync_clock()
                    continue
                await self._sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def _once(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = ENDPOINTS.get(method, method)
        wait = self.limiter.acquire(endpoint, self._monotonic())
        if wait > 0:
            await self._sleep(wait)
        body, _elapsed, headers = await asyncio.to_thread(getattr(self.session, method), **params)
        self.last_headers = dict(headers)
        limit, remaining, reset = (headers.get("X-Bapi-Limit"), headers.get("X-Bapi-Limit-Status"),
                                   headers.get("X-Bapi-Limit-Reset-Timestamp"))
        self.limiter.observe(endpoint, self._monotonic(), limit=int(limit) if limit else None,
                             remaining=int(remaining) if remaining else None,
                             reset_ms=int(reset) if remaining == "0" and reset else None)
        return body.get("result") or {}

    # ------------------------------------------------------------------ the endpoints playdeck uses
    async def server_time(self) -> dict[str, Any]:
        return await self.call("get_server_time")

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
