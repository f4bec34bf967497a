"""Orders of every kind the language makes walk the same status paths on the emulator as in the
simulator, and fill alike (price, qty, fee, maker/taker), fill for fill.

Each row is a tiny bar series and commands at bar closes, written once in neutral terms; the table's
translator (written here from the documented mapping, not taken from the emulator) sends each as an
`OrderRequest` to a `SimExchange` and as Bybit's request through pybit to an emulator over the same
bars. The simulator's path (`venue_path`, in Bybit's spelling: PartiallyFilledCanceled and a refused
post-only are Bybit's `Cancelled`) must equal the statuses the emulator pushes on the `order` topic
(consecutive repeats, e.g. an amend's answer, collapsed), and both the row's expected path.
"""
from __future__ import annotations

from typing import Any

import attrs
import pytest

from emulator_kit import ACCOUNT, PrivateStream, bars_from, flush, http, start
from playdeck.runtime.execution.orders import (
    Instrument,
    OrderRequest,
    OrderRole,
    OrderType,
    ProtectionSpec,
    RefusalCode,
    Side,
    TimeInForce,
)
from playdeck.runtime.sim.exchange import SimExchange

B = (100.0, 100.5, 99.5, 100.0)  # a quiet bar that reaches nothing
KIND = {"stop_loss": "StopLoss", "take_profit": "TakeProfit", "trail": "TrailingStop"}


@attrs.frozen
class O:
    """An order in neutral terms."""

    link: str
    side: str  # Buy | Sell
    type: str  # market | limit | stop | stop_limit
    qty: float
    price: float | None = None
    trigger: float | None = None
    tif: str = "GTC"
    reduce: bool = False
    close: bool = False  # qty 0 + reduceOnly + closeOnTrigger: the whole position
    sl: float | None = None
    tp: float | None = None

    def request(self, bar: int, position: float) -> OrderRequest:
        otype = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP,
                 "stop_limit": OrderType.STOP_LIMIT}[self.type]
        role = OrderRole.CLOSE if self.close else OrderRole.PARTIAL_CLOSE if self.reduce else OrderRole.ENTRY
        attached = tuple(ProtectionSpec(k, float(v)) for k, v in (("take_profit", self.tp), ("stop_loss", self.sl))
                         if v is not None)
        return OrderRequest(self.link, Side.BUY if self.side == "Buy" else Side.SELL, otype,
                            abs(position) if self.close else self.qty, self.price, self.trigger,
                            TimeInForce(self.tif), self.reduce or self.close, role, None, bar, None, attached)

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"category": "linear", "symbol": "BTCUSDT", "side": self.side,
                             "orderType": "Market" if self.type in ("market", "stop") else "Limit",
                             "qty": "0" if self.close else f"{self.qty:g}", "orderLinkId": self.link}
        if self.price is not None:
            p["price"] = f"{self.price:g}"
        if self.trigger is not None:
            p["triggerPrice"] = f"{self.trigger:g}"
            p["triggerDirection"] = 1 if self.side == "Buy" else 2
        if self.tif != "GTC":
            p["timeInForce"] = self.tif
        if self.reduce or self.close:
            p["reduceOnly"] = True
        if self.close:
            p["closeOnTrigger"] = True
        if self.sl is not None:
            p["stopLoss"] = f"{self.sl:g}"
        if self.tp is not None:
            p["takeProfit"] = f"{self.tp:g}"
        return p


@attrs.frozen
class Amend:
    link: str
    price: float | None = None
    qty: float | None = None
    trigger: float | None = None


@attrs.frozen
class Cancel:
    link: str


@attrs.frozen
class CancelAll:
    pass


@attrs.frozen
class Protect:
    kind: str  # stop_loss | take_profit | trail
    value: float


Command = O | Amend | Cancel | CancelAll | Protect


@attrs.frozen
class Case:
    name: str
    rows: tuple[tuple[float, float, float, float], ...]
    commands: tuple[tuple[int, Command], ...]  # (the bar at whose close it is sent, what)
    paths: dict[str, str]  # orderLinkId, or a protection kind, -> Bybit status path


