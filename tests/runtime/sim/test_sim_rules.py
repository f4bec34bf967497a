"""PLAY-LANGUAGE.md sections 5 and 6 as tables: one parametrized test per rule family.

Every row drives a venue through the backend protocols and reads the TradingState its events build
(tests/venue.py), so the same tables can run on any venue that speaks them.

Every row is a tiny hand-made bar series, the commands sent at bar closes, and the expected fills
worked out by hand: (bar, side, qty, price, fee, liquidity). Unless a row says otherwise the
account is: maker 0.02%, taker 0.05%, slippage 10 bps (so a market buy at 100 fills at 100.1),
equity 10000, leverage 3, tick 0.1, qty_step 0.001, min_qty 0.001, intrabar worst_case.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playdeck.runtime.execution.order_state import TRANSITIONS
from playdeck.runtime.execution.orders import (
    Fill,
    Instrument,
    OrderEvent,
    OrderRequest,
    OrderRole,
    OrderStatus,
    OrderType,
    ProtectionSpec,
    Side,
    TimeInForce,
)
from playdeck.runtime.sim.matching import intrabar_path
from venue import F, MINUTE, Venue, path_text, protection

INST = Instrument("BTCUSDT", tick=0.1, qty_step=0.001, min_qty=0.001)
BUY, SELL = Side.BUY, Side.SELL
S = OrderStatus
B = (100.0, 100.5, 99.5, 100.0)  # a quiet bar that reaches nothing

Action = Callable[[Venue, int, float], Any]
_CLIENT_SEQ = itertools.count(1)


# ---------------------------------------------------------------------------------------- harness
def exchange(
    intrabar: str = "worst_case",
    slippage_bps: float = 10.0,
    equity: float = 10_000.0,
    leverage: float = 3.0,
) -> Venue:
    return Venue(
        INST,
        maker_fee=0.0002,
        taker_fee=0.0005,
        slippage_bps=slippage_bps,
        intrabar=intrabar,
        equity=equity,
        leverage=leverage,
    )


def make_order(
    side: Side,
    type_: OrderType,
    qty: float,
    bar: int,
    *,
    price: float | None = None,
    trigger: float | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    role: OrderRole = OrderRole.ENTRY,
    tag: str | None = None,
    reduce_only: bool = False,
    expire: int | None = None,
    attached: tuple[ProtectionSpec, ...] = (),
) -> OrderRequest:
    return OrderRequest(
        client_id=f"t-{bar}-{tag}-{next(_CLIENT_SEQ)}",  # unique, as the processor makes them
        side=side,
        type=type_,
        qty=qty,
        price=price,
        trigger=trigger,
        tif=tif,
        reduce_only=reduce_only or role in (OrderRole.CLOSE, OrderRole.PARTIAL_CLOSE),
        role=role,
        tag=tag,
        created_bar=bar,
        expire_bar=None if expire is None else bar + expire,
        attached=attached,
    )


def market(side: Side, qty: float, **kw: Any) -> Action:
    return lambda ex, bar, close: ex.submit(make_order(side, OrderType.MARKET, qty, bar, **kw), bar, close)


def limit(side: Side, qty: float, price: float, **kw: Any) -> Action:
    return lambda ex, bar, close: ex.submit(
        make_order(side, OrderType.LIMIT, qty, bar, price=price, **kw), bar, close
    )


def stop(side: Side, qty: float, trigger: float, limit_price: float | None = None, **kw: Any) -> Action:
    type_ = OrderType.STOP if limit_price is None else OrderType.STOP_LIMIT
    return lambda ex, bar, close: ex.submit(
        make_order(side, type_, qty, bar, trigger=trigger, price=limit_price, **kw), bar, close
    )


def protect(kind: str, value: float) -> Action:
    return lambda ex, bar, close: ex.set_protection(kind, value, bar, close)  # type: ignore[arg-type]


def cancel(tag: str) -> Action:
    return lambda ex, bar, close: ex.cancel(_pending(ex, tag).client_id, bar)


def cancel_all() -> Action:
    return lambda ex, bar, close: ex.cancel_all(bar)


def amend(tag: str, **kw: float) -> Action:
    return lambda ex, bar, close: ex.amend(_pending(ex, tag).client_id, bar, **kw)


def sl(value: Any) -> ProtectionSpec:
    return protection("stop_loss", value)


def tp(value: Any) -> ProtectionSpec:
    return protection("take_profit", value)


def _pending(ex: Venue, tag: str):
    order = ex.order_by_tag(tag)
    assert order is not None, f"no pending order tagged {tag}"
    return order


@attrs.define
class Run:
    ex: Venue
    fills: list[Fill]
    events: list[OrderEvent]
    results: list[Any]
    watched: list[Any]


def run(
    bars: Sequence[tuple[float, float, float, float]],
    actions: dict[int, list[Action]],
    watch: Callable[[Venue], Any] | None = None,
    **config: Any,
) -> Run:
    """The engine's loop in miniature: fills in bar i, bar-close work, then the commands of bar i."""
    ex = exchange(**config)
    out = Run(ex, [], [], [], [])
    for i, (o, h, l, c) in enumerate(bars):
        ex.bar_closed(i, o, h, l, c)
        for act in actions.get(i, ()):
            out.results.append(act(ex, i, c))
        if watch is not None:
            out.watched.append(watch(ex))
        for event in ex.drain_events():
            (out.fills if isinstance(event, Fill) else out.events).append(event)
    return out


def assert_fills(fills: list[Fill], expected: list[tuple]) -> None:
    got = [(f.bar, f.side.value, f.qty, f.price, f.fee, f.liquidity) for f in fills]
    assert len(got) == len(expected), got
    for g, e in zip(got, expected):
        assert (g[0], g[1], g[5]) == (e[0], e[1], e[5]), got
        assert g[2:5] == pytest.approx(e[2:5], rel=1e-12, abs=1e-12), got
        # every fee is notional x rate
        rate = 0.0005 if g[5] == "taker" else 0.0002
        assert g[4] == pytest.approx(g[2] * g[3] * rate, rel=1e-12)


def path_of(ex: Venue, who: str) -> str:
    """The status path text of the last order tagged `who`, or of the protection of role `who`."""
    recs = [r for r in ex.orders.values() if r.tag == who or r.role.value == who]
    assert recs, f"no order {who}"
    return path_text(recs[-1])


# ---------------------------------------------------------------------------------------- 5.2 market
@pytest.mark.parametrize(
    ("config", "bars", "actions", "fills"),
    [
        pytest.param(
            {}, [B, (102, 103, 101, 102.5)], {0: [market(BUY, 1)]},
            [(1, "buy", 1, 102.102, 0.051051, "taker")],
            id="market buy fills at the next open plus slippage",
        ),
        pytest.param(
            {}, [B, (102, 103, 101, 102.5)], {0: [market(SELL, 1)]},
            [(1, "sell", 1, 101.898, 0.050949, "taker")],
            id="market sell fills at the next open minus slippage",
        ),
        pytest.param(
            {}, [B, (102, 103, 101, 102.5)], {0: [market(BUY, 1), market(BUY, 0.5)]},
            [(1, "buy", 1, 102.102, 0.051051, "taker"), (1, "buy", 0.5, 102.102, 0.0255255, "taker")],
            id="two market orders fill at the same open in the order sent",
        ),
        pytest.param(
            {"slippage_bps": 0}, [B, (102, 103, 101, 102.5)], {0: [market(BUY, 1)]},
            [(1, "buy", 1, 102, 0.051, "taker")],
            id="no slippage configured",
        ),
        pytest.param(
            {}, [B, B, (102, 103, 101, 102.5)], {1: [market(BUY, 1)]},
            [(2, "buy", 1, 102.102, 0.051051, "taker")],
            id="sent at the close of bar 1 it fills in bar 2, never earlier",
        ),
    ],
)
def test_market_orders(config: dict, bars: list, actions: dict, fills: list) -> None:
    assert_fills(run(bars, actions, **config).fills, fills)


# ---------------------------------------------------------------------------------------- 5.3 limit
@pytest.mark.parametrize(
    ("bars", "actions", "fills", "status"),
    [
        pytest.param(
            [B, (100, 101, 98, 99)], {0: [limit(BUY, 1, 98.5, tag="e")]},
            [(1, "buy", 1, 98.5, 0.0197, "maker")], S.FILLED,
            id="buy limit touched: fills at P as maker",
        ),
        pytest.param(
            [B, (97, 98, 96, 97.5)], {0: [limit(BUY, 1, 98.5, tag="e")]},
            [(1, "buy", 1, 97, 0.0194, "maker")], S.FILLED,
            id="gap through a buy limit: fills at the open, min(open, P)",
        ),
        pytest.param(
            [B, (100, 101, 99, 100)], {0: [limit(BUY, 1, 98.5, tag="e")]},
            [], S.NEW,
            id="buy limit not reached rests",
        ),
        pytest.param(
            [B, (100, 101, 99, 100), (99.5, 100, 98, 98.5)], {0: [limit(BUY, 1, 98.5, tag="e")]},
            [(2, "buy", 1, 98.5, 0.0197, "maker")], S.FILLED,
            id="buy limit fills in a later bar",
        ),
        pytest.param(
            [B, (100, 102, 99.5, 101)], {0: [limit(SELL, 1, 101.5, tag="e")]},
            [(1, "sell", 1, 101.5, 0.0203, "maker")], S.FILLED,
            id="sell limit touched: fills at P as maker",
        ),
        pytest.param(
            [B, (103, 104, 102.5, 103)], {0: [limit(SELL, 1, 101.5, tag="e")]},
            [(1, "sell", 1, 103, 0.0206, "maker")], S.FILLED,
            id="gap through a sell limit: fills at the open, max(open, P)",
        ),
        pytest.param(
            [B, (100.5, 101, 100, 100.8)], {0: [limit(BUY, 1, 101, tag="e")]},
            [(1, "buy", 1, 100.5, 0.05025, "taker")], S.FILLED,
            id="marketable buy limit fills as taker at the next open, no slippage",
        ),
        pytest.param(
            [B, (102, 103, 100.5, 101.5)], {0: [limit(BUY, 1, 101, tag="e")]},
            [(1, "buy", 1, 102, 0.051, "taker")], S.FILLED,
            id="marketable buy limit, next open gapped beyond P: still a taker at that open (5.3)",
        ),
        pytest.param(
            [B, (98, 99, 97, 98)], {0: [limit(SELL, 1, 99.5, tag="e")]},
            [(1, "sell", 1, 98, 0.049, "taker")], S.FILLED,
            id="marketable sell limit, next open gapped below P: a taker at that open",
        ),
        pytest.param(
            [B, (99.5, 100, 99, 99.2)], {0: [limit(SELL, 1, 99, tag="e")]},
            [(1, "sell", 1, 99.5, 0.04975, "taker")], S.FILLED,
            id="marketable sell limit fills as taker at the next open",
        ),
        pytest.param(
            [B, (97, 98, 96, 97.5)], {0: [limit(BUY, 1, 98.5, tif=TimeInForce.POST_ONLY, tag="e")]},
            [(1, "buy", 1, 97, 0.0194, "maker")], S.FILLED,
            id="post_only that did not cross when sent is a maker even on a gap",
        ),
    ],
)
def test_limit_orders(bars: list, actions: dict, fills: list, status: OrderStatus) -> None:
    r = run(bars, actions)
    assert_fills(r.fills, fills)
    assert r.ex.orders[r.results[0].client_id].status is status


