"""ResilientStream against the emulator on loopback (websockets and pybit for real, nothing mocked):
public klines in lockstep, private auth + subscribe + an order's pushes, the close-stream and restart
faults (reconnect, re-auth, re-subscribe, on_connect(2) awaited before the new connection's pushes),
a half-open connection found dead by its missing pongs, a wrong secret refused once and never
retried, a skewed venue clock mended by one measurement, ping round trips, refused topics, and the
key and secret kept out of health(), repr() and every log record.

Each test runs the emulator in its own event loop (the in-process API) with the stream beside it;
waits poll for a condition with a generous deadline rather than assert on timings."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from emulator_kit import MINUTE, T0, http, make_config, walk_bars
from playdeck.runtime.bybit.clock import ClockSync
from playdeck.runtime.bybit.emulator import DEFAULT_KEY, DEFAULT_SECRET, Emulator
from playdeck.runtime.bybit.stream import (
    ResilientStream,
    StreamAuthError,
    StreamSubscribeError,
    auth_refusal,
)

BARS = walk_bars(40, seed=5)
START = 9
PRIVATE = ("order", "execution", "position")
FAST = {"backoff": (0.02, 0.3), "reply_timeout": 5.0}


class Recorder:
    """The callbacks: every on_connect (start and end) and push, in the order they were called."""

    def __init__(self, during_connect: Callable[[int], Any] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self._during = during_connect

    async def on_connect(self, n: int) -> None:
        self.events.append(("connect", n))
        if self._during is not None:
            await self._during(n)
        self.events.append(("connected", n))

    def on_message(self, msg: dict[str, Any]) -> None:
        self.events.append(("push", msg))

    def pushes(self, topic: str) -> list[dict[str, Any]]:
        return [item for kind, m in self.events if kind == "push" and m["topic"] == topic for item in m["data"]]

    def index(self, pred: Callable[[tuple[str, Any]], bool]) -> int:
        return next(i for i, e in enumerate(self.events) if pred(e))


def order_push(link: str, status: str = "New") -> Callable[[tuple[str, Any]], bool]:
    return lambda e: e[0] == "push" and e[1]["topic"] == "order" and any(
        o["orderLinkId"] == link and o["orderStatus"] == status for o in e[1]["data"])


async def until(pred: Callable[[], bool], timeout: float = 15.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(*streams: ResilientStream) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(s.run()) for s in streams]
    try:
        yield tasks
    finally:
        for s in streams:
            await s.close()
        for task in tasks:
            await task  # a stream that stopped on an error raises it here


async def place(url: str, link: str, price: str = "90", **kw: Any) -> None:
    await asyncio.to_thread(http(url, **kw).place_order, category="linear", symbol="BTCUSDT", side="Buy",
                            orderType="Limit", qty="1", price=price, orderLinkId=link)


def private_stream(emu: Emulator, rec: Recorder, **kw: Any) -> ResilientStream:
    options = {**FAST, "key": DEFAULT_KEY, "secret": DEFAULT_SECRET, **kw}
    return ResilientStream(emu.private_url, PRIVATE, on_message=rec.on_message, on_connect=rec.on_connect, **options)


def public_stream(emu: Emulator, rec: Recorder, topics: tuple[str, ...] = ("kline.1.BTCUSDT",),
                  **kw: Any) -> ResilientStream:
    return ResilientStream(emu.public_url, topics, on_message=rec.on_message, on_connect=rec.on_connect,
                           **{**FAST, **kw})


def authed_private_conns(emu: Emulator) -> list[set[str]]:
    """What the emulator knows of its private connections: the topics of each authed one."""
    return [set(c.topics) for c in emu.streams.conns if c.kind == "private" and c.authed]


def test_public_klines_arrive_in_lockstep_with_confirm_per_closed_bar():
    async def scenario() -> None:
        async with Emulator(make_config(BARS, start_bar=START)) as emu:
            rec = Recorder()
            stream = public_stream(emu, rec)
            async with running(stream):
                health = await stream.wait_connected(10)
                assert (health.name, health.connected, health.ready, health.connects, health.topics) == \
                    ("public", True, True, 1, ("kline.1.BTCUSDT",))
                assert await emu.advance(3) == 3
                await until(lambda: sum(k["confirm"] for k in rec.pushes("kline.1.BTCUSDT")) == 3, what="3 closes")
            klines = rec.pushes("kline.1.BTCUSDT")
            assert [k["confirm"] for k in klines] == [False, True] * 3
            assert [k["start"] for k in klines if k["confirm"]] == [T0 + (START + j) * MINUTE for j in (1, 2, 3)]
            assert rec.events[:2] == [("connect", 1), ("connected", 1)]
            assert stream.health().connected is False  # closed

    asyncio.run(scenario())


def test_private_auth_subscribe_and_an_orders_pushes_arrive_in_order():
    async def scenario() -> None:
        async with Emulator(make_config(BARS, start_bar=START)) as emu:
            rec = Recorder()
            stream = private_stream(emu, rec)
            async with running(stream):
                health = await stream.wait_connected(10)
                assert (health.name, health.connects, health.reconnects, health.topics) == ("private", 1, 0, PRIVATE)
                assert authed_private_conns(emu) == [set(PRIVATE)]
                await place(emu.url, "p1")
                await until(lambda: any(map(order_push("p1"), rec.events)), what="the order push")
                await until(lambda: rec.pushes("position"), what="the position push")
            assert [e[1]["topic"] for e in rec.events if e[0] == "push"] == ["order", "position"]
            assert stream.health().last_message_ms is not None

    asyncio.run(scenario())


async def reconnect_scenario(fault: Callable[[Emulator], Any]) -> None:
    """Connect, see a push, apply `fault`, and watch the stream come back: on_connect(2) places an
    order over REST (as a reconciliation would call REST) and its pushes, which arrive while it is
    still running, are delivered only after it returns."""
    async with Emulator(make_config(BARS, start_bar=START)) as emu:
        async def during(n: int) -> None:
            if n == 2:
                await place(emu.url, "during")
                # its pushes are read while this runs, and wait in the queue
                await until(lambda: stream.health().backlog >= 2, what="pushes held back")

        rec = Recorder(during)
        stream = private_stream(emu, rec)
        public_rec = Recorder()
        public = public_stream(emu, public_rec)
        async with running(stream, public):
            await stream.wait_connected(10)
            await public.wait_connected(10)
            await place(emu.url, "before")
            await until(lambda: any(map(order_push("before"), rec.events)), what="the first push")
            await fault(emu)
            await until(lambda: ("connected", 2) in rec.events, what="on_connect(2)")
            await until(lambda: public.health().connects == 2, what="the public stream back")
            await stream.wait_connected(10)
            await public.wait_connected(10)
            assert authed_private_conns(emu) == [set(PRIVATE)]  # re-authed and re-subscribed
            await place(emu.url, "after")
            await until(lambda: any(map(order_push("after"), rec.events)), what="a push after the reconnect")
            assert await emu.advance(1) == 1
            await until(lambda: any(k["confirm"] for k in public_rec.pushes("kline.1.BTCUSDT")), what="a kline")
            health = stream.health()
            assert (health.connected, health.connects, health.reconnects, health.topics) == (True, 2, 1, PRIVATE)
            assert health.last_error is not None
        events = rec.events
        assert events[:2] == [("connect", 1), ("connected", 1)]
        assert [e for e in events if e[0] != "push"] == [("connect", 1), ("connected", 1), ("connect", 2),
                                                         ("connected", 2)]
        # on_connect(2) was awaited: the order it placed shows after it returned, never inside it
        assert rec.index(order_push("before")) < events.index(("connect", 2)) < events.index(("connected", 2)) \
            < rec.index(order_push("during")) < rec.index(order_push("after"))
        assert [e for e in public_rec.events if e[0] != "push"][-1] == ("connected", 2)


def test_a_closed_private_stream_reconnects_reauths_resubscribes_and_awaits_on_connect():
    async def close_both(emu: Emulator) -> None:
        assert await emu.close_streams("private") == 1
        assert await emu.close_streams("public") == 1

    asyncio.run(reconnect_scenario(close_both))


def test_an_emulator_restart_is_survived_the_same_way():
    asyncio.run(reconnect_scenario(lambda emu: emu.restart()))


class FreezingRelay:
    """A TCP relay on loopback whose connections can be frozen: bytes stop flowing both ways while the
    sockets stay open, as a half-open connection behaves (no close, no error, just silence)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frozen: set[int] = set()
        self.conns: list[int] = []
        self.server: asyncio.Server | None = None
        self._ids = iter(range(1, 1_000))

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        self.frozen.update(self.conns)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(self._ids)
        self.conns.append(conn)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if conn not in self.frozen:
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def test_a_silent_half_open_connection_is_found_dead_and_replaced():
    async def scenario() -> None:
        async with Emulator(make_config(BARS, start_bar=START)) as emu:
            relay = FreezingRelay(emu.port)
            port = await relay.start()
            rec = Recorder()
            stream = ResilientStream(f"ws://127.0.0.1:{port}/v5/private", PRIVATE, key=DEFAULT_KEY,
                                     secret=DEFAULT_SECRET, on_message=rec.on_message, on_connect=rec.on_connect,
                                     ping_interval=0.2, dead_after=1.0, **FAST)
            try:
                async with running(stream):
                    await stream.wait_connected(10)
                    relay.freeze()
                    await until(lambda: ("connected", 2) in rec.events, what="a new connection")
                    assert "dead" in (stream.health().last_error or "")
                    await place(emu.url, "after")
                    await until(lambda: any(map(order_push("after"), rec.events)), what="a push")
            finally:
                await relay.stop()

    asyncio.run(scenario())


