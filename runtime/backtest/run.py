"""`playdeck backtest`: data -> feeds -> plan -> engine over the simulator -> report and files."""
from __future__ import annotations

import asyncio
import gc
import os
import tempfile
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np

from playdeck.compiler import compile_file
from playdeck.compiler.lower import ExecutionPlan, lower

from playdeck.runtime.data import cache
from playdeck.runtime.data.bars import Bars, resample, tf_minutes, tf_ms
from playdeck.runtime.data.csv_import import format_ts, parse_date, range_problem
from playdeck.runtime.data.sources import load_bars
from playdeck.runtime.strategy.engine import Engine, RunResult
from playdeck.runtime.execution.executor import Executor
from playdeck.runtime.execution.trading_state import TradingState
from playdeck.runtime.data.feeds import FeedStore
from playdeck.runtime.strategy.processor import IntentProcessor, refusal_counts
from playdeck.runtime.execution.orders import Instrument, RefusalCode
from playdeck.runtime.backtest.artifacts import order_rows, write_artifacts
from playdeck.runtime.backtest.report import (equity_curve, format_report, iso, metrics, open_position, run_trades,
                                              status_counts)
from playdeck.runtime.sim.backend import DetailBars, SimBackend
from playdeck.runtime.sim.exchange import SimExchange


class BacktestError(Exception):
    """Bad options or data for a backtest (not a Play error): said in one line, exit 2."""


@attrs.define
class Backtest:
    plan: ExecutionPlan
    feeds: FeedStore
    exchange: SimExchange
    engine: Engine
    processor: IntentProcessor
    state: TradingState


def parse_when(text: str | None) -> int | None:
    """A date or date-time (UTC when no zone is given) -> epoch ms."""
    if text is None:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise BacktestError(str(exc)) from None


def bar_range(bars: Bars, from_ms: int | None, to_ms: int | None) -> tuple[int, int]:
    """Bars whose open time is in [from, to); BacktestError when --from is not before --to."""
    if from_ms is not None and to_ms is not None:
        problem = range_problem(from_ms, to_ms)
        if problem is not None:
            raise BacktestError(problem)
    ts = np.asarray(bars.ts_open)
    first = 0 if from_ms is None else int(np.searchsorted(ts, from_ms, side="left"))
    last = len(ts) if to_ms is None else int(np.searchsorted(ts, to_ms, side="left"))
    return first, last


def detail_bars(base: Bars, tf: str | None) -> Bars | None:
    """The bar magnifier's bars at `tf` from the data (None without a magnifier); data coarser than
    the asked detail is an error before the run (7.5)."""
    if tf is None:
        return None
    if tf_minutes(base.tf) > tf_minutes(tf) or tf_minutes(tf) % tf_minutes(base.tf) != 0:
        raise BacktestError(f"the Play's bar magnifier (intrabar: {tf}) needs {tf} bars or finer that make "
                            f"them, but the data is {base.tf} bars; give --data with {tf} bars, or set intrabar "
                            f"to worst_case or ohlc_path")
    return base if base.tf == tf else resample(base, tf)


def exec_bars(bars: Bars, exec_tf: str) -> Bars:
    if bars.tf == exec_tf:
        return bars
    if tf_minutes(exec_tf) % tf_minutes(bars.tf) != 0:
        raise BacktestError(f"the data is {bars.tf} bars, which cannot make the Play's exec timeframe {exec_tf}")
    out = resample(bars, exec_tf)
    n = out.n_complete
    return out.take(0, n) if n < len(out) else out


def default_out_dir(play: str, now: datetime) -> Path:
    """`runs/<play>-<UTC time to the second>`, before any `-2`, `-3` suffix."""
    return Path("runs") / f"{play}-{now.strftime('%Y%m%d-%H%M%S')}"