# ---------------------------------------------------------------------------------------- 5.3 ioc/fok
@pytest.mark.parametrize(
    ("bars", "actions", "fills", "path", "end_bar"),
    [
        pytest.param(
            [B, (100, 100.5, 98.5, 99.5)], {0: [limit(BUY, 1, 99, tif=TimeInForce.IOC, tag="e")]},
            [(1, "buy", 1, 99, 0.0198, "maker")], "New>Filled", 1,
            id="ioc reached in the next bar fills by the limit rule, maker",
        ),
        pytest.param(
            [B, (100, 101.5, 99.8, 101)], {0: [limit(SELL, 1, 101, tif=TimeInForce.IOC, tag="e")]},
            [(1, "sell", 1, 101, 0.0202, "maker")], "New>Filled", 1,
            id="ioc sell reached fills by the limit rule, maker",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (99, 99, 90, 95)],
            {0: [limit(BUY, 1, 99, tif=TimeInForce.IOC, tag="e")]},
            [], "New>Cancelled", 1,
            id="ioc not reached is cancelled at the close of bar i+1, later bars do not matter",
        ),
        pytest.param(
            [B, (100.5, 101, 100, 100.8)], {0: [limit(BUY, 1, 101, tif=TimeInForce.IOC, tag="e")]},
            [(1, "buy", 1, 100.5, 0.05025, "taker")], "New>Filled", 1,
            id="ioc marketable when sent is a taker at the next open",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (99, 99, 90, 95)],
            {0: [limit(BUY, 1, 99, tif=TimeInForce.FOK, tag="e")]},
            [], "New>Cancelled", 1,
            id="fok not reached is cancelled the same way",
        ),
        pytest.param(
            [B, (100, 100.5, 98.5, 99.5)], {0: [limit(BUY, 1, 99, tif=TimeInForce.FOK, tag="e")]},
            # 99 < last close 100: not marketable; low 98.5 <= 99, open 100 > 99: at 99, 99 x 0.0002
            [(1, "buy", 1, 99, 0.0198, "maker")], "New>Filled", 1,
            id="fok reached in the next bar fills by the limit rule at 99, maker 0.0198",
        ),
        pytest.param(
            [B, (100, 101.5, 99.8, 101)], {0: [limit(SELL, 1, 101, tif=TimeInForce.FOK, tag="e")]},
            # 101 > last close 100: resting; high 101.5 >= 101: at max(100, 101) = 101, 101 x 0.0002
            [(1, "sell", 1, 101, 0.0202, "maker")], "New>Filled", 1,
            id="fok sell reached fills at 101, maker 0.0202",
        ),
        pytest.param(
            [B, (98, 99, 97.5, 98.5)], {0: [limit(BUY, 1, 99, tif=TimeInForce.FOK, tag="e")]},
            # opens at 98 <= 99: min(open 98, P 99) = 98, still maker (not marketable when sent): 0.0196
            [(1, "buy", 1, 98, 0.0196, "maker")], "New>Filled", 1,
            id="fok gapped through fills at the open min(98, 99) = 98, maker 0.0196",
        ),
        pytest.param(
            [B, (98, 99, 97.5, 98.5)], {0: [limit(BUY, 1, 99, tif=TimeInForce.IOC, tag="e")]},
            [(1, "buy", 1, 98, 0.0196, "maker")], "New>Filled", 1,
            id="ioc gapped through fills at the open min(98, 99) = 98, maker 0.0196",
        ),
        pytest.param(
            [B, (100.5, 101, 100, 100.8)], {0: [limit(BUY, 1, 101, tif=TimeInForce.FOK, tag="e")]},
            # 101 >= last close 100: marketable, taker at the next open 100.5, no slippage: x 0.0005
            [(1, "buy", 1, 100.5, 0.05025, "taker")], "New>Filled", 1,
            id="fok marketable when sent is a taker at the next open 100.5, fee 0.05025",
        ),
    ],
)
def test_ioc_and_fok_live_for_one_bar(
    bars: list, actions: dict, fills: list, path: str, end_bar: int
) -> None:
    r = run(bars, actions)
    assert_fills(r.fills, fills)
    assert path_of(r.ex, "e") == path
    assert r.events[-1].bar == end_bar and r.events[-1].new.is_final


# ---------------------------------------------------------------------------------------- 5.4 stops
@pytest.mark.parametrize(
    ("config", "bars", "actions", "fills", "path"),
    [
        pytest.param(
            {}, [B, (100, 103, 99.5, 102.5)], {0: [stop(BUY, 1, 102, tag="e")]},
            [(1, "buy", 1, 102.102, 0.051051, "taker")], "Untriggered>Triggered>Filled",
            id="stop buy triggers at T and fills at T plus slippage",
        ),
        pytest.param(
            {}, [B, (104, 105, 103.5, 104.5)], {0: [stop(BUY, 1, 102, tag="e")]},
            [(1, "buy", 1, 104.104, 0.052052, "taker")], "Untriggered>Triggered>Filled",
            id="gap through a stop buy: fills at the open plus slippage",
        ),
        pytest.param(
            {}, [B, (100, 100.5, 97, 97.5)], {0: [stop(SELL, 1, 98, tag="e")]},
            [(1, "sell", 1, 97.902, 0.048951, "taker")], "Untriggered>Triggered>Filled",
            id="stop sell triggers at T and fills at T minus slippage",
        ),
        pytest.param(
            {}, [B, (96, 96.5, 95, 95.5)], {0: [stop(SELL, 1, 98, tag="e")]},
            [(1, "sell", 1, 95.904, 0.047952, "taker")], "Untriggered>Triggered>Filled",
            id="gap through a stop sell: fills at the open minus slippage",
        ),
        pytest.param(
            {}, [B, (100, 101.9, 99, 101)], {0: [stop(BUY, 1, 102, tag="e")]},
            [], "Untriggered",
            id="stop not reached stays untriggered",
        ),
        pytest.param(
            {}, [B, (100, 103, 99.5, 102.5)], {0: [stop(BUY, 1, 102, 102.5, tag="e")]},
            [(1, "buy", 1, 102, 0.051, "taker")], "Untriggered>Triggered>Filled",
            id="stop-limit triggers and fills at the trigger as taker, no slippage",
        ),
        pytest.param(
            {}, [B, (104, 105, 103, 104.5), (103, 103.5, 102, 102.2)],
            {0: [stop(BUY, 1, 102, 102.5, tag="e")]},
            [(2, "buy", 1, 102.5, 0.0205, "maker")], "Untriggered>Triggered>New>Filled",
            id="stop-limit gapped beyond its limit rests and fills later as maker",
        ),
        pytest.param(
            {}, [B, (104, 105, 102, 103)], {0: [stop(BUY, 1, 102, 102.5, tag="e")]},
            [(1, "buy", 1, 102.5, 0.0205, "maker")], "Untriggered>Triggered>New>Filled",
            id="stop-limit gapped beyond its limit fills in the same bar when the path comes back",
        ),
        pytest.param(
            {"intrabar": "ohlc_path"}, [B, (100, 103, 99, 100)],
            {0: [stop(BUY, 1, 102, 101.5, tag="e")]},
            [(1, "buy", 1, 101.5, 0.0203, "maker")], "Untriggered>Triggered>New>Filled",
            id="stop-limit with its limit under the trigger: triggers going up, fills coming down",
        ),
        pytest.param(
            {}, [B, (100, 100.5, 97, 97.5)], {0: [stop(SELL, 1, 98, 97.5, tag="e")]},
            [(1, "sell", 1, 98, 0.049, "taker")], "Untriggered>Triggered>Filled",
            id="stop-limit sell mirrors",
        ),
    ],
)
def test_stop_orders(config: dict, bars: list, actions: dict, fills: list, path: str) -> None:
    r = run(bars, actions, **config)
    assert_fills(r.fills, fills)
    assert path_of(r.ex, "e") == path


