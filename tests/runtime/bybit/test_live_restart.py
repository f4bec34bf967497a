"""`playdeck run` against a running emulator (`--endpoint`), as an operator runs it: a process that
follows the venue's streams. Killed with SIGKILL while it has an open order and a position, then
started again on its journal, it sends no order twice and loses no fill; and a run's files, log and
journal never hold its secret."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from emulator_kit import make_config
from live_kit import HOLD_AND_QUOTE, compare
from parity_kit import write_exec_csv
from paths import ROOT_DIR
from playdeck.runtime.bybit.client import BybitRest
from playdeck.runtime.bybit.emulator import AccountSpec, BackgroundEmulator, RateLimitSpec
from playdeck.runtime.data.csv_import import import_csv
from playdeck.runtime.execution.orders import Instrument

PLAY = HOLD_AND_QUOTE
KEY, SECRET = "restart-key-7f3a", "restart-secret-c41d9e"


def runner(play: Path, url: str, journal: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PLAYDECK_BYBIT_KEY=KEY, PLAYDECK_BYBIT_SECRET=SECRET)
    return subprocess.Popen([sys.executable, "-m", "playdeck.tui.cli", "run", str(play), "--backend", "emulator",
                             "--endpoint", url, "--journal", str(journal), "--out", str(out)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=ROOT_DIR)


def acted_on(journal: Path) -> int:
    """The last bar the runner acted on, from its journal (-1 before it has)."""
    if not journal.exists():
        return -1
    try:
        row = sqlite3.connect(journal).execute("SELECT value FROM runner WHERE key = 'bar'").fetchone()
    except sqlite3.OperationalError:
        return -1
    return -1 if row is None else int(row[0])


def wait_until(test, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if proc.poll() is not None:
            raise AssertionError(f"the runner exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def open_orders_and_position(journal: Path) -> tuple[int, float]:
    db = sqlite3.connect(journal)
    (n,) = db.execute("SELECT count(*) FROM orders WHERE status IN ('New', 'Untriggered', 'PartiallyFilled')").fetchone()
    (qty,) = db.execute("SELECT COALESCE(SUM(CASE side WHEN 'buy' THEN qty ELSE -qty END), 0) FROM fills").fetchone()
    return n, qty


def test_killed_with_sigkill_then_restarted_on_its_journal(tmp_path: Path) -> None:
    play = tmp_path / "hold_and_quote.yml"
    play.write_text(PLAY)
    csv = write_exec_csv(str(ROOT_DIR / "plays" / "ema_cross.yml"), tmp_path / "bars.csv", 200)
    bars = import_csv(str(csv), "BTCUSDT", None).bars
    config = make_config(bars, start_bar=40, account=AccountSpec(equity=10_000.0, leverage=2.0, maker_fee=0.0002,
                                                                 taker_fee=0.00055, slippage_bps=2.0),
                         limits=RateLimitSpec(enabled=True), key=KEY, secret=SECRET)
    journal, out, log = tmp_path / "journal.sqlite", tmp_path / "out", tmp_path / "run.log"
    with BackgroundEmulator(config) as bg:
        emu = bg.emu
        assert emu is not None
        proc = runner(play, bg.url, journal, out, log)
        try:
            wait_until(lambda: acted_on(journal) >= 40, proc, log)
            # bars until it holds a position and a resting take-profit
            for _ in range(30):
                bar = bg.advance(1) and emu.venue.bar
                wait_until(lambda: acted_on(journal) >= bar, proc, log)
                n_open, qty = open_orders_and_position(journal)
                if n_open >= 1 and qty < 0:
                    break
            assert n_open >= 1 and qty < 0, log.read_text()[-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            # the market goes on while it is down: the take-profit may fill, bars pass
            bg.advance(3)
            before = sqlite3.connect(journal).execute("SELECT count(*) FROM orders").fetchone()[0]
            proc = runner(play, bg.url, journal, out, log)
            wait_until(lambda: acted_on(journal) >= emu.venue.bar, proc, log)
            for _ in range(12):
                bar = bg.advance(1) and emu.venue.bar
                wait_until(lambda: acted_on(journal) >= bar, proc, log)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
        text = log.read_text()
        assert "journal read back" in text
        rest = BybitRest(key=KEY, secret=SECRET, endpoint=bg.url)
        problems = asyncio.run(compare(rest, journal, Instrument("BTCUSDT", 0.1, 0.001, 0.001), 10_000.0))
        assert problems == []
        # no order twice: every order at the exchange is one order of the journal, and back
        history = asyncio.run(rest._pages("get_order_history", symbol="BTCUSDT", limit=50))
        links = [o["orderLinkId"] for o in history if o["orderLinkId"]]
        assert len(links) == len(set(links))
        db = sqlite3.connect(journal)
        ours = {r[0] for r in db.execute("SELECT order_id FROM orders WHERE order_id != ''")}
        assert {o["orderId"] for o in history if o["orderLinkId"]} <= ours
        assert db.execute("SELECT count(*) FROM orders").fetchone()[0] >= before
        # the artifacts of the second run were written
        assert (out / "fills.csv").exists() and (out / "report.json").exists()
        # secrets: not in the log, the journal, or any file written
        for path in [log, *out.rglob("*"), *tmp_path.glob("journal.sqlite*")]:
            if path.is_file():
                data = path.read_bytes()
                assert SECRET.encode() not in data, path


def test_a_trail_moves_on_after_a_restart(tmp_path: Path) -> None:
    """The trail playdeck keeps itself (its best price, its distance) survives a restart on the
    journal and goes on ratcheting; the whole run still ends journal == exchange."""
    import attrs

    from playdeck.compiler import compile_file
    from playdeck.compiler.lower import lower
    from playdeck.runtime.bybit.runner import RunConfig, emulator_for, live_run

    play = str(ROOT_DIR / "plays" / "atr_trail.yml")
    data = write_exec_csv(play, tmp_path / "bars.csv", 300)
    plan = lower(compile_file(play).ir)
    journal = tmp_path / "journal.sqlite"

    def config(out: str) -> RunConfig:
        return RunConfig(play, backend="emulator", data=str(data), out=str(tmp_path / out), journal=str(journal),
                         push_wait_s=0.5, echo=lambda line: None)

    async def scenario() -> tuple[dict, dict, list[str], list[float]]:
        emu = await emulator_for(config("first"), plan)
        try:
            async with live_run(config("first"), plan, emu) as run:
                await run.warm_bars()
                moved = 0
                while moved < 2:  # until a trail has ratcheted twice
                    before = None if run.backend.trail is None else run.backend.trail.level
                    step = await run.step_once()
                    assert not step["end"], "the data ended before a trail moved"
                    trail = run.backend.trail
                    if step["closed"] and trail is not None and before is not None and trail.level != before:
                        moved += 1
                kept = {"order": run.backend.trail_id, **attrs.asdict(run.backend.trail)}
            async with live_run(config("second"), plan, emu) as run:
                restored = {"order": run.backend.trail_id, **attrs.asdict(run.backend.trail)}
                await run.warm_bars()
                levels = []
                while not (await run.step_once())["end"]:
                    if run.backend.trail_id == kept["order"] and run.backend.trail is not None:
                        levels.append(run.backend.trail.level)
                problems = await compare(run.rest, journal, run.instrument, 10_000.0)
            return kept, restored, problems, levels
        finally:
            await emu.stop()

    kept, restored, problems, levels = asyncio.run(scenario())
    assert repr(restored) == repr(kept)  # (a distance trail's pct is NaN, which equals nothing)
    assert problems == []
    # it went on from where it was: never looser than before the restart (a long's stop only rises)
    assert all(level >= kept["level"] for level in levels) if kept["long"] else \
        all(level <= kept["level"] for level in levels)