def claim_out_dir(out: str | None, play: str, now: datetime) -> Path:
    """Create the folder a run writes to, and check that files can be written in it, before the
    run, so a bad --out costs no run time.

    `--out` may name an existing folder (its files are replaced). The default folder is new for
    every run: when a run in the same second already took the name, `-2`, `-3`, ... is added, and
    mkdir without exist_ok makes the claim atomic between concurrent runs.
    """
    if out is not None:
        if not out.strip():
            raise BacktestError("--out is empty; give a folder, or omit --out for runs/<play>-<time>/")
        path = Path(out)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _out_dir_error(path, exc) from None
        return _writable(path)
    base = default_out_dir(play, now)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _out_dir_error(base.parent, exc) from None
    path, k = base, 1
    while True:
        try:
            path.mkdir()
            return _writable(path)
        except FileExistsError:
            if not path.is_dir():  # a file (or a dangling link) took the name: no suffix will help
                raise _out_dir_error(path, FileExistsError(17, "a file is in the way", str(path))) from None
            k += 1
            path = base.with_name(f"{base.name}-{k}")
        except OSError as exc:
            raise _out_dir_error(path, exc) from None


def _writable(folder: Path) -> Path:
    """`folder`, once a file was created in it and removed again; BacktestError when that fails (a
    folder without write permission, a read-only file system, no space for an inode, a path so
    long that no file name fits under it). The probe's name is longer than any file a run writes,
    so a path that leaves room for the probe leaves room for them."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".playdeck-write-probe-", dir=folder)
    except OSError as exc:
        raise BacktestError(f"cannot write files in the output folder {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.remove(probe)
    return folder


def _out_dir_error(path: Path, exc: OSError) -> BacktestError:
    return BacktestError(f"cannot use {path} as the output folder: {cache.folder_problem(path, exc)}")


def funding_series(data: Bars) -> tuple[np.ndarray, np.ndarray] | None:
    """The data's funding rates for the simulator: (bar open times, each bar's rate, NaN where
    unknown), or None when the data has no funding_rate column (then account.funding is used).

    Always from the data as loaded, never from exec bars resampled from it: 7.3 takes the rate of
    the bar that starts at the instant, else of the last bar before it, which only the data's own
    bars answer (see bars.resample).
    """
    if data.funding_rate is None:
        return None
    return np.asarray(data.ts_open), np.asarray(data.funding_rate)


def prepare(plan: ExecutionPlan, bars: Bars, where: str = "", *, keep_events: bool = False,
            detail: Bars | None = None,
            funding_rates: tuple[np.ndarray, np.ndarray] | None = None) -> Backtest:
    """Wire a backtest of `plan` on exec `bars`; `detail` are the bar magnifier's finer bars (when the
    Play's `account.intrabar` is a timeframe, see `detail_bars`). `funding_rates` are the data's (bar
    open times, rates) for 7.3 (see `funding_series`); by default the exec bars' own column when they
    have one (they are then the data itself: resampled bars carry none), else account.funding."""
    play = plan.play
    feeds = FeedStore.build(bars, dict(play.market.timeframes) | {tf: tf for tf in plan.timeframes})
    acc = play.account
    instrument = Instrument(play.market.symbol, acc.tick, acc.qty_step, acc.min_qty)
    magnifier = acc.magnifier
    if magnifier is not None and detail is None:
        raise BacktestError(f"the Play's bar magnifier (intrabar: {magnifier}) needs its {magnifier} bars")
    ex = SimExchange(instrument, maker_fee=acc.maker_fee, taker_fee=acc.taker_fee, slippage_bps=acc.slippage_bps,
                     # each detail bar is walked by the ohlc_path rule (7.5)
                     intrabar="ohlc_path" if magnifier is not None else acc.intrabar,
                     equity=acc.equity, leverage=acc.leverage, mmr=acc.mmr, funding=acc.funding,
                     funding_rates=funding_rates if funding_rates is not None else funding_series(bars))
    ts = np.asarray(bars.ts_open)
    magnified = None if magnifier is None else DetailBars(
        np.asarray(detail.ts_open), detail.open, detail.high, detail.low, detail.close, ts, tf_ms(bars.tf))
    backend = SimBackend(ex, history=(ts, bars.high, bars.low), detail=magnified)
    state = TradingState(instrument, acc.equity, keep_events=keep_events)
    processor = IntentProcessor(Executor(backend, state), instrument, id_prefix=play.name)
    engine = Engine(plan, feeds, processor, where=where)
    return Backtest(plan, feeds, ex, engine, processor, state)


@contextmanager
def gc_paused():
    """Pause the cyclic collector for a backtest. A run only grows its lists of fills, events and
    trades (no cycles to free), and with the collector on, each new generation rescans them again
    and again: up to a third of a busy run. Live mode runs the same engine with the collector on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_engine(bt: Backtest, first: int = 0, last: int | None = None,
               progress: Callable[[int], None] | None = None) -> RunResult:
    """Run the bar loop of a backtest (with the collector paused, see `gc_paused`)."""
    with gc_paused():
        return asyncio.run(bt.engine.run(first, last, progress=progress))