# ---------------------------------------------------------------------------------------- 5.5 expiry
@pytest.mark.parametrize(
    ("bars", "actions", "fills", "path", "expired_at"),
    [
        pytest.param(
            [B, B, B, (94, 95, 93, 94)], {0: [limit(BUY, 1, 95, expire=2, tag="e")]},
            [], "New>Expired", 2,
            id="expire 2 bars: Expired at the close of bar 0+2, and a later touch does nothing",
        ),
        pytest.param(
            [B, B, (99, 99.5, 94, 96)], {0: [limit(BUY, 1, 95, expire=2, tag="e")]},
            [(2, "buy", 1, 95, 0.019, "maker")], "New>Filled", None,
            id="a fill inside bar i+N comes before that bar's expiry",
        ),
        pytest.param(
            [B, B, B], {0: [stop(BUY, 1, 110, expire=1, tag="e")]},
            [], "Untriggered>Expired", 1,
            id="an untriggered stop expires too",
        ),
        pytest.param(
            [B, B, B, B, B], {1: [limit(SELL, 1, 105, expire=3, tag="e")]},
            [], "New>Expired", 4,
            id="sent at bar 1 with expire 3: Expired at the close of bar 4",
        ),
    ],
)
def test_expiry(bars: list, actions: dict, fills: list, path: str, expired_at: int | None) -> None:
    r = run(bars, actions)
    assert_fills(r.fills, fills)
    assert path_of(r.ex, "e") == path
    expired = [e for e in r.events if e.new is S.EXPIRED]
    assert [e.bar for e in expired] == ([] if expired_at is None else [expired_at])


# ---------------------------------------------------------------------------------------- 5.4 intrabar
LONG_ENTRY = (1, "buy", 1, 100.1, 0.05005, "taker")
SHORT_ENTRY = (1, "sell", 1, 99.9, 0.04995, "taker")
LONG_SL = (2, "sell", 1, 96.903, 0.0484515, "taker")  # stop 97 minus 10 bps
LONG_TP = (2, "sell", 1, 104, 0.0208, "maker")
SHORT_SL = (2, "buy", 1, 103.103, 0.0515515, "taker")  # stop 103 plus 10 bps
SHORT_TP = (2, "buy", 1, 96, 0.0192, "maker")
FLAT_BAR = (100, 100.5, 99.5, 100)
# gaps through the protection: the bar opens beyond the level, so the fill is at the open
LONG_SL_GAP = (2, "sell", 1, 94.905, 0.0474525, "taker")  # min(open 95, 97) = 95 - 10 bps; x 0.0005
LONG_TP_GAP = (2, "sell", 1, 106, 0.0212, "maker")  # resting limit 104: max(open 106, 104); x 0.0002
SHORT_SL_GAP = (2, "buy", 1, 105.105, 0.0525525, "taker")  # max(open 105, 103) = 105 + 10 bps
SHORT_TP_GAP = (2, "buy", 1, 94, 0.0188, "maker")  # resting limit 96: min(open 94, 96); x 0.0002


@pytest.mark.parametrize(
    ("intrabar", "side", "bar2", "fills", "sl_status", "tp_status"),
    [
        pytest.param("worst_case", BUY, (100, 105, 96, 101), [LONG_ENTRY, LONG_SL],
                     S.FILLED, S.CANCELLED, id="worst_case long: stop-loss first"),
        pytest.param("worst_case", BUY, (100, 104.5, 95, 101), [LONG_ENTRY, LONG_SL],
                     S.FILLED, S.CANCELLED, id="worst_case long, high nearer: still the stop-loss"),
        pytest.param("ohlc_path", BUY, (100, 105, 96, 101), [LONG_ENTRY, LONG_SL],
                     S.FILLED, S.CANCELLED, id="ohlc_path long, low nearer: stop-loss"),
        pytest.param("ohlc_path", BUY, (100, 104.5, 95, 101), [LONG_ENTRY, LONG_TP],
                     S.DEACTIVATED, S.FILLED, id="ohlc_path long, high nearer: take-profit"),
        pytest.param("ohlc_path", BUY, (100, 104.5, 95.5, 99), [LONG_ENTRY, LONG_TP],
                     S.DEACTIVATED, S.FILLED, id="ohlc_path tie, close below open: high first"),
        pytest.param("ohlc_path", BUY, (100, 104.5, 95.5, 101), [LONG_ENTRY, LONG_SL],
                     S.FILLED, S.CANCELLED, id="ohlc_path tie, close above open: low first"),
        pytest.param("worst_case", SELL, (100, 104, 95, 99), [SHORT_ENTRY, SHORT_SL],
                     S.FILLED, S.CANCELLED, id="worst_case short: stop-loss first"),
        pytest.param("worst_case", SELL, (100, 104, 96, 99.5), [SHORT_ENTRY, SHORT_SL],
                     S.FILLED, S.CANCELLED, id="worst_case short, low nearer: still the stop-loss"),
        pytest.param("ohlc_path", SELL, (100, 104.5, 96, 99), [SHORT_ENTRY, SHORT_TP],
                     S.DEACTIVATED, S.FILLED, id="ohlc_path short, low nearer: take-profit"),
        pytest.param("ohlc_path", SELL, (100, 104, 95, 99), [SHORT_ENTRY, SHORT_SL],
                     S.FILLED, S.CANCELLED, id="ohlc_path short, high nearer: stop-loss"),
        pytest.param("worst_case", BUY, (95, 95.5, 94, 95), [LONG_ENTRY, LONG_SL_GAP],
                     S.FILLED, S.CANCELLED, id="worst_case long, gap through the stop-loss: open 95 - 10 bps"),
        pytest.param("ohlc_path", BUY, (95, 95.5, 94, 95), [LONG_ENTRY, LONG_SL_GAP],
                     S.FILLED, S.CANCELLED, id="ohlc_path long, gap through the stop-loss: open 95 - 10 bps"),
        pytest.param("worst_case", BUY, (106, 107, 105, 106), [LONG_ENTRY, LONG_TP_GAP],
                     S.DEACTIVATED, S.FILLED, id="worst_case long, gap through the take-profit: open 106, maker"),
        pytest.param("ohlc_path", BUY, (106, 107, 105, 106), [LONG_ENTRY, LONG_TP_GAP],
                     S.DEACTIVATED, S.FILLED, id="ohlc_path long, gap through the take-profit: open 106, maker"),
        pytest.param("worst_case", SELL, (105, 106, 104.5, 105), [SHORT_ENTRY, SHORT_SL_GAP],
                     S.FILLED, S.CANCELLED, id="worst_case short, gap through the stop-loss: open 105 + 10 bps"),
        pytest.param("ohlc_path", SELL, (105, 106, 104.5, 105), [SHORT_ENTRY, SHORT_SL_GAP],
                     S.FILLED, S.CANCELLED, id="ohlc_path short, gap through the stop-loss: open 105 + 10 bps"),
        pytest.param("worst_case", SELL, (94, 95, 93, 94), [SHORT_ENTRY, SHORT_TP_GAP],
                     S.DEACTIVATED, S.FILLED, id="worst_case short, gap through the take-profit: open 94, maker"),
        pytest.param("ohlc_path", SELL, (94, 95, 93, 94), [SHORT_ENTRY, SHORT_TP_GAP],
                     S.DEACTIVATED, S.FILLED, id="ohlc_path short, gap through the take-profit: open 94, maker"),
    ],
)
def test_stop_loss_and_take_profit_in_one_bar(
    intrabar: str, side: Side, bar2: tuple, fills: list, sl_status: OrderStatus, tp_status: OrderStatus
) -> None:
    long = side is BUY
    protection = [protect("stop_loss", 97 if long else 103), protect("take_profit", 104 if long else 96)]
    r = run([B, FLAT_BAR, bar2], {0: [market(side, 1)], 1: protection}, intrabar=intrabar)
    assert_fills(r.fills, fills)
    assert path_of(r.ex, "stop_loss").endswith(sl_status.value)
    assert path_of(r.ex, "take_profit").endswith(tp_status.value)
    assert r.ex.position_qty == 0.0 and not r.ex.has_pending


