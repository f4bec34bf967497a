"""The words every layer shares, each rule in one place: timeframes, sides, time in force,
protection kinds, intrabar models and what a symbol may be.

It sits at the bottom (dsl/) so the compiler, the runtime and the command line all import the same
table instead of keeping copies that drift (the cache once took `BTCUSD`, which no Play can name).
"""
from __future__ import annotations

import re

__all__ = [
    "DEFAULT_TIME_IN_FORCE",
    "INTRABAR_MODELS",
    "PROTECTION_KINDS",
    "SIDES",
    "SYMBOL",
    "TIMEFRAMES",
    "TIME_IN_FORCE",
    "TIF_WORDS",
    "is_multiple",
    "is_symbol",
    "symbol_problem",
    "tf_minutes",
    "tf_ms",
]

# The language's timeframes and their length in minutes, finest first (Bybit's kline intervals up to 1d).
TIMEFRAME_MINUTES: dict[str, int] = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30,
    "1h": 60, "2h": 120, "4h": 240, "6h": 360, "12h": 720, "1d": 1440,
}
TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_MINUTES)


def tf_minutes(tf: str) -> int:
    """Minutes in one bar of `tf`; ValueError naming the known timeframes for anything else."""
    try:
        return TIMEFRAME_MINUTES[tf]
    except KeyError:
        raise ValueError(f"unknown timeframe {tf!r}; expected one of {', '.join(TIMEFRAMES)}") from None


def tf_ms(tf: str) -> int:
    """Milliseconds in one bar of `tf`."""
    return tf_minutes(tf) * 60_000


def is_multiple(tf: str, base: str) -> bool:
    """True when one `tf` bar is a whole number of `base` bars (a timeframe is a multiple of itself)."""
    return tf_minutes(tf) % tf_minutes(base) == 0


SIDES: tuple[str, ...] = ("buy", "sell")

# The language's time-in-force words -> Bybit's `timeInForce` spelling (what orders carry).
TIME_IN_FORCE: dict[str, str] = {"gtc": "GTC", "post_only": "PostOnly", "ioc": "IOC", "fok": "FOK"}
# What an order is unless told; the others are the words a Play writes after a limit order.
DEFAULT_TIME_IN_FORCE = "gtc"
TIF_WORDS: tuple[str, ...] = tuple(w for w in TIME_IN_FORCE if w != DEFAULT_TIME_IN_FORCE)

# Position-level protection, one of each per position (PLAY-LANGUAGE.md 6).
PROTECTION_KINDS: tuple[str, ...] = ("stop_loss", "take_profit", "trail")

INTRABAR_MODELS: tuple[str, ...] = ("worst_case", "ohlc_path")

# A Bybit USDT perpetual: capitals and digits ending in USDT (BTCUSDT, 1000PEPEUSDT). Also what the
# data cache accepts, so a symbol is always a safe path part and always one a Play can name.
SYMBOL = re.compile(r"[A-Z0-9]{2,20}USDT")


def is_symbol(symbol: str) -> bool:
    return SYMBOL.fullmatch(symbol) is not None


def symbol_problem(symbol: str) -> str | None:
    """Why `symbol` is not a Bybit USDT perpetual (None when it is), with the fix when there is one."""
    if is_symbol(symbol):
        return None
    if is_symbol(symbol.upper()):
        return f"{symbol!r} must be in capitals: {symbol.upper()}"
    return (f"{symbol!r} is not a Bybit USDT perpetual: capitals and digits ending in USDT, "
            "e.g. BTCUSDT or 1000PEPEUSDT")
