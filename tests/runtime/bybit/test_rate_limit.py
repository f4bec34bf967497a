"""TokenBucket is sans-I/O: the clock is a parameter, so a fake clock drives it exactly."""
from __future__ import annotations

import pytest

from playdeck.runtime.bybit.limits import TokenBucket


def test_a_full_bucket_allows_its_capacity_at_once_then_asks_to_wait():
    b = TokenBucket(rate=10.0, capacity=10.0)
    assert [b.acquire(0.0) for _ in range(10)] == [0.0] * 10
    assert b.acquire(0.0) == pytest.approx(0.1)  # the 11th waits one token's time


def test_tokens_come_back_with_time_and_never_above_capacity():
    b = TokenBucket(rate=10.0, capacity=10.0)
    for _ in range(10):
        b.acquire(0.0)
    assert b.acquire(0.5) == 0.0  # 5 tokens came back
    b = TokenBucket(rate=10.0, capacity=2.0)
    b.acquire(0.0)
    assert b.acquire(100.0) == 0.0 and b.acquire(100.0) == 0.0
    assert b.acquire(100.0) > 0  # refilled to 2, not to 1000


def test_the_venue_saying_fewer_remain_is_believed():
    b = TokenBucket(rate=10.0, capacity=10.0)
    b.observe_remaining(1, now=0.0)
    assert b.acquire(0.0) == 0.0
    assert b.acquire(0.0) == pytest.approx(0.1)
