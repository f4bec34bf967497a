"""ResilientStream: one Bybit V5 WebSocket (public or private) kept alive on `websockets`.

What a connection goes through (bybit-v5.md 5), again after every drop:

1. connect (`proxy=None` on loopback; websockets' own keepalive off: Bybit's JSON ping is the one heartbeat);
2. private: `{"op":"auth","args":[key, expires, hex HMAC-SHA256(secret, "GET/realtime" + expires)]}` with
   `expires` = the venue's time (`ClockSync.now_ms()`) + `auth_window_ms`; a refusal is `StreamAuthError`;
3. subscribe every topic (private: the all-in-one and the categorised topics in separate requests, as
   Bybit requires), each reply checked: `success: false` is `StreamSubscribeError`;
4. only then the connection counts: `on_connect(n)` is queued (n = 1, 2, ... successful connections).

Ordering, the contract the live backend builds on. One dispatcher task delivers, strictly one at a
time and in arrival order, a single sequence of `on_connect(n)` calls and pushes:
- `on_connect(n)` is awaited before any push of connection n is delivered (pushes that arrive while it
  runs wait in the queue), so the backend reconciles over REST first and applies pushes afterwards;
- every push read from connection n is delivered before `on_connect(n + 1)` is called; nothing read is
  dropped by a reconnect (what a drop loses on the way is for `on_connect` to find out);
- `on_message(msg)` gets each push (a dict with a `topic`) once; it may be a plain function or a
  coroutine function (awaited before the next message). Op replies (auth, subscribe, pong) are the
  stream's own and never reach it;
- an exception from either callback stops the stream: `run()` raises it (nothing dies silently).

Meanwhile a reader task per connection keeps reading (pongs and liveness do not wait for a slow
callback): a JSON ping goes out every `ping_interval` s and its pong's round trip is measured; no
message of any kind for `dead_after` s means the connection is dead (a half-open TCP connection looks
exactly like a quiet one): it is dropped and replaced.

Reconnects back off exponentially with jitter between `backoff[0]` and `backoff[1]` seconds; the
attempt count starts over after a connection that stayed up `stable_after` s. The loop is written
here rather than with `async for ws in websockets.connect(...)`: that iterator starts its backoff over
after every handshake, so a server that accepts and then drops or refuses us would be hammered, and it
cannot tell a refused key (never retried) from a dropped connection.

What retrying cannot mend stops `run()` with a `StreamError`: a refused auth (`StreamAuthError`; with a
`resync` hook the clock is measured once and auth tried once more first), a refused topic
(`StreamSubscribeError`), a handshake answered with a 4xx status (403: Bybit's IP ban; 408 and 429
are retried, as are 5xx). `close()` says goodbye with a closing handshake; a callback in progress is
cancelled and pushes not yet delivered are dropped.

Keys and secrets never reach a log record, a repr, `health()` or an exception: messages are scrubbed
of both, and websockets' own frame logging goes through the same scrubbing.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import inspect
import itertools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.frames import Frame

from playdeck.runtime.bybit.clock import ClockSync

__all__ = ["ResilientStream", "StreamAuthError", "StreamError", "StreamHealth", "StreamSubscribeError",
           "auth_refusal", "sign_auth"]

log = logging.getLogger(__name__)

OnMessage = Callable[[dict[str, Any]], "Awaitable[None] | None"]
OnConnect = Callable[[int], Awaitable[None]]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_PUBLIC_BATCH = 10  # topics per public subscribe request (Bybit's spot limit; linear allows more)
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}  # handshake answers worth another try


class StreamError(Exception):
    """A stream failure that retrying cannot mend: `run()` raises it and stops."""


class StreamAuthError(StreamError):
    """Bybit refused the private stream's auth. `ret_msg` is its reason (scrubbed); `key_unknown` is
    True when the reply says the key itself is unknown (10003 style: wrong key, or a key of another
    environment, such as a demo-trading key on the mainnet host)."""

    def __init__(self, text: str, *, ret_msg: str, key_unknown: bool) -> None:
        super().__init__(text)
        self.ret_msg = ret_msg
        self.key_unknown = key_unknown


class StreamSubscribeError(StreamError):
    """Bybit refused a subscription (`success: false`): `topics` of the request and its `ret_msg`."""

    def __init__(self, text: str, *, topics: tuple[str, ...], ret_msg: str) -> None:
        super().__init__(text)
        self.topics = topics
        self.ret_msg = ret_msg


@attrs.frozen
class StreamHealth:
    """A snapshot of one stream, for the console and the backend's health checks."""

    name: str
    url: str
    connected: bool  # authenticated and subscribed, the socket open
    ready: bool  # connected, and on_connect for this connection has returned
    connects: int  # successful connections so far (the n of the last on_connect)
    reconnects: int  # of them, those after the first
    attempts: int  # connection attempts, failed ones included
    last_message_ms: int | None  # venue time (ClockSync) when the last message of any kind arrived
    last_pong_rtt_ms: float | None  # round trip of the last JSON ping
    last_error: str | None  # why the last connection or attempt ended (never a key or secret)
    topics: tuple[str, ...]  # subscribed on the current connection (empty while disconnected)
    backlog: int  # pushes (and on_connect calls) received or due but not yet delivered


