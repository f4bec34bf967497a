"""SVG snapshots of the console at a fixed point of the fixed replay (console_replay: bar 3691 of
ema_pullback on seeded synthetic data, long in two layers with an amended stop_loss working):
the main screen, the stop_loss's detail with every transition, and the state machine with its
way marked. Nothing drawn reads a clock, so the pictures are the same on every run.

After a deliberate change of the look: `pytest tests/tui/test_console_svg.py --snapshot-update`,
then look at the new SVGs before committing them."""
from __future__ import annotations

from console_replay import AMENDED, held_at, replay_of
from playdeck.tui.app import ConsoleApp
from playdeck.tui.orders import WorkingOrders

SIZE = (160, 48)


async def at_the_amended_stop(pilot) -> None:
    await held_at(pilot, AMENDED)
    app = pilot.app
    # The cursor follows the order it was on as rows come and go; put it on the first row, so
    # the picture does not depend on which of the replay's snapshots the screen got to draw.
    app.screen.query_one(WorkingOrders).move_cursor(row=0, animate=False)
    # the stop_loss is the first working order: under the cursor, selected, its detail in the snapshot
    for _ in range(100):
        if app.snapshot.selected is not None:
            break
        await pilot.pause()
    assert app.snapshot.selected.order.client_id == "stop_loss-sim-8"
    # Let the tables finish laying out the rows of that last snapshot (a DataTable sizes its columns
    # on its next refresh) before a key pushes a screen over them: a screen in the background is not
    # laid out again, and its history table would be drawn with the widths of an older snapshot.
    await pilot.pause()
    await pilot.pause()


def test_main_screen(snap_compare) -> None:
    assert snap_compare(ConsoleApp(replay_of(hold_at=AMENDED)), terminal_size=SIZE, run_before=at_the_amended_stop)


def test_order_detail(snap_compare) -> None:
    assert snap_compare(ConsoleApp(replay_of(hold_at=AMENDED)), press=["enter"], terminal_size=SIZE,
                        run_before=at_the_amended_stop)


def test_state_machine(snap_compare) -> None:
    assert snap_compare(ConsoleApp(replay_of(hold_at=AMENDED)), press=["s"], terminal_size=SIZE,
                        run_before=at_the_amended_stop)
