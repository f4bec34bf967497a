"""Bybit's rate limits as rolling windows (bybit-v5.md 4). Sans-I/O: the clock is a parameter.

- Per UID and endpoint: at most N requests in any rolling second (N from the table); one over is
  answered 10006 with `X-Bapi-Limit-Reset-Timestamp` at the moment the oldest counted request leaves
  the window (always in the future: pybit sleeps until it and raises on a past one).
- Per IP, every path: at most 600 requests in any rolling 5 s; one over is HTTP 403 (the emulator
  does not hold the 10-minute ban afterwards: the window frees itself).
Only accepted requests count. Every response carries the three headers: for an endpoint with a
UID limit its figures, for the others (market data, errors before the key is known) the IP's.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from playdeck.runtime.bybit.emulator.config import RateLimitSpec

__all__ = ["Allowance", "RateLimits", "RollingWindow"]


class Allowance(NamedTuple):
    allowed: bool
    limit: int
    remaining: int  # after this request
    reset_ms: int  # when a refused caller may try again; now when allowed

    def headers(self) -> dict[str, str]:
        return {"X-Bapi-Limit": str(self.limit), "X-Bapi-Limit-Status": str(self.remaining),
                "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms)}


class RollingWindow:
    """At most `limit` events in any `window_ms`."""

    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._times: deque[int] = deque()

    def _expire(self, now_ms: int) -> None:
        times = self._times
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()

    def hit(self, now_ms: int) -> Allowance:
        """Count a request at `now_ms` if the window has room."""
        self._expire(now_ms)
        times = self._times
        if len(times) >= self.limit:
            return Allowance(False, self.limit, 0, max(times[0] + self.window_ms, now_ms + 1))
        times.append(now_ms)
        return Allowance(True, self.limit, self.limit - len(times), now_ms)

    def peek(self, now_ms: int) -> Allowance:
        self._expire(now_ms)
        return Allowance(True, self.limit, max(self.limit - len(self._times), 0), now_ms)


class RateLimits:
    def __init__(self, spec: RateLimitSpec) -> None:
        self.spec = spec
        self._uid: dict[tuple[str, str], RollingWindow] = {}
        self._ip: dict[str, RollingWindow] = {}

    def ip(self, ip: str, now_ms: int) -> Allowance:
        """Count a request from `ip` (every request, every path)."""
        if not self.spec.enabled:
            return Allowance(True, self.spec.ip_limit, self.spec.ip_limit, now_ms)
        window = self._ip.get(ip)
        if window is None:
            window = self._ip[ip] = RollingWindow(self.spec.ip_limit, self.spec.ip_window_ms)
        return window.hit(now_ms)

    def has_uid_limit(self, path: str) -> bool:
        return path in self.spec.per_uid

    def uid(self, uid: str, path: str, now_ms: int) -> Allowance:
        """Count a signed request of `uid` to `path` (a path with a per-UID limit)."""
        limit = self.spec.per_uid[path]
        if not self.spec.enabled:
            return Allowance(True, limit, limit, now_ms)
        window = self._uid.get((uid, path))
        if window is None:
            window = self._uid[(uid, path)] = RollingWindow(limit, 1000)
        return window.hit(now_ms)