CASES = [
    Case("market", (B, (100, 104, 97, 101)), ((0, O("m", "Buy", "market", 1)),), {"m": "New>Filled"}),
    Case("limit fills as maker", (B, (100, 104, 97, 101)), ((0, O("l", "Buy", "limit", 1, price=98)),),
         {"l": "New>Filled"}),
    Case("limit cancelled", (B, B, B), ((0, O("l", "Buy", "limit", 1, price=90)), (1, Cancel("l"))),
         {"l": "New>Cancelled"}),
    Case("post-only that would cross", (B, B), ((0, O("p", "Buy", "limit", 1, price=101, tif="PostOnly")),),
         {"p": "Cancelled"}),
    Case("post-only resting", (B, (100, 104, 97, 101)), ((0, O("p", "Buy", "limit", 1, price=98, tif="PostOnly")),),
         {"p": "New>Filled"}),
    Case("IOC not reached", (B, B, B), ((0, O("i", "Buy", "limit", 1, price=95, tif="IOC")),), {"i": "New>Cancelled"}),
    Case("FOK reached", (B, (100, 104, 97, 101)), ((0, O("f", "Buy", "limit", 1, price=98, tif="FOK")),),
         {"f": "New>Filled"}),
    Case("stop market", (B, (100, 104, 97, 101)), ((0, O("s", "Buy", "stop", 1, trigger=103)),),
         {"s": "Untriggered>Triggered>Filled"}),
    Case("stop-limit rests after a gap", (B, (104, 105, 102, 103)),
         ((0, O("s", "Buy", "stop_limit", 1, price=103.5, trigger=103)),), {"s": "Untriggered>Triggered>New>Filled"}),
    Case("stop cancelled before it triggers", (B, B, B), ((0, O("s", "Sell", "stop", 1, trigger=90)), (1, Cancel("s"))),
         {"s": "Untriggered>Deactivated"}),
    Case("reduce-only", (B, B, B, B), ((0, O("e", "Buy", "market", 2)), (1, O("r", "Sell", "market", 1, reduce=True))),
         {"e": "New>Filled", "r": "New>Filled"}),
    Case("close: qty 0, reduceOnly, closeOnTrigger", (B, B, (100, 101, 99, 100.5), B),
         ((0, O("e", "Buy", "market", 2)), (2, O("c", "Sell", "market", 0, close=True))),
         {"e": "New>Filled", "c": "New>Filled"}),
    Case("amend then fill", (B, B, (100, 104, 97, 101)),
         ((0, O("l", "Buy", "limit", 1, price=95)), (1, Amend("l", price=98))), {"l": "New>Filled"}),
    Case("amend a stop's trigger", (B, B, (100, 104, 97, 101)),
         ((0, O("s", "Buy", "stop", 1, trigger=110)), (1, Amend("s", trigger=103))),
         {"s": "Untriggered>Triggered>Filled"}),
    Case("cancel all", (B, B, B), ((0, O("a", "Buy", "limit", 1, price=90)), (0, O("b", "Sell", "limit", 1, price=110)),
                                    (0, O("s", "Buy", "stop", 1, trigger=120)), (1, CancelAll())),
         {"a": "New>Cancelled", "b": "New>Cancelled", "s": "Untriggered>Deactivated"}),
    Case("stop-loss set on the position fills", (B, B, (100, 100.5, 96, 97)),
         ((0, O("e", "Buy", "market", 1)), (1, Protect("stop_loss", 97)), (1, Protect("take_profit", 104))),
         {"e": "New>Filled", "stop_loss": "Untriggered>Triggered>Filled", "take_profit": "New>Cancelled"}),
    Case("take-profit fills as a limit, the stop-loss is deactivated", (B, B, (100, 105, 99.8, 104)),
         ((0, O("e", "Buy", "market", 1)), (1, Protect("stop_loss", 97)), (1, Protect("take_profit", 104))),
         {"e": "New>Filled", "stop_loss": "Untriggered>Deactivated", "take_profit": "New>Filled"}),
    Case("trailing stop ratchets and fills", (B, B, (100, 104, 99.8, 103.5), (103, 103.5, 100.5, 101)),
         ((0, O("e", "Buy", "market", 1)), (1, Protect("trail", 3))),
         {"e": "New>Filled", "trail": "Untriggered>Triggered>Filled"}),
    Case("take-profit and stop-loss attached to the entry", (B, (100, 100.4, 99.6, 100), (100, 100.5, 96, 97)),
         ((0, O("e", "Buy", "market", 1, sl=97, tp=104)),),
         {"e": "New>Filled", "stop_loss": "Untriggered>Triggered>Filled", "take_profit": "New>Cancelled"}),
    Case("a short closed by a buy limit", (B, B, (100, 100.2, 97, 98)),
         ((0, O("e", "Sell", "market", 1)), (1, O("c", "Buy", "limit", 0, price=98, close=True))),
         {"e": "New>Filled", "c": "New>Filled"}),
]


