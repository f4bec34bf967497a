"""Faults a live run survives with nothing lost: each run goes through the emulator in lockstep (pybit
and websockets on loopback), a fault is injected through the emulator's own fault API at a chosen
step, and every run ends with journal == exchange (the same open orders, each execId of the
exchange in the journal once, the same position). Where the fault loses nothing for good (a
dropped push is found again by reconciliation), the run must still equal its backtest."""
from __future__ import annotations

import asyncio
import csv
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from live_kit import EMA, by_hand, drive, ema_case
from parity_kit import differences, write_exec_csv

@pytest.fixture(scope="module")
def ema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return ema_case(tmp_path_factory.mktemp("ema"))


def at_close(bar: int, step: dict[str, Any]) -> bool:
    return bool(step["closed"]) and step["bar"] == bar


def go(coro: Any) -> Any:
    return asyncio.run(coro)


def test_private_stream_closed_mid_run(ema: dict[str, Any], tmp_path: Path) -> None:
    bar = ema["send_bars"][3]

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        if at_close(bar, step):
            await emu.close_streams("private")

    lines: list[str] = []
    report, problems = go(drive(EMA, ema["data"], tmp_path, hook, lines=lines))
    assert problems == []
    assert any("private stream reconnected (2)" in line for line in lines)
    assert differences(ema["bt"], tmp_path) == []


def test_private_pushes_dropped_an_execution_among_them(ema: dict[str, Any], tmp_path: Path) -> None:
    bar = ema["send_bars"][2]

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        if at_close(bar, step):
            emu.drop_private(2, "execution")  # the fills of the orders sent at this close

    lines: list[str] = []
    report, problems = go(drive(EMA, ema["data"], tmp_path, hook, lines=lines))
    assert problems == []
    assert any("private pushes lost" in line for line in lines)
    assert report["drift"] >= 1  # reconciliation found the executions and says so
    rows = sqlite3.connect(tmp_path / "journal.sqlite").execute("SELECT what FROM drift").fetchall()
    assert ("execution missed",) in rows
    assert differences(ema["bt"], tmp_path) == []


def test_a_burst_of_10006_waits_and_goes_on(ema: dict[str, Any], tmp_path: Path) -> None:
    bar = ema["send_bars"][1]
    runs: list[Any] = []

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        if at_close(bar, step):
            emu.fail_next(10006, 3)

    report, problems = go(drive(EMA, ema["data"], tmp_path, hook, keep=runs))
    assert problems == []
    assert runs[0].rest.retries >= 3
    assert differences(ema["bt"], tmp_path) == []


def test_10002_after_the_server_clock_moved(ema: dict[str, Any], tmp_path: Path) -> None:
    bar = ema["send_bars"][1]

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        if at_close(bar, step):
            emu.skew_clock(30_000)  # signatures now fall outside recv_window until the clock is measured

    report, problems = go(drive(EMA, ema["data"], tmp_path, hook))
    assert problems == []
    assert differences(ema["bt"], tmp_path) == []


def test_a_create_whose_reply_is_lost_is_found_not_sent_twice(ema: dict[str, Any], tmp_path: Path) -> None:
    bar = ema["send_bars"][1]

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        if at_close(bar, step):
            emu.lose_replies(1)

    lines: list[str] = []
    report, problems = go(drive(EMA, ema["data"], tmp_path, hook, lines=lines, rest_timeout=0.5,
                                emulator={"lost_reply_hold_s": 0.5}))
    assert problems == []
    assert any("already at Bybit (110072), adopted" in line for line in lines)
    assert differences(ema["bt"], tmp_path) == []


def test_the_emulator_restarting(ema: dict[str, Any], tmp_path: Path) -> None:
    bar = ema["send_bars"][2]

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        if at_close(bar, step):
            await emu.restart()

    lines: list[str] = []
    report, problems = go(drive(EMA, ema["data"], tmp_path, hook, lines=lines))
    assert problems == []
    assert any("private stream reconnected" in line for line in lines)
    assert differences(ema["bt"], tmp_path) == []


