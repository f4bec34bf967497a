"""The console's runtime side without a screen: the snapshot helpers (layers of a position, the
market window, which features share the price's scale) and the Replay (where the visible replay
starts, hold points, commands between bars, PnL today, the same trading as a backtest)."""
from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from console_replay import AMENDED, AMENDED_STOP, ENTRY_WORKING, LONG, MINUTES, PLAY, replay_of
from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import exec_bars, prepare, run_engine
from playdeck.runtime.execution.orders import Fill, OrderRole, OrderStatus, Side
from playdeck.runtime.strategy.session import Mode
from playdeck.tui.replay import LEAD, SPEEDS, Command, OperatorCommand, first_order_bar
from playdeck.tui.snapshot import Entry, FillMark, market_window, position_entries, price_scale_features

TS = np.arange(100, dtype=np.int64) * 60_000


def fill(bar: int, side: str, qty: float, price: float, tag: str | None = None) -> Fill:
    return Fill(bar, int(TS[bar]), "o", tag, Side(side), qty, price, 0.0, "taker", OrderRole.ENTRY, 0.0)


# ------------------------------------------------------------------ layers of the position
def test_layers_are_the_fills_since_the_position_opened_with_the_part_that_opened_it() -> None:
    fills = [fill(1, "buy", 1.0, 100.0), fill(2, "sell", 1.0, 101.0),  # a closed round trip
             fill(5, "sell", 0.5, 99.0),  # a short ...
             fill(8, "buy", 2.0, 98.0, "flip"),  # ... flipped: 0.5 closed it, 1.5 opened the long
             fill(9, "sell", 0.5, 99.5),  # a partial close: no layer
             fill(11, "buy", 0.25, 97.0, "add")]
    got = position_entries(fills, 1.25, TS)
    assert got == (Entry(8, int(TS[8]), "buy", 1.5, 98.0, "flip"), Entry(11, int(TS[11]), "buy", 0.25, 97.0, "add"))
    assert position_entries(fills, 0.0, TS) == ()


def test_a_short_in_three_layers() -> None:
    fills = [fill(3, "sell", 0.1, 50.0), fill(4, "sell", 0.2, 51.0), fill(6, "sell", 0.3, 52.0)]
    assert [(e.bar, e.qty) for e in position_entries(fills, -0.6, TS)] == [(3, 0.1), (4, 0.2), (6, 0.3)]


# ------------------------------------------------------------------ the market window
def test_the_window_is_the_last_bars_with_the_fills_inside_it() -> None:
    c = np.arange(100, dtype=float) + 1000.0
    feats = [("ema", c - 1.0)]
    fills = [fill(10, "buy", 1.0, 1010.0), fill(95, "sell", 1.0, 1095.0), fill(97, "buy", 2.0, 1097.0)]
    w = market_window(TS, c, c + 1, c - 1, c, c * 0 + 5, feats, fills, end=96, width=20)
    assert (w.first_bar, len(w), w.close[-1], w.ts[0]) == (77, 20, 1096.0, int(TS[77]))
    assert w.features == (("ema", tuple(float(x) for x in c[77:97] - 1.0)),)
    assert w.fills == (FillMark(95, "sell", 1095.0, 1.0),)  # bar 97 has not happened yet
    early = market_window(TS, c, c, c, c, c, feats, fills, end=3, width=20)
    assert (early.first_bar, len(early)) == (0, 4)


def test_only_features_on_the_price_scale_are_drawn_over_it() -> None:
    close = np.full(50, 60_000.0)
    ema = np.concatenate([np.full(10, np.nan), np.full(40, 59_000.0)])
    got = price_scale_features(close, [("ema", ema), ("rsi", np.full(50, 55.0)), ("atr", np.full(50, 300.0)),
                                       ("cross", np.zeros(50, dtype=bool)), ("upper", close * 1.05)])
    assert [name for name, _ in got] == ["ema", "upper"]


# ------------------------------------------------------------------ the replay
def drive(replay, script) -> list:
    """Run the replay in its own task while `script(wait)` sends commands and waits (`await
    wait(condition)`: until the latest published snapshot satisfies it); the snapshots published."""
    snaps: list = []
    replay.publish = snaps.append

    async def go() -> None:
        task = asyncio.create_task(replay.run())

        async def wait(condition):
            while not (snaps and condition(snaps[-1])):
                assert not task.done(), task.exception()
                await asyncio.sleep(0)
            return snaps[-1]

        try:
            await script(wait)
        finally:
            task.cancel()

    asyncio.run(go())
    return snaps


def held(bar: int):
    return lambda s: s.replay.held and s.session.bar == bar


def test_the_visible_replay_starts_a_few_bars_before_the_first_order() -> None:
    plan = lower(compile_file(PLAY).ir)
    bars = exec_bars(MINUTES, plan.play.market.exec_tf)
    bt = prepare(plan, bars)
    run_engine(bt)
    first = min(r.request.created_bar for r in bt.state.orders.values())
    assert first_order_bar(plan, bars) == first == 3525
    replay = replay_of()
    # readiness is bar 3199: without the quiet stretch skipped, 300 idle bars would come first
    assert replay.visible_from == first - LEAD and replay.session.ready_bar == 3199


