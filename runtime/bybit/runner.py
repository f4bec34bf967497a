"""`playdeck run`: one Play trading through Bybit's API (the emulator, demo or live) on the same
engine, IntentProcessor and TradingState as a backtest.

The run, bar by bar:
1. Warm-up: the exec timeframe's closed klines from the kline endpoint (paged), from the journal's
   first bar when it has one, so a restart numbers the bars as before. Higher timeframes are made
   from them, as the backtester makes them from its data.
2. Before the first order: the clock measured, the leverage set, the journal read back (a restart)
   and the exchange reconciled with it; only then does anything trade.
3. Each closed bar (`confirm:true` on the public stream): the backend applies the private stream's
   reports of the bar, does what the language asks at a close (expiry, the trail), the engine
   evaluates the blocks on the grown feeds and sends what they ask, and the journal notes the bar.

Against the in-process emulator (`--backend emulator` without `--endpoint`) the run is in lockstep:
the runner steps the emulator fill by fill (`Emulator.step`), so the backend answers a fill (its
stop-loss) inside the bar, where the simulator places it, and the run does what the backtest does.
Elsewhere the venue's clock rules and the runner follows the streams until it is stopped.
"""
from __future__ import annotations

import asyncio
import logging
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from playdeck.compiler import compile_file
from playdeck.compiler.lower import ExecutionPlan, lower
from playdeck.runtime.backtest.artifacts import order_rows, write_artifacts
from playdeck.runtime.backtest.report import equity_curve, iso, run_trades
from playdeck.runtime.backtest.run import BacktestError, claim_out_dir, exec_bars, state_report
from playdeck.runtime.bybit.backend import BybitBackend
from playdeck.runtime.bybit.client import BybitRest
from playdeck.runtime.bybit.errors import BybitFailure
from playdeck.runtime.bybit.history import bybit_interval
from playdeck.runtime.bybit.journal import Journal
from playdeck.runtime.bybit.live_bars import LiveBars
from playdeck.runtime.bybit.limiter import RateLimiter
from playdeck.runtime.bybit.stream import ResilientStream
from playdeck.runtime.data.bars import Bars, tf_ms
from playdeck.runtime.data.feeds import FeedStore
from playdeck.runtime.data.sources import load_bars
from playdeck.runtime.execution.executor import Executor
from playdeck.runtime.execution.orders import CashFlow, Fill, Instrument, OrderEvent, Refused
from playdeck.runtime.execution.trading_state import RefusedIntent, TradingState
from playdeck.runtime.strategy.engine import Engine
from playdeck.runtime.strategy.intents import Intent
from playdeck.runtime.strategy.processor import IntentProcessor
from playdeck.runtime.strategy.session import Session

__all__ = ["LiveError", "LiveRun", "RunConfig", "check_config", "describe_event", "emulator_bars", "emulator_for",
           "live_run", "run_play"]

log = logging.getLogger("playdeck.run")

BACKENDS = ("emulator", "demo", "live")
PRIVATE_TOPICS = ("order", "execution", "position", "wallet")
KLINE_PAGE = 1000


class LiveError(Exception):
    """A run that cannot start or go on (bad options, keys refused, the venue unreachable): one line."""


@attrs.frozen
class RunConfig:
    play: str
    backend: str = "emulator"
    data: str | None = None
    endpoint: str | None = None
    journal: str | None = None
    out: str | None = None
    key: str | None = None
    secret: str | None = None
    i_understand_live: bool = False
    warmup_bars: int = 1000  # history to fetch when the journal says nothing (streaming runs)
    cache_dir: str | None = None
    echo: Callable[[str], None] | None = None  # one line per intent, order change, fill, drift
    push_wait_s: float = 5.0  # lockstep: how long a step's pushes may take before they count as lost
    rest_timeout: float = 10.0  # seconds for one REST answer
    # Bybit's request limits, kept by the client and (in-process) enforced by the emulator. None: on,
    # except in lockstep, where a year of bars passes in minutes: limits per real second would
    # throttle a compressed clock no real run ever sees (two orders a bar, 100 bars a second).
    rate_limits: bool | None = None
    reconcile_every_s: float = 300.0  # a full reconciliation at least this often (wall clock)
    keep_events: bool = False  # the TradingState keeps every event (a console's order transitions)