# ------------------------------------------------------------------ a resting limit (its own Play)
LIMIT_PLAY = """\
play: resting_limit
description: one resting buy limit under the market while flat; it is what the fault tests cancel.
market:
  symbol: BTCUSDT
  exec: 15m
account:
  equity: 10000
  leverage: 2
  fees: {maker: 0.0002, taker: 0.00055}
  slippage_bps: 2
features:
  fast: ema(close, 5)
blocks: |
  block quote:
    when flat and not dip.pending and fast > 0:
      limit buy qty 0.1 at close - 60 as dip
"""


@pytest.fixture()
def limit_play(tmp_path: Path) -> tuple[str, Path]:
    play = tmp_path / "resting_limit.yml"
    play.write_text(LIMIT_PLAY)
    return str(play), write_exec_csv(EMA, tmp_path / "bars.csv", 120)


def _journal_paths(out: Path) -> dict[str, list[str]]:
    db = sqlite3.connect(out / "journal.sqlite")
    paths: dict[str, list[str]] = {}
    for link, new in db.execute("SELECT order_link_id, new FROM transitions ORDER BY seq"):
        paths.setdefault(link, []).append(new)
    return paths


def test_a_partial_fill_then_a_cancel_is_partially_filled_canceled(limit_play: tuple[str, Path], tmp_path: Path) -> None:
    play, data = limit_play
    state: dict[str, Any] = {}

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        if step["closed"] and step["bar"] == 2:
            emu.split_next_fill(3)  # the next limit fill comes in three parts, one a bar
        if step["closed"] and "cid" not in state:
            partly = [r for r in run.backend.orders.values() if r.status.value == "PartiallyFilled"]
            if partly:
                state["cid"] = partly[0].client_id
                state["order_id"] = partly[0].order_id
                state["cancel"] = True
        if not step["closed"] and state.pop("cancel", False):
            pass

    async def cancel_when_partly(run: Any, emu: Any, step: dict[str, Any]) -> None:
        await hook(run, emu, step)
        if step["closed"] and state.get("cid") and not state.get("sent"):
            state["sent"] = True
            # at this close the run goes on to the engine; the cancel goes out first
            await run.backend.catch_up()
            assert await run.backend.cancel_order(state["cid"]) is True
            run.processor.executor.sync()

    out = tmp_path / "run"
    report, problems = go(drive(play, data, out, cancel_when_partly))
    assert problems == []
    assert state.get("cid"), "no limit filled partially: the fault did nothing"
    path = _journal_paths(out)[state["cid"]]
    assert path[-3:] == ["PartiallyFilled", "PendingCancel", "PartiallyFilledCanceled"]
    with (out / "orders.csv").open() as fh:
        row = next(r for r in csv.DictReader(fh) if r["order_id"] == state["order_id"])
    assert row["final_status"] == "PartiallyFilledCanceled"


def test_a_cancel_that_loses_the_race_to_a_fill(limit_play: tuple[str, Path], tmp_path: Path) -> None:
    play, data = limit_play
    state: dict[str, Any] = {}

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        # Paused right after the limit filled, before the backend has read the fill: cancel it.
        if not step["closed"] and "cid" not in state:
            open_limits = [r for r in run.backend.orders.values() if r.status.value == "New"]
            if open_limits:
                state["cid"] = open_limits[0].client_id
                state["cancelled"] = await run.backend.cancel_order(state["cid"])

    out = tmp_path / "run"
    report, problems = go(drive(play, data, out, hook))
    assert problems == []
    assert state["cancelled"] is False  # Bybit said 110001: too late, it filled
    path = _journal_paths(out)[state["cid"]]
    assert path[-2:] == ["PendingCancel", "Filled"]
    db = sqlite3.connect(out / "journal.sqlite")
    (n,) = db.execute("SELECT count(*) FROM fills WHERE order_link_id = ?", (state["cid"],)).fetchone()
    assert n == 1