def test_a_wrong_secret_is_one_clear_error_and_never_retried():
    async def scenario() -> None:
        async with Emulator(make_config(BARS, start_bar=START)) as emu:
            rec = Recorder()
            stream = private_stream(emu, rec, secret="not-the-secret")
            started = time.monotonic()
            task = asyncio.create_task(stream.run())
            with pytest.raises(StreamAuthError) as waited:
                await stream.wait_connected(10)
            with pytest.raises(StreamAuthError) as raised:
                await asyncio.wait_for(task, 10)
            assert time.monotonic() - started < 5
            assert raised.value is waited.value
            health = stream.health()
            assert (health.attempts, health.connects, health.connected) == (1, 0, False)
            assert rec.events == []
            text = str(raised.value)
            assert "Params Error" in text and "secret is wrong" in text and "not-the-secret" not in text
            assert DEFAULT_KEY not in text and health.last_error == text
            await stream.close()  # after the end: harmless

    asyncio.run(scenario())


def test_a_skewed_venue_clock_is_measured_once_and_auth_then_succeeds():
    async def scenario() -> None:
        async with Emulator(make_config(BARS, start_bar=START)) as emu:
            emu.skew_clock(3_600_000)  # the venue's clock an hour ahead: expires from the local clock is past
            clock = ClockSync()
            measured = []

            async def resync() -> None:
                sent = int(time.time() * 1000)
                answer = await asyncio.to_thread(http(emu.url).get_server_time)
                clock.update(int(answer["result"]["timeNano"]) // 1_000_000, sent, int(time.time() * 1000))
                measured.append(clock.offset_ms)

            rec = Recorder()
            stream = private_stream(emu, rec, clock=clock, resync=resync)
            async with running(stream):
                health = await stream.wait_connected(10)
            assert (health.attempts, health.connects) == (2, 1)
            assert len(measured) == 1 and measured[0] > 3_500_000

            unsynced = private_stream(emu, Recorder(), clock=ClockSync())
            with pytest.raises(StreamAuthError) as e:
                await asyncio.wait_for(unsynced.run(), 10)
            assert "clock" in str(e.value) and "ahead of the venue's time as known" in str(e.value)

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["public", "private"])
def test_json_pings_measure_the_round_trip_and_keep_a_quiet_stream_up(kind):
    async def scenario() -> None:
        async with Emulator(make_config(BARS, start_bar=START)) as emu:
            rec = Recorder()
            make = private_stream if kind == "private" else public_stream
            stream = make(emu, rec, ping_interval=0.05, dead_after=2.0)
            async with running(stream):
                await stream.wait_connected(10)
                await until(lambda: stream.health().last_pong_rtt_ms is not None, what="a pong")
                first = stream.health().last_message_ms
                await until(lambda: stream.health().last_message_ms != first, what="another pong")
                await asyncio.sleep(0.3)  # several pings, no pushes: pongs alone keep it alive
                health = stream.health()
            assert health.last_pong_rtt_ms is not None and 0 <= health.last_pong_rtt_ms < 2000
            assert (health.connects, health.attempts, health.last_error) == (1, 1, None)
            assert [e for e in rec.events if e[0] == "push"] == []  # pongs never reach on_message

    asyncio.run(scenario())