@attrs.frozen(repr=False)
class _Credentials:
    key: str
    secret: str

    def __repr__(self) -> str:
        return "_Credentials(<hidden>)"

    def scrub(self, text: str) -> str:
        for value in (self.secret, self.key):
            if value:
                text = text.replace(value, "***")
        return text

    def scrub_frame(self, frame: Frame) -> Frame:
        data = bytes(frame.data)
        for value in (self.secret, self.key):
            if value:
                data = data.replace(value.encode(), b"***")
        return dataclasses.replace(frame, data=data)


class _Scrubbing(logging.LoggerAdapter):
    """websockets' frame logging (DEBUG) with keys and secrets taken out: the auth frame holds the key,
    and websockets cuts a long frame short for its log line (a cut key would survive a text scrub), so
    frames are scrubbed before they are written out, and the line after."""

    def __init__(self, logger: logging.Logger, creds: _Credentials | None) -> None:
        super().__init__(logger, {})
        self._creds = creds

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        creds = self._creds
        if creds is None:
            self.logger.log(level, msg, *args, **kwargs)
            return
        args = tuple(creds.scrub_frame(a) if isinstance(a, Frame) else a for a in args)
        text = str(msg) % args if args else str(msg)
        self.logger.log(level, "%s", creds.scrub(text), **kwargs)


class _Dead(Exception):
    """No message within dead_after: the connection is taken for dead."""


class _Lost(Exception):
    """The connection ended while something waited for its reply."""


