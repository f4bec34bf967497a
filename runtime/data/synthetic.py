"""Deterministic synthetic 1-minute BTCUSDT bars: the bundled default dataset.

Not a market model to trade on, a stand-in with the statistical texture strategies react to:

- fat tails: returns are Student-t (df = 4) scaled to unit variance;
- volatility clustering at two speeds: a GARCH(1,1) on the minute returns (hours-long bursts)
  times a slow log-normal regime (days-long calm and stormy stretches);
- slow drifts, so trends exist for trend-following examples to find (zero on average);
- a 24h cycle: volatility and volume peak around the US open (~14:30 UTC) and bottom out in the
  late Asian night (~03:00 UTC), and both are lower at weekends;
- BTC-like levels: starts at 60,000 with ~55% annualized volatility; prices on a 0.1 tick,
  volume on 0.001 BTC; open is the previous close except for an occasional one-tick gap.

Everything derives from one seeded numpy Generator, so a seed gives the same bars on every run.
`GENERATOR_VERSION` goes into the cache metadata: bump it whenever the output changes.
"""

from __future__ import annotations

import numpy as np

from playdeck.runtime.data.bars import Bars
from playdeck.runtime.data.indicators import linear_recurrence

GENERATOR_VERSION = 1
DEFAULT_SEED = 42  # chosen for a year with a rally and a decline, ending near the start
DEFAULT_START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
DEFAULT_N_BARS = 525_600  # one (non-leap) year of minutes
DEFAULT_SYMBOL = "BTCUSDT"

_MINUTE_MS = 60_000
_MINUTES_PER_YEAR = 525_600
_ANNUAL_VOL = 0.55
_T_DF = 4.0
# GARCH(1,1) on unit long-run variance: h = (1 - a - b) + a * h * z^2 + b * h.
_GARCH_A, _GARCH_B = 0.05, 0.93
_GARCH_CAP = 40.0  # keeps a freak t-draw from compounding into an absurd burst
_REGIME_MINUTES, _REGIME_SD = 3 * 1440, 0.35  # slow log-vol: timescale, stationary stdev
_DRIFT_MINUTES, _DRIFT_SD = 2 * 1440, 0.008  # slow drift, in units of the base minute vol
_GAP_PROB = 0.03  # share of bars whose open is one tick away from the previous close
_BASE_VOLUME = 80.0  # BTC per minute at average activity


def _ar1(rng: np.random.Generator, n: int, timescale: float, sd: float) -> np.ndarray:
    """Stationary AR(1) x[t] = phi * x[t-1] + noise with the given stationary stdev."""
    phi = float(np.exp(-1.0 / timescale))
    noise = rng.standard_normal(n) * (sd * np.sqrt(1.0 - phi * phi))
    start = rng.standard_normal() * sd
    return linear_recurrence(noise, phi, start)


def _garch_variance(z: np.ndarray) -> np.ndarray:
    """Conditional variance h[t] of a unit GARCH(1,1) driven by innovations z (h[t] uses z[..t-1]).

    The recursion is nonlinear (h depends on its own past through z^2 * h), so it cannot use the
    blocked linear solver; a loop over Python floats does a year in ~0.2 s.
    """
    a, b = _GARCH_A, _GARCH_B
    w = 1.0 - a - b
    cap = _GARCH_CAP
    h = 1.0
    out = [0.0] * len(z)
    for i, e in enumerate(z.tolist()):
        out[i] = h
        h = w + (a * e * e + b) * h
        if h > cap:
            h = cap
    return np.asarray(out)