# ---------------------------------------------------------------------------------------- attached
@pytest.mark.parametrize(
    ("config", "bars", "actions", "fills"),
    [
        pytest.param(
            {}, [B, (100, 101, 95, 99)],
            {0: [limit(BUY, 1, 98, attached=(sl(F - 2), tp(F + 5)))]},
            [(1, "buy", 1, 98, 0.0196, "maker"), (1, "sell", 1, 95.904, 0.047952, "taker")],
            id="limit entry and its attached stop (fill - 2 = 96) both fill in the entry's bar",
        ),
        pytest.param(
            {"intrabar": "ohlc_path"}, [B, (100, 101, 95, 99)],
            {0: [limit(BUY, 1, 98, attached=(sl(F - 2), tp(F + 5)))]},
            # ohlc_path: up 1 < down 5, so the high first: 100 -> 101 -> 95 -> 99. The entry fills on
            # the way down at min(100, 98) = 98 (maker, 0.0196); its stop 96 is met further down on the
            # same leg: 96 - 10 bps = 95.904 (taker, 0.047952); the take-profit 103 is never reached
            [(1, "buy", 1, 98, 0.0196, "maker"), (1, "sell", 1, 95.904, 0.047952, "taker")],
            id="ohlc_path: high first, then the entry at 98 and its stop at 96 on the way down",
        ),
        pytest.param(
            {}, [B, (101, 103, 99, 102)],
            {0: [stop(BUY, 1, 102, attached=(sl(F - 2),))]},
            # entry 102 + 10 bps = 102.102; stop 100.102 -> tick 100.1; 100.1 - 10 bps = 99.9999
            [(1, "buy", 1, 102.102, 0.051051, "taker"), (1, "sell", 1, 99.9999, 0.04999995, "taker")],
            id="worst_case: entry filled on the way up is stopped out on the way back",
        ),
        pytest.param(
            {"intrabar": "ohlc_path"}, [B, (101, 103, 99, 102)],
            {0: [stop(BUY, 1, 102, attached=(sl(F - 2),))]},
            [(1, "buy", 1, 102.102, 0.051051, "taker")],
            id="ohlc_path: the path after the entry never comes back to the stop",
        ),
        pytest.param(
            {"intrabar": "ohlc_path"}, [B, (99, 101, 97, 100)],
            {0: [limit(BUY, 1, 98, attached=(tp(F + 2),))]},
            [(1, "buy", 1, 98, 0.0196, "maker"), (1, "sell", 1, 100, 0.02, "maker")],
            id="attached take-profit filled in the entry's bar",
        ),
        pytest.param(
            {}, [B, (100, 105, 99.5, 101)],
            {0: [limit(SELL, 1, 102, attached=(sl(F + 2),))]},
            [(1, "sell", 1, 102, 0.0204, "maker"), (1, "buy", 1, 104.104, 0.052052, "taker")],
            id="short entry and its attached stop mirror",
        ),
        pytest.param(
            {}, [B, (100, 106, 97, 100), (100, 104, 99, 103), (103, 103.5, 100, 100.5)],
            {0: [limit(BUY, 1, 98, attached=(protection("trail", 3),))]},
            # trail starts at 98 - 3 = 95; worst_case walks 100 -> 98 (fill) and, for the new long,
            # 97 -> 106 -> 97 -> 100: at bar 1's close the high since the fill is 106, so 103;
            # bar 2 opens at 100, through it: a stop fill at the open less slippage
            [(1, "buy", 1, 98, 0.0196, "maker"), (2, "sell", 1, 99.9, 0.04995, "taker")],
            id="attached trail starts at fill - D and ratchets with the path after the fill",
        ),
        pytest.param(
            {}, [B, (101, 102, 100.5, 101.5), (101, 101.2, 98.8, 100)],
            {0: [market(BUY, 1, attached=(protection("trail", 3),))]},
            # filled at the open (101.101): all of bar 1 came after it, so its high counts: 102 - 3 = 99
            [(1, "buy", 1, 101.101, 0.0505505, "taker"), (2, "sell", 1, 98.901, 0.0494505, "taker")],
            id="attached trail of a market entry counts the entry bar's high",
        ),
        pytest.param(
            {"intrabar": "ohlc_path"}, [B, (100, 103, 95.5, 99.5), (99.5, 99.5, 96.4, 97)],
            {0: [limit(BUY, 1, 98, attached=(protection("trail", 3),))]},
            # ohlc_path: 100 -> 103 -> 95.5 -> 99.5, the fill at 98 on the way down: the high came
            # before it, so the trail ratchets to 99.5 - 3 = 96.5 (not 100); bar 2 reaches it
            [(1, "buy", 1, 98, 0.0196, "maker"), (2, "sell", 1, 96.4035, 0.04820175, "taker")],
            id="attached trail: a high before the fill does not count",
        ),
        pytest.param(
            {}, [B, (100, 104.5, 97, 100)],
            {0: [stop(BUY, 1, 103, attached=(sl(F - 5), tp(F + 1)))]},
            # the stop entry fills on the way up at 103.103; worst_case plans the rest of the bar for
            # the new long: down to 97 first, so its stop (98.1) fills before its take-profit (104.1)
            [(1, "buy", 1, 103.103, 0.0515515, "taker"), (1, "sell", 1, 98.0019, 0.04900095, "taker")],
            id="worst_case: an entry's stop before its take-profit in the entry's bar",
        ),
        pytest.param(
            {"intrabar": "ohlc_path"}, [B, (100, 104.5, 97, 100)],
            {0: [stop(BUY, 1, 103, attached=(sl(F - 5), tp(F + 1)))]},
            # ohlc_path keeps its one path, low first (3 down is nearer than 4.5 up): 100 -> 97 ->
            # 104.5 -> 100, so the entry at 103.103 and then its take-profit at 104.1
            [(1, "buy", 1, 103.103, 0.0515515, "taker"), (1, "sell", 1, 104.1, 0.02082, "maker")],
            id="ohlc_path: the entry's take-profit on the way up",
        ),
    ],
)
def test_attached_protection(config: dict, bars: list, actions: dict, fills: list) -> None:
    assert_fills(run(bars, actions, **config).fills, fills)


# ---------------------------------------------------------------------------------------- one price, several orders
def test_at_one_price_market_orders_fill_before_stops_and_stops_before_limits() -> None:
    # long 1 at 100.1; the next bar gaps down to 95, through a stop_loss at 97 and a limit buy at 98
    gap = (95, 95.5, 94.5, 95)
    # a market sell of 2 sent to flip fills first: 95 - 10 bps = 94.905, fee 2 x 94.905 x 0.0005;
    # the flip leaves a short 1, and the long's stop_loss is Deactivated with it (not short 2)
    r = run([B, B, gap], {0: [market(BUY, 1)], 1: [protect("stop_loss", 97), market(SELL, 2)]})
    assert_fills(r.fills[1:], [(2, "sell", 2, 94.905, 0.094905, "taker")])
    assert r.ex.position_qty == -1 and path_of(r.ex, "stop_loss").endswith("Deactivated")
    # a gapped stop_loss fills before a gapped limit: out at 94.905 (taker, 0.0474525), then the limit
    # buys at the open 95 (maker, 95 x 0.0002 = 0.019): long 1 again, not flat
    r = run([B, B, gap], {0: [market(BUY, 1)], 1: [limit(BUY, 1, 98, tag="dip"), protect("stop_loss", 97)]})
    assert_fills(r.fills[1:], [(2, "sell", 1, 94.905, 0.0474525, "taker"), (2, "buy", 1, 95, 0.019, "maker")])
    assert r.ex.position_qty == 1


# ---------------------------------------------------------------------------------------- worst_case flat
@pytest.mark.parametrize(
    ("bars", "actions", "fills", "realized"),
    [
        pytest.param(
            [B, (100, 102, 97, 101)],
            {0: [limit(BUY, 1, 98, tag="b"), limit(SELL, 1, 101.5, tag="s")]},
            # flat with a buy and a sell pending: walked as ohlc_path; up 2 < down 3, so the high first:
            # the sell at 101.5 (maker 0.0203) opens a short; replanned for the short (102, 97, ...) the
            # buy at 98 (maker 0.0196) closes it: realized 101.5 - 98 = 3.5
            [(1, "sell", 1, 101.5, 0.0203, "maker"), (1, "buy", 1, 98, 0.0196, "maker")], [0.0, 3.5],
            id="high nearer: the sell limit fills first, then the buy limit",
        ),
        pytest.param(
            [B, (100, 103, 98.5, 99)],
            {0: [limit(BUY, 1, 99, tag="b"), limit(SELL, 1, 102, tag="s")]},
            # down 1.5 < up 3: the low first: buy at 99 (0.0198) opens a long; replanned for the long
            # (98.5, 103, ...) the sell at 102 (0.0204) closes it: realized 3
            [(1, "buy", 1, 99, 0.0198, "maker"), (1, "sell", 1, 102, 0.0204, "maker")], [0.0, 3.0],
            id="low nearer: the buy limit fills first, then the sell limit",
        ),
        pytest.param(
            [B, (100, 102, 98, 99)],
            {0: [limit(BUY, 1, 98.5, tag="b"), limit(SELL, 1, 101.5, tag="s")]},
            # a tie (2 and 2), closing below the open: the high first
            [(1, "sell", 1, 101.5, 0.0203, "maker"), (1, "buy", 1, 98.5, 0.0197, "maker")], [0.0, 3.0],
            id="tie, close below the open: high first, the sell limit fills first",
        ),
        pytest.param(
            [B, (100, 102, 98, 101)],
            {0: [limit(BUY, 1, 98.5, tag="b"), limit(SELL, 1, 101.5, tag="s")]},
            # a tie, closing above the open: the low first
            [(1, "buy", 1, 98.5, 0.0197, "maker"), (1, "sell", 1, 101.5, 0.0203, "maker")], [0.0, 3.0],
            id="tie, close above the open: low first, the buy limit fills first",
        ),
    ],
)
def test_worst_case_flat_with_both_sides_pending_walks_as_ohlc_path(
    bars: list, actions: dict, fills: list, realized: list
) -> None:
    r = run(bars, actions)  # worst_case is the default
    assert_fills(r.fills, fills)
    assert [f.realized_pnl for f in r.fills] == pytest.approx(realized)
    assert r.ex.position_qty == 0.0 and not r.ex.has_pending
    assert path_of(r.ex, "b") == "New>Filled" and path_of(r.ex, "s") == "New>Filled"


# ---------------------------------------------------------------------------------------- 5.6 positions
@pytest.mark.parametrize(
    ("bars", "actions", "fills", "position", "realized"),
    [
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (110, 111, 109, 110), (105, 106, 99, 101)],
            {
                0: [market(BUY, 1)],
                1: [market(BUY, 1, role=OrderRole.SCALE)],
                2: [limit(BUY, 0.5, 100, role=OrderRole.SCALE)],
            },
            [(1, "buy", 1, 100, 0.05, "taker"), (2, "buy", 1, 110, 0.055, "taker"),
             (3, "buy", 0.5, 100, 0.01, "maker")],
            (2.5, 104.0, 3, False), 0.0,
            id="scales add layers; the average entry is quantity-weighted",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (103, 103.5, 102.5, 103), (104, 104.5, 103.5, 104)],
            {
                0: [market(BUY, 0.002)],
                1: [market(BUY, 0.001, role=OrderRole.SCALE)],
                2: [market(SELL, 0.0015, role=OrderRole.PARTIAL_CLOSE)],  # 50% of 0.003
            },
            [(1, "buy", 0.002, 100, 0.0001, "taker"), (2, "buy", 0.001, 103, 0.0000515, "taker"),
             (3, "sell", 0.001, 104, 0.000052, "taker")],
            (0.002, 101.0, 2, True), 0.003,
            id="partial_close 50% of a scaled position rounds 0.0015 down to 0.001",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (102, 102.5, 101.5, 102)],
            {0: [market(BUY, 1)], 1: [market(SELL, 3, role=OrderRole.CLOSE)]},
            [(1, "buy", 1, 100, 0.05, "taker"), (2, "sell", 1, 102, 0.051, "taker")],
            (0.0, math.nan, 0, False), 2.0,
            id="close is capped at the position and never flips it",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (102, 104, 101, 103)],
            {
                0: [market(BUY, 1)],
                1: [limit(SELL, 0.5, 103, role=OrderRole.PARTIAL_CLOSE, tag="pc"),
                    market(SELL, 1, role=OrderRole.CLOSE)],
            },
            [(1, "buy", 1, 100, 0.05, "taker"), (2, "sell", 1, 102, 0.051, "taker")],
            (0.0, math.nan, 0, False), 2.0,
            id="close fills first at the open; the pending partial_close is cancelled",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (102, 102.5, 101.5, 102)],
            {0: [market(BUY, 1)], 1: [market(SELL, 3)]},
            [(1, "buy", 1, 100, 0.05, "taker"), (2, "sell", 3, 102, 0.153, "taker")],
            (-2.0, 102.0, 1, False), 2.0,
            id="a plain sell larger than the long nets through zero and flips short",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (90, 90.5, 89.5, 90), (92, 92.5, 91.5, 92)],
            {
                0: [market(SELL, 1)],
                1: [market(SELL, 1, role=OrderRole.SCALE)],
                2: [market(BUY, 1, role=OrderRole.PARTIAL_CLOSE)],
            },
            [(1, "sell", 1, 100, 0.05, "taker"), (2, "sell", 1, 90, 0.045, "taker"),
             (3, "buy", 1, 92, 0.046, "taker")],
            (-1.0, 95.0, 2, True), 3.0,
            id="short side mirrors: scale, average, partial close",
        ),
    ],
)
def test_positions(bars: list, actions: dict, fills: list, position: tuple, realized: float) -> None:
    r = run(bars, actions, slippage_bps=0)
    assert_fills(r.fills, fills)
    ex = r.ex
    qty, avg, layers, reduced = position
    assert ex.position_qty == pytest.approx(qty)
    assert (math.isnan(ex.avg_entry) and math.isnan(avg)) or ex.avg_entry == pytest.approx(avg)
    assert (ex.layers, ex.reduced) == (layers, reduced)
    assert ex.realized_pnl == pytest.approx(realized)
    if "pc" in {o.tag for o in ex.orders.values()}:
        assert path_of(ex, "pc") == "New>Cancelled"