class PrivateFeed:
    """The private stream's pushes into the backend, counting the lockstep emulator's push numbers
    (their message id starts with one) so the runner knows when it has read all of a step."""

    def __init__(self, backend: BybitBackend) -> None:
        self.backend = backend
        self.last_seq = 0
        self.lost = False
        self.arrived = asyncio.Event()

    def on_message(self, msg: dict[str, Any]) -> None:
        m = re.match(r"(\d+)-", str(msg.get("id", "")))
        if m is not None:
            seq = int(m.group(1))
            if seq > self.last_seq + 1:
                self.lost = True  # a push between was lost on the way
            self.last_seq = max(self.last_seq, seq)
        self.backend.on_private(msg)
        self.arrived.set()

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Until push `seq` has arrived (True), or `timeout` passed (False: some were lost)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.last_seq < seq:
            left = deadline - loop.time()
            if left <= 0:
                return False
            self.arrived.clear()
            try:
                async with asyncio.timeout(left):  # (3.11's wait_for can swallow a cancellation)
                    await self.arrived.wait()
            except TimeoutError:
                return False
        return not self.lost


class PublicBars:
    """Closed exec-timeframe klines (`confirm:true`) from the public stream, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int, float, float, float, float, float]] = asyncio.Queue()
        self.last_confirm = (0, 0.0)  # (open time, perf_counter when read) of the newest closed bar

    def on_message(self, msg: dict[str, Any]) -> None:
        if not str(msg.get("topic", "")).startswith("kline."):
            return
        for k in msg.get("data") or []:
            if k.get("confirm"):
                self.last_confirm = (int(k["start"]), time.perf_counter())
                self.queue.put_nowait((int(k["start"]), float(k["open"]), float(k["high"]), float(k["low"]),
                                       float(k["close"]), float(k["volume"])))


class LiveRun:
    """The pieces of one run and its loop (see the module docstring)."""

    def __init__(self, cfg: RunConfig, plan: ExecutionPlan, rest: BybitRest, journal: Journal,
                 urls: tuple[str, str], emulator: Any | None = None) -> None:
        self.cfg = cfg
        self.plan = plan
        self.rest = rest
        self.journal = journal
        self.public_url, self.private_url = urls
        self.emu = emulator
        play = plan.play
        acc = play.account
        self.symbol = play.market.symbol
        self.tf = play.market.exec_tf
        self.tf_ms = tf_ms(self.tf)
        self.instrument = Instrument(self.symbol, acc.tick, acc.qty_step, acc.min_qty)
        self.echo = cfg.echo or (lambda line: log.info(line))
        run_id = journal.runner("run_id")
        if run_id is None:
            run_id = datetime.now(timezone.utc).strftime("%H%M%S")
            journal.set_runner("run_id", run_id)
        prefix = re.sub(r"[^A-Za-z0-9_]", "", play.name)[:9] + run_id
        self.backend = BybitBackend(rest, instrument=self.instrument, equity=acc.equity,
                                    on_events=self._record, id_prefix=prefix)
        self.backend.on_log = self.echo
        self.backend.on_drift = lambda what, local, exchange, action: journal.record_drift(what, local, exchange, action)
        self.state = TradingState(self.instrument, acc.equity, keep_events=cfg.keep_events)
        self.processor = IntentProcessor(Executor(self.backend, self.state), self.instrument, id_prefix=prefix)
        self.bars = LiveBars(self.symbol, self.tf)
        self.private = PrivateFeed(self.backend)
        self.public = PublicBars()
        self.session: Session | None = None
        self.engine: Engine | None = None
        self.stopping = asyncio.Event()
        self.reconcile_due = False
        self.last_bar = -1
        self.lock = asyncio.Lock()
        self.out_dir: Path | None = None
        self.journal_path: Path | None = None
        # a test's hand in lockstep: called with each step before the backend answers it
        self.on_step: Callable[[dict[str, Any]], Any] | None = None
        # a screen's: called with each bar once the run has done its work on it (history bars too)
        self.on_bar: Callable[[int], None] | None = None

    # ------------------------------------------------------------------ journal and log
    def _record(self, events: list[Any]) -> None:
        self.journal.record(events)
        for e in events:
            line = describe_event(e)
            if line:
                self.echo(line)

    def _intent(self, it: Intent) -> None:
        self.journal.record_intent(it)
        side = "" if it.side is None else f" {it.side.value}"
        tag = "" if it.tag is None else f" as {it.tag}"
        self.echo(f"bar {it.bar}: intent {it.kind}{side}{tag} ({it.where})")

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        rest = self.rest
        try:
            await rest.sync_clock()
            if self.journal.runner("started_ms") is None:  # a restart goes on with its session's start
                self.journal.set_runner("started_ms", rest.clock.server_ms)
            await rest.instrument(self.symbol)
            await rest.set_leverage(self.symbol, self.plan.play.account.leverage)
        except BybitFailure as failure:
            raise LiveError(_start_failure(failure, self.cfg.backend)) from None
        await self._warm_up()
        self._build_engine()
        self._read_journal()
        self.streams = [
            ResilientStream(self.private_url, PRIVATE_TOPICS, key=self.cfg.key, secret=self.cfg.secret,
                            clock=rest.clock, resync=rest.sync_clock, on_message=self.private.on_message,
                            on_connect=self._private_connected, name="private"),
            ResilientStream(self.public_url, (f"kline.{bybit_interval(self.tf)}.{self.symbol}",),
                            on_message=self.public.on_message, on_connect=self._public_connected, name="public"),
        ]
        self.backend.stream = self.streams[0]
        self.backend.venue_name = self.cfg.backend
        self.backend.journal_path = str(self.journal.path)
        self._tasks = [asyncio.create_task(s.run()) for s in self.streams]
        for s in self.streams:
            await self._wait_connected(s)
        # What happened while we were away (or by hand) is adopted before anything trades.
        async with self.lock:
            # What happened while no one watched happened by the close of the last closed bar.
            ts, _, _, _, close = self.bars.row(len(self.bars) - 1)
            self.backend.bar_opened(len(self.bars) - 1, ts)
            self.backend.at_close(len(self.bars) - 1, ts, close)
            await self.backend.reconcile("start")
            self.processor.executor.sync()

    async def _wait_connected(self, stream: ResilientStream) -> None:
        try:
            await stream.wait_connected(30.0)
        except TimeoutError:
            raise LiveError(f"the {stream.name} stream did not connect in 30 s") from None

    async def _private_connected(self, n: int) -> None:
        if n > 1:
            # Pushes may have been lost while the stream was down: the loop takes the exchange's
            # word at its next step (not here: the stream delivers nothing until this returns).
            self.echo(f"private stream reconnected ({n}); reconciling")
            self.reconcile_due = True
            self.private.arrived.set()

    async def _public_connected(self, n: int) -> None:
        if n > 1:
            self.echo(f"public stream reconnected ({n})")

    async def _warm_up(self) -> None:
        """The closed exec klines from the journal's first bar (a restart) or `warmup_bars` back."""
        interval = bybit_interval(self.tf)
        newest = await self.rest.klines(self.symbol, interval, limit=1)
        if not newest:
            raise LiveError(f"the venue has no {self.tf} klines of {self.symbol} to warm up on")
        latest = int(newest[-1][0])
        origin = self.journal.runner("origin_ts")
        if origin is None:
            origin = latest - (self.cfg.warmup_bars - 1) * self.tf_ms
        rows = await self._klines(int(origin), latest)
        if not rows:
            raise LiveError(f"the venue has no closed {self.tf} kline of {self.symbol} to warm up on")
        self.journal.set_runner("origin_ts", rows[0][0])
        for r in rows:
            self.bars.add(*r)

    async def _klines(self, start: int, last: int) -> list[tuple[int, float, float, float, float, float]]:
        """Closed klines opening in [start, last], oldest first, a page of 1000 at a time (Bybit sends
        the newest of a window first, so windows are asked oldest first)."""
        out: list[tuple[int, float, float, float, float, float]] = []
        interval = bybit_interval(self.tf)
        now = self.rest.clock.now_ms()
        cursor = start
        while cursor <= last:
            window_end = min(last, cursor + (KLINE_PAGE - 1) * self.tf_ms)
            rows = await self.rest.klines(self.symbol, interval, start=cursor, end=window_end, limit=KLINE_PAGE)
            for r in rows:
                k = (int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
                # The newest kline of a live venue may still be forming: a bar only once it has closed.
                if k[0] + self.tf_ms <= now and (not out or k[0] > out[-1][0]):
                    out.append(k)
            cursor = window_end + self.tf_ms
        return out

    def _build_engine(self) -> None:
        feeds = self._feeds()
        self.engine = Engine(self.plan, feeds, self.processor, where=self.cfg.play)
        # The bars before the last warm-up bar are history: a restart never acts on bars it missed.
        self.session = Session(self.engine, trade_from=len(self.bars) - 1, on_intent=self._intent)
        self._feeds_for = len(self.bars)

    def _feeds(self) -> FeedStore:
        play = self.plan.play
        return FeedStore.build(self.bars.bars(), dict(play.market.timeframes) | {tf: tf for tf in self.plan.timeframes})

    def _read_journal(self) -> None:
        """A restart: the journal's events rebuild the TradingState and the backend's books."""
        events = self.journal.events()
        if not events:
            return
        self.state.apply_all(events)
        b = self.backend
        from playdeck.runtime.bybit.live_order import LiveOrder  # noqa: PLC0415 (one use, at restart)
        for rec in self.state.orders.values():
            live = LiveOrder(rec.request, status=rec.path[-1], order_id=rec.order_id, filled=rec.filled_qty,
                             triggered=any(s.value == "Triggered" for s in rec.path),
                             adopted=rec.role.is_protection or rec.role.value == "liquidation")
            if rec.role.value == "trail":
                live.adopted = False
            b.orders[rec.client_id] = live
            if rec.order_id:
                b._by_order_id[rec.order_id] = live
        for e in events:
            if isinstance(e, Fill):
                if e.exec_id:
                    b.exec_ids.add(e.exec_id)
        b.position = self.state.position
        b.cash = self.state.cash
        # executions since the session began are the session's
        b.exec_since = self.journal.session_start_ms()
        b.realized = self.state.realized_pnl
        kept = self.journal.runner("trail")
        if kept is not None and kept.get("order") in b.orders and b.orders[kept["order"]].is_open:
            from playdeck.runtime.bybit.trail import TrailPlan  # noqa: PLC0415 (one use, at restart)
            b.trail_id = kept.pop("order")
            b.trail = TrailPlan(**kept)
        seq = self.journal.runner("seq")
        if seq is not None:
            self.processor._seq = int(seq)
        last = self.journal.runner("bar")
        self.echo(f"journal read back: {len(events)} events, {len(self.state.open)} open orders, "
                  f"position {self.state.position.qty:g}, last bar acted on {last}")

    # ------------------------------------------------------------------ bars
    async def close_bar(self, i: int, path: list[float] | None = None) -> None:
        """Bar i has closed: the backend's close work, then the engine on the grown feeds."""
        assert self.session is not None and self.engine is not None
        if len(self.bars) != self._feeds_for:
            self.engine.rebind(self._feeds())
            self.session.refresh()
            self._feeds_for = len(self.bars)
        ts, o, h, l, c = self.bars.row(i)
        b = self.backend
        if i < self.session.trade_from:
            # History: closed before this session could act (warm-up, or while no one watched).
            b.at_close(i, ts, c)
            self._closed(i, ts)
            return
        await b.close_bar(i, ts, o, h, l, c, path)
        self.processor.executor.sync()
        await self.session.bar(i)
        await b.catch_up()
        self.processor.executor.sync()
        self.journal.set_runner("bar", i)
        self.journal.set_runner("seq", self.processor._seq)
        trail = b.trail
        # the trail playdeck keeps itself, so a restart moves it on from where it was
        self.journal.set_runner("trail", None if trail is None else {"order": b.trail_id, **attrs.asdict(trail)})
        self._closed(i, ts)

    def _closed(self, i: int, ts: int) -> None:
        """Bar i (opening at `ts`) is done: the next one is forming, and a screen may look."""
        self.last_bar = i
        self.backend.bar_opened(i + 1, ts + self.tf_ms)
        if self.on_bar is not None:
            self.on_bar(i)

    # ------------------------------------------------------------------ the loops
    async def run_lockstep(self) -> None:
        """Step the in-process emulator fill by fill to the end of its data."""
        await self.warm_bars()
        while not self.stopping.is_set():
            step = await self.step_once()
            if step["end"]:
                break

    async def warm_bars(self) -> None:
        """The bars the warm-up read, each closed before we trade (the last is the venue's current
        bar: the first orders are sent at its close)."""
        async with self.lock:
            for i in range(len(self.bars)):
                await self.close_bar(i)

    async def step_once(self) -> dict[str, Any]:
        """One lockstep step: the emulator walks to its next fill (the backend answers it inside
        the bar) or to the bar's close (the engine acts)."""
        b = self.backend
        self.check_streams()
        step = await self.emu.step()
        if step["end"]:
            return step
        if not await self.private.wait_for(step["private_seq"], self.cfg.push_wait_s):
            self.echo("private pushes lost in this step; reconciling")
            self.private.lost = False
            self.private.last_seq = max(self.private.last_seq, step["private_seq"])
            self.reconcile_due = True
        if self.reconcile_due:
            self.reconcile_due = False
            await b.reconcile("lost pushes")
        elif self._reconcile_is_due():
            await b.reconcile("every few minutes")
        path = step.get("path", {}).get(self.symbol, [])
        if self.on_step is not None:
            await self.on_step(step)
        if not step["closed"]:
            b.follow_path(path)
            b.pause_at(step["at"])
            await b.catch_up()
            self.processor.executor.sync()
            return step
        i = await self._closed_bar(int(step["bar"]), self.emu.venue.ts(int(step["bar"])))
        await self.close_bar(i, path)
        return step

    async def _closed_bar(self, bar: int, ts: int) -> int:
        """Bar `bar` (opening at `ts`) from the public stream's confirm:true kline, or, when the stream
        has not brought it in time (it reconnected meanwhile), from the kline endpoint."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.push_wait_s
        while True:
            left = deadline - loop.time()
            try:
                async with asyncio.timeout(max(left, 0.0)):
                    k = await self.public.queue.get()
            except TimeoutError:
                break
            if k[0] == ts:
                return self.bars.add(*k)
        self.echo(f"bar {bar}: not on the public stream in time; read from the kline endpoint")
        for r in await self._klines(ts, ts):
            if r[0] == ts:
                return self.bars.add(*r)
        raise LiveError(f"bar {bar} ({iso(ts)}) closed at the venue but neither its stream nor its kline "
                        "endpoint has it")

    async def run_streaming(self) -> None:
        """Follow the venue's bars (confirm:true) until stopped."""
        b = self.backend
        await self.warm_bars()
        catcher = asyncio.create_task(self._catch_up_loop())
        try:
            while not self.stopping.is_set():
                getter = asyncio.create_task(self.public.queue.get())
                stop = asyncio.create_task(self.stopping.wait())
                done, _ = await asyncio.wait([getter, stop], return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                stop.cancel()
                k = getter.result()
                self.check_streams()
                if self.bars.ts and k[0] <= self.bars.ts[-1]:
                    continue
                async with self.lock:
                    if self.bars.ts and k[0] > self.bars.ts[-1] + self.tf_ms:
                        # Bars missed while the stream was away: from the kline endpoint.
                        for r in await self._klines(self.bars.ts[-1] + self.tf_ms, k[0]):
                            i = self.bars.add(*r)
                            await self.close_bar(i)
                    i = self.bars.add(*k)
                    await b.catch_up()
                    await self.close_bar(i)
        finally:
            catcher.cancel()

    def _reconcile_is_due(self) -> bool:
        last = self.backend.reconciler.last_run_ms
        return last is None or self.rest.clock.now_ms() - last >= self.cfg.reconcile_every_s * 1000

    async def _catch_up_loop(self) -> None:
        while True:
            try:  # woken by a push, or by the clock for the periodic reconciliation
                async with asyncio.timeout(min(self.cfg.reconcile_every_s, 30.0)):
                    await self.private.arrived.wait()
            except TimeoutError:
                pass
            self.private.arrived.clear()
            async with self.lock:
                if self.reconcile_due:
                    self.reconcile_due = False
                    await self.backend.reconcile("reconnect")
                elif self._reconcile_is_due():
                    await self.backend.reconcile("every few minutes")
                await self.backend.catch_up()
                self.processor.executor.sync()

    def check_streams(self) -> None:
        """A stream that stopped for good (a refused key, a refused topic) stops the run."""
        for task in getattr(self, "_tasks", []):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise LiveError(str(task.exception())) from None

    async def stop_streams(self) -> None:
        for s in getattr(self, "streams", []):
            await s.close()
        tasks = getattr(self, "_tasks", [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ the end
    def finish(self) -> dict[str, Any]:
        """The report, with the files written to the run's folder."""
        report = self.report(self.out_dir)
        report["journal"] = str(self.journal_path)
        return report

    def report(self, out_dir: Path | None) -> dict[str, Any]:
        """The same report and files as a backtest, for the bars the run saw."""
        play = self.plan.play
        state = self.state
        bars = self.bars.bars()
        start, end = 0, self.last_bar + 1
        last = end - 1
        last_close = float(bars.close[last])
        eq, qty = equity_curve(bars, state.snapshots, play.account.equity, start, end)
        report = state_report(play, state, bars, start, end, label=f"bybit {self.cfg.backend}",
                              ready_bar=self.engine.ready_bar if self.engine is not None else None,
                              venue=self.cfg.backend, eq=eq, qty=qty)
        report["drift"] = len(self.backend.drift)
        if out_dir is not None:
            report["out"] = str(out_dir)
            write_artifacts(out_dir, bars.ts_open, start, state.fills, order_rows(state.orders),
                            run_trades(state, last, last_close), eq, report, rejections=state.refusals,
                            funding=state.funding)
        return report


def describe_event(e: Any) -> str:
    """One log line for a backend event."""
    if isinstance(e, Fill):
        return (f"bar {e.bar}: fill {e.client_id} {e.side.value} {e.qty:g} @ {e.price:g} fee {e.fee:.6g} "
                f"{e.liquidity} ({e.role.value if e.role else ''})")
    if isinstance(e, OrderEvent):
        old = "new" if e.old is None else e.old.value
        why = f": {e.reason}" if e.reason else ""
        return f"bar {e.bar}: order {e.client_id} {old} -> {e.new.value}{why}"
    if isinstance(e, CashFlow):
        return f"bar {e.bar}: {e.kind} {e.amount:+.6g} USDT"
    if isinstance(e, (Refused, RefusedIntent)):
        return f"bar {e.bar}: refused {e.kind}: {e.reason}"
    return ""


def _start_failure(failure: BybitFailure, backend: str) -> str:
    if failure.code == 10003:
        host = "demo" if backend == "demo" else "live"
        return (f"Bybit refused the API key (10003: {failure.message}); a key works only on the host it was "
                f"made for: this run uses the {host} host (a demo key needs --backend demo, a mainnet key "
                "--backend live)")
    if failure.code in (10004, 10005, 33004):
        return f"Bybit refused the API key's signature or permissions ({failure.code}: {failure.message})"
    return f"cannot start: {failure}"


# ------------------------------------------------------------------------------ entry point
def run_play(cfg: RunConfig) -> dict[str, Any]:
    """Run `cfg.play` (see the module docstring); returns the report, after writing the files."""
    check_config(cfg)
    plan = lower(compile_file(cfg.play).ir)
    return asyncio.run(_run(cfg, plan))


def check_config(cfg: RunConfig) -> None:
    """LiveError for a run that must not start: an unknown backend, live without the operator's
    word, a real venue without keys. Checked before anything is compiled or connected."""
    if cfg.backend not in BACKENDS:
        raise LiveError(f"--backend must be one of {', '.join(BACKENDS)}, was {cfg.backend!r}")
    if cfg.backend == "live" and not cfg.i_understand_live:
        raise LiveError("--backend live trades real money: add --i-understand-live to say you mean it")
    if cfg.backend != "emulator" and (not cfg.key or not cfg.secret):
        raise LiveError("set PLAYDECK_BYBIT_KEY and PLAYDECK_BYBIT_SECRET to the API key of the "
                        f"{cfg.backend} account")


async def _run(cfg: RunConfig, plan: ExecutionPlan) -> dict[str, Any]:
    emu = await emulator_for(cfg, plan) if cfg.backend == "emulator" and cfg.endpoint is None else None
    try:
        async with live_run(cfg, plan, emu) as run:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, run.stopping.set)
                except (NotImplementedError, RuntimeError):
                    pass
            if emu is not None:
                await run.run_lockstep()
            else:
                await run.run_streaming()
            await run.stop_streams()
            return run.finish()
    finally:
        if emu is not None:
            await emu.stop()


@asynccontextmanager
async def live_run(cfg: RunConfig, plan: ExecutionPlan, emu: Any | None = None) -> AsyncIterator[LiveRun]:
    """A started run (warmed up, reconciled, streams up) of `cfg`: on the in-process emulator `emu`
    (lockstep), or on `cfg.endpoint` / Bybit's hosts. Its streams and journal are closed after."""
    out_dir = claim_out_dir(cfg.out, plan.play.name, datetime.now(timezone.utc))
    journal_path = Path(cfg.journal) if cfg.journal else out_dir / "journal.sqlite"
    journal = Journal(journal_path)
    try:
        if emu is not None:
            url, public, private = emu.url, emu.public_url, emu.private_url
        elif cfg.backend == "emulator":
            if cfg.endpoint is None:
                raise LiveError("the emulator backend needs --endpoint or an in-process emulator")
            url = cfg.endpoint.rstrip("/")
            ws = "ws" + url[4:] if url.startswith("http") else url
            public, private = f"{ws}/v5/public/linear", f"{ws}/v5/private"
        else:
            url = cfg.endpoint
            # Demo trades on its own hosts; its market data is mainnet's public stream.
            public = "wss://stream.bybit.com/v5/public/linear"
            private = ("wss://stream-demo.bybit.com/v5/private" if cfg.backend == "demo"
                       else "wss://stream.bybit.com/v5/private")
        key, secret = cfg.key, cfg.secret
        if cfg.backend == "emulator" and not key:
            from playdeck.runtime.bybit.emulator import DEFAULT_KEY, DEFAULT_SECRET  # noqa: PLC0415
            key, secret = DEFAULT_KEY, DEFAULT_SECRET
        cfg = attrs.evolve(cfg, key=key, secret=secret)
        limits = cfg.rate_limits if cfg.rate_limits is not None else emu is None
        limiter = None if limits else RateLimiter.unlimited()
        rest = BybitRest(key=key, secret=secret, endpoint=url, demo=cfg.backend == "demo", timeout=cfg.rest_timeout,
                         limiter=limiter)
        journal.clock = rest.clock.now_ms  # rows carry the venue's time
        run = LiveRun(cfg, plan, rest, journal, (public, private), emulator=emu)
        run.out_dir, run.journal_path = out_dir, journal_path
        try:
            await run.start()
            yield run
        finally:
            await run.stop_streams()
    finally:
        journal.close()


def emulator_bars(cfg: RunConfig, plan: ExecutionPlan) -> Bars:
    """The exec bars the in-process emulator serves: `cfg.data` (or the bundled set) at the Play's
    exec timeframe; LiveError when there are none to serve."""
    market = plan.play.market
    try:
        loaded = load_bars(market.symbol, cfg.data, None, cfg.cache_dir, market.exec_tf, None)
        bars = exec_bars(loaded.bars, market.exec_tf)
    except BacktestError as exc:
        raise LiveError(str(exc)) from None
    if len(bars) < 2:
        raise LiveError(f"the data holds {len(bars)} {market.exec_tf} bar(s): the emulator needs two or more")
    return bars


async def emulator_for(cfg: RunConfig, plan: ExecutionPlan, bars: Bars | None = None, **emulator_options: Any) -> Any:
    """The in-process emulator of `--backend emulator` without `--endpoint`: the Play's data (or the
    bundled set) at its exec timeframe, from bar 0, its instrument and account, started; it takes the
    run's keys when it has them (PLAYDECK_BYBIT_KEY / _SECRET), else the emulator's defaults.
    `bars`: those exec bars when the caller has read them already (`emulator_bars`).
    `emulator_options`: more of EmulatorConfig (tests: how long a lost reply is held)."""
    from playdeck.runtime.bybit.emulator import (  # noqa: PLC0415 (only this mode serves one)
        AccountSpec,
        Emulator,
        EmulatorConfig,
        InstrumentSpec,
        Market,
        RateLimitSpec,
    )
    play = plan.play
    acc = play.account
    if bars is None:
        bars = emulator_bars(cfg, plan)
    spec = InstrumentSpec(play.market.symbol, tick=acc.tick, qty_step=acc.qty_step, min_qty=acc.min_qty)
    account = AccountSpec(equity=acc.equity, leverage=acc.leverage, maker_fee=acc.maker_fee, taker_fee=acc.taker_fee,
                          slippage_bps=acc.slippage_bps, intrabar=acc.intrabar if acc.magnifier is None else "ohlc_path",
                          mmr=acc.mmr, funding=acc.funding)
    keys = {} if not cfg.key or not cfg.secret else {"key": cfg.key, "secret": cfg.secret}
    if not cfg.rate_limits:  # None: lockstep, see RunConfig
        emulator_options.setdefault("rate_limits", RateLimitSpec(enabled=False))
    config = EmulatorConfig((Market(spec, bars),), account=account, start_bar=0, **keys, **emulator_options)
    return await Emulator(config).start()