def test_a_hold_point_stops_the_bars_and_a_step_moves_it() -> None:
    replay = replay_of(hold_at=ENTRY_WORKING)

    async def script(wait) -> None:
        s = await wait(held(ENTRY_WORKING))
        assert [(o.client_id, o.path) for o in s.session.working] == \
            [("ema_pullback-3525-1", (OrderStatus.SUBMITTED, OrderStatus.NEW))]
        assert s.session.mode is Mode.TRADING and s.replay.visible_from == 3513 and not s.replay.finished
        for _ in range(50):  # held: the bars do not move on
            await asyncio.sleep(0)
        assert replay.session.bar_index == ENTRY_WORKING
        replay.send(OperatorCommand(Command.STEP, LONG - ENTRY_WORKING))
        s = await wait(held(LONG))
        assert s.session.position_qty == pytest.approx(0.282) and len(s.entries) == 2
        assert dict(s.session.protection).keys() == {"stop_loss", "take_profit"}

    snaps = drive(replay, script)
    assert max(x.session.bar for x in snaps) == LONG


def test_commands_run_between_bars_and_show_in_the_next_snapshot() -> None:
    replay = replay_of(hold_at=LONG)

    async def script(wait) -> None:
        await wait(held(LONG))
        replay.send(OperatorCommand(Command.TOGGLE_PAUSE))
        replay.send(OperatorCommand(Command.FASTER))
        replay.send(OperatorCommand(Command.RECONCILE))
        s = await wait(lambda s: s.session.log[-1].endswith("reconcile: no venue to reconcile"))
        assert s.session.mode is Mode.PAUSED and s.replay.speed == math.inf  # already the fastest
        assert s.reconciliation.note == "no venue to reconcile" and s.health.stream is None
        replay.send(OperatorCommand(Command.SLOWER))
        replay.send(OperatorCommand(Command.SELECT, "take_profit-sim-3"))
        s = await wait(lambda s: s.selected is not None)
        assert s.replay.speed == SPEEDS[-2] and s.session.bar == LONG
        assert s.selected.working and [t.new for t in s.selected.transitions] == \
            [OrderStatus.SUBMITTED, OrderStatus.NEW]

    drive(replay, script)


def test_a_command_that_fails_is_logged_and_the_replay_goes_on() -> None:
    replay = replay_of(hold_at=LONG)

    async def script(wait) -> None:
        await wait(held(LONG))
        replay.send(OperatorCommand(Command.STEP, "two"))  # not a number of bars
        replay.send(OperatorCommand(Command.STEP, 1))
        s = await wait(held(LONG + 1))
        assert any("error: step failed: ValueError" in line for line in s.session.log)

    drive(replay, script)


def test_the_selected_order_carries_its_whole_way_with_in_flight_states() -> None:
    replay = replay_of(hold_at=AMENDED)
    replay.send(OperatorCommand(Command.SELECT, AMENDED_STOP))  # sent before it runs: queued
    s = drive(replay, lambda wait: wait(held(AMENDED)))[-1]
    d = s.selected
    assert d.order.client_id == AMENDED_STOP and d.working
    assert [(t.old and t.old.value, t.new.value, t.event) for t in d.transitions] == [
        (None, "Submitted", ""), ("Submitted", "Untriggered", "accept_conditional"),
        ("Untriggered", "PendingAmend", "amend"), ("PendingAmend", "Untriggered", "amend_ack_conditional")]


def test_pnl_today_counts_from_the_last_close_of_yesterday() -> None:
    replay = replay_of(hold_at=AMENDED)
    s = drive(replay, lambda wait: wait(held(AMENDED)))[-1]
    ts = np.asarray(replay.bars.ts_open)
    day_start = int(np.searchsorted(ts, ts[AMENDED] // 86_400_000 * 86_400_000))  # first bar of the day
    # A second session to the close before the day began: its equity is where today starts.
    other = replay_of()
    session = other.session

    async def go() -> None:
        for i in range(day_start):
            await session.bar(i)

    asyncio.run(go())
    start = session.state.equity(float(other.bars.close[day_start - 1]))
    assert s.pnl_today == pytest.approx(s.session.equity - start)
    assert s.pnl_today != 0.0


def test_replayed_to_the_end_without_commands_it_trades_as_the_backtest() -> None:
    replay = replay_of()
    snaps = drive(replay, lambda wait: wait(lambda s: s.replay.finished))
    plan = lower(compile_file(PLAY).ir)
    bt = prepare(plan, exec_bars(MINUTES, plan.play.market.exec_tf))
    run_engine(bt)
    assert replay.session.state.fills == bt.state.fills
    assert snaps[-1].session.mode is Mode.FINISHED and snaps[-1].trade_stats.count == len(bt.state.trades)


def test_a_hold_point_in_the_warm_up_holds_there_and_a_kill_there_means_no_trading_at_all() -> None:
    replay = replay_of(hold_at=100)

    async def script(wait) -> None:
        s = await wait(held(100))
        assert s.session.mode is Mode.WARMING_UP and s.replay.visible_from == 3513
        replay.send(OperatorCommand(Command.KILL))
        s = await wait(lambda s: s.session.mode is Mode.KILLED)
        assert s.session.bar == 100
        replay.send(OperatorCommand(Command.STEP, 3700))  # past readiness (3199) and the first signal (3525)
        s = await wait(held(3800))
        assert s.session.mode is Mode.KILLED and replay.session.state.orders == {}

    drive(replay, script)
