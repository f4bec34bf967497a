"""The emulator's streams with `websockets` as the client (and pybit's own WebSocket once): private
auth (good, bad signature, expired), subscribe, the order / execution / position / wallet pushes of a
fill, JSON and protocol pings, public klines (`confirm:false` updates, one `confirm:true` per closed
bar, in order with no gap) and tickers, and idle connections closed as Bybit closes them."""
from __future__ import annotations

import json
import threading
import time

import pytest
from pybit import unified_trading
from websockets.exceptions import ConnectionClosed, InvalidStatus

from emulator_kit import (
    MINUTE,
    T0,
    PrivateStream,
    auth_args,
    bars_from,
    flush,
    golden,
    http,
    recv_json,
    start,
    walk_bars,
    ws_connect,
)
from playdeck.runtime.bybit.emulator import DEFAULT_KEY, DEFAULT_SECRET

B = (100.0, 100.5, 99.5, 100.0)
BARS = walk_bars(40, seed=11)


@pytest.fixture(scope="module")
def emu():
    bg = start(BARS, start_bar=9)
    yield bg
    bg.stop()


def test_auth_succeeds_with_a_good_signature_and_echoes_req_id(emu):
    with ws_connect(emu.private_url) as ws:
        ws.send(json.dumps({"req_id": "a1", "op": "auth", "args": auth_args()}))
        reply = recv_json(ws)
        assert reply["success"] is True and reply["ret_msg"] == "" and reply["op"] == "auth"
        assert reply["req_id"] == "a1" and isinstance(reply["conn_id"], str)


@pytest.mark.parametrize("args", [
    pytest.param(auth_args(secret="wrong"), id="bad signature"),
    pytest.param(auth_args(expires=int(time.time() * 1000) - 1), id="expired"),
    pytest.param(auth_args(key="other"), id="unknown key"),
])
def test_a_bad_auth_is_refused_and_private_topics_stay_closed(emu, args):
    with ws_connect(emu.private_url) as ws:
        ws.send(json.dumps({"op": "auth", "args": args}))
        reply = recv_json(ws)
        assert {k: reply[k] for k in ("success", "ret_msg", "op")} == {"success": False, "ret_msg": "Params Error",
                                                                      "op": "auth"}
        assert "req_id" not in reply
        ws.send(json.dumps({"op": "subscribe", "req_id": "s", "args": ["order"]}))
        reply = recv_json(ws)
        assert (reply["success"], reply["ret_msg"], reply["req_id"]) == (False, "Request not authorized", "s")
        ws.send(json.dumps({"op": "auth", "args": auth_args()}))  # a good one afterwards still works
        assert recv_json(ws)["success"] is True


def test_subscribe_replies_and_bad_topics(emu):
    with ws_connect(emu.private_url) as ws:
        ws.send(json.dumps({"op": "auth", "args": auth_args()}))
        recv_json(ws)
        ws.send(json.dumps({"op": "subscribe", "args": ["order", "wallet"]}))
        reply = recv_json(ws)
        assert reply["success"] is True and reply["op"] == "subscribe" and "req_id" not in reply
        ws.send(json.dumps({"op": "subscribe", "req_id": "x", "args": ["order", "execution.linear"]}))
        reply = recv_json(ws)
        assert reply["success"] is False and reply["req_id"] == "x"
        ws.send(json.dumps({"op": "subscribe", "req_id": "y", "args": ["greeks"]}))
        assert recv_json(ws)["ret_msg"] == "error:handler not found,topic:greeks"
    with ws_connect(emu.public_url) as ws:
        ws.send(json.dumps({"op": "subscribe", "args": ["kline.1.FOOUSDT"]}))
        reply = recv_json(ws)
        assert reply == {"success": False, "ret_msg": "error:handler not found,topic:kline.1.FOOUSDT",
                         "conn_id": reply["conn_id"], "op": "subscribe", "req_id": ""}


