"""The emulator as a server: the aiohttp app (REST, the two streams, the control API) on one port of
127.0.0.1, its start and stop, the bar clock's drivers (`--speed`, lockstep), faults, and the small
Python API the live backend and the parity test use:

    async with Emulator(config) as emu:       # listening on emu.url (port 0: a free one)
        ...pybit / websockets against emu.url, emu.public_url, emu.private_url...
        await emu.advance()                   # bar i+1 matched; its pushes written; at its close now

Lockstep: with no `speed` the emulator advances only when told. `advance(n)` matches one bar at a
time: the kline updates of the bar's open, then the bar (fills, funding, liquidation: private
pushes), then its close (`confirm:true`, tickers), and it returns once all of that is written to
every socket. Whatever a client sends before the next `advance` is at the close of that bar, so it
is matched in the next one, as in a backtest.

Clocks: the API clock (server time, auth windows, createdTime, updatedTime, execTime) is the wall
clock (`clock`, plus the skew fault), so the default 7-day windows of history and executions hold
everything; market data (klines, tickers) carries the data's own timestamps.

`BackgroundEmulator` runs one on its own event loop in a thread, for synchronous callers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import attrs
from aiohttp import web

from playdeck.runtime.bybit.emulator.config import EmulatorConfig
from playdeck.runtime.bybit.emulator.control import Faults, control_routes
from playdeck.runtime.bybit.emulator.ratelimit import RateLimits
from playdeck.runtime.bybit.emulator.rest import rest_routes
from playdeck.runtime.bybit.emulator.streams import Streams
from playdeck.runtime.bybit.emulator.venue import Venue

__all__ = ["BackgroundEmulator", "Emulator"]

T = TypeVar("T")


class Emulator:
    """A Bybit V5 venue on loopback. See the module docstring."""

    def __init__(self, config: EmulatorConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self.faults = Faults()
        self.limits = RateLimits(config.rate_limits)
        self.venue = Venue(config, self.now_ms())
        self.streams = Streams(self)
        self.paused = config.speed is None
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dropping: asyncio.Event | None = None  # set while a restart drops every connection
        self._stopped = False
        self._walk: Iterator[tuple[str, float]] | None = None  # a bar `step()` is walking

    # ------------------------------------------------------------------ addresses and clocks
    @property
    def host(self) -> str:
        return self.config.host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def public_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v5/public/linear"

    @property
    def private_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v5/private"

    def now_ms(self) -> int:
        """The API clock: the wall clock plus the skew fault."""
        return int(self._clock() * 1000) + self.faults.skew_ms

    # ------------------------------------------------------------------ start and stop
    async def start(self) -> Emulator:
        app = web.Application()
        app.add_routes(control_routes(self))
        app.add_routes([web.get("/v5/public/linear", self.streams.public),
                        web.get("/v5/private", self.streams.private)])
        app.add_routes(rest_routes(self))
        self._lock = asyncio.Lock()
        self._dropping = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen(self.config.port)
        self._spawn(self.streams.watch_idle())
        if self.config.speed is not None:
            self._spawn(self._run_speed(self.config.speed))
        return self

    async def _listen(self, port: int) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, port, reuse_address=True)
        await self._site.start()
        server = self._site._server  # the bound socket tells the port chosen for port 0
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._stopped or self._runner is None:
            return
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert self._dropping is not None
        self._dropping.set()  # held replies end now
        await self.streams.close_all()
        await self._runner.cleanup()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the bar clock
    async def advance(self, n: int = 1) -> int:
        """Match the next `n` bars, one at a time, each one's pushes written before the next; returns
        how many bars were matched (fewer at the end of the data). A bar a `step()` left half
        walked is finished first and counts as one."""
        assert self._lock is not None, "start the emulator first"
        moved = 0
        async with self._lock:
            for _ in range(n):
                if self._walk is None and self.venue.at_end:
                    break
                while not (await self._step())["closed"]:
                    pass
                moved += 1
        return moved

    async def step(self) -> dict[str, Any]:
        """Lockstep by fills: walk the current bar (or start the next) up to its next fill, or to its
        close. Returns where it stopped: `bar` (the bar being walked, or the one that closed),
        `closed` (False: paused after a fill of `symbol` at path price `at`), `end` (the data is
        used up: nothing was done), `private_seq`, the number of the last private push (read
        every push up to it and you know all the step did), and `path`: per symbol, the prices the
        bar's path passed since the last step (what a trail the client keeps itself has seen, as
        tickers would show it). Every push is written before it returns.
        Whatever a client sends while a bar is paused is sent inside that bar at `at`; after
        `closed`, at the bar's close, as with `advance`."""
        assert self._lock is not None, "start the emulator first"
        async with self._lock:
            return await self._step()

    async def _step(self) -> dict[str, Any]:
        venue = self.venue
        streams = self.streams
        if self._walk is None:
            if venue.at_end:
                return {"bar": venue.bar, "closed": True, "end": True, "private_seq": streams.private_seq}
            streams.publish_bar(venue.bar + 1, opening=True)
            self._walk = venue.walk(self.now_ms)
        try:
            symbol, at = next(self._walk)
        except StopIteration:
            self._walk = None
            self.publish_private()
            streams.publish_bar(venue.bar, opening=False)
            await streams.flush()
            return {"bar": venue.bar, "closed": True, "end": False, "private_seq": streams.private_seq,
                    "path": venue.take_walk_points()}
        self.publish_private()
        await streams.flush()
        return {"bar": venue.bar + 1, "closed": False, "end": False, "symbol": symbol, "at": at,
                "private_seq": streams.private_seq, "path": venue.take_walk_points()}

    async def _run_speed(self, bars_per_second: float) -> None:
        period = 1.0 / bars_per_second
        while not self.venue.at_end:
            await asyncio.sleep(period)
            if not self.paused:
                await self.advance(1)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def publish_private(self) -> None:
        self.streams.publish_private(self.venue.drain_pushes())

    def state(self) -> dict[str, Any]:
        """Where the emulator is: the current bar (its open time and close per symbol), the data's
        length, the mode and the faults in force."""
        v = self.venue
        return {"bar": v.bar, "ts": v.ts(v.bar), "close_ts": v.ts(v.bar) + v.data_ms, "bars": v.n_bars,
                "end": v.at_end, "timeframe": v.tf, "paused": self.paused, "speed": self.config.speed,
                "closes": {s: b.close(v.bar) for s, b in v.books.items()},
                "server_time": self.now_ms(), "faults": attrs.asdict(self.faults)}

    # ------------------------------------------------------------------ faults
    async def close_streams(self, stream: str) -> int:
        """Close every public or private stream connection; returns how many."""
        return await self.streams.close_all(stream)

    def drop_private(self, count: int, topic: str | None = None) -> None:
        """Lose the next `count` private pushes (only of `topic`: order, execution, position, wallet)."""
        if topic not in (None, "order", "execution", "position", "wallet"):
            raise ValueError(f"topic must be order, execution, position or wallet, was {topic!r}")
        self.faults.drop_private, self.faults.drop_topic = count, topic

    def delay_replies(self, ms: int) -> None:
        """Hold every REST answer `ms` ms (0: no delay)."""
        self.faults.delay_ms = max(0, ms)

    def fail_next(self, code: int, count: int = 1) -> None:
        """Answer the next `count` REST requests with `code`: 10006, 10002, 10016, or 502 (HTTP)."""
        self.faults.fail_next(code, count)

    def lose_replies(self, count: int = 1) -> None:
        """Carry out the next `count` signed POSTs but never answer them (the client times out)."""
        self.faults.lose_replies = count

    def split_next_fill(self, parts: int, symbol: str | None = None) -> None:
        """The next resting limit fill (of `symbol`, else of every symbol) comes in `parts` partial
        fills, one a bar (SimExchange.split_next_fill)."""
        if parts < 2:
            raise ValueError("parts must be at least 2")
        books = self.venue.books
        if symbol is not None and symbol not in books:
            raise ValueError(f"unknown symbol {symbol!r}")
        for name, book in books.items():
            if symbol is None or name == symbol:
                book.ex.split_next_fill(parts)

    def skew_clock(self, ms: int) -> None:
        """Move the API clock by `ms` (server time, auth windows, order and execution times)."""
        self.faults.skew_ms = ms

    async def hold_lost_reply(self, request: web.Request) -> None:
        """Never answer `request`: hold it, then drop its connection (or sooner on stop / restart)."""
        assert self._dropping is not None
        try:
            await asyncio.wait_for(self._dropping.wait(), self.config.lost_reply_hold_s)
        except asyncio.TimeoutError:
            pass
        transport = request.transport
        if transport is not None:
            transport.close()
        raise asyncio.CancelledError  # the handler ends without a response

    async def restart(self) -> None:
        """Drop every connection (streams, HTTP keep-alives, held replies) and listen again on the same
        port. Orders, positions, the wallet and the bar survive, as they do on Bybit."""
        assert self._runner is not None and self._site is not None and self._dropping is not None
        self._dropping.set()
        await self._site.stop()
        await self.streams.close_all(code=1012)
        server = self._runner.server
        if server is not None:
            for handler in list(server.connections):
                handler.force_close()
        await asyncio.sleep(0)
        self._dropping = asyncio.Event()
        await self._listen(self.port)

    def schedule_restart(self) -> None:
        """Restart once the current answer has gone out (for the control API)."""
        async def later() -> None:
            await asyncio.sleep(0.05)
            await self.restart()
        self._spawn(later())