def _daily_cycle(ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(volatility factor, volume factor) from the UTC time of day and the weekday."""
    hour = (ts_ms % 86_400_000) / 3_600_000.0
    phase = 2.0 * np.pi * (hour - 14.5) / 24.0
    vol = 1.0 + 0.28 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
    volume = 1.0 + 0.45 * np.cos(phase) + 0.12 * np.cos(2.0 * phase)
    # 1970-01-01 was a Thursday: day index 2 and 3 (mod 7) are Saturday and Sunday.
    weekend = ((ts_ms // 86_400_000) % 7 >= 2) & ((ts_ms // 86_400_000) % 7 <= 3)
    vol = np.where(weekend, vol * 0.7, vol)
    volume = np.where(weekend, volume * 0.55, volume)
    return vol, volume


def _round_to(values: np.ndarray, step: float) -> np.ndarray:
    """Snap to multiples of `step`, returned as the nearest float to the decimal (60000.1, not ...06)."""
    decimals = max(0, int(np.ceil(-np.log10(step) - 1e-9)))
    return np.round(np.rint(values / step) * step, decimals)


def generate(
    n_bars: int = DEFAULT_N_BARS,
    seed: int = DEFAULT_SEED,
    start_ms: int = DEFAULT_START_MS,
    *,
    symbol: str = DEFAULT_SYMBOL,
    start_price: float = 60_000.0,
    tick: float = 0.1,
) -> Bars:
    """`n_bars` synthetic 1m bars from `start_ms` (must be on a minute), deterministic in `seed`."""
    if n_bars < 0:
        raise ValueError(f"n_bars must be >= 0, was {n_bars}")
    if start_ms % _MINUTE_MS != 0:
        raise ValueError(f"start_ms must be on a whole minute, was {start_ms}")
    rng = np.random.default_rng(seed)
    ts = start_ms + np.arange(n_bars, dtype=np.int64) * _MINUTE_MS
    if n_bars == 0:
        empty = np.empty(0)
        return Bars(symbol, "1m", ts, empty, empty, empty, empty, empty, synthetic=True)

    base_sigma = _ANNUAL_VOL / np.sqrt(_MINUTES_PER_YEAR)
    z = rng.standard_t(_T_DF, n_bars) / np.sqrt(_T_DF / (_T_DF - 2.0))  # unit variance
    vol_cycle, volume_cycle = _daily_cycle(ts)
    regime = np.exp(_ar1(rng, n_bars, _REGIME_MINUTES, _REGIME_SD) - 0.5 * _REGIME_SD**2)
    # The cycle is normalized to mean 1 so the annualized volatility stays near _ANNUAL_VOL.
    sigma = base_sigma * np.sqrt(_garch_variance(z)) * regime * (vol_cycle / vol_cycle.mean())
    drift = _ar1(rng, n_bars, _DRIFT_MINUTES, _DRIFT_SD * base_sigma)
    log_close = np.log(start_price) + np.cumsum(drift + sigma * z - 0.5 * sigma * sigma)

    # Work in integer ticks so every price is exactly on the grid and the bar invariants hold.
    close_t = np.rint(np.exp(log_close) / tick).astype(np.int64)
    open_t = np.empty(n_bars, dtype=np.int64)
    open_t[0] = int(round(start_price / tick))
    open_t[1:] = close_t[:-1]
    gap = rng.random(n_bars) < _GAP_PROB
    gap[0] = False
    open_t += np.where(gap, rng.choice(np.array([-1, 1]), n_bars), 0)
    # Wicks beyond the body: exponential, scaled by the bar's volatility (mean ~0.35 sigma each side).
    price = np.exp(log_close)
    wick_scale = 0.35 * sigma * price / tick
    up_t = np.floor(rng.exponential(1.0, n_bars) * wick_scale).astype(np.int64)
    down_t = np.floor(rng.exponential(1.0, n_bars) * wick_scale).astype(np.int64)
    high_t = np.maximum(open_t, close_t) + up_t
    low_t = np.maximum(np.minimum(open_t, close_t) - down_t, 1)

    # Volume follows activity: the daily cycle, the regime, and the size of the move itself.
    activity = volume_cycle / volume_cycle.mean() * regime**0.8 * (0.45 + 0.55 * np.abs(z))
    volume = _BASE_VOLUME * activity * rng.lognormal(-0.125, 0.5, n_bars)

    return Bars(
        symbol=symbol,
        tf="1m",
        ts_open=ts,
        open=_round_to(open_t * tick, tick),
        high=_round_to(high_t * tick, tick),
        low=_round_to(low_t * tick, tick),
        close=_round_to(close_t * tick, tick),
        volume=_round_to(volume, 0.001),
        synthetic=True,
    )