# ---------------------------------------------------------------------------------------- 6 trail
def _trail_level(ex: Venue) -> float | None:
    order = ex.protection("trail")
    return None if order is None else order.trigger


@pytest.mark.parametrize(
    ("bars", "actions", "levels", "fills"),
    [
        pytest.param(
            [B, (100, 100.5, 99.5, 101), (101, 106, 100, 105), (105, 105.5, 102, 103),
             (103, 104, 100.5, 101)],
            {0: [market(BUY, 1)], 1: [protect("trail", 5)]},
            [None, 96.0, 101.0, 101.0, None],
            [(1, "buy", 1, 100, 0.05, "taker"), (4, "sell", 1, 101, 0.0505, "taker")],
            id="long: starts at close - D, ratchets to highest high - D, then stops out",
        ),
        pytest.param(
            [B, (100, 100.5, 99, 99), (99, 100, 94, 95), (95, 98, 94.5, 97), (97, 99.5, 96, 99)],
            {0: [market(SELL, 1)], 1: [protect("trail", 5)]},
            [None, 104.0, 99.0, 99.0, None],
            [(1, "sell", 1, 100, 0.05, "taker"), (4, "buy", 1, 99, 0.0495, "taker")],
            id="short mirrors: lowest low + D",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 101), (101, 103, 100.5, 102), (102, 104, 101.5, 103.5),
             (103.5, 110, 103, 109)],
            {0: [market(BUY, 1)], 1: [protect("trail", 2)], 2: [protect("trail", 5)]},
            [None, 99.0, 101.0, 101.0, 105.0],
            [(1, "buy", 1, 100, 0.05, "taker")],
            id="set again wider: never loosens, ratchets on from the new distance",
        ),
    ],
)
def test_trailing_stop(bars: list, actions: dict, levels: list, fills: list) -> None:
    r = run(bars, actions, watch=_trail_level, slippage_bps=0)
    assert r.watched == levels
    assert_fills(r.fills, fills)


# ---------------------------------------------------------------------------------------- 6 protection
def _protection_qty(ex: Venue) -> tuple[float | None, float | None]:
    sl_order, tp_order = ex.protection("stop_loss"), ex.protection("take_profit")
    return (
        None if sl_order is None else sl_order.qty,
        None if tp_order is None else tp_order.qty,
    )


QUIET = [B, (100, 100.5, 99.5, 100), (101, 101.5, 100.5, 101), (102, 102.5, 101.5, 102),
         (103, 103.5, 102.5, 103)]


@pytest.mark.parametrize(
    ("bars", "actions", "sizes", "sl_path", "tp_path"),
    [
        pytest.param(
            QUIET,
            {
                0: [market(BUY, 1)],
                1: [protect("stop_loss", 90), protect("take_profit", 120),
                    market(BUY, 1, role=OrderRole.SCALE)],
                2: [market(SELL, 0.5, role=OrderRole.PARTIAL_CLOSE)],
                3: [market(SELL, 1.5, role=OrderRole.CLOSE)],
            },
            [(None, None), (1, 1), (2, 2), (1.5, 1.5), (None, None)],
            "Untriggered>Deactivated", "New>Cancelled",
            id="scale grows it, partial_close shrinks it, close clears it",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (101, 101.5, 100.5, 101), (99, 99.5, 94, 95)],
            {
                0: [market(BUY, 1)],
                1: [protect("stop_loss", 95), protect("take_profit", 120),
                    market(BUY, 1, role=OrderRole.SCALE)],
            },
            [(None, None), (1, 1), (2, 2), (None, None)],
            "Untriggered>Triggered>Filled", "New>Cancelled",
            id="the stop-loss closes the whole scaled position and the take-profit goes",
        ),
        pytest.param(
            QUIET,
            {
                0: [market(SELL, 1)],
                1: [protect("stop_loss", 110), protect("take_profit", 80),
                    market(SELL, 1, role=OrderRole.SCALE)],
                2: [market(BUY, 1, role=OrderRole.PARTIAL_CLOSE)],
            },
            [(None, None), (1, 1), (2, 2), (1, 1), (1, 1)],
            "Untriggered", "New",
            id="short: the buy-side protection follows the size too",
        ),
        pytest.param(
            QUIET,
            {0: [market(BUY, 1)], 1: [protect("stop_loss", 90)], 2: [market(SELL, 2)]},
            [(None, None), (1, None), (1, None), (None, None), (None, None)],
            "Untriggered>Deactivated", None,
            id="a flip closes the old position: its stop-loss is deactivated",
        ),
        pytest.param(
            QUIET,
            {0: [market(BUY, 1)], 1: [protect("stop_loss", 90)], 2: [protect("stop_loss", 95)]},
            [(None, None), (1, None), (1, None), (1, None), (1, None)],
            "Untriggered>PendingAmend>Untriggered", None,
            id="setting it again moves it",
        ),
    ],
)
def test_protection_follows_the_position(
    bars: list, actions: dict, sizes: list, sl_path: str, tp_path: str | None
) -> None:
    r = run(bars, actions, watch=_protection_qty, slippage_bps=0)
    assert r.watched == sizes
    assert path_of(r.ex, "stop_loss") == sl_path
    if tp_path is not None:
        assert path_of(r.ex, "take_profit") == tp_path


def test_a_flip_opens_a_new_position_for_position_r_and_bars() -> None:
    # long 1 from bar 1; a sell of 3 at bar 2's open flips to a short of 2, opened at bar 2
    r = run(QUIET, {0: [market(BUY, 1)], 1: [market(SELL, 3)]}, slippage_bps=0)
    assert r.ex.position_qty == -2.0
    assert (r.ex.position_opened_bar, r.ex.first_entry_qty, r.ex.first_entry_price) == (2, 2.0, 101.0)


def test_stop_loss_moved_keeps_the_first_stop_for_position_r() -> None:
    r = run(QUIET, {0: [market(BUY, 1)], 1: [protect("stop_loss", 90)], 2: [protect("stop_loss", 95)]},
            slippage_bps=0)
    assert r.ex.protection("stop_loss").trigger == 95.0  # type: ignore[union-attr]
    assert (r.ex.first_entry_price, r.ex.first_stop_price) == (100.0, 90.0)


# ---------------------------------------------------------------------------------------- 7.2 wrong side
LONG = {0: [market(BUY, 1)]}  # long 1 from the open of bar 1 (100.1); bar 1 closes at 100
SHORT = {0: [market(SELL, 1)]}


@pytest.mark.parametrize(
    ("setup", "action", "code", "reason"),
    [
        pytest.param(LONG, protect("stop_loss", 100.5), 110093,
                     "stop_loss 100.5 is not below the last price 100 (110093)", id="long stop_loss above the price"),
        pytest.param(LONG, protect("stop_loss", 100), 110093,
                     "stop_loss 100 is not below the last price 100 (110093)", id="long stop_loss at the price"),
        pytest.param(LONG, protect("take_profit", 99.5), 110092,
                     "take_profit 99.5 is not above the last price 100 (110092)", id="long take_profit below"),
        pytest.param(SHORT, protect("stop_loss", 99.5), 110092,
                     "stop_loss 99.5 is not above the last price 100 (110092)", id="short stop_loss below"),
        pytest.param(SHORT, protect("take_profit", 100.5), 110093,
                     "take_profit 100.5 is not below the last price 100 (110093)", id="short take_profit above"),
    ],
)
def test_wrong_side_protection_is_refused_with_bybits_code(setup: dict, action: Action, code: int,
                                                           reason: str) -> None:
    r = run([B, B, (100, 101, 90, 100)], {**setup, 1: [action]})
    result = r.results[-1]
    assert not result.accepted and result.reject_reason == reason and result.refusal.code.bybit == code
    assert path_of(r.ex, r.ex.orders[result.client_id].role.value) == "Rejected"
    assert r.ex.position_qty != 0.0 and r.ex.protection("stop_loss") is None  # it stays open, bare
    assert [f.bar for f in r.fills] == [1]  # the refused level never filled in bar 2