def test_json_pings_are_answered_in_each_streams_shape(emu):
    with ws_connect(emu.public_url) as ws:
        ws.send(json.dumps({"req_id": "p1", "op": "ping"}))
        reply = recv_json(ws)
        assert reply == {"success": True, "ret_msg": "pong", "conn_id": reply["conn_id"], "req_id": "p1", "op": "ping"}
        ws.send(json.dumps({"op": "ping"}))
        assert recv_json(ws)["req_id"] == ""
    with ws_connect(emu.private_url) as ws:
        ws.send(json.dumps({"req_id": "p2", "op": "ping"}))
        reply = recv_json(ws)
        assert (reply["req_id"], reply["op"], list(reply)) == ("p2", "pong", ["req_id", "op", "args", "conn_id"])
        assert abs(int(reply["args"][0]) - time.time() * 1000) < 60_000


def test_protocol_pings_are_answered(emu):
    with ws_connect(emu.public_url, ping_interval=None) as ws:
        assert ws.ping(b"hello").wait(5)
    with ws_connect(emu.private_url, ping_interval=None) as ws:
        assert ws.ping().wait(5)


def test_a_fill_pushes_order_execution_position_and_wallet(json_snapshot):
    with start(bars_from([B, B, B]), start_bar=0) as bg:
        stream = PrivateStream(bg.private_url)
        try:
            api = http(bg.url)
            api.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="1",
                            orderLinkId="m1")
            bg.advance(1)
            flush(bg)
            stream.read(quiet=0.1)
        finally:
            stream.close()
    topics = [(p["topic"], p["data"][0].get("orderStatus", "")) for p in stream.pushes]
    assert topics == [("order", "New"), ("position", ""), ("execution", ""), ("order", "Filled"), ("position", ""),
                      ("wallet", "")]
    for p in stream.pushes:
        assert isinstance(p["id"], str) and isinstance(p["creationTime"], int) and isinstance(p["data"], list)
        assert "type" not in p
    position = stream.items("position")[-1]
    assert (position["entryPrice"], position["size"], position["category"]) == ("100.1", "1.000", "linear")
    assert "avgPrice" not in position
    execution = stream.items("execution")[0]
    assert isinstance(execution["seq"], int) and isinstance(execution["isMaker"], bool)
    assert isinstance(execution["execTime"], str)
    assert golden(stream.pushes) == json_snapshot


def test_categorised_topics_get_their_own_topic_name():
    with start(bars_from([B, B]), start_bar=0) as bg:
        stream = PrivateStream(bg.private_url, ("order.linear", "position.linear"))
        try:
            http(bg.url).place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="1",
                                     price="90")
            stream.read(until=lambda m: m.get("topic") == "position.linear")
        finally:
            stream.close()
    assert [p["topic"] for p in stream.pushes] == ["order.linear", "position.linear"]


def test_klines_push_updates_then_one_confirm_per_closed_bar_in_order(emu):
    with ws_connect(emu.public_url) as ws:
        ws.send(json.dumps({"op": "subscribe", "req_id": "k", "args": ["kline.1.BTCUSDT", "kline.5.BTCUSDT"]}))
        assert recv_json(ws)["success"] is True
        start_bar = emu.call(lambda: emu.emu.venue.bar)
        assert emu.advance(6) == 6
        got = []
        while True:
            try:
                got.append(recv_json(ws, timeout=0.2))
            except TimeoutError:
                break
    one = [m["data"][0] for m in got if m["topic"] == "kline.1.BTCUSDT"]
    confirmed = [k for k in one if k["confirm"]]
    assert [k["start"] for k in confirmed] == [T0 + (start_bar + j) * MINUTE for j in range(1, 7)]
    # each bar: an update with only its open, then its confirm
    assert [k["confirm"] for k in one] == [False, True] * 6
    first_bar = start_bar + 1
    assert one[0]["open"] == one[0]["close"] == one[0]["high"] == f"{BARS.open[first_bar]:.1f}"
    assert one[1]["close"] == f"{BARS.close[first_bar]:.1f}" and one[1]["end"] == one[1]["start"] + MINUTE - 1
    assert isinstance(one[1]["start"], int) and isinstance(one[1]["timestamp"], int)
    five = [m["data"][0] for m in got if m["topic"] == "kline.5.BTCUSDT"]
    # bars 10..15: the bucket 10..14 closes with bar 14, the next one opens with bar 15
    assert [k["confirm"] for k in five] == [False] * 9 + [True] + [False, False]
    assert five[9]["start"] == T0 + 10 * MINUTE and five[9]["high"] == f"{BARS.high[10:15].max():.1f}"
    for m in got:
        assert m["type"] == "snapshot" and isinstance(m["ts"], int)


