"""The console on a venue: `--backend emulator` trades the in-process Bybit emulator through the real
BybitBackend (pybit and websockets on loopback), in lockstep at the console's pace. With the private
stream dropped and a trade made by hand behind the runner's back, the health pane shows the
reconnect and the reconciliation pane the drift that was repaired; the keys act on the venue (a
flatten closes the exchange's position); quitting ends the run with its journal equal to the
exchange and its report written. In lockstep the venue console shows what the replay console shows
at the same bar; on a running emulator (`--endpoint`) the venue's clock rules; a venue that refuses
the key is said, and the console stays up."""
from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from live_kit import EMA, HOLD_AND_QUOTE, by_hand, ema_case, journal_vs_exchange
from parity_kit import write_exec_csv
from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.bybit.reports import position_report
from playdeck.runtime.bybit.runner import RunConfig
from playdeck.runtime.execution.orders import OrderStatus
from playdeck.runtime.strategy.session import Mode
from playdeck.tui.app import ConsoleApp
from playdeck.tui.confirm import ConfirmScreen
from playdeck.tui.driver import Command, OperatorCommand
from playdeck.tui.header import SessionHeader
from playdeck.tui.health import HealthPane
from playdeck.tui.order_history import FinishedOrders
from playdeck.tui.reconciliation import ReconciliationPane
from playdeck.tui.venue_run import VenueRun
from test_console_pilot import SIZE, paths, text_of

POLLS = 6000  # looks, 10 ms apart: a minute for what a loaded machine's loopback takes


async def until(pilot, condition, what: str = "the condition", polls: int = POLLS) -> None:
    """Let the app and its run go on until `condition()` holds: the venue answers over loopback,
    so the wait is in time (bounded), not in turns of the event loop."""
    for _ in range(polls):
        if condition():
            await pilot.pause()  # and let the screen draw what made it true
            return
        await pilot.pause(0.01)
    raise AssertionError(f"never reached: {what}")


@pytest.fixture(scope="module")
def ema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return ema_case(tmp_path_factory.mktemp("ema"))


def venue_console(data: Path, out: Path, hold_at: int) -> ConsoleApp:
    cfg = RunConfig(EMA, backend="emulator", data=str(data), out=str(out), push_wait_s=0.5)
    return ConsoleApp(VenueRun(cfg, lower(compile_file(EMA).ir), speed=math.inf, hold_at=hold_at))


async def held_at(pilot, bar: int) -> None:
    app = pilot.app

    def there() -> bool:
        s = app.snapshot
        return s is not None and s.replay.held and s.session.bar == bar

    await until(pilot, there, f"the run held at bar {bar}", polls=POLLS)


async def step_to(pilot, bar: int) -> None:
    app = pilot.app
    app.replay.send(OperatorCommand(Command.STEP, bar - app.snapshot.session.bar))
    await held_at(pilot, bar)


async def quit_(pilot) -> None:
    """q (and yes, when orders are working: they stay working at the venue, and in the journal),
    and the run ends at a bar boundary: its report written, then the app exits."""
    app = pilot.app
    await pilot.press("q")
    if app.snapshot.session.working:
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
    if isinstance(app.replay, VenueRun):
        await until(pilot, lambda: app.replay.report is not None, "the run's report", polls=POLLS)
    await until(pilot, lambda: app.return_code is not None, "the app's exit", polls=POLLS)


def test_a_dropped_stream_and_a_trade_by_hand_show_in_health_and_reconciliation(ema: dict[str, Any],
                                                                                tmp_path: Path) -> None:
    hold = ema["send_bars"][2] + 2  # a position is open
    out = tmp_path / "run"
    app = venue_console(ema["data"], out, hold)

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await held_at(pilot, hold)
            driver = app.replay
            snap = app.snapshot
            assert snap.backend == "emulator" and snap.replay.pace == "lockstep"
            assert snap.session.mode is Mode.TRADING and snap.session.position_qty != 0.0
            header = text_of(app.screen.query_one(SessionHeader))
            assert "emulator" in header and "lockstep" in header
            health = text_of(app.screen.query_one(HealthPane))
            assert "connected (0 reconnects)" in health, health
            assert "no request limits kept (lockstep: compressed time)" in health
            assert str(out / "journal.sqlite") in "".join(health.split())
            # the run's orders, with the paths Bybit's reports drove them through
            history = paths(app.screen.query_one(FinishedOrders))
            assert history and all(p == "Submitted → New → Filled" for p in history.values()), history

            await driver.emu.close_streams("private")
            await asyncio.to_thread(by_hand, driver.emu.url, "by-hand-c", "Sell")
            await step_to(pilot, hold + 3)

            health = text_of(app.screen.query_one(HealthPane))
            assert "connected (1 reconnects)" in health, health
            shown = " ".join(text_of(app.screen.query_one(ReconciliationPane)).split())
            assert "result in sync" not in shown or "drift events 0" not in shown
            assert "by-hand-c" in shown and "adopted" in shown, shown
            drift = app.snapshot.reconciliation
            assert drift.drift_count >= 1 and any("by-hand-c" in d.exchange for d in drift.drift)
            log = "\n".join(app.snapshot.session.log)
            assert "private stream reconnected (2); reconciling" in log, log
            # what was adopted is ours now: journal and exchange agree
            assert await journal_vs_exchange(driver.live) == []
            await quit_(pilot)

    asyncio.run(go())
    driver = app.replay
    assert driver.report is not None and driver.report["backend"] == "emulator"
    assert (out / "equity.csv").exists() and (out / "report.json").exists()
    rows = sqlite3.connect(out / "journal.sqlite").execute("SELECT what, exchange, action FROM drift").fetchall()
    assert any("by-hand-c" in exchange and action == "adopted" for _, exchange, action in rows), rows