def sim_run(case: Case) -> tuple[dict[str, str], list[tuple]]:
    """The simulator's paths (Bybit spelling) and fills for the case."""
    inst = Instrument("BTCUSDT", 0.1, 0.001, 0.001)
    ex = SimExchange(inst, maker_fee=ACCOUNT.maker_fee, taker_fee=ACCOUNT.taker_fee, slippage_bps=ACCOUNT.slippage_bps,
                     equity=ACCOUNT.equity, leverage=ACCOUNT.leverage)
    rows = case.rows
    ex.last_close = rows[0][3]
    for bar in range(len(rows)):
        if bar > 0:
            o, h, l, c = rows[bar]
            ex.process_bar(bar, bar * 60_000, o, h, l, c)
            ex.close_bar(bar, h, l, c)
        close = rows[bar][3]
        for at, cmd in case.commands:
            if at != bar:
                continue
            if isinstance(cmd, O):
                ex.submit(cmd.request(bar, ex.position.qty), bar, close)
            elif isinstance(cmd, Amend):
                ex.amend(cmd.link, bar, qty=cmd.qty, price=cmd.price, trigger=cmd.trigger)
            elif isinstance(cmd, Cancel):
                ex.cancel(cmd.link, bar)
            elif isinstance(cmd, CancelAll):
                ex.cancel_all(bar)
            else:
                ex.set_protection(cmd.kind, cmd.value, bar, close)
    paths = {}
    for cid, rec in ex.orders.items():
        key = rec.role.value if rec.role.is_protection else cid
        post_only_refused = any(e for e in [rec.reason] if "EC_PostOnlyWillTakeLiquidity" in e)
        statuses = ["Cancelled" if s in ("PartiallyFilledCanceled",) or (s == "Rejected" and post_only_refused) else s
                    for s in rec.venue_path().split(">")]
        paths[key] = ">".join(statuses)
    fills = [(f.side.value, f.qty, round(f.price, 6), round(f.fee, 8), f.liquidity) for f in ex.drain_events()
             if type(f).__name__ == "Fill"]
    return paths, fills


