"""The live races the one state machine meets, staged on the emulator with real pybit and websockets:
a fill reported before the create's answer, the same Filled pushed twice, and an execution that
arrives after its order's Cancelled. Each ends in the legal path and applies every fill once."""
from __future__ import annotations

import asyncio
from typing import Any

from emulator_kit import ACCOUNT, make_config, walk_bars
from playdeck.runtime.bybit.backend import BybitBackend
from playdeck.runtime.bybit.client import BybitRest
from playdeck.runtime.bybit.emulator import DEFAULT_KEY, DEFAULT_SECRET, Emulator
from playdeck.runtime.bybit.stream import ResilientStream
from playdeck.runtime.execution.orders import (
    Fill,
    Instrument,
    OrderEvent,
    OrderRequest,
    OrderRole,
    OrderType,
    Side,
    TimeInForce,
)
from playdeck.runtime.execution.trading_state import TradingState

BARS = walk_bars(40, seed=5)
INST = Instrument("BTCUSDT", 0.1, 0.001, 0.001)


def request(cid: str, otype: OrderType = OrderType.MARKET, price: float | None = None, qty: float = 1.0) -> OrderRequest:
    return OrderRequest(cid, Side.BUY, otype, qty, price, None, TimeInForce.GTC, False, OrderRole.ENTRY, None, 5, None)


class Venue:
    """An emulator at the close of bar 5, a backend on it, and its private stream, whose pushes are
    kept (`held`) instead of delivered while `holding`."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.rest = BybitRest(key=DEFAULT_KEY, secret=DEFAULT_SECRET, endpoint=emu.url)
        self.backend = BybitBackend(self.rest, instrument=INST, equity=ACCOUNT.equity)
        self.state = TradingState(INST, ACCOUNT.equity)
        self.holding = False
        self.held: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []
        self.stream = ResilientStream(emu.private_url, ("order", "execution"), key=DEFAULT_KEY, secret=DEFAULT_SECRET,
                                      on_message=self._push)
        b = self.backend
        b.at_close(5, int(BARS.ts_open[5]), float(BARS.close[5]))
        b.bar_opened(6, int(BARS.ts_open[6]))

    def _push(self, msg: dict[str, Any]) -> None:
        self.seen.append(msg)
        if self.holding:
            self.held.append(msg)
        else:
            self.backend.on_private(msg)

    async def __aenter__(self) -> Venue:
        await self.rest.sync_clock()  # measured now, so a delayed answer later holds only the order's
        self.task = asyncio.create_task(self.stream.run())
        await self.stream.wait_connected(10)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stream.close()
        await asyncio.gather(self.task, return_exceptions=True)

    async def settle(self) -> list[Any]:
        """Let the pushes arrive, apply them, and return (and apply to a TradingState) the events."""
        await self.emu.streams.flush()
        await asyncio.sleep(0.2)
        await self.backend.catch_up()
        events = self.backend.drain_events()
        self.state.apply_all(events)
        return events


def path(events: list[Any], cid: str) -> list[str]:
    return [e.new.value for e in events if isinstance(e, OrderEvent) and e.client_id == cid]


def fills(events: list[Any], cid: str) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill) and e.client_id == cid]


def scenario(body: Any) -> Any:
    async def run() -> Any:
        async with Emulator(make_config(BARS, start_bar=5)) as emu, Venue(emu) as v:
            return await body(emu, v)
    return asyncio.run(run())


def test_a_fill_reported_before_the_create_answer() -> None:
    async def body(emu: Emulator, v: Venue) -> list[Any]:
        emu.delay_replies(600)  # the venue takes the order at once; its answer comes late
        emu.drop_private(1, "order")  # and its New push is lost: the fill is the first news of it
        submit = asyncio.create_task(v.backend.submit_order(request("race-1")))
        await asyncio.sleep(0.2)
        emu.delay_replies(0)
        await emu.advance(1)  # the market order fills in bar 6 while its answer is on the way
        early = await v.settle()
        result = await submit
        late = await v.settle()
        assert result.accepted
        return early + late

    events = scenario(body)
    assert path(events, "race-1") == ["Submitted", "Filled"]  # no New after the fill: the answer says nothing new
    assert len(fills(events, "race-1")) == 1


def test_events_reach_a_consumer_beside_the_engine() -> None:
    async def body(emu: Emulator, v: Venue) -> tuple[list[Any], list[Any]]:
        seen: list[Any] = []

        async def consume() -> None:
            async for event in v.backend.events():
                seen.append(event)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)
        await v.backend.submit_order(request("both-1"))
        await emu.advance(1)
        drained = await v.settle()
        v.backend.close()
        await asyncio.wait_for(consumer, 5)
        return drained, seen

    drained, seen = scenario(body)
    assert seen == drained and path(seen, "both-1") == ["Submitted", "New", "Filled"]


def test_the_same_filled_push_twice_is_one_fill() -> None:
    async def body(emu: Emulator, v: Venue) -> list[Any]:
        await v.backend.submit_order(request("twice-1"))
        await emu.advance(1)
        events = await v.settle()
        filled = [m for m in v.seen if m["topic"].startswith(("order", "execution"))]
        for msg in filled:  # the stream says it all again (a resend after a reconnect)
            v.backend.on_private(msg)
        events += await v.settle()
        return events

    events = scenario(body)
    assert path(events, "twice-1") == ["Submitted", "New", "Filled"]
    assert len(fills(events, "twice-1")) == 1


def test_an_execution_after_its_orders_cancelled() -> None:
    async def body(emu: Emulator, v: Venue) -> list[Any]:
        low = float(BARS.close[5]) * 0.999
        emu.split_next_fill(2)  # the limit fills half, the rest rests
        await v.backend.submit_order(request("late-1", OrderType.LIMIT, round(low, 1), qty=2.0))
        events = await v.settle()
        for _ in range(12):
            v.holding = True  # this bar's pushes wait
            await emu.advance(1)
            await emu.streams.flush()
            await asyncio.sleep(0.1)
            if any(m["topic"].startswith("execution") for m in v.held):
                break
            v.holding = False
            for msg in v.held:
                v.backend.on_private(msg)
            v.held.clear()
        assert v.held, "the limit never filled"
        # cancel what rests: Bybit says Cancelled (with cumExecQty > 0) ...
        await v.rest.cancel("BTCUSDT", "late-1")
        await emu.streams.flush()
        await asyncio.sleep(0.2)
        v.holding = False
        orders = [m for m in v.held if m["topic"].startswith("order")]
        execs = [m for m in v.held if m["topic"].startswith("execution")]
        # ... and the stream delivers the order's last report before its execution
        for msg in orders + execs:
            v.backend.on_private(msg)
        events += await v.settle()
        return events

    events = scenario(body)
    p = path(events, "late-1")
    assert p[-1] == "PartiallyFilledCanceled", p
    assert "Filled" not in p and len(fills(events, "late-1")) == 1
    # the fill came before the end, as the state machine requires
    kinds = [type(e).__name__ for e in events if getattr(e, "client_id", "") == "late-1"]
    assert kinds.index("Fill") < len(kinds) - 1