class BackgroundEmulator:
    """An `Emulator` on its own event loop in a daemon thread, for synchronous callers (pybit's HTTP,
    tests). Every call into the emulator runs on that loop (`call`, `run`)."""

    def __init__(self, config: EmulatorConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bybit-emulator", daemon=True)
        self.emu: Emulator | None = None

    def start(self) -> BackgroundEmulator:
        self._thread.start()

        async def make() -> Emulator:
            return await Emulator(self._config, clock=self._clock).start()

        try:
            self.emu = self.run(make())
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            raise
        return self

    def stop(self) -> None:
        if self.emu is not None:
            self.run(self.emu.stop())
            self.emu = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> BackgroundEmulator:
        return self if self.emu is not None else self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the emulator's loop (so it never races a request) and return its result."""
        async def run() -> T:
            return fn(*args)
        return self.run(run())

    def advance(self, n: int = 1) -> int:
        assert self.emu is not None
        return self.run(self.emu.advance(n))

    def step(self) -> dict[str, Any]:
        assert self.emu is not None
        return self.run(self.emu.step())

    @property
    def url(self) -> str:
        assert self.emu is not None
        return self.emu.url

    @property
    def public_url(self) -> str:
        assert self.emu is not None
        return self.emu.public_url

    @property
    def private_url(self) -> str:
        assert self.emu is not None
        return self.emu.private_url
