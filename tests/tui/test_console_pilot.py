"""The console driven by keys, headless (Textual's pilot), on the fixed replay of console_replay:
orders appear with their state paths, cancel, flatten and kill do what they say (the last two after
a confirm), pause stops new intents while bars flow, quit asks when orders are working, and the
order, state machine and trades screens open on the selected order."""
from __future__ import annotations

import asyncio
import io

import attrs
import pytest
from rich.console import Console

from console_replay import AMENDED, AMENDED_STOP, ENTRY_WORKING, LONG, held_at, replay_of, until
from playdeck.runtime.execution.venue_status import DriftEvent, EndpointBudget, HealthSnapshot, ReconciliationSnapshot
from playdeck.runtime.strategy.session import Mode
from playdeck.tui.app import KEYS, ConsoleApp, SnapshotPosted
from playdeck.tui.confirm import ConfirmScreen
from playdeck.tui.formats import colour
from playdeck.tui.header import SessionHeader
from playdeck.tui.health import HealthPane
from playdeck.tui.log_pane import LogPane
from playdeck.tui.main_screen import MainScreen
from playdeck.tui.order_detail import OrderDetailScreen
from playdeck.tui.order_history import FinishedOrders
from playdeck.tui.orders import WorkingOrders
from playdeck.tui.reconciliation import ReconciliationPane
from playdeck.tui.replay import Command, OperatorCommand
from playdeck.tui.state_card import StateCard
from playdeck.tui.state_machine import StateMachineScreen
from playdeck.tui.trades import TradesScreen
from playdeck.tui.transition_table import TransitionTable

FLAT_BEFORE_FIRST_ORDER = 3520  # trading, nothing sent yet (the first order comes at 3525)
SIZE = (160, 48)


def console(hold_at: int, scenario) -> ConsoleApp:
    """Run `scenario(pilot)` on a console whose replay holds at `hold_at`, once it is there."""
    app = ConsoleApp(replay_of(hold_at=hold_at))

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await held_at(pilot, hold_at)
            await scenario(pilot)

    asyncio.run(go())
    return app


async def step_to(pilot, bar: int) -> None:
    app = pilot.app
    app.replay.send(OperatorCommand(Command.STEP, bar - app.snapshot.session.bar))
    await held_at(pilot, bar)


def paths(table) -> dict[str, str]:
    """client id -> the state path as the table shows it."""
    return {key.value: table.get_row(key)[-1].plain for key in table.rows}


def test_orders_appear_with_their_state_paths_and_finished_ones_move_to_the_history() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        working = app.screen.query_one(WorkingOrders)
        assert paths(working) == {"ema_pullback-3525-1": "Submitted → New"}
        await step_to(pilot, LONG)
        assert paths(working) == {"stop_loss-sim-2": "Submitted → Untriggered",
                                  "take_profit-sim-3": "Submitted → New"}
        history = paths(app.screen.query_one(FinishedOrders))
        assert history == {"ema_pullback-3528-2": "Submitted → New → Filled",
                           "ema_pullback-3525-1": "Submitted → New → Filled"}
        # each state in its own colour (console.tcss): an untriggered stop is not drawn like a fill
        row = working.get_row("stop_loss-sim-2")[-1]
        styles = {row.plain[s.start:s.end]: s.style for s in row.spans}
        assert styles["Untriggered"] != styles["Submitted"]
        assert styles["Untriggered"] == colour(working, "state--untriggered")

    console(ENTRY_WORKING, scenario)


def test_c_cancels_the_selected_working_order() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        await pilot.press("down")  # from the stop_loss to the take_profit
        await until(pilot, lambda: app.selected == "take_profit-sim-3", "the take_profit selected")
        await pilot.press("c")
        await until(pilot, lambda: "take_profit-sim-3" not in app.snapshot.working_ids, "the cancel")
        history = paths(app.screen.query_one(FinishedOrders))
        # the operator's cancel is a request: PendingCancel until the venue answers
        assert history["take_profit-sim-3"] == "Submitted → New → PendingCancel → Cancelled"
        assert list(paths(app.screen.query_one(WorkingOrders))) == ["stop_loss-sim-2"]
        assert "cancel take_profit-sim-3: sent" in app.snapshot.session.log[-1]
        assert app.snapshot.session.position_qty == pytest.approx(0.282)  # the position stays

    console(LONG, scenario)


def test_c_without_a_working_order_cancels_nothing() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        log = app.snapshot.session.log
        await pilot.press("c")
        await pilot.pause()
        assert app.snapshot.session.log == log and app.replay.session.state.orders == {}

    console(FLAT_BEFORE_FIRST_ORDER, scenario)


