"""Driving `playdeck run` in lockstep from a test, with a hand on every step (faults, trades by hand),
and the check every fault test ends with: journal == exchange.

Everything is real: the emulator serves loopback HTTP and WebSockets, the runner talks pybit and
websockets to it; a test only injects what goes wrong, through the emulator's own fault API.
"""
from __future__ import annotations

import asyncio
import csv
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from parity_kit import write_exec_csv
from paths import ROOT_DIR
from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import run_backtest
from playdeck.runtime.bybit.journal import Journal
from playdeck.runtime.bybit.reports import order_report, position_report
from playdeck.runtime.bybit.runner import LiveRun, RunConfig, emulator_for, live_run
from playdeck.runtime.execution.orders import Fill, Instrument
from playdeck.runtime.execution.trading_state import TradingState

Hook = Callable[[LiveRun, Any, dict[str, Any]], Awaitable[None]]


async def drive(play: str, data: Path, out: Path, on_step: Hook | None = None, *, lines: list[str] | None = None,
                before: Callable[[Any], Awaitable[None]] | None = None, emulator: dict[str, Any] | None = None,
                keep: list[LiveRun] | None = None, **cfg: Any) -> tuple[dict[str, Any], list[str]]:
    """Run `play` on `data` through the in-process emulator to the end, calling `on_step(run, emu,
    step)` at every step; then compare journal and exchange. Returns the report and the problems.
    `before(emu)` runs before the runner starts (a trade by hand); `keep` receives the run."""
    plan = lower(compile_file(play).ir)
    config = RunConfig(play, backend="emulator", data=str(data), out=str(out), echo=(lines.append if lines is not None
                                                                                     else None),
                       **{"push_wait_s": 0.5, **cfg})
    emu = await emulator_for(config, plan, **(emulator or {}))
    try:
        if before is not None:
            await before(emu)
        async with live_run(config, plan, emu) as run:
            if keep is not None:
                keep.append(run)
            if on_step is not None:
                async def hook(step: dict[str, Any]) -> None:
                    await on_step(run, emu, step)
                run.on_step = hook
            await run.warm_bars()
            while not (await run.step_once())["end"]:
                pass
            report = run.finish()
            problems = await journal_vs_exchange(run)
        return report, problems
    finally:
        await emu.stop()


async def journal_vs_exchange(run: LiveRun) -> list[str]:
    """Where the journal and the exchange disagree: open orders, executions (each execId of the
    exchange in the journal exactly once), the position."""
    return await compare(run.rest, run.journal_path, run.instrument, run.plan.play.account.equity)


async def compare(rest: Any, journal_path: Path, inst: Instrument, equity: float) -> list[str]:
    """`journal_vs_exchange` for a journal on disk and a BybitRest on the exchange."""
    symbol = inst.symbol
    problems: list[str] = []
    journal = Journal(journal_path)
    try:
        events = journal.events()
        began = journal.session_start_ms()  # executions before the session are not its own
    finally:
        journal.close()
    state = TradingState(inst, equity, solvent=False)
    state.apply_all(events)
    open_at_exchange = {order_report(i).order_id for i in await rest.open_orders(symbol)}
    open_in_journal = {rec.order_id for rec in state.open.values()}
    if open_at_exchange != open_in_journal:
        problems.append(f"open orders: exchange {sorted(open_at_exchange)}, journal {sorted(open_in_journal)}")
    counted = Counter(e.exec_id for e in events if isinstance(e, Fill))
    trades = [i for i in await rest.executions(symbol)
              if i.get("execType") in ("Trade", "BustTrade") and int(i["execTime"]) >= began]
    for item in trades:
        n = counted.get(item["execId"], 0)
        if n != 1:
            problems.append(f"execution {item['execId']} ({item.get('orderLinkId')}) is in the journal {n} times")
    unknown = set(counted) - {i["execId"] for i in trades} - {""}
    unknown = {x for x in unknown if not x.startswith("adopted-")}
    if unknown:
        problems.append(f"fills in the journal the exchange does not have: {sorted(unknown)[:5]}")
    position = position_report(await rest.position(symbol)).qty
    if abs(position - state.position.qty) > inst.qty_step / 2:
        problems.append(f"position: exchange {position}, journal {state.position.qty}")
    return problems


# A Play that keeps something open at the venue nearly always: a position (a market sell when flat)
# and, while short, a take-profit limit resting under the close.
HOLD_AND_QUOTE = """\
play: hold_and_quote
description: sell at market when flat; while short, keep a take-profit limit resting under the close.
market:
  symbol: BTCUSDT
  exec: 15m
account:
  equity: 10000
  leverage: 2
  fees: {maker: 0.0002, taker: 0.00055}
  slippage_bps: 2
features:
  fast: ema(close, 3)
blocks: |
  block enter:
    when flat and fast > 0:
      market sell qty 0.05
  block quote:
    when short and not tp.pending:
      limit buy qty 0.05 at close - 40 as tp
"""


def by_hand(url: str, link: str, side: str = "Buy") -> None:
    """A market order of 0.05 BTCUSDT placed on the emulator's default account by someone else
    (pybit, as a person's script would)."""
    from pybit.unified_trading import HTTP

    from playdeck.runtime.bybit.emulator import DEFAULT_KEY, DEFAULT_SECRET

    s = HTTP(api_key=DEFAULT_KEY, api_secret=DEFAULT_SECRET, max_retries=1)
    s.endpoint = url
    s.client.trust_env = False
    s.place_order(category="linear", symbol="BTCUSDT", side=side, orderType="Market", qty="0.05", orderLinkId=link)


EMA = str(ROOT_DIR / "plays" / "ema_cross.yml")


def ema_case(root: Path, bars: int = 240) -> dict[str, Any]:
    """ema_cross on `bars` exec bars written to `root`: the data, its backtest, and the bars whose
    close sends an order (the bar before a fill), where a test injects its fault."""
    data = write_exec_csv(EMA, root / "bars.csv", bars)
    bt = root / "backtest"
    run_backtest(EMA, data=str(data), out=str(bt))
    with (bt / "fills.csv").open() as fh:
        fill_bars = sorted({int(r["bar"]) for r in csv.DictReader(fh)})
    return {"data": data, "bt": bt, "send_bars": [b - 1 for b in fill_bars]}


def run_sync(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]