def test_tickers_snapshot_on_subscribe_then_a_delta_per_bar(emu):
    with ws_connect(emu.public_url) as ws:
        ws.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}))
        assert recv_json(ws)["success"] is True
        snap = recv_json(ws)
        assert (snap["topic"], snap["type"]) == ("tickers.BTCUSDT", "snapshot")
        bar = emu.call(lambda: emu.emu.venue.bar)
        assert snap["data"]["lastPrice"] == f"{BARS.close[bar]:.1f}"
        emu.advance(1)
        delta = recv_json(ws)
        assert delta["type"] == "delta" and delta["data"]["lastPrice"] == f"{BARS.close[bar + 1]:.1f}"


def test_idle_connections_are_closed_and_pinging_ones_kept():
    with start(bars_from([B, B]), start_bar=0, idle_timeout_s=1.0, idle_check_s=0.05) as bg:
        idle = ws_connect(bg.public_url, ping_interval=None)
        alive = ws_connect(bg.private_url, ping_interval=None)
        stop = threading.Event()

        def keep_alive() -> None:
            while not stop.wait(0.1):
                alive.send(json.dumps({"op": "ping"}))

        pinger = threading.Thread(target=keep_alive, daemon=True)
        pinger.start()
        try:
            with pytest.raises(ConnectionClosed):
                while True:
                    idle.recv(timeout=10)
            alive_until = time.time() + 1.5
            while time.time() < alive_until:
                assert recv_json(alive)["op"] == "pong"
        finally:
            stop.set()
            pinger.join()
            idle.close()
            alive.close()


def test_max_active_time_must_be_30s_to_600s(emu):
    with pytest.raises(InvalidStatus):
        ws_connect(emu.private_url + "?max_active_time=10s")
    with ws_connect(emu.private_url + "?max_active_time=1m") as ws:
        ws.send(json.dumps({"op": "ping"}))
        assert recv_json(ws)["op"] == "pong"


def test_pybits_own_websocket_authenticates_and_receives_orders():
    """pybit's thread-based client, pointed at loopback by its URL constants (bybit-v5.md 1.6). It
    records a subscription's req_id only after sending it: the emulator answers with a network's
    latency, or pybit's thread looks the reply up before the id is there."""
    with start(bars_from([B, B]), start_bar=0, ws_latency_s=0.05) as bg:
        saved = unified_trading.PUBLIC_WSS, unified_trading.PRIVATE_WSS
        unified_trading.PRIVATE_WSS = bg.private_url
        unified_trading.PUBLIC_WSS = bg.public_url.replace("/linear", "/{CHANNEL_TYPE}")
        got: list[dict] = []
        arrived = threading.Event()
        private = public = None
        try:
            private = unified_trading.WebSocket(testnet=False, channel_type="private", api_key=DEFAULT_KEY,
                                                api_secret=DEFAULT_SECRET, private_auth_expire=10)
            private.order_stream(callback=lambda m: (got.append(m), arrived.set()))
            public = unified_trading.WebSocket(testnet=False, channel_type="linear")
            klines: list[dict] = []
            public.kline_stream(interval=1, symbol="BTCUSDT", callback=klines.append)
            deadline = time.time() + 10
            while not (private.subscriptions and public.subscriptions) and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # the replies, 0.05 s late
            http(bg.url).place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="1",
                                     price="90", orderLinkId="py")
            assert arrived.wait(10)
            bg.advance(1)
            deadline = time.time() + 10
            while len(klines) < 2 and time.time() < deadline:
                time.sleep(0.02)
        finally:
            for ws in (private, public):
                if ws is not None:
                    ws.exit()
            unified_trading.PUBLIC_WSS, unified_trading.PRIVATE_WSS = saved
    assert got[0]["topic"] == "order" and got[0]["data"][0]["orderLinkId"] == "py"
    assert [k["data"][0]["confirm"] for k in klines] == [False, True]
