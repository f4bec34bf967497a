"""Built-in indicators, vectorized in numpy, bound by name to the compiler's signatures of them.

Conventions shared by every indicator:

- Inputs are 1-D float arrays; outputs are float64 arrays of the same length (or a dict of them
  for multi-output indicators), NaN while warming up.
- The signature's warm-up (`IndicatorSig.first_value(params)`) is the number of leading NaN bars
  for an input without NaN: the index of the first valid value. For an input that itself starts
  with k NaN bars (an upstream indicator still warming up), the output starts k bars later, so the
  warm-up of a composition is the sum: `ema(rsi(close, 14), 9)` is first valid at 14 + 8 = 22.
- NaN is "no value". Window indicators give NaN for any window that contains a NaN. Recursive
  ones (ema, rma and everything built on them) restart after a NaN, like Pine's `na` handling:
  each NaN-free run of the input is filtered on its own, re-seeded with the SMA of its first n
  values. Only NaN is missing; inf is an ordinary (if unhelpful) value.
- Lengths are integers >= 1.

Recursive filters are exact linear recurrences solved block-wise with a matrix product (see
`linear_recurrence`), so a million bars cost milliseconds rather than a Python loop per bar.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from playdeck.compiler.builtins import INDICATORS, IndicatorSig

Output = np.ndarray | dict[str, np.ndarray]

# Block length of the blocked recurrence: a (B x B) matrix product per block, a Python step per
# block for the carries. 128 keeps both costs small on 1M bars.
_BLOCK = 128
# Rows per chunk of sliding-window reductions, bounded so a temporary stays a few MB.
_WINDOW_CHUNK_ELEMS = 1 << 21


# --------------------------------------------------------------------------- building blocks


def _as_float(x: object) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"indicator input must be 1-D, got shape {arr.shape}")
    return arr


def _check_length(name: str, n: int, minimum: int = 1) -> int:
    if isinstance(n, bool) or int(n) != n or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, was {n!r}")
    return int(n)


def linear_recurrence(u: np.ndarray, a: float, y0: float = 0.0) -> np.ndarray:
    """Solve y[t] = a * y[t-1] + u[t] for t = 0..len(u)-1 with y[-1] = y0, for 0 <= a <= 1.

    Exact, not an approximation: the series is cut into blocks of B values at fixed positions
    (0, B, 2B, ...); inside every block at once the zero-start response runs the recurrence itself,
    one position at a time across all blocks (B vector steps), and the block-to-block carry is a
    short recurrence over the blocks (y_end = a**B * y_end_prev + local_end). Only non-negative
    powers of a appear, so nothing blows up for small a. Every value takes the same floating-point
    steps whatever comes after it, so the first k values of a series are bit for bit those of its
    first k inputs (no lookahead, not even in the last digit). NaN in u would spread through its
    whole block; callers pass NaN-free runs.
    """
    u = np.asarray(u, dtype=np.float64)
    m = len(u)
    if m == 0:
        return np.empty(0)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"recurrence factor must be in [0, 1], was {a}")
    b = _BLOCK
    nb = -(-m // b)
    padded = np.zeros(nb * b)
    padded[:m] = u
    # Row j holds position j of every block, so each step of the recurrence is one vector operation.
    local = np.ascontiguousarray(padded.reshape(nb, b).T)
    for j in range(1, b):
        local[j] += a * local[j - 1]
    # Carry into each block: the true y just before it. nb is ~ m / 128, cheap as a Python loop.
    a_b = a ** b
    ends = local[-1].tolist()
    carry = [0.0] * nb
    c = float(y0)
    for i in range(nb):
        carry[i] = c
        c = a_b * c + ends[i]
    decay = a ** np.arange(1, b + 1, dtype=np.float64)
    y = local.T + np.asarray(carry)[:, None] * decay[None, :]
    return y.reshape(-1)[:m]


def _finite_runs(x: np.ndarray) -> list[tuple[int, int]]:
    """Maximal [start, stop) runs of non-NaN values."""
    missing = np.isnan(x)
    if not missing.any():
        return [(0, len(x))] if len(x) else []
    edges = np.flatnonzero(np.diff(np.concatenate(([1], missing.view(np.int8), [1]))))
    # edges alternate: a run starts where missing goes 1->0 and stops where it goes 0->1.
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _seeded_smoother(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """y = alpha * x + (1 - alpha) * y_prev, seeded with the SMA of each run's first n values."""
    out = np.full(len(x), np.nan)
    for start, stop in _finite_runs(x):
        if stop - start < n:
            continue
        seed = float(np.mean(x[start : start + n]))
        out[start + n - 1] = seed
        if stop > start + n:
            out[start + n : stop] = linear_recurrence(alpha * x[start + n : stop], 1.0 - alpha, seed)
    return out