def test_a_refused_topic_stops_the_stream_and_a_refused_runtime_subscribe_raises_to_its_caller():
    async def scenario() -> None:
        async with Emulator(make_config(BARS, start_bar=START)) as emu:
            bad = public_stream(emu, Recorder(), topics=("kline.1.BTCUSDT", "kline.1.FOOUSDT"))
            with pytest.raises(StreamSubscribeError) as e:
                await asyncio.wait_for(bad.run(), 10)
            assert e.value.ret_msg == "error:handler not found,topic:kline.1.FOOUSDT"
            assert bad.health().attempts == 1

            rec = Recorder()
            stream = public_stream(emu, rec)
            async with running(stream):
                await stream.wait_connected(10)
                await stream.subscribe(["kline.5.BTCUSDT"])
                with pytest.raises(StreamSubscribeError):
                    await stream.subscribe(["tickers.FOOUSDT"])
                health = stream.health()
                assert (health.connected, health.topics) == (True, ("kline.1.BTCUSDT", "kline.5.BTCUSDT"))
                assert stream.topics == ("kline.1.BTCUSDT", "kline.5.BTCUSDT")
                await emu.close_streams("public")  # the topic added at run time is subscribed again
                await until(lambda: stream.health().connects == 2 and stream.health().connected, what="connect 2")
                assert stream.health().topics == ("kline.1.BTCUSDT", "kline.5.BTCUSDT")
                assert await emu.advance(1) == 1
                await until(lambda: rec.pushes("kline.5.BTCUSDT"), what="a 5-minute kline")

    asyncio.run(scenario())


