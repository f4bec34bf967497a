"""The console app: it owns a driver (a Replay on the simulator or a VenueRun on the emulator, demo
or live; tui/driver.py) and so the Session, runs it as its own task, turns keys into operator
commands, and hands each published snapshot down to the screens.

Data flows one way: the driver publishes frozen snapshots (a newer one replaces one not yet read,
so a slow screen skips frames and never holds up the engine); widgets render them; what the
operator does goes up as messages and actions and reaches the session as queued commands, run
between bars. No widget touches the session.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from playdeck.tui.confirm import ConfirmScreen
from playdeck.tui.main_screen import MainScreen
from playdeck.tui.order_detail import OrderDetailScreen
from playdeck.tui.driver import Command, OperatorCommand, SessionDriver
from playdeck.tui.snapshot import ConsoleSnapshot
from playdeck.tui.state_machine import StateMachineScreen
from playdeck.tui.trades import TradesScreen

SNAPSHOT_SCREENS = (MainScreen, OrderDetailScreen, StateMachineScreen, TradesScreen)

# (key, action, footer label, what it does: for the command palette and the README)
KEYS = (
    ("p", "toggle_pause", "Pause", "pause or resume trading (bars keep flowing)"),
    ("c", "cancel_order", "Cancel", "cancel the selected working order"),
    ("f", "flatten", "Flatten", "cancel every order and close the position (asks first)"),
    ("k", "kill", "Kill", "kill switch: cancel all, close, stop trading (asks first)"),
    ("r", "reconcile", "Reconcile", "reconcile with the venue now"),
    ("plus", "faster", "Faster", "replay faster"),
    ("minus", "slower", "Slower", "replay slower"),
    ("enter", "order_detail", "Order", "the selected order in full, with every transition"),
    ("s", "state_machine", "States", "the order state machine, the selected order's way marked"),
    ("t", "trades", "Trades", "closed trades, PnL and the equity curve"),
    ("q", "request_quit", "Quit", "quit (asks when orders are working)"),
)
KEY_DISPLAY = {"plus": "+", "minus": "-", "enter": "⏎"}


class SnapshotPosted(Message):
    """A new snapshot from the driver; it replaces one still waiting (only the latest is drawn)."""

    def __init__(self, snapshot: ConsoleSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotPosted)


class ConsoleApp(App):
    CSS_PATH = Path(__file__).with_name("console.tcss")  # absolute: also for a subclass elsewhere
    TITLE = "playdeck console"
    # enter is the tables' own key (they say RowSelected); it is listed for the footer and palette.
    BINDINGS = [Binding(key, action, label, key_display=KEY_DISPLAY.get(key), show=key != "enter")
                for key, action, label, _ in KEYS]

    snapshot: reactive[ConsoleSnapshot | None] = reactive(None, always_update=True)

    def __init__(self, replay: SessionDriver) -> None:
        super().__init__()
        self.replay = replay  # the driver (the name from when a replay was the only one)
        replay.publish = self._publish
        self.selected: str | None = None  # client id of the order under the cursor

    def _publish(self, snap: ConsoleSnapshot) -> None:
        self.post_message(SnapshotPosted(snap))

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        if self.replay.session is None:  # a venue: connecting, warming up, reconciling come first
            self.notify(f"connecting to the {self.replay.backend} venue...", timeout=5)
        # Its own task: bars advance on the driver's clock, whatever the screen is doing. A failure
        # is reported by on_worker_state_changed, not by tearing the app down mid-session.
        self.run_worker(self.replay.run(), name="replay", group="replay", exit_on_error=False)

    def on_snapshot_posted(self, message: SnapshotPosted) -> None:
        self.snapshot = message.snapshot

    def watch_snapshot(self, snap: ConsoleSnapshot | None) -> None:
        if snap is None:
            return
        for screen in self.screen_stack:
            if isinstance(screen, SNAPSHOT_SCREENS):
                screen.snapshot = snap

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "replay" or event.state is not WorkerState.ERROR:
            return
        # The engine cannot go on: say so loudly, keep the last picture on screen.
        error = event.worker.error
        session = self.replay.session
        if session is None:  # it never started (the venue refused the key, could not connect)
            self.notify(f"could not start: {error}", title="error", severity="error", timeout=60)
            return
        what = "replay" if self.replay.pace == "replay" else "run"
        session.log.append(f"bar {session.bar_index}: error: the {what} stopped: {type(error).__name__}: {error}")
        self.notify(f"the {what} stopped: {error}", title="error", severity="error", timeout=30)
        try:
            self.snapshot = self.replay.snapshot()
        except Exception:  # the snapshot itself may be what failed; the notice stands
            pass

    # ------------------------------------------------------------------ selection
    def on_main_screen_order_selected(self, message: MainScreen.OrderSelected) -> None:
        self.selected = message.client_id
        self.replay.send(OperatorCommand(Command.SELECT, message.client_id))

    def on_main_screen_order_chosen(self, message: MainScreen.OrderChosen) -> None:
        self.action_order_detail()

    # ------------------------------------------------------------------ actions
    def _send(self, kind: Command, arg: object = None) -> None:
        self.replay.send(OperatorCommand(kind, arg))

    def action_toggle_pause(self) -> None:
        self._send(Command.TOGGLE_PAUSE)

    def action_cancel_order(self) -> None:
        snap = self.snapshot
        if self.selected is None or snap is None or self.selected not in snap.working_ids:
            self.notify("select a working order to cancel", severity="warning")
            return
        self._send(Command.CANCEL, self.selected)

    def action_flatten(self) -> None:
        self._confirm("Flatten: cancel every working order and close the position at market?", "Flatten",
                      Command.FLATTEN)

    def action_kill(self) -> None:
        self._confirm("Kill switch: cancel every order, close the position and stop trading for this session?",
                      "Kill", Command.KILL)

    def _confirm(self, question: str, yes: str, kind: Command) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                self._send(kind)
        self.push_screen(ConfirmScreen(question, yes), answered)

    def action_reconcile(self) -> None:
        self._send(Command.RECONCILE)

    def action_faster(self) -> None:
        self._send(Command.FASTER)

    def action_slower(self) -> None:
        self._send(Command.SLOWER)

    def action_order_detail(self) -> None:
        if self.selected is None:
            self.notify("select an order first", severity="warning")
            return
        self._show(OrderDetailScreen())

    def action_state_machine(self) -> None:
        if not isinstance(self.screen, StateMachineScreen):
            self._show(StateMachineScreen())

    def action_trades(self) -> None:
        if not isinstance(self.screen, TradesScreen):
            self._show(TradesScreen())

    def _show(self, screen: Screen) -> None:
        screen.snapshot = self.snapshot
        self.push_screen(screen)

    def action_request_quit(self) -> None:
        snap = self.snapshot
        working = 0 if snap is None else len(snap.session.working)
        if working == 0:
            self.run_worker(self._quit(), group="quit", exclusive=True)
            return
        s = "s are" if working != 1 else " is"

        def answered(ok: bool | None) -> None:
            if ok:
                self.run_worker(self._quit(), group="quit", exclusive=True)
        self.push_screen(ConfirmScreen(f"{working} order{s} working. Quit anyway? (nothing is cancelled)", "Quit"),
                         answered)

    def action_quit(self) -> None:  # Textual's own ctrl+q: the same questions and the same clean stop
        self.action_request_quit()

    async def _quit(self) -> None:
        # The driver ends at a bar boundary first: a venue's requests in flight are answered and
        # journalled, its streams closed and its report written, before the screen goes away.
        self.notify("stopping at the end of the bar...", timeout=5)
        await self.replay.stop()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, action, label, what in KEYS:
            yield SystemCommand(f"{label} ({KEY_DISPLAY.get(key, key)})", what, getattr(self, f"action_{action}"))