def run_backtest(play_path: str, *, data: str | None = None, data_tf: str | None = None,
                 gaps: str | None = None, start: str | None = None, end: str | None = None, out: str | None = None,
                 write: bool = True, progress: Callable[[int, int], None] | None = None,
                 cache_dir: str | None = None) -> dict[str, Any]:
    compiled = compile_file(play_path)
    plan = lower(compiled.ir)
    loaded = load_bars(plan.play.market.symbol, data, data_tf, cache_dir, plan.play.market.exec_tf, gaps)
    base, filled = loaded.bars, loaded.filled_gaps
    bars = exec_bars(base, plan.play.market.exec_tf)
    # --from/--to choose the bars that trade; features still see the bars before (they are causal),
    # and `bar` in every file keeps counting from the first bar of the data.
    first, last = bar_range(bars, parse_when(start), parse_when(end))
    if first >= last:
        if len(bars) == 0:
            raise BacktestError(f"the data holds no complete {plan.play.market.exec_tf} bar "
                                f"({len(base)} {base.tf} bars)")
        # Say where the data is, so the next --from/--to can land in it.
        chosen = " ".join(f"{flag} {value}" for flag, value in (("--from", start), ("--to", end)) if value is not None)
        raise BacktestError(f"no bars in the chosen range ({chosen}): the data's {bars.tf} bars open from "
                            f"{format_ts(int(bars.ts_open[0]))} to {format_ts(int(bars.ts_open[-1]))}")
    funding = funding_series(base)
    bt = prepare(plan, bars, where=play_path, detail=detail_bars(base, plan.play.account.magnifier),
                 funding_rates=funding)
    ready = bt.engine.ready_bar
    # Not an empty report: a run that cannot fill a single order is a mistake in the Play or the
    # range. An order sent at the close of the last bar could only fill in the bar after it.
    ends = f"{'chosen range ends' if last < len(bars) else 'data ends'} at bar {last - 1}"
    if ready >= last - 1:
        raise BacktestError(
            f"the Play cannot trade in this run: its features are ready at bar {ready} (warm-up), so its "
            f"first order could fill in bar {ready + 1}, but the {ends} "
            f"({len(bars)} {plan.play.market.exec_tf} bars in the data)")
    if first >= last - 1:
        raise BacktestError(
            f"the Play cannot trade in this run: the chosen range is the one bar {first}, and an order "
            f"sent at its close would fill in bar {first + 1} at the earliest; give --from and --to "
            f"at least two {plan.play.market.exec_tf} bars apart")
    out_dir = claim_out_dir(out, plan.play.name, datetime.now(timezone.utc)) if write else None
    span = last - first
    result = run_engine(bt, first, last, None if progress is None else (lambda i: progress(i - first, span)))
    if progress is not None:
        progress(span, span)  # the engine reports every 65536 bars, so its last report falls short of the end
    with gc_paused():
        eq, qty = equity_curve(bars, result.snapshots, plan.play.account.equity, result.start, result.end)
        report = build_report(bt, bars, result, eq, qty)
    if filled:
        # flat bars --gaps fill made up (in the file's timeframe): said with the data
        report["data"].update(filled_gaps=filled, filled_tf=base.tf)
    if loaded.cached is not None:  # a --data file: parsed now, or its bars mapped from the cache
        report["data"].update(label=loaded.label, cached=loaded.cached)
    if funding is not None:
        # Only for data with the column, so data without one writes the report.json it always did.
        # True: funding came from the data's rates (account.funding only where a bar had none);
        # false: the column was there but every cell empty, so account.funding was used throughout.
        report["data"]["funding_rates"] = bool(np.any(~np.isnan(funding[1])))
    if out_dir is not None:
        report["out"] = str(out_dir)
        state = bt.state
        with gc_paused():  # the writers make a column of objects per field: no cycles, and many
            last = result.end - 1
            write_artifacts(out_dir, bars.ts_open, result.start, state.fills, order_rows(state.orders),
                            run_trades(state, last, float(bars.close[last])), eq, report,
                            rejections=state.refusals, funding=state.funding)
    return report