def _rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum of the last n values (NaN for the first n-1 bars and for windows holding a NaN).

    The series is cut into blocks of n at fixed positions; a window is the tail of one block plus
    the head of the next, each a running sum inside its block. So rounding stays that of summing
    n values, where one running total over the whole series would grow with its length (on a
    million bars at BTC prices, ~1e-6 off: enough to make `close > sma(close, 20)` true on flat,
    gap-filled bars). A value reads nothing after its own bar. Variance does not go through here.
    """
    m = len(x)
    out = np.full(m, np.nan)
    if m < n:
        return out
    missing = np.isnan(x)
    blocks = np.zeros(-(-m // n) * n)
    blocks[:m] = np.where(missing, 0.0, x)
    blocks = blocks.reshape(-1, n)
    head = np.cumsum(blocks, axis=1).reshape(-1)[:m]  # from the block's start to each bar
    tail = np.cumsum(blocks[:, ::-1], axis=1)[:, ::-1].reshape(-1)[:m]  # from each bar to its block's end
    ends = np.arange(n - 1, m)
    sums = head[n - 1 :].copy()
    inside = ends % n != n - 1  # a window not exactly one block: add the previous block's tail
    sums[inside] += tail[ends[inside] - n + 1]
    out[n - 1 :] = sums
    if missing.any():
        cmiss = np.concatenate(([0], np.cumsum(missing)))
        out[n - 1 :][(cmiss[n:] - cmiss[:-n]) > 0] = np.nan
    return out


def _rolling_apply(x: np.ndarray, n: int, reduce: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """reduce(windows) over every full n-window, in chunks to bound the temporary size."""
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    windows = sliding_window_view(x, n)
    step = max(1, _WINDOW_CHUNK_ELEMS // n)
    for s in range(0, len(windows), step):
        out[n - 1 + s : n - 1 + s + step] = reduce(windows[s : s + step])
    return out


def _rolling_extreme(x: np.ndarray, n: int, ufunc: np.ufunc) -> np.ndarray:
    """Rolling max/min in O(len) (van Herk / Gil-Werman): prefix and suffix scans per n-block.

    A window [i-n+1, i] spans at most two aligned blocks; its extreme is the suffix extreme of the
    first from i-n+1 combined with the prefix extreme of the second up to i. np.maximum/minimum
    propagate NaN, so a window holding a NaN is NaN and no other window is touched.
    """
    m = len(x)
    out = np.full(m, np.nan)
    if m < n:
        return out
    if n == 1:
        return x.copy()
    nb = -(-m // n)
    padded = np.full(nb * n, x[-1])
    padded[:m] = x
    blocks = padded.reshape(nb, n)
    prefix = ufunc.accumulate(blocks, axis=1).reshape(-1)
    suffix = ufunc.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    i = np.arange(n - 1, m)
    out[n - 1 :] = ufunc(suffix[i - n + 1], prefix[i])
    return out


# --------------------------------------------------------------------------- indicators


def _constant_windows(x: np.ndarray, n: int) -> np.ndarray:
    """True at bar i when the n values ending there are all equal and none is NaN.

    Counted in integers, so exact: a mean of equal values is that value, not a sum's rounding."""
    m = len(x)
    same = np.zeros(m, dtype=bool)
    if m >= n:
        changes = np.zeros(m, dtype=np.int64)
        np.cumsum(x[1:] != x[:-1], out=changes[1:])  # NaN != NaN: a NaN breaks every window
        same[n - 1 :] = changes[n - 1 :] == changes[: m - n + 1]
    return same & ~np.isnan(x)  # (a window of one NaN is no value)


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average: mean of the last n values. First valid at n-1. Exactly the value
    on a flat stretch (filled gap bars), so `close > sma(close, n)` is false there."""
    x, n = _as_float(x), _check_length("sma length", n)
    return np.where(_constant_windows(x, n), x, _rolling_sum(x, n) / n)


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, alpha = 2/(n+1): y = alpha*x + (1-alpha)*y[-1].

    Seeded with the SMA of the first n values (Pine's ta.ema), so the first valid value is at n-1.
    """
    x, n = _as_float(x), _check_length("ema length", n)
    return _seeded_smoother(x, n, 2.0 / (n + 1))