def test_flatten_asks_first_then_cancels_everything_and_closes_the_position() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing happens
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and len(app.snapshot.session.working) == 2
        await pilot.press("f")
        await pilot.press("y")
        await until(pilot, lambda: "stop_loss-sim-2" not in app.snapshot.working_ids, "the orders cancelled")
        assert app.snapshot.session.log[-1].endswith("flatten: 2 order(s) cancelled")
        # all that works now is the close, at market, sent by the operator
        (close,) = app.snapshot.session.working
        assert (close.request.role.value, close.request.origin, close.qty) == ("close", "operator", 0.282)
        assert "take_profit-sim-3" in paths(app.screen.query_one(FinishedOrders))
        await step_to(pilot, LONG + 1)  # the closing market order fills in the next bar
        s = app.snapshot.session
        assert s.position_qty == 0.0 and s.working == () and s.mode is Mode.TRADING  # flat, still trading
        assert s.trades[-1].exit_bar == LONG + 1

    console(LONG, scenario)


def test_pause_stops_new_intents_while_the_bars_keep_flowing() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        await pilot.press("p")
        await until(pilot, lambda: app.snapshot.session.mode is Mode.PAUSED, "paused")
        assert app.screen.query_one(SessionHeader).line(app.snapshot).plain.count("PAUSED") == 1
        await step_to(pilot, 3600)  # the Play would have sent its first order at 3525
        assert app.replay.session.state.orders == {} and app.snapshot.session.bar == 3600
        await pilot.press("p")
        await until(pilot, lambda: app.snapshot.session.mode is Mode.TRADING, "resumed")
        await step_to(pilot, 3700)
        assert app.replay.session.state.orders  # trading again: it sent orders
        log = app.snapshot.session.log
        assert any(line.endswith("paused by the operator") for line in log)
        assert any(line.endswith("resumed") for line in log)

    console(FLAT_BEFORE_FIRST_ORDER, scenario)


def test_kill_asks_first_then_closes_everything_and_never_trades_again() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        await pilot.press("k")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: app.snapshot.session.mode is Mode.KILLED, "killed")
        assert [o.request.role.value for o in app.snapshot.session.working] == ["close"]  # all else cancelled
        await step_to(pilot, 3800)  # the Play sends orders at 3671 and 3682 when trading
        sent = app.replay.session.state.orders
        assert app.snapshot.session.position_qty == 0.0 and app.snapshot.session.working == ()
        assert max(r.request.created_bar for r in sent.values()) <= LONG + 1  # nothing after the kill but the close
        assert "KILLED" in app.screen.query_one(SessionHeader).line(app.snapshot).plain
        await pilot.press("p")  # a killed session cannot be resumed
        await pilot.pause()
        assert app.snapshot.session.mode is Mode.KILLED

    console(LONG, scenario)


def test_quit_asks_when_orders_are_working() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert "2 orders are working" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert app.return_code is None and isinstance(app.screen, MainScreen)
        await pilot.press("q", "y")

    app = console(LONG, scenario)
    assert app.return_code == 0


def test_quit_with_no_order_working_does_not_ask() -> None:
    async def scenario(pilot) -> None:
        await pilot.press("q")

    app = console(FLAT_BEFORE_FIRST_ORDER, scenario)
    assert app.return_code == 0


def test_r_reconciles_and_plus_minus_change_the_replay_speed() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        header = app.screen.query_one(SessionHeader)
        await pilot.press("r")
        await until(pilot, lambda: app.snapshot.session.log[-1].endswith("reconcile: no venue to reconcile"),
                    "the reconcile")
        shown = " ".join(strip.text.strip() for strip in app.screen.query_one(LogPane).lines)  # wrapped lines
        assert shown.endswith("reconcile: no venue to reconcile")
        await pilot.press("minus")
        await until(pilot, lambda: "replay 256 bars/s" in header.line(app.snapshot).plain, "slower")
        await pilot.press("minus", "minus")
        await until(pilot, lambda: app.snapshot.replay.speed == 64, "slower still")
        await pilot.press("plus")
        await until(pilot, lambda: app.snapshot.replay.speed == 128, "faster")

    console(FLAT_BEFORE_FIRST_ORDER, scenario)


def test_enter_shows_the_order_with_every_transition_and_s_its_way_through_the_state_machine() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        await until(pilot, lambda: app.snapshot.selected is not None, "the first working order selected")
        assert app.snapshot.selected.order.client_id == AMENDED_STOP
        await pilot.press("enter")
        assert isinstance(app.screen, OrderDetailScreen)
        table = app.screen.query_one(TransitionTable)
        rows = [tuple(str(c) for c in table.get_row_at(k)) for k in range(table.row_count)]
        assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
            ("3684", "-", "Submitted", "submit"), ("3684", "Submitted", "Untriggered", "accept_conditional"),
            ("3691", "Untriggered", "PendingAmend", "amend"),
            ("3691", "PendingAmend", "Untriggered", "amend_ack_conditional")]
        await pilot.press("escape")
        await pilot.press("s")
        assert isinstance(app.screen, StateMachineScreen)
        cards = {c.state.value: c for c in app.screen.query(StateCard)}
        assert {name for name, c in cards.items() if c.has_class("visited")} == \
            {"Submitted", "Untriggered", "PendingAmend"}
        assert [name for name, c in cards.items() if c.has_class("current")] == ["Untriggered"]
        await pilot.press("escape", "t")
        assert isinstance(app.screen, TradesScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)

    console(AMENDED, scenario)