def test_a_move_to_the_wrong_side_is_refused_and_the_old_level_keeps_working() -> None:
    r = run([B, B, B, (100, 100.5, 94, 95)],
            {**LONG, 1: [protect("stop_loss", 95)], 2: [protect("stop_loss", 100.2)]})
    assert r.results[-1].reject_reason == "stop_loss 100.2 is not below the last price 100 (110093)"
    assert [(f.bar, f.price) for f in r.fills] == [(1, 100.1), (3, pytest.approx(95 * 0.999))]


@pytest.mark.parametrize(
    ("entry", "attached", "reason"),
    [
        pytest.param(market(BUY, 1, attached=(sl(F + 1),)), "stop_loss",
                     "stop_loss 101.1 is not below the last price 100 (110093)",
                     id="attached stop_loss above a long's fill"),
        pytest.param(market(SELL, 1, attached=(tp(F + 1),)), "take_profit",
                     "take_profit 100.9 is not below the last price 100 (110093)",
                     id="attached take_profit above a short's fill"),
    ],
)
def test_wrong_side_attached_protection_is_refused_at_the_fill(entry: Action, attached: str, reason: str) -> None:
    # the last price at the fill is the path's point (the open, 100), before slippage
    r = run([B, B, (100, 101, 90, 100)], {0: [entry]})
    refused = [e for e in r.events if isinstance(e, OrderEvent) and e.new is S.REJECTED]
    assert [e.reason for e in refused] == [reason]
    assert [(x.bar, x.kind, x.reason) for x in r.ex.state.refusals] == [(1, attached, reason)]
    assert r.ex.position_qty != 0.0


# ---------------------------------------------------------------------------------------- 5.7 rejections
@pytest.mark.parametrize(
    ("bars", "setup", "action", "reason"),
    [
        pytest.param([B], {}, market(BUY, 0.0004), "qty 0.0004 below min_qty 0.001",
                     id="below min_qty"),
        pytest.param([B], {}, market(BUY, 301), "insufficient margin: needs 30100.00, has 30000.00",
                     id="margin: notional above equity x leverage"),
        pytest.param([B], {0: [limit(BUY, 200, 99)]}, market(BUY, 103),
                     "insufficient margin: needs 30100.00, has 30000.00",
                     id="margin counts pending non-reduce orders"),
        # entry 250 at 100.1, fee 12.5125; at close 100: equity 10000 - 12.5125 - 25 = 9962.4875
        pytest.param([B, B], {0: [market(BUY, 250)]}, market(BUY, 50),
                     "insufficient margin: needs 30000.00, has 29887.46",
                     id="margin counts the open position and its loss"),
        pytest.param([B], {}, limit(BUY, 1, 100.5, tif=TimeInForce.POST_ONLY),
                     "post_only limit would take liquidity (EC_PostOnlyWillTakeLiquidity)",
                     id="post_only that would cross"),
        pytest.param([B], {}, market(SELL, 1, role=OrderRole.CLOSE), "reduce-only order with no position",
                     id="reduce-only when flat"),
        pytest.param([B, B], {0: [market(BUY, 1)]}, market(BUY, 1, role=OrderRole.PARTIAL_CLOSE),
                     "reduce-only buy would not reduce a long position",
                     id="reduce-only on the position's own side"),
        pytest.param([B], {}, limit(BUY, 1, 0), "non-positive price 0.0", id="non-positive limit price"),
        pytest.param([B], {}, stop(SELL, 1, -5), "non-positive trigger -5.0", id="non-positive trigger"),
        pytest.param([B], {}, protect("stop_loss", 95), "can not set stop_loss for zero position",
                     id="protection when flat"),
        pytest.param([B, B], {0: [market(BUY, 1)]}, protect("trail", 0.0), "non-positive trail distance 0.0",
                     id="non-positive trail distance"),
        pytest.param([B, B], {0: [market(BUY, 1)]}, protect("trail", 200),
                     "trail stop at -100: distance 200 from 100", id="trail as deep as the price"),
        pytest.param([B, B], {0: [market(BUY, 1)]}, protect("take_profit", -1), "non-positive price -1.0",
                     id="non-positive take-profit"),
        pytest.param([B], {}, market(BUY, 1, role=OrderRole.STOP_LOSS),
                     "protection orders are placed with set_protection",
                     id="protection role sent as an order"),
    ],
)
def test_rejections(bars: list, setup: dict, action: Action, reason: str) -> None:
    last = len(bars) - 1
    actions = {k: list(v) for k, v in setup.items()}
    actions.setdefault(last, []).append(action)
    # the run goes on: an ordinary order after the rejection still fills
    actions[last].append(market(BUY, 0.01, tag="after"))
    r = run([*bars, (100, 100.5, 99.5, 100)], actions)
    result = r.results[-2]
    assert not result.accepted
    assert result.status is S.REJECTED
    assert result.reject_reason == reason
    record = r.ex.orders[result.client_id]
    assert record.status is S.REJECTED and record.reason == reason
    assert (result.client_id, S.SUBMITTED, S.REJECTED, last, reason) in \
        [(e.client_id, e.old, e.new, e.bar, e.reason) for e in r.events]
    assert r.fills[-1].tag == "after"


def test_an_order_that_reduces_a_position_over_its_margin_is_not_refused() -> None:
    # long 290 at 100.1 (fee 14.5145); at close 95 equity is 10000 - 14.5145 - 1479 = 8506.4855, x3 =
    # 25519.46 of buying power for 27550 of position: a sell that reduces or flattens it adds none
    bars = [B, B, (95, 95, 95, 95), (95, 95, 95, 95), (95, 95, 95, 95)]
    r = run(bars, {0: [market(BUY, 290)], 2: [market(SELL, 100)], 3: [market(SELL, 190)]})
    assert all(res.accepted for res in r.results), [res.reject_reason for res in r.results]
    assert [(f.bar, f.side.value, f.qty) for f in r.fills] == [(1, "buy", 290), (3, "sell", 100), (4, "sell", 190)]
    assert r.ex.position_qty == 0.0


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        pytest.param(market(BUY, 1), "insufficient margin: needs 27645.00, has 25519.46", id="adding to it"),
        # a flip: 600 sold against 290 held leaves a 310 short, 29450 of notional
        pytest.param(market(SELL, 600), "insufficient margin: needs 29450.00, has 25519.46", id="a flip past it"),
    ],
)
def test_an_order_that_grows_a_position_over_its_margin_is_refused(action: Action, reason: str) -> None:
    r = run([B, B, (95, 95, 95, 95)], {0: [market(BUY, 290)], 2: [action]})
    assert r.results[-1].reject_reason == reason


@pytest.mark.parametrize(
    ("actions", "reason"),
    [
        # long 290, buying power 25519.46 at close 95 (as above). A close resting beside a sell of 290
        # can flatten the long first, and then the sell opens a 290 short: 290 x 95 = 27550
        pytest.param([market(SELL, 290, role=OrderRole.CLOSE), market(SELL, 290)],
                     "insufficient margin: needs 27550.00, has 25519.46", id="a close beside a flip"),
        # a partial close of 100 can take 100 of the 290 first; then the sell of 300 leaves a 110
        # short: -190 x 95 + 300 x 95 = 10450, within the margin
        pytest.param([market(SELL, 100, role=OrderRole.PARTIAL_CLOSE), market(SELL, 300)], None,
                     id="a partial close counts only what it closes"),
        # reduce-only orders count up to the long they can close, not beyond: with two closes of
        # 290 the sell of 260 needs 260 x 95 = 24700 (uncapped, 580 - 290 + 260 would be refused)
        pytest.param([market(SELL, 290, role=OrderRole.CLOSE), market(SELL, 290, role=OrderRole.CLOSE),
                      market(SELL, 260)], None, id="closes count up to the position"),
        # the position's own protection does not count: a flip past the long, 500 - 290 = 210 short
        pytest.param([protect("stop_loss", 90), market(SELL, 500)], None, id="protection does not count"),
    ],
)
def test_pending_reduce_only_orders_count_toward_the_margin_up_to_the_position(
    actions: list[Action], reason: str | None
) -> None:
    r = run([B, B, (95, 95, 95, 95)], {0: [market(BUY, 290)], 2: actions})
    assert r.results[-1].reject_reason == reason
    assert all(res.accepted for res in r.results[:-1])


def test_a_pending_close_counts_for_the_whole_position_it_will_close_also_after_a_scale() -> None:
    # long 100 at 100.1 (fee 5.005); a close sent for 100 rests at 110; a scale of 190 fills at 95.095
    # (fee 9.034025): long 290. At close 95: cash 9985.960975, upnl -510 - 18.05, x3 = 28373.73.
    # The close will take all 290 first, so a sell of 300 may end a 300 short: needs 28500
    r = run([B, B, (95, 95, 95, 95)], {
        0: [market(BUY, 100)],
        1: [limit(SELL, 100, 110, role=OrderRole.CLOSE), market(BUY, 190, role=OrderRole.SCALE)],
        2: [market(SELL, 300)],
    })
    assert r.ex.position_qty == 290
    assert r.results[-1].reject_reason == "insufficient margin: needs 28500.00, has 28373.73"


def test_a_close_left_below_min_qty_can_be_amended() -> None:
    # min_qty 0.01: long 1, a partial close of 0.995 leaves 0.005; a close of it can rest, and its
    # price can be moved (a same-tag re-send amends it), as a new close of it could be sent
    ex = Venue(Instrument("BTCUSDT", 0.1, 0.001, 0.01), maker_fee=0.0002, taker_fee=0.0005,
                     slippage_bps=0, equity=10_000, leverage=3)
    ex.bar_closed(0, *B)
    ex.submit(make_order(BUY, OrderType.MARKET, 1, 0), 0, 100.0)
    ex.bar_closed(1, *B)
    ex.submit(make_order(SELL, OrderType.MARKET, 0.995, 1, role=OrderRole.PARTIAL_CLOSE), 1, 100.0)
    ex.bar_closed(2, *B)
    assert ex.position_qty == 0.005  # below min_qty 0.01
    resting = ex.submit(make_order(SELL, OrderType.LIMIT, 0.005, 2, price=110.0, role=OrderRole.CLOSE), 2, 100.0)
    assert resting.accepted
    moved = ex.amend(resting.client_id, 2, price=109.0)
    assert moved.accepted, moved.reject_reason
    assert ex.open_orders()[0].price == 109.0