def test_the_key_and_secret_stay_out_of_health_repr_and_every_log_record(caplog):
    key, secret = "k3y-f0r-the-t35t", "s3cr3t-f0r-the-t35t"
    caplog.set_level(logging.DEBUG, logger="playdeck.runtime.bybit.stream")

    async def scenario() -> tuple[str, ...]:
        async with Emulator(make_config(BARS, start_bar=START, key=key, secret=secret)) as emu:
            rec = Recorder()
            stream = private_stream(emu, rec, key=key, secret=secret)
            async with running(stream):
                await stream.wait_connected(10)
                await emu.close_streams("private")
                await until(lambda: stream.health().connects == 2 and stream.health().connected, what="connect 2")
                await place(emu.url, "x", key=key, secret=secret)
                await until(lambda: rec.pushes("order"), what="a push")
                seen = (repr(stream), str(stream.health()), repr(stream.health()), repr(stream.__dict__))
            wrong = private_stream(emu, Recorder(), key=key, secret=secret + "-wrong")
            with pytest.raises(StreamAuthError) as e:
                await asyncio.wait_for(wrong.run(), 10)
            return (*seen, str(e.value), repr(e.value), str(wrong.health()))

    texts = asyncio.run(scenario())
    records = [r.getMessage() for r in caplog.records]
    assert any("reconnected" in m for m in records) and any("lost" in m for m in records)
    assert any('"op":"auth"' in m for m in records)  # websockets' frame log of the auth, scrubbed
    for text in (*texts, *records):
        assert secret not in text and key not in text and key[:6] not in text, text


