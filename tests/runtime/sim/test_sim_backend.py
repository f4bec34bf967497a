from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from typing import Any

import pytest

from playdeck.runtime.execution.backend import ExecutionBackend, PositionSnapshot, VenueClock
from playdeck.runtime.execution.orders import (
    Fill,
    Instrument,
    OrderRequest,
    OrderEvent,
    OrderRole,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from playdeck.runtime.sim.backend import SimBackend
from playdeck.runtime.sim.exchange import SimExchange

S = OrderStatus
INST = Instrument("BTCUSDT", tick=0.1, qty_step=0.001, min_qty=0.001)
QUIET = (100.0, 100.5, 99.5, 100.0)
MINUTE = 60_000


def backend(**kw: Any) -> SimBackend:
    config: dict[str, Any] = dict(maker_fee=0.0002, taker_fee=0.0005, slippage_bps=10.0,
                                  intrabar="worst_case", equity=10_000.0, leverage=3.0)
    config.update(kw)
    return SimBackend(SimExchange(INST, **config))


def order(side: Side, type_: OrderType, qty: float, bar: int, *, price: float | None = None,
          trigger: float | None = None, tag: str | None = None) -> OrderRequest:
    return OrderRequest(client_id=f"c-{bar}-{tag}", side=side, type=type_, qty=qty, price=price,
                        trigger=trigger, tif=TimeInForce.GTC, reduce_only=False, role=OrderRole.ENTRY, tag=tag,
                        created_bar=bar, expire_bar=None)


def finished(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that must not suspend: one step, and it has returned."""
    with pytest.raises(StopIteration) as info:
        coro.send(None)
    return info.value.value


def test_sim_backend_is_an_execution_backend_and_a_venue_clock() -> None:
    assert isinstance(backend(), ExecutionBackend)
    assert isinstance(backend(), VenueClock)


def test_a_trade_through_the_async_protocol() -> None:
    async def session() -> None:
        be = backend()
        be.bar_closed(0, 0, *QUIET)
        sent = await be.submit_order(order(Side.BUY, OrderType.MARKET, 1, 0))
        assert sent.accepted and sent.status is S.NEW and sent.order_id is not None

        be.bar_closed(1, MINUTE, 102, 103, 101, 102.5)  # fills at 102 + 10 bps
        position = await be.get_position()
        assert position == PositionSnapshot(qty=1.0, avg_entry=pytest.approx(102.102), layers=1,
                                            realized_pnl=0.0, upnl=pytest.approx(0.398))
        assert await be.get_equity() == pytest.approx(10_000 - 0.051051 + 0.398)

        protection = await be.set_protection("stop_loss", 100)
        assert protection.accepted and protection.status is S.UNTRIGGERED
        resting = await be.submit_order(order(Side.BUY, OrderType.LIMIT, 1, 1, price=95, tag="e"))
        open_orders = await be.get_open_orders()
        assert [(o.request.role, o.qty) for o in open_orders] == [(OrderRole.STOP_LOSS, 1.0),
                                                                   (OrderRole.ENTRY, 1.0)]

        amended = await be.amend_order(resting.client_id, price=96)  # type: ignore[arg-type]
        assert amended.accepted and [o.price for o in await be.get_open_orders()] == [None, 96]
        assert await be.cancel_order(resting.client_id)  # type: ignore[arg-type]
        assert not await be.cancel_order(resting.client_id)  # type: ignore[arg-type]
        assert await be.cancel_all() == 1  # the stop-loss
        await be.sync_state()

        be.bar_closed(2, 2 * MINUTE, 99, 99.5, 95, 96)  # nothing left to fill
        assert (await be.get_position()).qty == 1.0
        assert [s.value for s in be.exchange.orders[protection.client_id].path] == [  # type: ignore[index]
            "Submitted", "Untriggered", "PendingCancel", "Deactivated"]
        assert [s.value for s in be.exchange.orders[resting.client_id].path] == [  # type: ignore[index]
            "Submitted", "New", "PendingAmend", "New", "PendingCancel", "Cancelled"]
        events = be.drain_events()
        assert sum(isinstance(e, Fill) for e in events) == 1
        assert all(isinstance(e, (Fill, OrderEvent)) for e in events)

    asyncio.run(session())


def test_flat_position_snapshot() -> None:
    be = backend()
    snapshot = finished(be.get_position())
    assert snapshot.is_flat and snapshot.layers == 0 and math.isnan(snapshot.avg_entry)
    assert finished(be.get_equity()) == 10_000.0


def test_the_event_stream_hands_out_everything_in_order_and_ends_on_close() -> None:
    async def session() -> tuple[list[Fill | OrderEvent], list[Fill | OrderEvent]]:
        be = backend()
        streamed: list[Fill | OrderEvent] = []

        async def consume() -> None:
            async for event in be.events():
                streamed.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)  # the consumer is now waiting
        be.bar_closed(0, 0, *QUIET)
        await be.submit_order(order(Side.BUY, OrderType.STOP, 1, 0, trigger=101, tag="e"))
        await asyncio.sleep(0)
        be.bar_closed(1, MINUTE, 100, 102, 99.5, 101.5)
        be.bar_closed(2, 2 * MINUTE, *QUIET)
        be.close()
        await asyncio.wait_for(task, 1.0)
        return streamed, be.drain_events()

    streamed, left = asyncio.run(session())
    assert left == []
    kinds = [(type(e).__name__, getattr(e, "new", None)) for e in streamed]
    assert kinds == [
        ("OrderEvent", S.SUBMITTED),
        ("OrderEvent", S.UNTRIGGERED),
        ("OrderEvent", S.TRIGGERED),
        ("Fill", None),
        ("OrderEvent", S.FILLED),
    ]
    fill = streamed[3]
    assert isinstance(fill, Fill) and (fill.bar, fill.ts, fill.qty) == (1, MINUTE, 1.0)
    assert fill.price == pytest.approx(101.101)


def test_commands_and_reads_never_suspend() -> None:
    be = backend()
    be.bar_closed(0, 0, *QUIET)
    sent = finished(be.submit_order(order(Side.BUY, OrderType.LIMIT, 1, 0, price=95)))
    assert sent.accepted
    assert finished(be.amend_order(sent.client_id, qty=2)).accepted
    assert finished(be.get_open_orders())[0].qty == 2.0
    assert finished(be.cancel_order(sent.client_id)) is True
    assert finished(be.cancel_all()) == 0
    assert finished(be.get_position()).qty == 0.0
    assert finished(be.set_protection("trail", 5)).reject_reason == "can not set trail for zero position"
    assert finished(be.sync_state()) is None


def test_commands_are_sent_at_the_close_of_the_last_advanced_bar() -> None:
    be = backend(slippage_bps=0.0)
    for bar in range(3):
        be.bar_closed(bar, bar * MINUTE, *QUIET)
    finished(be.submit_order(order(Side.SELL, OrderType.MARKET, 1, 2)))
    be.bar_closed(3, 3 * MINUTE, 101, 101.5, 100.5, 101)
    fills = [e for e in be.drain_events() if isinstance(e, Fill)]
    assert [(f.bar, f.price, f.side) for f in fills] == [(3, 101.0, Side.SELL)]
    assert be.bar == 3 and be.last_close == 101


def test_at_close_skips_matching_but_marks_to_market() -> None:
    be = backend(slippage_bps=0.0)
    be.bar_closed(0, 0, *QUIET)
    finished(be.submit_order(order(Side.BUY, OrderType.MARKET, 1, 0)))
    be.bar_closed(1, MINUTE, *QUIET)  # fills at 100; nothing pending afterwards
    assert not be.exchange.has_pending
    be.at_close(2, 2 * MINUTE, 104.0)  # the engine skipped bar_closed: nothing could happen
    assert (be.bar, be.last_close) == (2, 104.0)
    assert finished(be.get_position()).upnl == pytest.approx(4.0)
    assert finished(be.get_equity()) == pytest.approx(10_000 - 0.05 + 4.0)