def test_an_amend_that_shrinks_an_order_over_the_margin_is_accepted_and_one_that_grows_it_is_not() -> None:
    # long 100 at 100.1 and a buy of 220 resting at 90 (29800 of 30000 when sent); at close 95 the
    # buying power is 3 x (10000 - 5.005 - 510) = 28454.99 and the book needs 9500 + 19800 = 29300
    ex = exchange()
    ex.bar_closed(0, *B)
    ex.submit(make_order(BUY, OrderType.MARKET, 100, 0), 0, 100.0)
    resting = ex.submit(make_order(BUY, OrderType.LIMIT, 220, 0, price=90.0), 0, 100.0)
    for i, bar in enumerate([B, (95, 95, 95, 95)], start=1):
        ex.bar_closed(i, *bar)
    assert ex.amend(resting.client_id, 2, qty=215).accepted  # 28850: still over, but less than before
    grown = ex.amend(resting.client_id, 2, qty=221)
    assert grown.reject_reason == "insufficient margin: needs 29390.00, has 28454.99"


def test_a_client_id_taken_by_an_accepted_order_is_refused_and_nothing_is_recorded() -> None:
    ex = exchange()
    first = ex.submit(attrs.evolve(make_order(BUY, OrderType.LIMIT, 1, 0, price=90.0), client_id="pd-1"), 0, 100.0)
    again = ex.submit(attrs.evolve(make_order(BUY, OrderType.LIMIT, 2, 0, price=91.0), client_id="pd-1"), 0, 100.0)
    assert first.accepted and not again.accepted
    assert again.reject_reason == "duplicate client id pd-1 (110072)"
    assert [rec.client_id for rec in ex.orders.values()] == ["pd-1"]
    # a refused create does not take the id: it can be sent again
    ex2 = exchange()
    refused = ex2.submit(attrs.evolve(make_order(BUY, OrderType.MARKET, 0.0001, 0), client_id="pd-2"), 0, 100.0)
    retried = ex2.submit(attrs.evolve(make_order(BUY, OrderType.MARKET, 1, 0), client_id="pd-2"), 0, 100.0)
    assert not refused.accepted and retried.accepted
    # ... and the refused one is still on record (orders.csv), under a name of its own, in the
    # venue's book and in the state its events built alike
    for book in (ex2.orders, ex2.exchange.orders):
        assert {cid: rec.path[-1] for cid, rec in book.items()} == {"pd-2~sim-1": S.REJECTED, "pd-2": S.NEW}


def test_bybit_caps_500_working_orders_and_10_untriggered_stops_per_symbol() -> None:
    ex = exchange(equity=1e9)
    for k in range(10):
        assert ex.submit(make_order(BUY, OrderType.STOP, 1, 0, trigger=200.0 + k), 0, 100.0).accepted
    eleventh = ex.submit(make_order(SELL, OrderType.STOP, 1, 0, trigger=50.0), 0, 100.0)
    assert eleventh.reject_reason == "more than 10 active conditional orders"
    limit_order = make_order(BUY, OrderType.STOP_LIMIT, 1, 0, price=201.0, trigger=200.0)
    assert ex.submit(limit_order, 0, 100.0).reject_reason == "more than 10 active conditional orders"
    for k in range(490):  # plain limits are not conditional: up to 500 working orders in all
        assert ex.submit(make_order(BUY, OrderType.LIMIT, 1, 0, price=50.0 + k / 100), 0, 100.0).accepted
    assert len(ex.working) == 500
    five_hundred_first = ex.submit(make_order(BUY, OrderType.LIMIT, 1, 0, price=40.0), 0, 100.0)
    assert five_hundred_first.reject_reason == "more than 500 active orders (110020)"
    # one ending frees a place
    ex.cancel(next(iter(ex.working)), 0)
    assert ex.submit(make_order(BUY, OrderType.LIMIT, 1, 0, price=40.0), 0, 100.0).accepted


def test_protection_counts_toward_the_stop_cap_but_is_never_refused_by_it() -> None:
    ex = exchange(equity=1e9)
    ex.submit(make_order(BUY, OrderType.MARKET, 1, 0), 0, 100.0)
    ex.bar_closed(1, *B)
    for k in range(10):
        assert ex.submit(make_order(BUY, OrderType.STOP, 1, 1, trigger=200.0 + k), 1, 100.0).accepted
    assert ex.set_protection("stop_loss", 90.0, 1, 100.0).accepted
    ex.cancel(next(r.client_id for r in ex.working.values() if r.role is OrderRole.ENTRY), 1)
    # ten working stops again, one of them the stop_loss: the cap is reached
    assert ex.submit(make_order(BUY, OrderType.STOP, 1, 1, trigger=300.0), 1, 100.0).reject_reason == \
        "more than 10 active conditional orders"


# ---------------------------------------------------------------------------------------- fees and PnL
@pytest.mark.parametrize(
    ("config", "bars", "actions", "fills", "realized", "totals"),
    [
        pytest.param(
            {}, [B, (100, 100.5, 99.5, 100), (108, 111, 107, 110)],
            {0: [market(BUY, 2)], 1: [limit(SELL, 2, 110, role=OrderRole.CLOSE)]},
            [(1, "buy", 2, 100.1, 0.1001, "taker"), (2, "sell", 2, 110, 0.044, "maker")],
            [0.0, 19.8], (19.8, 0.1441, 10_019.6559),
            id="long: market in, close at a limit",
        ),
        pytest.param(
            {}, [B, (100, 100.5, 99.5, 100), (101, 104, 100.5, 103)],
            {0: [market(SELL, 1)], 1: [protect("stop_loss", 103)]},
            [(1, "sell", 1, 99.9, 0.04995, "taker"), (2, "buy", 1, 103.103, 0.0515515, "taker")],
            [0.0, -3.203], (-3.203, 0.1015015, 9_996.6954985),
            id="short: stopped out at a loss",
        ),
        pytest.param(
            {"slippage_bps": 0}, [B, (100, 100.5, 99.5, 100), (105, 105.5, 104.5, 105), (95, 95.5, 94.5, 95)],
            {0: [market(BUY, 2)], 1: [market(SELL, 1, role=OrderRole.PARTIAL_CLOSE)],
             2: [market(SELL, 1, role=OrderRole.CLOSE)]},
            [(1, "buy", 2, 100, 0.1, "taker"), (2, "sell", 1, 105, 0.0525, "taker"),
             (3, "sell", 1, 95, 0.0475, "taker")],
            [0.0, 5.0, -5.0], (0.0, 0.2, 9_999.8),
            id="each reduction realizes its own PnL",
        ),
    ],
)
def test_fees_and_realized_pnl(
    config: dict, bars: list, actions: dict, fills: list, realized: list, totals: tuple
) -> None:
    r = run(bars, actions, **config)
    assert_fills(r.fills, fills)
    assert [f.realized_pnl for f in r.fills] == pytest.approx(realized)
    ex = r.ex
    assert (ex.realized_pnl, ex.fees_paid, ex.cash) == pytest.approx(totals)
    assert ex.equity() == pytest.approx(ex.cash)  # flat: no unrealized PnL


# ---------------------------------------------------------------------------------------- amend/cancel
@pytest.mark.parametrize(
    ("bars", "actions", "fills", "paths"),
    [
        pytest.param(
            [B, B, (99, 99.5, 97.5, 98)],
            {0: [limit(BUY, 1, 95, tag="e")], 1: [amend("e", price=98)]},
            [(2, "buy", 1, 98, 0.0196, "maker")], {"e": "New>PendingAmend>New>Filled"},
            id="amended limit fills at its new price",
        ),
        pytest.param(
            [B, B, (96, 97, 94, 95)],
            {0: [limit(BUY, 1, 95, tag="e")], 1: [cancel("e")]},
            [], {"e": "New>PendingCancel>Cancelled"},
            id="a cancelled limit never fills",
        ),
        pytest.param(
            [B, B, (104, 105, 103, 104)],
            {0: [stop(BUY, 1, 102, tag="e")], 1: [cancel("e")]},
            [], {"e": "Untriggered>PendingCancel>Deactivated"},
            id="a cancelled stop is deactivated",
        ),
        pytest.param(
            [B, (100, 100.5, 99.5, 100), (91, 92, 85, 90)],
            {0: [market(BUY, 1)], 1: [protect("stop_loss", 95), limit(BUY, 1, 90, tag="e"), cancel_all()]},
            [(1, "buy", 1, 100.1, 0.05005, "taker")],
            {"e": "New>PendingCancel>Cancelled", "stop_loss": "Untriggered>PendingCancel>Deactivated"},
            id="cancel_all takes the protection with it",
        ),
        pytest.param(
            [B, B, (99, 99.5, 97.5, 98)],
            {0: [limit(BUY, 1, 95, tif=TimeInForce.POST_ONLY, tag="e")], 1: [amend("e", price=101)]},
            [], {"e": "New"},
            id="an amend that would make a post_only cross is refused; the order is untouched",
        ),
        pytest.param(
            [B, B, (99, 99.5, 94.5, 98)],
            {0: [limit(BUY, 1, 95, tag="e")], 1: [amend("e", qty=1, price=95)]},
            [(2, "buy", 1, 95, 0.019, "maker")], {"e": "New>Filled"},
            id="an amend that changes nothing is accepted without events",
        ),
        pytest.param(
            [B, (104, 105, 103, 104.5), (103.5, 104, 102.8, 103)],
            {0: [stop(BUY, 1, 102, 102.5, tag="e")], 1: [amend("e", trigger=102, price=103)]},
            [(2, "buy", 1, 103, 0.0206, "maker")],
            {"e": "Untriggered>Triggered>New>PendingAmend>New>Filled"},
            id="a triggered stop-limit re-stated with its trigger: only the limit moves",
        ),
        pytest.param(
            QUIET,
            {0: [market(BUY, 1)], 1: [protect("stop_loss", 90)], 2: [protect("stop_loss", 90)]},
            [(1, "buy", 1, 100.1, 0.05005, "taker")], {"stop_loss": "Untriggered"},
            id="setting a protection to its current level is not a move",
        ),
    ],
)
def test_amend_and_cancel(bars: list, actions: dict, fills: list, paths: dict) -> None:
    r = run(bars, actions)
    assert_fills(r.fills, fills)
    for who, path in paths.items():
        assert path_of(r.ex, who) == path