@pytest.mark.parametrize("url, reply, unknown, says", [
    ("wss://stream.bybit.com/v5/private", {"success": False, "ret_msg": "Params Error", "op": "auth"}, False,
     ["secret is wrong", "stream-demo.bybit.com", "clock"]),
    ("wss://stream.bybit.com/v5/private", {"retCode": 10003, "retMsg": "API key is invalid.", "op": "auth"}, True,
     ["does not know the API key at stream.bybit.com", "retCode 10003",
      "a demo-trading key works only on wss://stream-demo.bybit.com/v5/private"]),
    ("wss://stream-demo.bybit.com/v5/private", {"success": False, "ret_msg": "error:apikey invalid", "op": "auth"},
     True, ["demo-trading host"]),
    ("wss://stream-testnet.bybit.com/v5/private", {"success": False, "ret_msg": "Params Error"}, False,
     ["testnet host"]),
], ids=["params error", "10003 on mainnet", "unknown key on demo", "testnet"])
def test_an_auth_refusal_says_what_to_check(url, reply, unknown, says):
    error = auth_refusal("private", url, reply, expires_ms=1_000_005_000, venue_ms=1_000_000_000)
    assert error.key_unknown is unknown
    for words in says:
        assert words in str(error)


def test_an_echoed_key_in_a_refusal_is_scrubbed():
    # Bybit has been seen echoing the request, key and all, in an auth failure's text
    stream = ResilientStream("ws://127.0.0.1:1/v5/private", key="the-key", secret="the-secret",
                             on_message=print)
    error = auth_refusal("private", stream.url, {"success": False, "ret_msg": "bad: ['the-key', 1, 'x']"},
                         expires_ms=1, venue_ms=0, scrub=stream._scrub)
    assert "the-key" not in str(error) and "***" in error.ret_msg


def test_backoff_grows_with_jitter_and_is_capped():
    stream = ResilientStream("ws://127.0.0.1:1/v5/public/linear", on_message=print, backoff=(0.1, 2.0))
    for failures, ceiling in [(0, 0.1), (1, 0.2), (3, 0.8), (5, 2.0), (50, 2.0)]:
        delays = [stream._delay(failures) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


@pytest.mark.parametrize("kw, message", [
    ({"key": "k"}, "give both key and secret"),
    ({"ping_interval": 5.0, "dead_after": 5.0}, "dead_after (5.0) must exceed ping_interval (5.0)"),
    ({"backoff": (1.0, 0.5)}, "backoff must be (min, max)"),
])
def test_bad_settings_are_refused_at_once(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ResilientStream("ws://127.0.0.1:1/v5/private", on_message=print, **kw)


def test_a_venue_down_at_start_is_retried_with_backoff_until_it_listens():
    async def scenario() -> None:
        import socket

        with socket.socket() as s:  # a port nobody listens on (yet)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        rec = Recorder()
        stream = ResilientStream(f"ws://127.0.0.1:{port}/v5/public/linear", ("kline.1.BTCUSDT",),
                                 on_message=rec.on_message, on_connect=rec.on_connect, **FAST)
        async with running(stream):
            await until(lambda: stream.health().attempts >= 3, what="failed attempts")
            health = stream.health()
            assert (health.connected, health.connects) == (False, 0)
            assert "Connect" in (health.last_error or "") or "refused" in (health.last_error or "")
            async with Emulator(make_config(BARS, start_bar=START, port=port)):
                await stream.wait_connected(10)
                assert rec.events == [("connect", 1), ("connected", 1)]

    asyncio.run(scenario())


def test_a_failing_callback_stops_the_stream_loudly_and_cancelling_run_closes_the_socket():
    async def scenario() -> None:
        async with Emulator(make_config(BARS, start_bar=START)) as emu:
            def broken(msg: dict[str, Any]) -> None:
                raise RuntimeError("the backend's bug")

            stream = ResilientStream(emu.public_url, ("kline.1.BTCUSDT",), on_message=broken, **FAST)
            task = asyncio.create_task(stream.run())
            await stream.wait_connected(10)
            assert await emu.advance(1) == 1
            with pytest.raises(RuntimeError, match="the backend's bug"):
                await asyncio.wait_for(task, 10)
            assert stream.health().connected is False
            await until(lambda: not [c for c in emu.streams.conns if c.kind == "public"], what="the socket closed")

            rec = Recorder()
            cancelled = private_stream(emu, rec)
            task = asyncio.create_task(cancelled.run())
            await cancelled.wait_connected(10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: not [c for c in emu.streams.conns if c.kind == "private"], what="the socket closed")
            with pytest.raises(RuntimeError, match="run\\(\\) may be called once"):
                await cancelled.run()

    asyncio.run(scenario())
