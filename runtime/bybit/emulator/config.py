"""What an emulator is started with: the instruments (Bybit's instrument filters, independent of any
Play), the account (equity, fees, slippage, the intrabar model, margin and funding rates), the keys,
and the server's knobs (idle timeouts, rate limits).

Defaults are BTCUSDT's filters as bybit-v5.md 2.2 shows them and Bybit's base fee tier; the account
defaults are the simulator's (PLAY-LANGUAGE.md 7), so an emulator and a backtest with the same
numbers fill alike.
"""

from __future__ import annotations


import attrs

from playdeck.runtime.data.bars import Bars
from playdeck.runtime.execution.orders import Instrument, step_decimals

__all__ = ["AccountSpec", "EmulatorConfig", "InstrumentSpec", "Market", "RateLimitSpec"]

DEFAULT_KEY = "emulator-key"
DEFAULT_SECRET = "emulator-secret"  # not a secret: the emulator only listens on loopback


@attrs.frozen
class InstrumentSpec:
    """One linear perpetual's filters, as `/v5/market/instruments-info` reports them."""

    symbol: str
    tick: float = 0.1
    qty_step: float = 0.001
    min_qty: float = 0.001
    max_qty: float = 1190.0  # limit and post-only orders
    max_mkt_qty: float = 500.0  # market orders
    min_notional: float = 5.0  # USDT
    min_leverage: float = 1.0
    max_leverage: float = 100.0
    leverage_step: float = 0.01

    @property
    def min_price(self) -> float:
        return self.tick

    @property
    def max_price(self) -> float:
        # BTCUSDT's range is 0.10 .. 1999999.80 on a 0.1 tick: the same number of ticks for any tick.
        return round(self.tick * 19_999_998, step_decimals(self.tick))

    def instrument(self) -> Instrument:
        """The simulator's view of it (tick, step, min qty: the rest is checked by the emulator)."""
        return Instrument(self.symbol, self.tick, self.qty_step, self.min_qty)


@attrs.frozen
class AccountSpec:
    """The account every symbol trades in. Each symbol has its own margin (a SimExchange each) with
    `equity` USDT; wallet-balance reports the sum (see README, "The Bybit emulator")."""

    equity: float = 10_000.0
    leverage: float = 10.0  # until /v5/position/set-leverage changes it
    maker_fee: float = 0.0002
    taker_fee: float = 0.00055
    slippage_bps: float = 0.0
    intrabar: str = "worst_case"
    mmr: float = 0.005
    funding: float = 0.0001  # per 8 h, when the data has no funding_rate column


@attrs.frozen
class RateLimitSpec:
    """Bybit's per-UID limits (requests per rolling second) by path, and the per-IP limit (requests
    per rolling 5 s across all paths; over it: HTTP 403). `enabled=False` turns both off (benches)."""

    enabled: bool = True
    per_uid: dict[str, int] = attrs.field(factory=lambda: dict(UID_LIMITS))
    ip_limit: int = 600
    ip_window_ms: int = 5_000


# bybit-v5.md 4 (linear, unified account).
UID_LIMITS: dict[str, int] = {
    "/v5/order/create": 10,
    "/v5/order/amend": 10,
    "/v5/order/cancel": 10,
    "/v5/order/cancel-all": 10,
    "/v5/order/realtime": 50,
    "/v5/order/history": 50,
    "/v5/execution/list": 50,
    "/v5/position/list": 50,
    "/v5/position/set-leverage": 10,
    "/v5/position/trading-stop": 10,
    "/v5/account/wallet-balance": 50,
}


@attrs.frozen(eq=False)
class Market:
    """One symbol the emulator serves: its filters and its bars (one data file)."""

    spec: InstrumentSpec
    bars: Bars


@attrs.frozen(eq=False)
class EmulatorConfig:
    """Everything an `Emulator` needs. `start_bar`: the emulator starts at the close of this bar
    (None: bar 1000, or the last but one bar of shorter data), so /kline has history to warm on."""

    markets: tuple[Market, ...]
    account: AccountSpec = AccountSpec()
    key: str = DEFAULT_KEY
    secret: str = DEFAULT_SECRET
    host: str = "127.0.0.1"
    port: int = 0
    start_bar: int | None = None
    speed: float | None = None  # bars per second; None: advance only when told (--step, lockstep)
    rate_limits: RateLimitSpec = RateLimitSpec()
    idle_timeout_s: float = 600.0  # no ping and no data for this long: the server closes a stream
    idle_check_s: float = 30.0  # how often that is checked (Bybit: about every 30 s)
    lost_reply_hold_s: float = 60.0  # how long a "lost" reply is held before the connection drops
    # Stream requests are read this long after they arrive: network latency, which loopback lacks.
    # pybit's thread-based WebSocket records a subscription's req_id only after sending it, so an
    # instant reply finds no id (KeyError in its thread); 0.05 s is ample for it. playdeck's own
    # client does not need it (0).
    ws_latency_s: float = 0.0

    def __attrs_post_init__(self) -> None:
        if not self.markets:
            raise ValueError("the emulator needs at least one market")
        symbols = [m.spec.symbol for m in self.markets]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"a symbol is given twice: {', '.join(symbols)}")