def emulator_run(case: Case) -> tuple[dict[str, str], list[tuple], dict[str, Any]]:
    """The statuses the emulator pushed per order, its executions, and its history by order."""
    with start(bars_from(list(case.rows)), start_bar=0) as bg:
        api = http(bg.url)
        stream = PrivateStream(bg.private_url)
        try:
            for bar in range(len(case.rows)):
                if bar > 0:
                    assert bg.advance(1) == 1
                for at, cmd in case.commands:
                    if at != bar:
                        continue
                    send(api, cmd)
            flush(bg)
            stream.read(quiet=0.1)  # everything pushed, already written to the socket
        finally:
            stream.close()
        pushed: dict[str, list[str]] = {}
        kinds: dict[str, str] = {}
        for item in stream.items("order"):
            key = item["orderLinkId"] or {v: k for k, v in KIND.items()}[item["stopOrderType"]]
            kinds[item["orderId"]] = key
            seq = pushed.setdefault(key, [])
            if not seq or seq[-1] != item["orderStatus"]:
                seq.append(item["orderStatus"])
        execs = api.get_executions(category="linear", symbol="BTCUSDT")["result"]["list"]
        fills = [(e["side"].lower(), float(e["execQty"]), round(float(e["execPrice"]), 6),
                  round(float(e["execFee"]), 8), "maker" if e["isMaker"] else "taker") for e in reversed(execs)]
        history = {kinds.get(o["orderId"], o["orderLinkId"]): o
                   for o in api.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]}
    return {k: ">".join(v) for k, v in pushed.items()}, fills, history


def send(api, cmd: Command) -> None:
    if isinstance(cmd, O):
        api.place_order(**cmd.params())
    elif isinstance(cmd, Amend):
        p = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": cmd.link}
        for name, v in (("price", cmd.price), ("qty", cmd.qty), ("triggerPrice", cmd.trigger)):
            if v is not None:
                p[name] = f"{v:g}"
        api.amend_order(**p)
    elif isinstance(cmd, Cancel):
        api.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId=cmd.link)
    elif isinstance(cmd, CancelAll):
        api.cancel_all_orders(category="linear", symbol="BTCUSDT")
    else:
        name = {"stop_loss": "stopLoss", "take_profit": "takeProfit", "trail": "trailingStop"}[cmd.kind]
        api.set_trading_stop(category="linear", symbol="BTCUSDT", tpslMode="Full", positionIdx=0,
                             **{name: f"{cmd.value:g}"})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_status_paths_and_fills_match_the_simulator(case: Case):
    sim_paths, sim_fills = sim_run(case)
    emu_paths, emu_fills, history = emulator_run(case)
    assert sim_paths == case.paths
    assert emu_paths == case.paths
    assert emu_fills == sim_fills
    for key, path in case.paths.items():
        assert history[key]["orderStatus"] == path.split(">")[-1]


def test_reasons_bybit_gives_for_cancelled_orders():
    post_only = emulator_run(CASES[3])[2]["p"]
    assert (post_only["orderStatus"], post_only["rejectReason"]) == ("Cancelled", "EC_PostOnlyWillTakeLiquidity")
    ioc = emulator_run(CASES[5])[2]["i"]
    assert (ioc["orderStatus"], ioc["rejectReason"]) == ("Cancelled", "EC_NoImmediateQtyToFill")
    cancelled = emulator_run(CASES[2])[2]["l"]
    assert cancelled["cancelType"] == "CancelByUser"
    protection = emulator_run(CASES[16])[2]
    assert protection["stop_loss"]["cancelType"] == "CancelByTpSlTsClear"
    assert protection["stop_loss"]["stopOrderType"] == "StopLoss" and protection["stop_loss"]["orderLinkId"] == ""
    assert protection["take_profit"]["createType"] == "CreateByTakeProfit"


def test_the_table_covers_every_order_kind_the_language_makes():
    kinds = {(c.type, c.tif, c.reduce, c.close) for case in CASES for _, c in case.commands if isinstance(c, O)}
    assert {k[0] for k in kinds} == {"market", "limit", "stop", "stop_limit"}
    assert {k[1] for k in kinds} == {"GTC", "PostOnly", "IOC", "FOK"}
    assert any(k[2] for k in kinds) and any(k[3] for k in kinds)
    commands = {type(c).__name__ for case in CASES for _, c in case.commands}
    assert commands == {"O", "Amend", "Cancel", "CancelAll", "Protect"}
    assert {c.kind for case in CASES for _, c in case.commands if isinstance(c, Protect)} == set(KIND)
    assert RefusalCode.POST_ONLY_WOULD_TAKE.bybit == 0  # Bybit makes and cancels it: no error code