def test_flatten_and_kill_act_on_the_exchange(ema: dict[str, Any], tmp_path: Path) -> None:
    hold = ema["send_bars"][1] + 2  # a position is open
    app = venue_console(ema["data"], tmp_path / "run", hold)

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await held_at(pilot, hold)
            driver = app.replay
            assert app.snapshot.session.position_qty != 0.0
            await pilot.press("f")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await step_to(pilot, hold + 1)  # the close fills at the next bar's open
            assert app.snapshot.session.position_qty == 0.0
            assert position_report(await driver.live.rest.position("BTCUSDT")).qty == 0.0
            closes = {cid: p for cid, p in paths(app.screen.query_one(FinishedOrders)).items()
                      if f"-{hold}-" in cid}
            assert list(closes.values()) == ["Submitted → New → Filled"], closes

            fills_after_flatten = len(driver.live.state.fills)
            await pilot.press("k")
            await pilot.press("y")
            await until(pilot, lambda: app.snapshot.session.mode is Mode.KILLED, "the kill", polls=POLLS)
            killed_at = app.snapshot.session.bar
            later = hold + 40
            assert any(killed_at < b < later for b in ema["send_bars"])  # the blocks would have traded
            await step_to(pilot, later)
            s = app.snapshot.session
            assert s.position_qty == 0.0 and s.working == ()
            assert len(driver.live.state.fills) == fills_after_flatten  # killed: nothing was sent
            assert await journal_vs_exchange(driver.live) == []
            await quit_(pilot)

    asyncio.run(go())
    assert app.replay.report is not None


KEY, SECRET = "console-key-2b71", "console-secret-9e0c4a"


def test_on_a_running_emulator_the_venue_clock_rules_and_commands_wait_for_the_bar(tmp_path: Path) -> None:
    """`--endpoint`: the console follows a running emulator's streams; bars come when the venue
    closes them, the operator's reconcile runs between them, quitting writes the run's files and
    leaves journal == exchange."""
    from emulator_kit import make_config
    from live_kit import compare
    from playdeck.runtime.bybit.client import BybitRest
    from playdeck.runtime.bybit.emulator import AccountSpec, BackgroundEmulator
    from playdeck.runtime.data.csv_import import import_csv
    from playdeck.runtime.execution.orders import Instrument
    play = tmp_path / "hold_and_quote.yml"
    play.write_text(HOLD_AND_QUOTE)
    data = write_exec_csv(EMA, tmp_path / "bars.csv", 120)
    config = make_config(import_csv(str(data), "BTCUSDT", None).bars, start_bar=40,
                         account=AccountSpec(equity=10_000.0, leverage=2.0, maker_fee=0.0002, taker_fee=0.00055,
                                             slippage_bps=2.0), key=KEY, secret=SECRET)
    out = tmp_path / "run"
    with BackgroundEmulator(config) as bg:
        cfg = RunConfig(str(play), backend="emulator", endpoint=bg.url, key=KEY, secret=SECRET, out=str(out))
        app = ConsoleApp(VenueRun(cfg, lower(compile_file(str(play)).ir)))

        async def bar(pilot, i: int) -> None:
            await asyncio.to_thread(bg.advance, 1)
            await until(pilot, lambda: app.snapshot is not None and app.snapshot.session.bar == i, f"bar {i}",
                        polls=POLLS)

        async def go() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.snapshot is not None and app.snapshot.session.bar == 40,
                            "the warm-up", polls=POLLS)
                snap = app.snapshot
                assert snap.replay.pace == "venue" and "the venue's clock" in text_of(
                    app.screen.query_one(SessionHeader))
                assert snap.session.mode is Mode.TRADING and snap.replay.bars == 41
                # the market sell sent at bar 40's close fills in bar 41; the quote rests from bar 41's close
                await bar(pilot, 41)
                s = app.snapshot.session
                assert s.position_qty == -0.05, s
                assert [o.request.tag for o in s.working] == ["tp"]
                assert s.working[0].path[-1].value == "New"
                health = text_of(app.screen.query_one(HealthPane))
                assert "/v5/order/create" in health and "/10 per" in health, health  # a real clock: limits kept
                await pilot.press("plus")
                await pilot.press("r")
                await until(pilot, lambda: any("reconcile: in sync" in line for line in app.snapshot.session.log),
                            "the reconcile", polls=POLLS)
                assert any("the venue's clock sets the pace" in line for line in app.snapshot.session.log)
                assert app.snapshot.reconciliation.runs >= 2  # at the start, and the operator's
                await quit_(pilot)

        asyncio.run(go())
        assert app.replay.report is not None and (out / "report.json").exists()
        rest = BybitRest(key=KEY, secret=SECRET, endpoint=bg.url)
        problems = asyncio.run(compare(rest, Path(app.replay.journal_path), Instrument("BTCUSDT", 0.1, 0.001, 0.001),
                                       10_000.0))
        assert problems == []


