"""Test helpers for the Bybit emulator: small bar series, a configured emulator on its own loop, pybit
sessions pointed at it (as bybit-v5.md 1.2 and 1.4 say: endpoint after construction, no proxies, no
retries), a private-stream client on `websockets`, and normalising volatile values for golden files.

Nothing here stands in for pybit or websockets: tests talk to the real server over loopback.
"""
from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
from pybit.unified_trading import HTTP
from websockets.sync.client import ClientConnection, connect

from playdeck.runtime.bybit.emulator import (
    DEFAULT_KEY,
    DEFAULT_SECRET,
    AccountSpec,
    BackgroundEmulator,
    EmulatorConfig,
    InstrumentSpec,
    Market,
    RateLimitSpec,
)
from playdeck.runtime.bybit.emulator.auth import sign
from playdeck.runtime.data.bars import Bars

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z, a funding instant
MINUTE = 60_000
NO_LIMITS = RateLimitSpec(enabled=False)
# fees and slippage of the simulator's rule tables (tests/runtime/sim/test_sim_rules.py)
ACCOUNT = AccountSpec(equity=10_000.0, leverage=3.0, maker_fee=0.0002, taker_fee=0.0005, slippage_bps=10.0)


def bars_from(rows: list[tuple[float, float, float, float]], symbol: str = "BTCUSDT", start_ms: int = T0,
              step_ms: int = MINUTE, volume: float = 2.0) -> Bars:
    """Bars from (open, high, low, close) rows, one every `step_ms` from `start_ms`."""
    n = len(rows)
    o, h, l, c = (np.array(col, dtype=float) for col in zip(*rows))
    return Bars(symbol, "1m" if step_ms == MINUTE else {300_000: "5m", 3_600_000: "1h"}[step_ms],
                start_ms + np.arange(n, dtype=np.int64) * step_ms, o, h, l, c, np.full(n, volume))


def walk_bars(n: int, seed: int = 1, symbol: str = "BTCUSDT", price: float = 100.0) -> Bars:
    """A seeded random walk of `n` one-minute bars on a 0.1 tick."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        o = price
        c = round(o * math.exp(rng.gauss(0, 0.004)), 1)
        h = round(max(o, c) + rng.random() * 0.3, 1)
        l = round(min(o, c) - rng.random() * 0.3, 1)
        rows.append((o, h, l, c))
        price = c
    return bars_from(rows, symbol)


def make_config(*bars: Bars, start_bar: int = 0, account: AccountSpec = ACCOUNT, limits: RateLimitSpec = NO_LIMITS,
                spec: dict[str, Any] | None = None, **kw: Any) -> EmulatorConfig:
    markets = tuple(Market(InstrumentSpec(b.symbol, **(spec or {})), b) for b in bars)
    return EmulatorConfig(markets, account=account, start_bar=start_bar, rate_limits=limits, **kw)


def start(*bars: Bars, **kw: Any) -> BackgroundEmulator:
    return BackgroundEmulator(make_config(*bars, **kw)).start()


def flush(bg: BackgroundEmulator) -> None:
    """Wait until every push queued so far is written to its socket."""
    assert bg.emu is not None
    bg.run(bg.emu.streams.flush())


def http(url: str, key: str | None = DEFAULT_KEY, secret: str | None = DEFAULT_SECRET, **kw: Any) -> HTTP:
    """A pybit session on the emulator: no retries (every failure reaches the test at once)."""
    session = HTTP(api_key=key, api_secret=secret, max_retries=1, **kw)
    session.endpoint = url
    session.client.trust_env = False
    session.retry_codes = {-1}  # a set holding no real code: nothing is retried
    return session


def ws_connect(url: str, **kw: Any) -> ClientConnection:
    # legacy=True: a plain connection (not the reconnecting iterator websockets 17 returns by default)
    return connect(url, proxy=None, open_timeout=5, legacy=True, **kw)


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def auth_args(key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET, expires: int | None = None,
              now_ms: int | None = None) -> list[Any]:
    import time

    if expires is None:
        expires = int((now_ms if now_ms is not None else time.time() * 1000) + 10_000)
    return [key, expires, sign(secret, f"GET/realtime{expires}")]


class PrivateStream:
    """An authed private-stream client subscribed to `topics`, keeping every push it reads."""

    def __init__(self, url: str, topics: tuple[str, ...] = ("order", "execution", "position", "wallet")) -> None:
        self.ws = ws_connect(url)
        self.ws.send(json.dumps({"op": "auth", "args": auth_args()}))
        reply = recv_json(self.ws)
        assert reply["success"] is True, reply
        self.ws.send(json.dumps({"op": "subscribe", "req_id": "sub", "args": list(topics)}))
        reply = recv_json(self.ws)
        assert reply["success"] is True, reply
        self.pushes: list[dict[str, Any]] = []

    def read(self, until: Any = None, timeout: float = 5.0, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Read pushes until `until(push)` is true (or, with no `until`, until none comes for `quiet` s)."""
        got = []
        while True:
            try:
                msg = recv_json(self.ws, timeout=timeout if until is not None else quiet)
            except TimeoutError:
                if until is None:
                    return got
                raise
            self.pushes.append(msg)
            got.append(msg)
            if until is not None and until(msg):
                return got

    def items(self, topic: str) -> list[dict[str, Any]]:
        return [item for p in self.pushes if p.get("topic") == topic for item in p["data"]]

    def close(self) -> None:
        self.ws.close()


VOLATILE = {"orderId", "execId", "createdTime", "updatedTime", "execTime", "time", "timeSecond", "timeNano",
            "conn_id", "id", "creationTime", "server_time", "openTime"}


def normalise(obj: Any) -> Any:
    """`obj` with ids and API-clock times replaced by their type's placeholder, for golden files."""
    if isinstance(obj, dict):
        return {k: (_placeholder(v) if k in VOLATILE else normalise(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    return obj


def _placeholder(v: Any) -> Any:
    if isinstance(v, str):
        return "<str>" if v else ""
    if isinstance(v, int):
        return "<int>"
    return normalise(v)


def golden(obj: Any) -> str:
    return json.dumps(normalise(obj), indent=2) + "\n"
