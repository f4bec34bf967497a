"""Token buckets for order and query rates (sans-I/O: the clock is a parameter).

Bybit limits order creation per symbol per second; `acquire` says how long to wait before the next
request may go, so the caller decides how to sleep (the simulator never waits).
"""
from __future__ import annotations

import attrs


@attrs.define
class TokenBucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float = attrs.field(default=None)
    updated: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.tokens is None:
            self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def acquire(self, now: float, cost: float = 1.0) -> float:
        """Take `cost` tokens; return the seconds to wait before sending (0 when allowed now)."""
        self._refill(now)
        self.tokens -= cost
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate

    def observe_remaining(self, remaining: float, now: float) -> None:
        """The venue said how many requests are left (`X-Bapi-Limit-Status`): never believe more."""
        self._refill(now)
        self.tokens = min(self.tokens, remaining)