class _Session:
    """One connection: its socket, the replies it waits for, the pushes held until it counts."""

    def __init__(self, ws: ClientConnection, attempt: int) -> None:
        self.ws = ws
        self.attempt = attempt
        self.opened = time.monotonic()
        self.waiting: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}  # req_id -> (op, reply)
        self.pings: dict[str, float] = {}  # req_id -> monotonic time sent
        self.held: list[dict[str, Any]] | None = []  # pushes before the connection counts; None after
        self.topics: list[str] = []
        self.n = 0  # its connect number once it counts
        self.ended = False

    def expect(self, op: str, req_id: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[req_id] = (op, future)
        return future

    def answer(self, op: str, reply: dict[str, Any]) -> bool:
        """Hand `reply` to whoever waits for it: by req_id, else the oldest request of that op."""
        req_id = reply.get("req_id")
        entry = self.waiting.pop(req_id, None) if isinstance(req_id, str) and req_id else None
        if entry is None:
            for rid, (want, _) in self.waiting.items():
                if want == op:
                    entry = self.waiting.pop(rid)
                    break
        if entry is None:
            return False
        if not entry[1].done():
            entry[1].set_result(reply)
        return True

    def end(self, exc: BaseException) -> None:
        self.ended = True
        for _, future in self.waiting.values():
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: nobody may be waiting any more
        self.waiting.clear()


def sign_auth(secret: str, expires_ms: int) -> str:
    """Bybit's WebSocket auth signature: hex HMAC-SHA256 of "GET/realtime" + expires (bybit-v5.md 5.2)."""
    return hmac.new(secret.encode(), f"GET/realtime{expires_ms}".encode(), hashlib.sha256).hexdigest()


def auth_refusal(name: str, url: str, reply: dict[str, Any], *, expires_ms: int, venue_ms: int,
                 scrub: Callable[[str], str] = lambda s: s) -> StreamAuthError:
    """The one error for a refused auth `reply`, saying what to check. Sans-I/O.

    Bybit answers a wrong secret, an expired `expires` and (as reported) an unknown key with
    `success: false, ret_msg: "Params Error"`; an unknown key can also read "API key is invalid" /
    10003, which is what a key of another environment gets (a demo-trading key on the mainnet host)."""
    ret_msg = scrub(str(reply.get("ret_msg") or reply.get("retMsg") or "no reason given"))
    code = reply.get("retCode")
    lowered = ret_msg.lower()
    key_unknown = code == 10003 or (("api key" in lowered or "apikey" in lowered)
                                    and ("invalid" in lowered or "not exist" in lowered))
    host = urlsplit(url).hostname or url
    if "stream-demo" in host:
        where = "this is the demo-trading host: only keys made while switched to Demo Trading work here"
    elif "testnet" in host:
        where = "this is the testnet host: only testnet keys work here"
    elif host.endswith("bybit.com") or host.endswith("bytick.com"):
        where = ("this is the mainnet host: a demo-trading key works only on wss://stream-demo.bybit.com/v5/private, "
                 "a testnet key only on wss://stream-testnet.bybit.com/v5/private")
    else:
        where = "check that the key belongs to this host's environment (mainnet, testnet or demo)"
    shown = f"{ret_msg} (retCode {code})" if code is not None else ret_msg
    if key_unknown:
        text = f"{name} stream: Bybit does not know the API key at {host} ({shown}); {where}"
    else:
        ahead = expires_ms - venue_ms
        when = f"{ahead} ms ahead of" if ahead >= 0 else f"{-ahead} ms behind"
        text = (f"{name} stream: Bybit refused the auth at {host} ({shown}): the API key or secret is wrong, the key "
                f"belongs to another environment ({where}), or the clock is off: expires was {expires_ms}, "
                f"{when} the venue's time as known")
    return StreamAuthError(text, ret_msg=ret_msg, key_unknown=key_unknown)


def _batches(topics: list[str], private: bool) -> Iterator[list[str]]:
    """Subscribe requests for `topics`: private all-in-one (`order`) and categorised (`order.linear`)
    topics cannot share a request; public requests are kept small."""
    if private:
        yield from (b for b in ([t for t in topics if "." not in t], [t for t in topics if "." in t]) if b)
    else:
        for i in range(0, len(topics), _PUBLIC_BATCH):
            yield topics[i:i + _PUBLIC_BATCH]


def _succeeded(reply: dict[str, Any]) -> bool:
    # the streams answer `success`; the order-entry stream's shape is `retCode` (bybit-v5.md 5.2)
    if "success" in reply:
        return reply["success"] is True
    return reply.get("retCode") == 0


class ResilientStream:
    """One Bybit stream kept connected, authenticated and subscribed. See the module docstring.

    `url`: e.g. wss://stream.bybit.com/v5/public/linear or .../v5/private. `topics`: subscribed on
    every connection. `key`/`secret`: both for a private stream (auth on every connection), neither
    for a public one. `clock`: the venue's time for the auth's `expires` (a fresh ClockSync reads
    the local clock). `resync`: optional, awaited once after a refused auth, to measure the clock
    before one more try (a skewed clock is the one refusal that can mend itself).
    """

    def __init__(self, url: str, topics: Iterable[str] = (), *, on_message: OnMessage,
                 on_connect: OnConnect | None = None, key: str | None = None, secret: str | None = None,
                 clock: ClockSync | None = None, resync: Callable[[], Awaitable[None]] | None = None,
                 name: str | None = None, ping_interval: float = 20.0, dead_after: float | None = None,
                 backoff: tuple[float, float] = (0.1, 10.0), stable_after: float = 30.0,
                 reply_timeout: float = 10.0, auth_window_ms: int = 5_000) -> None:
        if (key is None) != (secret is None):
            raise ValueError("give both key and secret (a private stream) or neither (a public one)")
        if ping_interval <= 0:
            raise ValueError(f"ping_interval must be > 0, was {ping_interval}")
        dead_after = ping_interval + 10.0 if dead_after is None else dead_after
        if dead_after <= ping_interval:
            # a quiet private stream hears nothing but pongs: it must outlast one ping interval
            raise ValueError(f"dead_after ({dead_after}) must exceed ping_interval ({ping_interval})")
        low, high = backoff
        if not 0 < low <= high:
            raise ValueError(f"backoff must be (min, max) with 0 < min <= max, was {backoff}")
        self.url = url
        self.name = name if name is not None else ("private" if url.rstrip("/").endswith("/private") else "public")
        self._creds = None if key is None or secret is None else _Credentials(key, secret)
        self._topics: list[str] = list(dict.fromkeys(topics))
        self._on_message = on_message
        self._on_connect = on_connect
        self._clock = clock if clock is not None else ClockSync()
        self._resync = resync
        self.ping_interval = ping_interval
        self.dead_after = dead_after
        self.backoff = (low, high)
        self.stable_after = stable_after
        self.reply_timeout = reply_timeout
        self.auth_window_ms = auth_window_ms
        host = urlsplit(url).hostname
        self._proxy: bool | None = None if host in _LOOPBACK else True
        self._wire_log = _Scrubbing(logging.getLogger(f"{__name__}.wire"), self._creds)
        # state
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._sub_lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._ready = asyncio.Event()
        self._finished = asyncio.Event()
        self._session: _Session | None = None  # the connection that counts, while it is up
        self._open: _Session | None = None  # the open connection, counted or still in its handshake
        self._stopping = False
        self._failure: BaseException | None = None
        self._running = False
        self._ids = itertools.count(1)
        self._connects = 0
        self._attempts = 0
        self._last_message_ms: int | None = None
        self._last_rtt_ms: float | None = None
        self._last_error: str | None = None

    # ------------------------------------------------------------------ the public API
    def __repr__(self) -> str:
        return (f"ResilientStream(name={self.name!r}, url={self.url!r}, topics={tuple(self._topics)!r}, "
                f"private={self._creds is not None}, connected={self._session is not None})")

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic wanted (subscribed again on each connection)."""
        return tuple(self._topics)

    def health(self) -> StreamHealth:
        session = self._session
        return StreamHealth(
            name=self.name, url=self.url, connected=session is not None, ready=self._ready.is_set(),
            connects=self._connects, reconnects=max(0, self._connects - 1), attempts=self._attempts,
            last_message_ms=self._last_message_ms, last_pong_rtt_ms=self._last_rtt_ms, last_error=self._last_error,
            topics=tuple(session.topics) if session is not None else (), backlog=self._queue.qsize())

    async def run(self) -> None:
        """Connect, and keep connecting, until `close()` (then it returns). Raises a `StreamError`
        when retrying cannot help, or what a callback raised. One run per stream."""
        if self._running or self._finished.is_set():
            raise RuntimeError(f"{self.name} stream: run() may be called once")
        self._running = True
        tasks = {asyncio.create_task(self._connect_loop(), name=f"{self.name}-stream-connect"),
                 asyncio.create_task(self._dispatch(), name=f"{self.name}-stream-dispatch"),
                 asyncio.create_task(self._closing.wait(), name=f"{self.name}-stream-close")}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    self._failure = task.exception()
        except BaseException as exc:  # cancelled from outside: end as close() would
            self._failure = exc
            raise
        finally:
            # The socket is closed first, so its reader ends on ConnectionClosed whatever becomes of
            # the cancellations below (Python 3.11's wait_for could swallow one, and a reader that
            # swallowed it would read on for ever).
            self._stopping = True
            open_now = self._open
            if open_now is not None:
                open_now.end(_Lost("the stream is closing"))
                try:
                    await open_now.ws.close()
                except BaseException:  # noqa: BLE001 (cancelled, or the socket already gone)
                    open_now.ws.transport.abort()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._drop_session()
            self._ready.clear()
            self._finished.set()
        if self._failure is not None:
            self._last_error = self._scrub(str(self._failure)) or type(self._failure).__name__
            log.error("%s stream stopped: %s", self.name, self._last_error)
            raise self._failure
        log.info("%s stream closed", self.name)

    async def close(self) -> None:
        """Stop: close the connection; `run()` returns. A callback in progress is cancelled and
        pushes not yet delivered are discarded. Safe to call more than once, or before `run()`."""
        self._closing.set()
        if self._running:
            await self._finished.wait()

    async def wait_connected(self, timeout: float | None = None) -> StreamHealth:
        """Wait until a connection is up, authenticated, subscribed and its `on_connect` has returned.
        Raises what stopped `run()` if it stopped, TimeoutError after `timeout` s."""
        ready = asyncio.ensure_future(self._ready.wait())
        finished = asyncio.ensure_future(self._finished.wait())
        try:
            await asyncio.wait({ready, finished}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            finished.cancel()
        if self._ready.is_set():
            return self.health()
        if self._finished.is_set():
            if isinstance(self._failure, Exception):
                raise self._failure
            raise StreamError(f"{self.name} stream: closed")
        raise TimeoutError(f"{self.name} stream: not connected after {timeout} s (last error: {self._last_error})")

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Add topics. On a live connection they are subscribed now and the reply checked (a refusal
        raises `StreamSubscribeError` here, the topics are dropped, and the stream goes on); while
        disconnected they are kept for the next connection. Every later connection subscribes them."""
        new = [t for t in dict.fromkeys(topics) if t not in self._topics]
        if not new:
            return
        async with self._sub_lock:
            self._topics.extend(new)
            session = self._session
            if session is None or session.ended:
                return  # the next connection's handshake subscribes them
            try:
                await self._subscribe_on(session, new)
            except StreamSubscribeError:
                self._topics = [t for t in self._topics if t not in new]
                raise
            except (ConnectionClosed, OSError, _Lost):
                return  # the connection went; the next one subscribes them
            except TimeoutError:
                # no answer: this connection is not to be trusted; its successor subscribes them
                self._last_error = f"no reply to subscribe {new} within {self.reply_timeout} s"
                session.ws.transport.abort()

    # ------------------------------------------------------------------ the connection loop
    async def _connect_loop(self) -> None:
        failures = 0  # attempts since a connection last stayed up: the backoff's exponent
        resynced = False
        while True:
            self._attempts += 1
            session: _Session | None = None
            reader: asyncio.Task[str] | None = None
            try:
                ws = await connect(self.url, proxy=self._proxy, open_timeout=self.reply_timeout,
                                   ping_interval=None, close_timeout=2.0, max_size=1 << 24,
                                   logger=self._wire_log)
                session = self._open = _Session(ws, self._attempts)
                reader = asyncio.create_task(self._read(session), name=f"{self.name}-stream-read")
                await self._handshake(session, reader)
            except StreamAuthError as exc:
                await self._end_attempt(session, reader)
                if self._stopping:
                    return
                if self._resync is None or resynced:
                    raise
                resynced = True  # a skewed clock is the one refusal that can mend: measure, try once more
                self._last_error = str(exc)
                log.warning("%s stream: auth refused; measuring the clock and trying once more", self.name)
                try:
                    await self._resync()
                except Exception as failure:  # noqa: BLE001 (then the next auth decides)
                    log.warning("%s stream: measuring the clock failed: %s", self.name,
                                self._scrub(f"{type(failure).__name__}: {failure}"))
                continue
            except StreamError:
                await self._end_attempt(session, reader)
                raise
            except (OSError, TimeoutError, WebSocketException, _Lost) as exc:
                await self._end_attempt(session, reader)
                if self._stopping:
                    return
                fatal = self._fatal(exc)
                if fatal is not None:
                    raise fatal from exc
                delay = self._delay(failures)
                failures += 1
                self._last_error = self._describe(exc)
                log.warning("%s stream: connect attempt %d failed (%s); next in %.2f s", self.name, self._attempts,
                            self._last_error, delay)
                await asyncio.sleep(delay)
                continue
            assert reader is not None and session is not None
            resynced = False
            if session.n > 1:
                log.info("%s stream reconnected to %s (connect %d, %d topics)", self.name, self.url, session.n,
                         len(session.topics))
            else:
                log.info("%s stream connected to %s (%d topics)", self.name, self.url, len(session.topics))
            try:
                reason = await reader  # until the connection ends
            finally:
                self._drop_session()
            if self._stopping:
                return
            if time.monotonic() - session.opened >= self.stable_after:
                failures = 0  # it stayed up: start the backoff over
            delay = self._delay(failures)
            failures += 1
            self._last_error = reason
            log.warning("%s stream lost (%s); reconnecting in %.2f s", self.name, reason, delay)
            await asyncio.sleep(delay)

    async def _handshake(self, session: _Session, reader: asyncio.Task[str]) -> None:
        """Auth (private), subscribe every topic, then count the connection: queue on_connect(n)
        ahead of the pushes it has already read."""
        ws = session.ws
        creds = self._creds
        if creds is not None:
            expires = self._clock.now_ms() + self.auth_window_ms
            req_id = f"auth-{next(self._ids)}"
            answer = session.expect("auth", req_id)
            await ws.send(json.dumps({"req_id": req_id, "op": "auth",
                                      "args": [creds.key, expires, sign_auth(creds.secret, expires)]}))
            reply = await self._await_reply(answer, reader)
            if not _succeeded(reply):
                raise auth_refusal(self.name, self.url, reply, expires_ms=expires, venue_ms=self._clock.now_ms(),
                                   scrub=self._scrub)
        async with self._sub_lock:
            topics = list(self._topics)
            await self._subscribe_on(session, topics, reader)
            # No await from here on: the marker goes ahead of every push this connection has read.
            self._connects += 1
            session.n = self._connects
            self._queue.put_nowait(("connect", session.n))
            for push in session.held or ():
                self._queue.put_nowait(("push", push))
            session.held = None
            self._session = session

    async def _subscribe_on(self, session: _Session, topics: list[str],
                            reader: asyncio.Task[str] | None = None) -> None:
        """Subscribe `topics` on `session` and check every reply."""
        requests = []
        for batch in _batches(topics, self._creds is not None):
            req_id = f"sub-{next(self._ids)}"
            requests.append((batch, session.expect("subscribe", req_id)))
            await session.ws.send(json.dumps({"req_id": req_id, "op": "subscribe", "args": batch}))
        for batch, answer in requests:
            reply = await self._await_reply(answer, reader)
            if not _succeeded(reply):
                ret_msg = self._scrub(str(reply.get("ret_msg") or reply.get("retMsg") or "no reason given"))
                raise StreamSubscribeError(f"{self.name} stream: Bybit refused the subscription to {batch} "
                                           f"({ret_msg})", topics=tuple(batch), ret_msg=ret_msg)
            session.topics.extend(t for t in batch if t not in session.topics)

    async def _await_reply(self, answer: asyncio.Future[dict[str, Any]],
                           reader: asyncio.Task[str] | None) -> dict[str, Any]:
        """The reply, within reply_timeout; if the reader ends first, the connection is gone (_Lost)."""
        waits: set[asyncio.Future[Any]] = {answer} if reader is None else {answer, reader}
        done, _ = await asyncio.wait(waits, timeout=self.reply_timeout, return_when=asyncio.FIRST_COMPLETED)
        if reader is not None and reader in done:
            raise _Lost(reader.result())  # reader.result() re-raises what the reader raised (a bug)
        if answer in done:
            return answer.result()
        raise TimeoutError(f"no reply within {self.reply_timeout} s")

    async def _end_attempt(self, session: _Session | None, reader: asyncio.Task[str] | None) -> None:
        if session is not None:
            session.end(_Lost("attempt ended"))
            session.ws.transport.abort()
            if self._open is session:
                self._open = None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def _drop_session(self) -> None:
        """The counted connection has ended (or is being ended): it no longer counts; its socket is
        dropped without a closing handshake (a lost peer would not answer one; run() says goodbye
        to a healthy one before it gets here)."""
        session, self._session = self._session, None
        self._ready.clear()
        if session is None:
            return
        if self._open is session:
            self._open = None
        session.end(_Lost("connection ended"))
        session.ws.transport.abort()

    def _fatal(self, exc: BaseException) -> StreamError | None:
        """What a failed attempt means for good: a handshake refused with a 4xx status (403 is Bybit's
        IP ban, ten minutes: no retry loop), a malformed URL."""
        if isinstance(exc, InvalidURI):
            return StreamError(f"{self.name} stream: not a WebSocket URL: {self.url}")
        if isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            if status not in _RETRY_STATUS:
                hint = " (Bybit's IP ban: stop for ten minutes)" if status == 403 else ""
                return StreamError(f"{self.name} stream: {self.url} answered HTTP {status}{hint}")
        return None

    def _delay(self, failures: int) -> float:
        """Exponential backoff with jitter: between half and all of min * 2**failures, capped at max."""
        low, high = self.backoff
        ceiling = min(high, low * 2 ** min(failures, 32))
        return random.uniform(ceiling / 2, ceiling)

    def _describe(self, exc: BaseException) -> str:
        text = str(exc)
        return self._scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _scrub(self, text: str) -> str:
        return text if self._creds is None else self._creds.scrub(text)

    # ------------------------------------------------------------------ reading a connection
    async def _read(self, session: _Session) -> str:
        """Read one connection until it ends; returns why it ended. Sends the pings; a silence of
        dead_after s aborts it."""
        ws = session.ws
        monotonic = time.monotonic
        last_in = monotonic()
        next_ping = last_in + self.ping_interval
        try:
            while True:
                now = monotonic()
                if now - last_in >= self.dead_after:
                    raise _Dead(f"no message for {self.dead_after:g} s: the connection is dead")
                if now >= next_ping:
                    req_id = f"ping-{next(self._ids)}"
                    session.pings[req_id] = now
                    async with asyncio.timeout(self.dead_after):  # not wait_for: see run()
                        await ws.send(json.dumps({"req_id": req_id, "op": "ping"}))
                    next_ping = now + self.ping_interval
                try:
                    # a recv() cut short by the timeout loses nothing: the next call returns the message
                    async with asyncio.timeout(min(next_ping, last_in + self.dead_after) - now):
                        raw = await ws.recv()
                except TimeoutError:
                    continue
                last_in = monotonic()
                self._last_message_ms = self._clock.now_ms()
                self._take(session, raw, last_in)
        except ConnectionClosed as exc:
            reason = self._describe(exc)
            session.end(_Lost(reason))
            return reason
        except (_Dead, OSError, TimeoutError) as exc:
            reason = str(exc) if isinstance(exc, _Dead) else self._describe(exc)
            session.end(_Lost(reason))
            ws.transport.abort()  # a dead peer would never answer a closing handshake
            return reason
        except BaseException as exc:
            session.end(_Lost("reader stopped"))
            raise exc

    def _take(self, session: _Session, raw: str | bytes, received: float) -> None:
        """One message: a push to the queue (held until the connection counts), a reply to its waiter."""
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("%s stream: a message that is not JSON was ignored", self.name)
            return
        if not isinstance(msg, dict):
            return
        if "topic" in msg:
            if session.held is not None:
                session.held.append(msg)
            else:
                self._queue.put_nowait(("push", msg))
            return
        op = msg.get("op")
        if op == "pong" or (op == "ping" and msg.get("ret_msg") == "pong"):
            req_id = msg.get("req_id")
            sent = session.pings.pop(req_id, None) if isinstance(req_id, str) else None
            if sent is None and session.pings:  # no req_id echoed: the oldest ping outstanding
                sent = session.pings.pop(next(iter(session.pings)))
            if sent is not None:
                self._last_rtt_ms = (received - sent) * 1000.0
                session.pings.clear()  # older pings lost on the way are not waited for
            return
        if isinstance(op, str) and session.answer(op, msg):
            return
        if msg.get("success") is False:
            self._last_error = self._scrub(f"Bybit: {msg.get('ret_msg')} (op {op!r})")
            log.warning("%s stream: %s", self.name, self._last_error)

    # ------------------------------------------------------------------ delivering
    async def _dispatch(self) -> None:
        """Deliver on_connect(n) and the pushes, one at a time, in the order they were queued."""
        queue = self._queue
        on_message = self._on_message
        while True:
            kind, value = await queue.get()
            if kind == "connect":
                if self._on_connect is not None:
                    await self._on_connect(value)
                session = self._session
                if session is not None and session.n == value:
                    self._ready.set()
            else:
                result = on_message(value)
                if inspect.isawaitable(result):
                    await result