BROKE_PLAY = LIMIT_PLAY.replace("limit buy qty 0.1 at close - 60 as dip", "market buy usdt 500000 as dip")


def test_an_order_refused_for_balance_is_not_retried_and_says_why(tmp_path: Path) -> None:
    play = tmp_path / "broke.yml"
    play.write_text(BROKE_PLAY.replace("play: resting_limit", "play: broke"))
    data = write_exec_csv(EMA, tmp_path / "bars.csv", 12)
    runs: list[Any] = []
    lines: list[str] = []
    report, problems = go(drive(str(play), data, tmp_path / "run", lines=lines, keep=runs))
    assert problems == []
    rejected = [line for line in lines if "rejected" in line and "110007" in line]
    assert rejected, lines[-20:]
    sent = runs[0].rest.sent.get("/v5/order/create", 0)
    refused = report["orders_by_status"].get("Rejected", 0)
    # one request each, never sent again (a request the venue's rate limit turned away is not a refusal)
    assert refused >= 1 and sent - runs[0].rest.retries == refused
    assert report["rejected_by_reason"] == {"insufficient margin": refused}


def test_a_position_traded_by_hand_before_the_start_is_adopted_not_flattened(ema: dict[str, Any],
                                                                            tmp_path: Path) -> None:
    async def trade_first(emu: Any) -> None:
        await asyncio.to_thread(by_hand, emu.url, "by-hand-1")
        await emu.advance(1)  # it fills before the runner starts

    out = tmp_path / "run"
    lines: list[str] = []
    report, problems = go(drive(EMA, ema["data"], out, before=trade_first, lines=lines))
    assert problems == []
    drift = sqlite3.connect(out / "journal.sqlite").execute("SELECT what, local, exchange, action FROM drift").fetchall()
    assert ("position", "0.0", "0.05", "adopted Bybit's position") in drift, drift
    assert any("drift: position" in line for line in lines)
    # adopted as the position it was: the run's first fill is the adoption, at the venue's entry
    with (out / "fills.csv").open() as fh:
        first = next(csv.DictReader(fh))
    assert (first["side"], first["qty"]) == ("buy", "0.05")


def test_a_trade_by_hand_during_the_run_is_adopted(ema: dict[str, Any], tmp_path: Path) -> None:
    bar = ema["send_bars"][4] + 3

    async def hook(run: Any, emu: Any, step: dict[str, Any]) -> None:
        if at_close(bar, step):
            await asyncio.to_thread(by_hand, emu.url, "by-hand-2", "Sell")

    out = tmp_path / "run"
    lines: list[str] = []
    report, problems = go(drive(EMA, ema["data"], out, hook, lines=lines))
    assert problems == []
    drift = sqlite3.connect(out / "journal.sqlite").execute("SELECT what, exchange, action FROM drift").fetchall()
    assert any(what == "unknown order" and "by-hand-2" in exchange and action == "adopted"
               for what, exchange, action in drift), drift
    assert any("drift" in line and "by-hand-2" in line for line in lines)


def test_reconciliation_on_a_clock_finds_nothing_when_nothing_went_wrong(ema: dict[str, Any], tmp_path: Path) -> None:
    runs: list[Any] = []
    # (rate limits off: five requests a step for a few hundred steps is not what is tested here)
    report, problems = go(drive(EMA, ema["data"], tmp_path, keep=runs, reconcile_every_s=0.0, rate_limits=False))
    assert problems == []
    r = runs[0].backend.reconciliation()
    assert r.runs is not None and r.runs > 100  # every step: the clock's interval is 0 here
    assert r.result == "in sync" and r.drift_count == 0
    assert differences(ema["bt"], tmp_path) == []
