"""A Bybit V5 exchange on loopback, backed by the simulator's matching engine (see server.py for the
Python API and README.md, "The Bybit emulator", for what it serves and where it differs from Bybit).

Imports aiohttp: nothing outside this package (and `playdeck emulator`) imports it at start-up.
"""

from __future__ import annotations

from playdeck.runtime.bybit.emulator.config import (
    DEFAULT_KEY,
    DEFAULT_SECRET,
    AccountSpec,
    EmulatorConfig,
    InstrumentSpec,
    Market,
    RateLimitSpec,
)
from playdeck.runtime.bybit.emulator.server import BackgroundEmulator, Emulator

__all__ = ["DEFAULT_KEY", "DEFAULT_SECRET", "AccountSpec", "BackgroundEmulator", "Emulator", "EmulatorConfig",
           "InstrumentSpec", "Market", "RateLimitSpec"]
