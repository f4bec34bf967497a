"""Bybit's WebSocket streams on aiohttp: `/v5/public/linear` (kline, tickers) and `/v5/private`
(auth, then order, execution, position, wallet), with Bybit's reply shapes (bybit-v5.md 5).

- Every connection has an outbound queue and one writer task, so pushes keep their order and a slow
  client never blocks the venue; `flush()` waits until every queue is written (lockstep needs it).
- JSON pings are answered in each stream's shape; protocol pings are answered by hand (aiohttp's
  autoping would hide them), and both count as activity. A connection with no ping and nothing sent
  for the idle timeout is closed (private: `?max_active_time=30s..600s` sets it), checked every
  `idle_check_s`, as Bybit does.
- `req_id` is echoed when given; a public reply always carries one ("" when none was sent).
- Private subscribes need a good auth first. The all-in-one topics (`order`) and the categorised ones
  (`order.linear`) cannot be mixed in one request; each push goes out under the topic the client
  subscribed. Wallet is never pushed on subscribe (Bybit sends nothing then).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from playdeck.runtime.bybit.emulator.auth import check_ws
from playdeck.runtime.bybit.emulator.errors import BybitError
from playdeck.runtime.bybit.emulator.market import candles, interval_ms, kline_push_item, ticker_item
from playdeck.runtime.bybit.emulator.venue import Push

if TYPE_CHECKING:
    from playdeck.runtime.bybit.emulator.server import Emulator

__all__ = ["Connection", "Streams"]

PRIVATE_TOPICS = {"order": "order", "execution": "execution", "position": "position", "wallet": "wallet",
                  "order.linear": "order", "execution.linear": "execution", "position.linear": "position"}
_ACTIVE = re.compile(r"(\d+)([sm])")
_CLOSED = object()  # queued last: the writer closes the socket


class Connection:
    def __init__(self, ws: web.WebSocketResponse, kind: str, idle_s: float, now: float) -> None:
        self.ws = ws
        self.kind = kind  # public | private
        self.conn_id = f"{uuid.uuid4().hex[:20]}-{kind[:3]}"
        self.topics: set[str] = set()
        self.authed = False
        self.idle_s = idle_s
        self.last_active = now
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def send(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(message, separators=(",", ":")))


class Streams:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.conns: set[Connection] = set()
        self.private_seq = 0  # private pushes published so far, dropped ones included
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ connections
    async def public(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve(request, "public", self.emu.config.idle_timeout_s)

    async def private(self, request: web.Request) -> web.WebSocketResponse:
        idle = self.emu.config.idle_timeout_s
        text = request.query.get("max_active_time")
        if text is not None:
            m = _ACTIVE.fullmatch(text)
            seconds = None if m is None else int(m.group(1)) * (60 if m.group(2) == "m" else 1)
            if seconds is None or not 30 <= seconds <= 600:
                raise web.HTTPBadRequest(text="max_active_time must be 30s .. 600s")
            idle = float(seconds)
        return await self._serve(request, "private", idle)

    async def _serve(self, request: web.Request, kind: str, idle_s: float) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        conn = Connection(ws, kind, idle_s, loop.time())
        self.conns.add(conn)
        writer = asyncio.create_task(self._write(conn))
        latency = self.emu.config.ws_latency_s
        try:
            async for msg in ws:
                conn.last_active = loop.time()
                if msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.TEXT:
                    if latency:
                        await asyncio.sleep(latency)
                    self._on_text(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    conn.send({"success": False, "ret_msg": "error:binary messages are not read", "op": "",
                               "conn_id": conn.conn_id})
        finally:
            self.conns.discard(conn)
            conn.queue.put_nowait(_CLOSED)
            await asyncio.gather(writer, return_exceptions=True)
        return ws

    async def _write(self, conn: Connection) -> None:
        ws = conn.ws
        loop = asyncio.get_running_loop()
        while True:
            text = await conn.queue.get()
            try:
                if text is _CLOSED:
                    return
                if not ws.closed:
                    try:
                        await ws.send_str(text)
                        conn.last_active = loop.time()
                    except (ConnectionError, RuntimeError):
                        pass  # the peer is gone; the reader ends the connection, this keeps draining
            finally:
                conn.queue.task_done()

    async def flush(self) -> None:
        """Wait until every message queued so far has been written to its socket."""
        await asyncio.gather(*(c.queue.join() for c in list(self.conns)), return_exceptions=True)

    async def close_all(self, kind: str | None = None, code: int = 1001) -> int:
        """Close every connection (of `kind`); returns how many."""
        chosen = [c for c in self.conns if kind is None or c.kind == kind]
        await asyncio.gather(*(c.ws.close(code=code, message=b"closed by the emulator") for c in chosen),
                             return_exceptions=True)
        return len(chosen)

    async def watch_idle(self) -> None:
        """Close connections idle for longer than their timeout (runs for the server's life)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.emu.config.idle_check_s)
            now = loop.time()
            for conn in [c for c in self.conns if now - c.last_active > c.idle_s]:
                task = asyncio.create_task(conn.ws.close(code=1000, message=b"idle"))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ requests from a client
    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            conn.send({"success": False, "ret_msg": "error:request is not a JSON object", "op": "",
                       "conn_id": conn.conn_id})
            return
        op = msg.get("op")
        req_id = msg.get("req_id")
        if op == "ping":
            self._pong(conn, req_id)
        elif op == "auth" and conn.kind == "private":
            ok = check_ws(msg.get("args"), self.emu.now_ms(), self.emu.config.key, self.emu.config.secret)
            conn.authed = conn.authed or ok
            reply = {"success": ok, "ret_msg": "" if ok else "Params Error", "op": "auth", "conn_id": conn.conn_id}
            if req_id is not None:
                reply["req_id"] = req_id
            conn.send(reply)
        elif op in ("subscribe", "unsubscribe"):
            self._subscribe(conn, op, msg.get("args"), req_id)
        else:
            reply = {"success": False, "ret_msg": f"error:invalid op {op}", "op": op if isinstance(op, str) else "",
                     "conn_id": conn.conn_id}
            if req_id is not None or conn.kind == "public":
                reply["req_id"] = req_id if req_id is not None else ""
            conn.send(reply)

    def _pong(self, conn: Connection, req_id: Any) -> None:
        if conn.kind == "public":
            conn.send({"success": True, "ret_msg": "pong", "conn_id": conn.conn_id,
                       "req_id": req_id if req_id is not None else "", "op": "ping"})
        else:
            reply: dict[str, Any] = {"op": "pong", "args": [str(self.emu.now_ms())], "conn_id": conn.conn_id}
            if req_id is not None:
                reply = {"req_id": req_id, **reply}
            conn.send(reply)

    def _reply(self, conn: Connection, op: str, req_id: Any, ok: bool, msg: str = "") -> None:
        reply: dict[str, Any] = {"success": ok, "ret_msg": msg, "conn_id": conn.conn_id, "op": op}
        if req_id is not None or conn.kind == "public":
            reply["req_id"] = req_id if req_id is not None else ""
        conn.send(reply)

    def _subscribe(self, conn: Connection, op: str, args: Any, req_id: Any) -> None:
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            self._reply(conn, op, req_id, False, "error:args must be a list of topics")
            return
        if conn.kind == "private":
            if not conn.authed:
                self._reply(conn, op, req_id, False, "Request not authorized")
                return
            bad = [a for a in args if a not in PRIVATE_TOPICS]
            if bad:
                self._reply(conn, op, req_id, False, f"error:handler not found,topic:{bad[0]}")
                return
            if len({"." in a for a in args if a != "wallet"}) > 1:
                self._reply(conn, op, req_id, False,
                            "error:all-in-one and categorised topics cannot be mixed in one request")
                return
        else:
            for a in args:
                problem = self._public_topic_problem(a)
                if problem is not None:
                    self._reply(conn, op, req_id, False, problem)
                    return
        if op == "subscribe":
            conn.topics.update(args)
        else:
            conn.topics.difference_update(args)
        self._reply(conn, op, req_id, True)
        if op == "subscribe" and conn.kind == "public":
            for a in args:
                if a.startswith("tickers."):
                    self._send_ticker(conn, a, "snapshot")

    def _public_topic_problem(self, topic: str) -> str | None:
        parts = topic.split(".")
        venue = self.emu.venue
        not_found = f"error:handler not found,topic:{topic}"
        if len(parts) == 3 and parts[0] == "kline" and parts[2] in venue.books:
            try:
                interval_ms(parts[1], venue.data_ms)
            except BybitError:
                return not_found
            return None
        if len(parts) == 2 and parts[0] == "tickers" and parts[1] in venue.books:
            return None
        return not_found

    # ------------------------------------------------------------------ pushes
    def publish_private(self, pushes: list[Push]) -> None:
        """Queue the venue's private pushes to every authed subscriber, under its topic; a push the
        faults drop is lost for every connection, as a message lost on the way would be.

        Each push is numbered (`private_seq`) before a fault can drop it, and its message `id`
        starts with that number: a lockstep client (the parity test, `playdeck run` on the
        in-process emulator) compares the last number it read with `step()`'s to know it has
        every push of a step, or that one was lost. Bybit's ids carry no such order."""
        if not pushes:
            return
        now = self.emu.now_ms()
        faults = self.emu.faults
        private = [c for c in self.conns if c.kind == "private" and c.authed and c.topics]
        for push in pushes:
            self.private_seq += 1
            if faults.take_drop(push.topic):
                continue
            if not private:
                continue
            msg_id = f"{self.private_seq}-{uuid.uuid4().hex[:12]}"
            for conn in private:
                for topic in (push.topic, f"{push.topic}.linear"):
                    if topic in conn.topics:
                        conn.send({"id": msg_id, "topic": topic, "creationTime": now, "data": [push.item]})

    def publish_bar(self, bar: int, opening: bool) -> None:
        """Public pushes for data bar `bar`: as it opens (`opening`: kline updates with its open
        only) or once it has happened (kline updates, `confirm:true` for every candle it closes,
        then tickers). Timestamps are the data's: the bar's open, or its close."""
        venue = self.emu.venue
        public = [c for c in self.conns if c.kind == "public" and c.topics]
        if not public:
            return
        ts = venue.ts(bar) + (0 if opening else venue.data_ms)
        cache: dict[str, dict[str, Any] | None] = {}
        for conn in public:
            for topic in sorted(conn.topics):
                if topic.startswith("kline."):
                    if topic not in cache:
                        cache[topic] = self._kline_message(topic, bar, opening, ts)
                    message = cache[topic]
                    if message is not None:
                        conn.send(message)
            if not opening:
                for topic in sorted(conn.topics):
                    if topic.startswith("tickers."):
                        self._send_ticker(conn, topic, "delta", ts)

    def _kline_message(self, topic: str, bar: int, opening: bool, ts: int) -> dict[str, Any] | None:
        _, interval, symbol = topic.split(".")
        venue = self.emu.venue
        book = venue.books[symbol]
        ims = interval_ms(interval, venue.data_ms)
        if opening:
            rows = candles(book.bars, bar - 1, ims, limit=1, open_of=bar)
        else:
            rows = candles(book.bars, bar, ims, limit=1)
        if not rows:
            return None
        c = rows[-1]
        confirm = not opening and c.closed
        return {"topic": topic, "type": "snapshot", "ts": ts,
                "data": [kline_push_item(c, interval, ims, book.fmt, confirm, ts)]}

    def _send_ticker(self, conn: Connection, topic: str, kind: str, ts: int | None = None) -> None:
        venue = self.emu.venue
        book = venue.books[topic.split(".")[1]]
        instant, rate = venue.next_funding(book)
        data = ticker_item(book.bars, venue.bar, book.fmt, rate, instant)
        stamp = ts if ts is not None else venue.ts(venue.bar) + venue.data_ms
        conn.send({"topic": topic, "type": kind, "data": data, "cs": venue.bar, "ts": stamp})