def rma(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's moving average (Pine ta.rma), alpha = 1/n, seeded with the SMA of the first n values.

    First valid at n-1.
    """
    x, n = _as_float(x), _check_length("rma length", n)
    return _seeded_smoother(x, n, 1.0 / n)


def wma(x: np.ndarray, n: int) -> np.ndarray:
    """Linearly weighted moving average: weights 1..n, the newest value weighing n. First valid at n-1."""
    x, n = _as_float(x), _check_length("wma length", n)
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    weights = np.arange(1, n + 1, dtype=np.float64)
    # Direct convolution (not FFT): exact to rounding, and a NaN only reaches windows holding it.
    # np.convolve flips its kernel, so the reversed weights put n on the newest value.
    out[n - 1 :] = np.convolve(x, weights[::-1], mode="valid") / weights.sum()
    return out


def stdev(x: np.ndarray, n: int) -> np.ndarray:
    """Population standard deviation (ddof=0, like Pine's ta.stdev) of the last n values.

    Computed two-pass per window (mean, then squared deviations) rather than from running sums of
    x and x**2, which cancel catastrophically at BTC prices. First valid at n-1.
    """
    x, n = _as_float(x), _check_length("stdev length", n)
    # On a flat stretch exactly 0 (a window mean's rounding would leave ~1e-12).
    return np.where(_constant_windows(x, n), 0.0, _rolling_apply(x, n, lambda w: np.std(w, axis=1)))


def highest(x: np.ndarray, n: int) -> np.ndarray:
    """Highest value of the last n bars (current bar included). First valid at n-1."""
    x, n = _as_float(x), _check_length("highest length", n)
    return _rolling_extreme(x, n, np.maximum)


def lowest(x: np.ndarray, n: int) -> np.ndarray:
    """Lowest value of the last n bars (current bar included). First valid at n-1."""
    x, n = _as_float(x), _check_length("lowest length", n)
    return _rolling_extreme(x, n, np.minimum)


def roc(x: np.ndarray, n: int) -> np.ndarray:
    """Rate of change in percent: 100 * (x - x[n]) / x[n], x[n] being n bars ago. First valid at n.

    A zero base gives NaN, as division by zero does everywhere in the language (not inf, which
    would compare greater than any threshold).
    """
    x, n = _as_float(x), _check_length("roc length", n)
    out = np.full(len(x), np.nan)
    if len(x) > n:
        base = x[:-n]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[n:] = np.where(base == 0.0, np.nan, 100.0 * (x[n:] - base) / base)
    return out


def rsi(x: np.ndarray, n: int) -> np.ndarray:
    """Relative strength index (Wilder): 100 - 100 / (1 + rma(gain, n) / rma(loss, n)).

    gain = max(x - x[1], 0), loss = max(x[1] - x, 0), averaged with Wilder's RMA (SMA seed). The
    first change exists at bar 1, so the first valid value is at n. As in Pine: 100 when the
    average loss is 0 (also when both are 0), 0 when only the average gain is 0.
    """
    x, n = _as_float(x), _check_length("rsi length", n)
    change = np.full(len(x), np.nan)
    change[1:] = np.diff(x)
    gain = rma(np.where(change > 0, change, np.where(np.isnan(change), np.nan, 0.0)), n)
    loss = rma(np.where(change < 0, -change, np.where(np.isnan(change), np.nan, 0.0)), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + gain / loss)
    out = np.where(loss == 0.0, 100.0, np.where(gain == 0.0, 0.0, out))
    out[np.isnan(gain) | np.isnan(loss)] = np.nan
    return out


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high - low, |high - close[1]|, |low - close[1]|); the first bar has no close[1]: high - low."""
    high, low, close = _as_float(high), _as_float(low), _as_float(close)
    tr = high - low
    if len(tr) > 1:
        prev = close[:-1]
        tr[1:] = np.maximum(tr[1:], np.maximum(np.abs(high[1:] - prev), np.abs(low[1:] - prev)))
    return tr


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Average true range: Wilder's RMA of the true range (Pine's ta.atr).

    The first true range is high - low (no previous close), so the RMA's SMA seed over the first n
    true ranges lands at bar n-1: first valid at n-1.
    """
    n = _check_length("atr length", n)
    return rma(true_range(high, low, close), n)


def macd(x: np.ndarray, fast: int, slow: int, signal: int) -> dict[str, np.ndarray]:
    """MACD: macd = ema(x, fast) - ema(x, slow); signal = ema(macd, signal); hist = macd - signal.

    Fields: macd (first valid at max(fast, slow) - 1), signal and hist (first valid at
    max(fast, slow) + signal - 2).
    """
    x = _as_float(x)
    fast = _check_length("macd fast length", fast)
    slow = _check_length("macd slow length", slow)
    signal = _check_length("macd signal length", signal)
    line = ema(x, fast) - ema(x, slow)
    sig = ema(line, signal)
    return {"macd": line, "signal": sig, "hist": line - sig}


def bbands(x: np.ndarray, n: int, k: float) -> dict[str, np.ndarray]:
    """Bollinger bands: middle = sma(x, n), upper/lower = middle +/- k * population stdev(x, n).

    All fields first valid at n-1.
    """
    x, n = _as_float(x), _check_length("bbands length", n)
    mid = sma(x, n)
    dev = float(k) * stdev(x, n)
    return {"upper": mid + dev, "middle": mid, "lower": mid - dev}


def vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int) -> np.ndarray:
    """Rolling n-bar VWAP of the typical price hlc3 = (high + low + close) / 3.

    sum(hlc3 * volume) / sum(volume) over the last n bars (`vwap()` is the session one below). A
    window with zero total volume (e.g. filled gap bars) falls back to the plain mean of hlc3
    instead of NaN, so a warm feature never goes missing again; a window of one hlc3 is that
    value exactly. First valid at n-1.
    """
    n = _check_length("vwap length", n)
    tp = (_as_float(high) + _as_float(low) + _as_float(close)) / 3.0
    vol = _as_float(volume)
    pv = _rolling_sum(tp * vol, n)
    vsum = _rolling_sum(vol, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pv / vsum
    out = np.where(vsum == 0.0, _rolling_sum(tp, n) / n, out)
    return np.where(_constant_windows(tp, n) & ~np.isnan(out), tp, out)


DAY_MS = 86_400_000


def vwap_session(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
                 ts_open: np.ndarray) -> np.ndarray:
    """Session VWAP, anchored at 00:00 UTC like Pine's `ta.vwap` on a 24/7 market (written `vwap()`).

    sum(hlc3 * volume) / sum(volume) over the bars of the day so far, this one included; it starts
    again with the first bar of each UTC day. While the day has had no volume at all it is the plain
    mean of hlc3 so far. First valid at 0.
    """
    tp = (_as_float(high) + _as_float(low) + _as_float(close)) / 3.0
    vol = _as_float(volume)
    day = np.asarray(ts_open, dtype=np.int64) // DAY_MS
    n = len(tp)
    if n == 0:
        return tp
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])  # the first bar of each day
    lengths = np.diff(np.r_[starts, n])

    def day_cumsum(x: np.ndarray) -> np.ndarray:
        c = np.cumsum(x)
        before = np.r_[0.0, c[starts[1:] - 1]]  # the running total when each day starts
        return c - np.repeat(before, lengths)

    pv, vsum = day_cumsum(tp * vol), day_cumsum(vol)
    count = np.arange(n) - np.repeat(starts, lengths) + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pv / vsum
    return np.where(vsum == 0.0, day_cumsum(tp) / count, out)


def _pivot(x: np.ndarray, left: int, right: int, high_side: bool) -> np.ndarray:
    m = len(x)
    out = np.full(m, np.nan)
    if m < left + right + 1:
        return out
    sign = 1.0 if high_side else -1.0
    v = sign * x  # a pivot low is a pivot high of -x
    left_max = _rolling_extreme(v, left, np.maximum)
    right_max = left_max if right == left else _rolling_extreme(v, right, np.maximum)
    p = np.arange(left, m - right)  # candidate pivot bars with full left and right windows
    # Strictly above the left bars, at least equal to the right ones: a flat top of equal bars
    # yields one pivot (its first bar), not one per bar.
    is_pivot = (v[p] > left_max[p - 1]) & (v[p] >= right_max[p + right])
    confirmed_at = p[is_pivot] + right  # known only once the right bars have closed
    if len(confirmed_at) == 0:
        return out
    marks = np.full(m, -1, dtype=np.int64)
    marks[confirmed_at] = p[is_pivot]
    latest = np.maximum.accumulate(marks)  # forward-fill the most recent confirmed pivot bar
    seen = latest >= 0
    out[seen] = x[latest[seen]]
    return out


def pivot_high(high: np.ndarray, left: int, right: int) -> np.ndarray:
    """Most recent confirmed pivot high price, forward-filled (NaN until the first one).

    Bar p is a pivot high when high[p] is strictly greater than each of the `left` bars before it
    and greater than or equal to each of the `right` bars after it. It is confirmed, and the
    output takes its price, at bar p + right (never earlier: no lookahead); the value holds until
    the next confirmation, so `close > pivot_high(5, 5)` reads as a break of the last swing high.
    warmup = left + right is the earliest possible confirmation; on data without a pivot the
    output stays NaN longer (comparisons with NaN are false).
    """
    left = _check_length("pivot left length", left)
    right = _check_length("pivot right length", right)
    return _pivot(_as_float(high), left, right, high_side=True)


def pivot_low(low: np.ndarray, left: int, right: int) -> np.ndarray:
    """Mirror of `pivot_high` on lows: strictly below the left bars, <= the right bars."""
    left = _check_length("pivot left length", left)
    right = _check_length("pivot right length", right)
    return _pivot(_as_float(low), left, right, high_side=False)


# --------------------------------------------------------------------------- registry
# The compiler's signature table (`playdeck.compiler.builtins.INDICATORS`) is the one list of
# built-ins: names, arguments, implicit columns, fields and warm-ups. Here each signature is only
# bound to its implementation, the function of this module with the signature's name, called as
# `fn(*implicit_columns, *series_args, *params)`. A signature without one stops the import, instead
# of a KeyError in the middle of a backtest.


def bind(signatures: Mapping[str, IndicatorSig],
         functions: Mapping[str, object]) -> Mapping[str, Callable[..., Output]]:
    """name -> implementation for every signature, looked up by the signature's name in `functions`;
    ImportError naming every signature that has none."""
    missing = sorted(name for name in signatures if not callable(functions.get(name)))
    if missing:
        raise ImportError(f"built-in indicator{'s' * (len(missing) > 1)} {', '.join(missing)} "
                          f"{'have' if len(missing) > 1 else 'has'} a signature in compiler/builtins.py but no "
                          "function of that name in runtime/data/indicators.py")
    return MappingProxyType({name: functions[name] for name in signatures})  # type: ignore[misc]


IMPLEMENTATIONS: Mapping[str, Callable[..., Output]] = bind(INDICATORS, globals())
