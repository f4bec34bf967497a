"""TokenBucket is sans-I/O: the clock is a parameter, so a fake clock drives it exactly."""
from __future__ import annotations

import asyncio

import pytest

from playdeck.runtime.strategy.intents import Intent, IntentProcessor
from playdeck.runtime.execution.orders import Instrument, Side
from playdeck.runtime.bybit.limits import TokenBucket
from playdeck.runtime.sim.backend import SimBackend
from playdeck.runtime.sim.exchange import SimExchange
from playdeck.runtime.strategy.state_view import StateView


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


class RecordingBucket(TokenBucket):
    def acquire(self, now: float, cost: float = 1.0) -> float:
        wait = super().acquire(now, cost)
        self.waits.append(wait)
        return wait


def test_the_processor_paces_orders_through_its_limiter(monkeypatch):
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    inst = Instrument("BTCUSDT", 0.1, 0.001, 0.001)
    ex = SimExchange(inst, maker_fee=0.0, taker_fee=0.0, slippage_bps=0, equity=1e6, leverage=10)
    backend = SimBackend(ex)
    backend.at_close(0, 0, 100.0)
    bucket = RecordingBucket(rate=1000.0, capacity=2.0)
    bucket.waits = []
    proc = IntentProcessor(backend, inst, limiter=bucket, clock=lambda: 0.0, attempts=1)
    st = StateView(ex, 0, 100.0, {})
    for _ in range(3):
        asyncio.run(proc.process(Intent(0, "limit", side=Side.BUY, size_kind="qty", size_value=1, price=90.0), st))
    assert bucket.waits[:2] == [0.0, 0.0] and bucket.waits[2] == pytest.approx(0.001)
    assert slept == [pytest.approx(0.001)]  # only the third send waited, for what the bucket said
    assert len(ex.open_orders()) == 3
