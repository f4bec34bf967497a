"""A venue with clients on a wire (the emulator) walks a bar step by step: `walk_bar` stops after
every fill, the client's orders sent then (`at=` the path's price) work from that point of the path,
and the bar goes on. A client that places the protection an entry carries, at its fill, gets the
fills the simulator's own attached protection gets."""
from __future__ import annotations


from playdeck.runtime.execution.orders import (
    FILL,
    Instrument,
    OrderRequest,
    OrderRole,
    OrderType,
    ProtectionSpec,
    Side,
    TimeInForce,
)
from playdeck.runtime.sim.exchange import SimExchange

INST = Instrument("BTCUSDT", 0.1, 0.001, 0.001)
BAR = (100.0, 104.0, 95.0, 101.0)  # worst_case for a long: 100 -> 95 -> 104 -> 95 -> 101


def exchange() -> SimExchange:
    return SimExchange(INST, maker_fee=0.0002, taker_fee=0.0005, slippage_bps=0, equity=10_000, leverage=3)


def entry(attached=()) -> OrderRequest:
    return OrderRequest("entry", Side.BUY, OrderType.MARKET, 1.0, None, None, TimeInForce.GTC, False,
                        OrderRole.ENTRY, None, 0, None, attached)


def fills(ex: SimExchange) -> list[tuple]:
    return [(e.role.value, e.price) for e in ex.drain_events() if type(e).__name__ == "Fill"]


def test_a_client_that_protects_at_the_fill_gets_what_attached_protection_gets() -> None:
    # the simulator's own: attached stop at fill - 3 = 97, reached on the way down to 95
    own = exchange()
    own.submit(entry((ProtectionSpec("stop_loss", ("-", FILL, 3.0)),)), 0, 100.0)
    own.process_bar(1, 60_000, *BAR)
    expected = fills(own)
    assert expected == [("entry", 100.0), ("stop_loss", 97.0)]

    # a client on a wire: the walk stops at the entry's fill, the client sends a reduce-only stop
    # for the whole position at its fill - 3, the walk goes on
    wire = exchange()
    wire.submit(entry(), 0, 100.0)
    wire.open_bar(1, 60_000, BAR[0])
    steps = wire.walk_bar(1, 60_000, *BAR)
    at = next(steps)
    assert at == 100.0 and wire.position.qty == 1.0
    stop = OrderRequest("protect", Side.SELL, OrderType.STOP, 1.0, None, 97.0, TimeInForce.GTC, True,
                        OrderRole.CLOSE, None, 1, None)
    assert wire.submit(stop, 1, BAR[3], at=at).accepted
    for _ in steps:
        pass
    got = fills(wire)
    assert [(role if role != "close" else "stop_loss", price) for role, price in got] == expected


def test_an_order_sent_within_a_bar_is_judged_at_the_paths_price() -> None:
    ex = exchange()
    ex.submit(entry(), 0, 100.0)
    steps = ex.walk_bar(1, 60_000, *BAR)
    at = next(steps)
    # a limit buy at 99 is not marketable at 100: it rests and fills on the way down to 95, a maker
    limit = OrderRequest("dip", Side.BUY, OrderType.LIMIT, 1.0, 99.0, None, TimeInForce.GTC, False,
                         OrderRole.ENTRY, None, 1, None)
    ex.submit(limit, 1, 101.0, at=at)
    list(steps)
    assert fills(ex) == [("entry", 100.0), ("entry", 99.0)]
    assert ex.orders["dip"].path[-1].value == "Filled"


def test_walking_a_bar_without_stopping_is_match_bar() -> None:
    a, b = exchange(), exchange()
    for ex in (a, b):
        ex.submit(entry((ProtectionSpec("take_profit", ("+", FILL, 2.0)),)), 0, 100.0)
    a.match_bar(1, 60_000, *BAR)
    list(b.walk_bar(1, 60_000, *BAR))
    assert fills(a) == fills(b) == [("entry", 100.0), ("take_profit", 102.0)]
