"""The in-process API in lockstep, as the live backend and the parity test will drive it: inside one
asyncio loop, `async with Emulator(...)`, read bar i's `confirm:true` kline from the public stream,
act through pybit, then `await emu.advance()`: what was sent at bar i's close fills in bar i+1, fill
for fill as the simulator fills the same decisions."""
from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from emulator_kit import ACCOUNT, MINUTE, T0, auth_args, http, make_config, walk_bars
from playdeck.runtime.bybit.emulator import Emulator
from playdeck.runtime.execution.orders import Fill, Instrument, OrderRequest, OrderRole, OrderType, Side, TimeInForce
from playdeck.runtime.sim.exchange import SimExchange

BARS = walk_bars(60, seed=21)
START = 10


def decide(closes: list[float], position: float) -> str | None:
    """A toy strategy on closed bars: long after an up close, short after a down close, qty 1."""
    if len(closes) < 2 or closes[-1] == closes[-2]:
        return None
    want = 1.0 if closes[-1] > closes[-2] else -1.0
    if want == position:
        return None
    return "Buy" if want > position else "Sell"


def backtest() -> list[tuple]:
    ex = SimExchange(Instrument("BTCUSDT", 0.1, 0.001, 0.001), maker_fee=ACCOUNT.maker_fee,
                     taker_fee=ACCOUNT.taker_fee, slippage_bps=ACCOUNT.slippage_bps, equity=ACCOUNT.equity,
                     leverage=ACCOUNT.leverage)
    closes = [float(c) for c in BARS.close[:START + 1]]
    ex.last_close = closes[-1]
    fills = []
    for bar in range(START, len(BARS)):
        if bar > START:
            o, h, l, c = (float(x[bar]) for x in (BARS.open, BARS.high, BARS.low, BARS.close))
            ex.process_bar(bar, T0 + bar * MINUTE, o, h, l, c)
            ex.close_bar(bar, h, l, c)
            closes.append(c)
            fills += [(e.bar, e.side.value, e.qty, round(e.price, 6)) for e in ex.drain_events() if isinstance(e, Fill)]
        side = decide(closes, ex.position.qty)
        if side is not None:
            qty = abs(ex.position.qty) + 1.0
            ex.submit(OrderRequest(f"o{bar}", Side.BUY if side == "Buy" else Side.SELL, OrderType.MARKET, qty, None,
                                   None, TimeInForce.GTC, False, OrderRole.ENTRY, None, bar, None), bar, closes[-1])
    return fills


async def live() -> list[tuple]:
    async with Emulator(make_config(BARS, start_bar=START)) as emu:
        api = http(emu.url)
        async with connect(emu.public_url, proxy=None) as pub, connect(emu.private_url, proxy=None) as priv:
            await pub.send(json.dumps({"op": "subscribe", "args": ["kline.1.BTCUSDT"]}))
            await priv.send(json.dumps({"op": "auth", "args": auth_args()}))
            await priv.send(json.dumps({"op": "subscribe", "args": ["execution"]}))
            assert json.loads(await pub.recv())["success"] is True
            closes = [float(c) for c in BARS.close[:START + 1]]
            position = 0.0
            fills: list[tuple] = []
            for bar in range(START, len(BARS)):
                if bar > START:
                    assert await emu.advance() == 1
                    while True:  # read up to this bar's close
                        k = json.loads(await pub.recv())["data"][0]
                        if k["confirm"]:
                            break
                    assert k["start"] == T0 + bar * MINUTE  # no gap, no bar skipped
                    closes.append(float(k["close"]))
                side = decide(closes, position)
                if side is not None:
                    qty = abs(position) + 1.0
                    await asyncio.to_thread(api.place_order, category="linear", symbol="BTCUSDT", side=side,
                                            orderType="Market", qty=f"{qty:g}", orderLinkId=f"o{bar}")
                    position = 1.0 if side == "Buy" else -1.0
            await emu.streams.flush()
            while True:
                try:
                    msg = json.loads(await asyncio.wait_for(priv.recv(), 0.2))
                except asyncio.TimeoutError:
                    break
                for e in msg.get("data", []) if msg.get("topic") == "execution" else []:
                    # which bar it filled in: the order was sent at the close of bar N
                    sent = int(e["orderLinkId"][1:])
                    fills.append((sent + 1, e["side"].lower(), float(e["execQty"]), round(float(e["execPrice"]), 6)))
    return fills


def test_lockstep_fills_as_the_backtest_fills():
    expected = backtest()
    assert len(expected) > 10
    assert asyncio.run(live()) == expected