# ---------------------------------------------------------------------------------------- engine reads
def test_tags_and_pending_reads() -> None:
    r = run([B, (100, 100.5, 97, 99), B], {0: [limit(BUY, 1, 98, tag="e"), limit(BUY, 1, 90, tag="deep")]})
    ex = r.ex
    assert ex.tag_filled("e") and not ex.tag_filled("deep")
    assert ex.order_by_tag("e") is None
    assert ex.order_by_tag("deep") is not None and ex.order_by_tag("deep").price == 90  # type: ignore[union-attr]
    assert ex.has_pending and [o.tag for o in ex.open_orders()] == ["deep"]
    assert ex.position_opened_bar == 1 and ex.layers == 1
    assert ex.status_path(r.results[0].client_id) == (S.SUBMITTED, S.NEW, S.FILLED)
    # closing the position ends T.filled
    ex.submit(make_order(SELL, OrderType.MARKET, 1, 2, role=OrderRole.CLOSE), 2, 100)
    ex.bar_closed(3, 100, 100.5, 99.5, 100)
    assert ex.position_qty == 0.0 and not ex.tag_filled("e")
    assert math.isnan(ex.avg_entry) and ex.position_opened_bar is None


def test_nothing_pending_costs_nothing() -> None:
    ex = exchange()
    for i in range(3):
        ex.bar_closed(i, *B)
    assert ex.drain_events() == [] and not ex.has_pending and ex.equity() == 10_000.0


def test_events_record_every_status_change_in_order() -> None:
    r = run([B, (100, 103, 99.5, 102.5)], {0: [stop(BUY, 1, 102, tag="e")]})
    ex = r.ex
    oid = r.results[0].client_id
    seen = [(e.old, e.new, e.bar) for e in r.events if e.client_id == oid]
    assert seen == [
        (None, S.SUBMITTED, 0),
        (S.SUBMITTED, S.UNTRIGGERED, 0),
        (S.UNTRIGGERED, S.TRIGGERED, 1),
        (S.TRIGGERED, S.FILLED, 1),
    ]
    assert r.fills[0].ts == MINUTE and r.fills[0].role is OrderRole.ENTRY
    assert ex.orders[oid].filled_qty == 1 and ex.orders[oid].avg_price == pytest.approx(102.102)


# ---------------------------------------------------------------------------------------- invariants
_bar = st.tuples(
    st.floats(90, 110), st.floats(0, 4), st.floats(0, 4), st.floats(0, 1)
).map(lambda t: (round(t[0], 1), round(t[0] + t[1], 1), round(t[0] - t[2], 1),
                 round(t[0] - t[2] + (t[1] + t[2]) * t[3], 1)))
_command = st.one_of(
    st.tuples(st.just("market"), st.sampled_from([BUY, SELL]), st.sampled_from([0.001, 0.5, 1.0, 2.0])),
    st.tuples(st.just("limit"), st.sampled_from([BUY, SELL]), st.floats(92, 108)),
    st.tuples(st.just("stop"), st.sampled_from([BUY, SELL]), st.floats(92, 108)),
    st.tuples(st.just("close"), st.sampled_from([BUY, SELL]), st.sampled_from([0.5, 1.0, 5.0])),
    st.tuples(st.just("protect"), st.sampled_from(["stop_loss", "take_profit", "trail"]), st.floats(1, 108)),
    st.tuples(st.just("cancel_all"), st.just(BUY), st.just(0.0)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_bar, st.lists(_command, max_size=3)), min_size=1, max_size=12),
       st.sampled_from(["worst_case", "ohlc_path"]))
def test_invariants_under_random_commands(steps: list, intrabar: str) -> None:
    ex = exchange(intrabar=intrabar, equity=1_000_000.0)
    position = 0.0
    for i, ((o, h, l, c), commands) in enumerate(steps):
        ex.bar_closed(i, o, h, l, c)
        for kind, a, b in commands:
            if kind == "market":
                ex.submit(make_order(a, OrderType.MARKET, b, i), i, c)
            elif kind == "limit":
                ex.submit(make_order(a, OrderType.LIMIT, 1.0, i, price=b, expire=2), i, c)
            elif kind == "stop":
                ex.submit(make_order(a, OrderType.STOP, 1.0, i, trigger=b,
                                     attached=(sl(F * 0.97),)), i, c)
            elif kind == "close":
                ex.submit(make_order(a, OrderType.MARKET, b, i, role=OrderRole.CLOSE), i, c)
            elif kind == "protect":
                ex.set_protection(a, b, i, c)
            else:
                ex.cancel_all(i)
        for event in ex.drain_events():
            if isinstance(event, Fill):
                before = position
                position = round(position + event.side.sign * event.qty, 3)
                if event.role in (OrderRole.CLOSE, OrderRole.PARTIAL_CLOSE) or event.role.is_protection:
                    # reduce-only never flips and never grows the position
                    assert before != 0.0 and abs(position) < abs(before) + 1e-12
                    assert position == 0.0 or (position > 0) == (before > 0)
            elif isinstance(event, OrderEvent) and event.old is not None:
                assert _is_edge(event), f"no edge {event.old} -> {event.new}"
        assert ex.position_qty == pytest.approx(position, abs=1e-9)
        assert ex.cash == pytest.approx(1_000_000.0 + ex.realized_pnl - ex.fees_paid)
        assert ex.has_pending == bool(ex.open_orders())
        for kind in ("stop_loss", "take_profit", "trail"):
            held = ex.protection(kind)  # type: ignore[arg-type]
            if ex.position_qty == 0.0:
                assert held is None
            elif held is not None:
                assert held.qty == pytest.approx(abs(ex.position_qty))
                assert held.side is (SELL if ex.position_qty > 0 else BUY)
        if ex.position_qty == 0.0:
            assert ex.layers == 0 and not ex.reduced
        else:
            assert ex.layers >= 1


def _is_edge(event: OrderEvent) -> bool:
    """Some event of the shared state machine leads from the event's old status to its new one."""
    return any(old is event.old and new is event.new for (old, _), new in TRANSITIONS.items())


@pytest.mark.parametrize(
    ("worst", "adverse_low", "bar", "path"),
    [
        (False, None, (100, 101, 97, 100), (101, 97, 100)),  # the high is nearer
        (False, None, (100, 103, 99, 100), (99, 103, 100)),  # the low is nearer
        (False, None, (100, 102, 98, 99), (102, 98, 99)),  # a tie, closing below the open: high first
        (False, None, (100, 102, 98, 101), (98, 102, 101)),  # a tie, closing at or above: low first
        (False, None, (296.9, 298.0, 295.8, 296.3), (298.0, 295.8, 296.3)),  # a tie in ticks, not in floats
        (False, None, (404.6, 405.8, 403.4, 404.6), (403.4, 405.8, 404.6)),
        (True, None, (100, 102, 98, 99), (102, 98, 99)),  # worst_case with no side to hurt: the same
        (True, True, (100, 101, 97, 100), (97, 101, 97, 100)),  # long: low, high, low again, close
        (True, False, (100, 103, 99, 100), (103, 99, 103, 100)),  # short: high, low, high again, close
    ],
)
def test_the_intrabar_paths_the_readme_describes(worst: bool, adverse_low: bool | None, bar: tuple, path: tuple) -> None:
    assert intrabar_path(worst, adverse_low, *map(float, bar)) == tuple(map(float, path))


# ---------------------------------------------------------------------------------------- partial fills
def test_a_limit_fill_split_into_parts_fills_one_part_a_bar_and_ends_filled() -> None:
    ex = exchange(slippage_bps=0)
    ex.bar_closed(0, *B)
    ex.exchange.split_next_fill(3)  # the emulator's fault: the next limit fill comes in 3 parts
    sent = ex.submit(make_order(BUY, OrderType.LIMIT, 1.0, 0, price=99.0, tag="e"), 0, 100.0)
    for i, bar in enumerate([(100, 100.5, 98.5, 99), (99, 99.5, 98, 98.5), (100, 101, 99.8, 100),
                             (99.5, 100, 98.5, 99)], start=1):
        ex.bar_closed(i, *bar)
    rec = ex.orders[sent.client_id]
    assert [(f.bar, f.qty, f.price) for f in ex.state.fills] == [(1, 0.333, 99.0), (2, 0.333, 99.0), (4, 0.334, 99.0)]
    assert path_text(rec) == "New>PartiallyFilled>PartiallyFilled>Filled"
    assert rec.filled_qty == 1.0 and rec.avg_price == 99.0 and ex.position_qty == 1.0


def test_a_cancel_after_a_partial_fill_ends_partially_filled_canceled() -> None:
    ex = exchange(slippage_bps=0)
    ex.bar_closed(0, *B)
    ex.exchange.split_next_fill(2)
    sent = ex.submit(make_order(BUY, OrderType.LIMIT, 1.0, 0, price=99.0, tag="e"), 0, 100.0)
    ex.bar_closed(1, 100, 100.5, 98.5, 99)
    assert ex.cancel(sent.client_id, 1)
    rec = ex.orders[sent.client_id]
    assert path_text(rec) == "New>PartiallyFilled>PendingCancel>PartiallyFilledCanceled"
    assert (rec.filled_qty, ex.position_qty) == (0.5, 0.5)
    assert ex.exchange.orders[sent.client_id].path == rec.path  # the mirror follows the venue