def test_a_venue_that_refuses_the_key_is_said_and_the_console_stays_up(tmp_path: Path) -> None:
    from emulator_kit import make_config
    from playdeck.runtime.bybit.emulator import BackgroundEmulator
    from playdeck.runtime.data.csv_import import import_csv

    data = write_exec_csv(EMA, tmp_path / "bars.csv", 60)
    config = make_config(import_csv(str(data), "BTCUSDT", None).bars, start_bar=40, key=KEY, secret=SECRET)
    with BackgroundEmulator(config) as bg:
        cfg = RunConfig(EMA, backend="emulator", endpoint=bg.url, key="not-the-key", secret="nor-the-secret",
                        out=str(tmp_path / "run"))
        app = ConsoleApp(VenueRun(cfg, lower(compile_file(EMA).ir)))

        async def go() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.replay.error is not None, "the refusal")
                assert "10003" in str(app.replay.error) and app.replay.session is None
                await pilot.pause()
                assert app.return_code is None  # still up: the operator reads why, then quits
                await pilot.press("q")
                await until(pilot, lambda: app.return_code is not None, "the app's exit")

        asyncio.run(go())


def test_the_venue_console_shows_what_the_replay_console_shows(tmp_path: Path) -> None:
    """The fixed replay of the console's tests, once on the simulator and once through the emulator
    in lockstep: held at the same bar, the two screens get the same position, protection, working
    orders with their state paths (an amended stop_loss's PendingAmend among them) and equity."""
    from console_replay import AMENDED, MINUTES, PLAY, replay_of

    data = tmp_path / "minutes.csv"
    columns = np.column_stack([np.asarray(MINUTES.ts_open, dtype=np.float64), MINUTES.open, MINUTES.high,
                               MINUTES.low, MINUTES.close, MINUTES.volume])
    np.savetxt(data, columns, fmt=["%d"] + ["%.10g"] * 5, delimiter=",",
               header="timestamp,open,high,low,close,volume", comments="")
    cfg = RunConfig(str(PLAY), backend="emulator", data=str(data), out=str(tmp_path / "run"), push_wait_s=1.0)
    seen = []
    for driver in (replay_of(hold_at=AMENDED), VenueRun(cfg, lower(compile_file(str(PLAY)).ir), speed=math.inf,
                                                         hold_at=AMENDED)):
        app = ConsoleApp(driver)

        async def go() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await held_at(pilot, AMENDED)
                seen.append(app.snapshot)
                await quit_(pilot)

        asyncio.run(go())
    sim, venue = (s.session for s in seen)
    assert (seen[0].backend, seen[1].backend) == ("sim", "emulator")
    assert (venue.position_qty, venue.avg_entry, venue.layers) == (sim.position_qty, sim.avg_entry, sim.layers)
    assert venue.protection == sim.protection and venue.equity == pytest.approx(sim.equity, abs=1e-6)

    def working(s):
        return [(o.request.side, o.request.role, o.qty, o.price, o.trigger, o.path) for o in s.working]

    assert working(venue) == working(sim)
    assert any(o.path[-2:] == (OrderStatus.PENDING_AMEND, OrderStatus.UNTRIGGERED) for o in venue.working)
    assert len(venue.finished) == len(sim.finished) and len(venue.trades) == len(sim.trades)