def test_every_key_is_in_the_footer_and_in_the_command_palette() -> None:
    async def scenario(pilot) -> None:
        app = pilot.app
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for key, action, label, _ in KEYS:
            assert any(t.startswith(f"{label} (") for t in titles), label
        shown = {b.binding.action for b in app.active_bindings.values() if b.binding.show}
        assert {action for key, action, _, _ in KEYS if key != "enter"} <= shown

    console(FLAT_BEFORE_FIRST_ORDER, scenario)


def test_a_replay_that_fails_stops_loudly_and_the_console_stays_up() -> None:
    app = ConsoleApp(replay_of(hold_at=LONG))
    session = app.replay.session
    bar = session.bar

    async def breaks_at_3600(i: int) -> None:
        # A bug (or a venue that cannot go on) inside the engine's bar: not the operator's doing.
        if i == 3600:
            raise RuntimeError("the venue stopped answering")
        await bar(i)

    session.bar = breaks_at_3600

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await held_at(pilot, LONG)
            await step_to_failure(pilot)

    async def step_to_failure(pilot) -> None:
        app.replay.send(OperatorCommand(Command.STEP, 100))
        await until(pilot, lambda: "the replay stopped" in app.snapshot.session.log[-1], "the failure logged")
        assert app.snapshot.session.log[-1] == \
            "bar 3599: error: the replay stopped: RuntimeError: the venue stopped answering"
        assert app.return_code is None and isinstance(app.screen, MainScreen)  # still up, the last picture shown

    asyncio.run(go())


def test_reconciliation_and_health_render_what_a_live_venue_reports() -> None:
    """The simulator has no stream and nothing to reconcile; a live venue's snapshots fill the same
    panes (drawn here from fixed values, every field; test_console_venue.py draws the emulator's)."""
    health = HealthSnapshot("demo", stream="reconnecting", reconnects=3, last_message_age_s=12.5,
                            rate_limits=(EndpointBudget("/v5/order/create", 9, 10), EndpointBudget("/v5/order/cancel", 2, 10)),
                            clock_offset_ms=-35.0, retries=4, journal_path="runs/demo.db", journal_bytes=2_500_000)
    t0 = 1_738_972_800_000  # 2025-02-08 00:00 UTC
    drift = tuple(DriftEvent(t0 + k * 60_000, "order", f"pd-{k} New", "absent", "marked Cancelled") for k in range(7))
    checked = ReconciliationSnapshot("demo", last_run_ts=t0 + 3_600_000, result="7 drifts fixed", runs=12, drift=drift,
                                     drift_count=9)

    async def scenario(pilot) -> None:
        app = pilot.app
        sim = text_of(app.screen.query_one(HealthPane))
        assert "stream       n/a" in sim and "rate limits  n/a" in sim and "no stream" in sim
        assert "no venue to reconcile" in text_of(app.screen.query_one(ReconciliationPane))
        app.snapshot = attrs.evolve(app.snapshot, health=health, reconciliation=checked)
        await pilot.pause()
        shown = text_of(app.screen.query_one(HealthPane))
        for line in ("stream           reconnecting (3 reconnects)", "last message     12.5 s ago",
                     "clock offset     -35 ms", "retries          4", "journal          2.5 MB runs/demo.db",
                     "/v5/order/create 9/10 per 1 s", "/v5/order/cancel 2/10 per 1 s"):
            assert line in shown, (line, shown)
        assert "n/a" not in shown
        shown = text_of(app.screen.query_one(ReconciliationPane))
        for line in ("last run     2025-02-08 01:00 UTC", "result       7 drifts fixed", "runs         12",
                     "drift events 9", "4 earlier drift events (the journal has them all)"):
            assert line in shown, (line, shown)
        # a drift event may wrap in a narrow pane
        assert "2025-02-08 00:06 order: ours pd-6 New, venue absent; marked Cancelled" in " ".join(shown.split())
        assert "pd-1 " not in shown  # the oldest are counted, not listed

    console(FLAT_BEFORE_FIRST_ORDER, scenario)


def text_of(pane) -> str:
    """A pane's content as plain text, one line per row, as wide as the pane."""
    out = Console(width=pane.content_region.width, file=io.StringIO(), color_system=None, record=True)
    out.print(pane.content)  # what the pane was last given to show
    return "\n".join(line.rstrip() for line in out.export_text().splitlines())


def test_a_busy_screen_draws_only_the_newest_of_the_snapshots_waiting_for_it() -> None:
    drawn: list[int] = []

    class Counting(ConsoleApp):
        def watch_snapshot(self, snap) -> None:
            if snap is not None:
                drawn.append(snap.session.bar)
            super().watch_snapshot(snap)

    app = Counting(replay_of(hold_at=LONG))

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await held_at(pilot, LONG)
            drawn.clear()
            base = app.snapshot
            # Fifty snapshots arrive while the app is busy (nothing awaits between the posts) ...
            for k in range(50):
                app.post_message(SnapshotPosted(attrs.evolve(base, session=attrs.evolve(base.session, bar=k))))
            await pilot.pause()
            # ... and only the newest is drawn: the replay never waits for the screen to catch up.
            assert drawn == [49]

    asyncio.run(go())