def build_report(bt: Backtest, bars: Bars, result: RunResult, eq: np.ndarray | None = None,
                 qty: np.ndarray | None = None) -> dict[str, Any]:
    """The report of a run, read from its TradingState; the equity curve is derived here unless the
    caller has it. It holds no wall-clock time, so the same run writes the same report.json."""
    with gc_paused():
        return state_report(bt.plan.play, bt.state, bars, result.start, result.end,
                            label="synthetic" if bars.synthetic else "market data", ready_bar=result.ready_bar,
                            evaluated_bars=result.evaluated_bars, eq=eq, qty=qty)


def state_report(play: Any, state: TradingState, bars: Bars, start: int, end: int, *, label: str,
                 ready_bar: int | None, venue: str | None = None, evaluated_bars: int | None = None,
                 eq: np.ndarray | None = None, qty: np.ndarray | None = None) -> dict[str, Any]:
    """The report of bars [start, end) traded into `state`, as a backtest and `playdeck run` both
    write it (`venue`: a run's backend; `evaluated_bars`: a backtest's count). The equity curve is
    derived here unless the caller has it."""
    initial = play.account.equity
    if eq is None or qty is None:
        eq, qty = equity_curve(bars, state.snapshots, initial, start, end)
    ts = np.asarray(bars.ts_open)
    last = end - 1
    last_close = float(bars.close[last])
    # from the first bar's open to the last bar's close: the calendar time CAGR compounds over
    span_ms = int(ts[last]) + tf_ms(bars.tf) - int(ts[start])
    m = metrics(eq, qty, initial, state.fills, run_trades(state, last, last_close), play.market.exec_tf,
                first_open=float(bars.open[start]), last_close=last_close, span_ms=span_ms,
                liquidations=len(state.liquidations), insurance=state.insurance,
                funding_paid=state.funding_paid, funding_received=state.funding_received)
    report: dict[str, Any] = {"play": play.name, "symbol": play.market.symbol, "exec": play.market.exec_tf}
    if venue is not None:
        report["backend"] = venue
    report |= {
        "data": {"label": label, "bars": end - start, "from": iso(int(ts[start])), "to": iso(int(ts[last]))},
        "ready_bar": ready_bar,
        "metrics": m,
        "open_position": open_position(state, last_close),
        "orders_by_status": status_counts(state.orders),
        "rejected_by_reason": dict(refusal_counts(state.refusals)),
        "protection_refused": protection_refused(state),
        "liquidations": [{"bar": f.bar, "ts": iso(f.ts), "side": "long" if f.side.sign < 0 else "short",
                          "qty": f.qty, "price": f.price} for f in state.liquidations],
    }
    if evaluated_bars is not None:
        report["evaluated_bars"] = evaluated_bars
    report["funding"] = {"paid": round(state.funding_paid, 6), "received": round(state.funding_received, 6),
                         "payments": len(state.funding)}
    return report


_WRONG_SIDE = (RefusalCode.TRIGGER_MUST_RISE, RefusalCode.TRIGGER_MUST_FALL)
_PROTECTION = ("stop_loss", "take_profit", "trail")


def protection_refused(state: TradingState) -> dict[str, Any]:
    """Protection orders that were refused (7.2): a trigger on the wrong side of the price (Bybit's
    110092/110093), and any stop_loss / take_profit / trail refused for another reason (no position,
    a bad price); counted by the refused intent's kind. A position whose stop was refused ran without
    it, so the report says so in its headline."""
    kinds = Counter(r.kind for r in state.refusals if r.code in _WRONG_SIDE or r.kind in _PROTECTION)
    return {"total": sum(kinds.values()), "by_kind": dict(sorted(kinds.items()))}


__all__ = ["BacktestError", "run_backtest", "prepare", "format_report", "load_bars", "exec_bars"]
