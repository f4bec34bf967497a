"""Bybit's request limits on the client side, sans-I/O (the clock is a parameter; the caller sleeps).

bybit-v5.md section 4: per UID, each endpoint has a rolling one-second window (10 requests for the
order endpoints, 50 for the queries), and per IP 600 requests in any five seconds. `acquire` says how
long to wait before a request may go; `observe` believes the venue's `X-Bapi-Limit-*` headers when they
say fewer requests remain than the local count; `blocked_until` holds a 10006's reset timestamp, so a
retry after it re-acquires rather than firing at once.

Every time here is on one clock, the caller's (`now`, `until`, `reset_ms`): a caller on a monotonic
clock turns the venue's X-Bapi-Limit-Reset-Timestamp into that clock before giving it.
"""
from __future__ import annotations

import sys
from collections import deque

import attrs

__all__ = ["ENDPOINT_LIMITS", "RateLimiter"]

# requests per rolling second, per endpoint (linear, unified account; the documented defaults)
ENDPOINT_LIMITS: dict[str, int] = {
    "/v5/order/create": 10, "/v5/order/amend": 10, "/v5/order/cancel": 10, "/v5/order/cancel-all": 10,
    "/v5/order/realtime": 50, "/v5/order/history": 50, "/v5/execution/list": 50,
    "/v5/position/list": 50, "/v5/position/set-leverage": 10, "/v5/position/trading-stop": 10,
    "/v5/account/wallet-balance": 50,
}
# Bybit's 600 requests per 5 s per IP, kept with a tenth to spare: its window is not ours (it counts
# on arrival, we at sending), and going over it is a 403 and a ten-minute ban, not a 10006 to wait out.
IP_LIMIT, IP_WINDOW = 540, 5.0
# An endpoint's window is counted here a little longer than Bybit's second: Bybit counts a request when
# it arrives, we when we let it go, and a request's way there varies (a thread to get, the network): a
# request let go exactly one second after the first of ten could arrive before that first one's
# second was over, and be refused (10006). A burst of 40 creates on loopback met 5-11 refusals
# without the margin, none with it (tests/runtime/bybit/test_rest_retries.py).
WINDOW_MARGIN = 0.1


@attrs.define
class _Window:
    limit: int
    seconds: float
    sent: deque = attrs.field(factory=deque)  # times of the requests inside the window, oldest first
    blocked_until: float = 0.0

    def wait(self, now: float) -> float:
        sent = self.sent
        while sent and sent[0] <= now - self.seconds:
            sent.popleft()
        wait = max(0.0, self.blocked_until - now)
        if len(sent) >= self.limit:
            wait = max(wait, sent[len(sent) - self.limit] + self.seconds - now)
        return wait


class RateLimiter:
    def __init__(self, limits: dict[str, int] | None = None) -> None:
        self._limits = dict(ENDPOINT_LIMITS if limits is None else limits)
        self._windows: dict[str, _Window] = {}
        self._ip = _Window(IP_LIMIT, IP_WINDOW)
        self.kept = True  # False: no limits of our own (see `unlimited`)

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """No window of its own (a venue's 10006 still blocks): for a venue without limits (benches)."""
        limiter = cls({})
        limiter._ip = _Window(sys.maxsize, IP_WINDOW)
        limiter.kept = False
        return limiter

    def _window(self, endpoint: str) -> _Window | None:
        w = self._windows.get(endpoint)
        if w is None and endpoint in self._limits:
            w = self._windows[endpoint] = _Window(self._limits[endpoint], 1.0 + WINDOW_MARGIN)
        return w

    def acquire(self, endpoint: str, now: float) -> float:
        """Seconds to wait before a request to `endpoint` may go (0: now). The request is counted at
        the time it will go, so calling again after sleeping that long is not needed."""
        w = self._window(endpoint)
        wait = self._ip.wait(now)
        if w is not None:
            wait = max(wait, w.wait(now))
            w.sent.append(now + wait)
        self._ip.sent.append(now + wait)
        return wait

    def observe(self, endpoint: str, now: float, *, limit: int | None = None, remaining: int | None = None,
                reset_ms: int | None = None) -> None:
        """The venue's headers for a request to `endpoint` answered at `now` (seconds): never believe
        more room than it says; with nothing left, wait for its reset (`reset_ms`, on this clock)."""
        w = self._window(endpoint)
        if w is None:
            return
        if limit is not None and limit > 0:
            w.limit = limit
        if remaining is not None:
            while len(w.sent) < w.limit - remaining:
                w.sent.appendleft(now)  # requests we did not count (another process of the same key)
            if remaining <= 0 and reset_ms is not None:
                self.block(endpoint, reset_ms / 1000.0)

    def block(self, endpoint: str, until: float) -> None:
        """A 10006 (too many visits): no request to `endpoint` before `until` (seconds, the venue's
        X-Bapi-Limit-Reset-Timestamp on this clock). An endpoint with no limit of its own in the table
        is held too: the venue said so."""
        w = self._window(endpoint)
        if w is None:
            w = self._windows[endpoint] = _Window(sys.maxsize, 1.0)
        w.blocked_until = max(w.blocked_until, until)

    def budgets(self, now: float) -> list[tuple[str, int, int, float]]:
        """(endpoint, requests in its window now, its limit, window seconds) of each endpoint used."""
        out = []
        for endpoint, w in sorted(self._windows.items()):
            w.wait(now)  # drops what has left the window
            if w.limit < sys.maxsize:
                out.append((endpoint, len(w.sent), w.limit, w.seconds))
        return out

    def blocked_for(self, endpoint: str, now: float) -> float:
        """Seconds until a 10006's block on `endpoint` ends (0: not blocked). Nothing is counted."""
        w = self._windows.get(endpoint)
        return 0.0 if w is None else max(0.0, w.blocked_until - now)
