"""Market data from the emulator's bars: klines of any Bybit interval that is a multiple of the
data's timeframe, and tickers. Pure functions of the bars and the current bar: nothing after the
current bar is ever read, so no client can see the future.

Klines of a coarser interval are built from the data's bars like `runtime.data.bars.resample`
(buckets aligned to UTC epoch multiples; open first, high max, low min, close last, volume sum). The
newest bucket may still be forming: its close is the last price (as Bybit's unfinished candle).
The data has no turnover column: turnover is each data bar's volume x close, summed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from playdeck.runtime.bybit.emulator.errors import BybitError
from playdeck.runtime.bybit.emulator.wire import Formats, plain
from playdeck.runtime.data.bars import Bars

__all__ = ["INTERVALS", "Candle", "candles", "interval_ms", "ticker_item"]

# Bybit's kline intervals (minutes); W and M are calendar-aligned on Bybit and not served here.
INTERVALS: dict[str, int] = {"1": 1, "3": 3, "5": 5, "15": 15, "30": 30, "60": 60, "120": 120, "240": 240,
                             "360": 360, "720": 720, "D": 1440}
DAY_MS = 86_400_000


def interval_ms(interval: str, data_ms: int) -> int:
    """The length of a kline `interval` in ms; 10001 when Bybit has no such interval, or the data's
    bars cannot build it (finer than the data, or not a multiple of it)."""
    minutes = INTERVALS.get(interval)
    if minutes is None:
        if interval in ("W", "M"):
            raise BybitError(10001, f"params error: interval {interval} is not served by the emulator")
        raise BybitError(10001, "params error: interval invalid")
    ms = minutes * 60_000
    if ms % data_ms:
        raise BybitError(10001, f"params error: interval {interval} cannot be built from the emulator's "
                                f"{data_ms // 60_000}-minute bars")
    return ms


class Candle(NamedTuple):
    start: int  # ms, the bucket's open time
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float
    closed: bool  # every data bar of the bucket is at or before the current bar


def candles(bars: Bars, current: int, ims: int, *, start: int | None = None, end: int | None = None,
            limit: int = 200, open_of: int | None = None) -> list[Candle]:
    """Up to `limit` candles of length `ims` whose open time is in [start, end], oldest first, built
    from data bars 0..current. With `open_of` (= current + 1), the data bar `open_of` counts too, with
    only its open known (the bar has opened, nothing else of it has happened yet)."""
    ts = bars.ts_open
    data_ms = int(ts[1] - ts[0]) if len(ts) > 1 else ims
    last = current if open_of is None else open_of
    if last < 0:
        return []
    hi_ts = int(ts[last])
    if end is not None:
        hi_ts = min(hi_ts, end)
    hi_bucket = hi_ts // ims * ims
    lo_bucket = hi_bucket - (limit - 1) * ims
    if start is not None:
        lo_bucket = max(lo_bucket, -(-start // ims) * ims)
    if lo_bucket > hi_bucket:
        return []
    lo = int(np.searchsorted(ts, lo_bucket, side="left"))
    hi = min(int(np.searchsorted(ts, hi_bucket + ims, side="left")), last + 1)
    if lo >= hi:
        return []
    t = ts[lo:hi]
    o = bars.open[lo:hi].copy()
    h = bars.high[lo:hi].copy()
    lw = bars.low[lo:hi].copy()
    c = bars.close[lo:hi].copy()
    v = bars.volume[lo:hi].copy()
    if open_of is not None and hi == open_of + 1:
        # the bar that just opened: its open is all that is known
        k = hi - lo - 1
        h[k] = lw[k] = c[k] = o[k]
        v[k] = 0.0
    turnover = v * c
    bucket = t // ims
    starts = np.concatenate(([0], np.flatnonzero(bucket[1:] != bucket[:-1]) + 1))
    ends = np.concatenate((starts[1:], [len(t)])) - 1
    out: list[Candle] = []
    through = int(ts[current]) + data_ms if current >= 0 else 0  # close time of the current bar
    for a, b, hi_v, lo_v, vol, turn in zip(starts.tolist(), ends.tolist(),
                                            np.maximum.reduceat(h, starts).tolist(),
                                            np.minimum.reduceat(lw, starts).tolist(),
                                            np.add.reduceat(v, starts).tolist(),
                                            np.add.reduceat(turnover, starts).tolist()):
        begin = int(bucket[a]) * ims
        out.append(Candle(begin, float(o[a]), hi_v, lo_v, float(c[b]), vol, turn, begin + ims <= through))
    return out


def kline_row(c: Candle, f: Formats) -> list[str]:
    """One REST kline: [startTime, open, high, low, close, volume, turnover], all strings."""
    return [str(c.start), f.price(c.open), f.price(c.high), f.price(c.low), f.price(c.close), plain(c.volume),
            plain(c.turnover)]


def kline_push_item(c: Candle, interval: str, ims: int, f: Formats, confirm: bool, timestamp: int) -> dict[str, Any]:
    """One `kline.{interval}.{symbol}` item: start/end/timestamp as numbers (bybit-v5.md 5.5)."""
    return {"start": c.start, "end": c.start + ims - 1, "interval": interval, "open": f.price(c.open),
            "close": f.price(c.close), "high": f.price(c.high), "low": f.price(c.low), "volume": plain(c.volume),
            "turnover": plain(c.turnover), "confirm": confirm, "timestamp": timestamp}


def ticker_item(bars: Bars, current: int, f: Formats, funding_rate: float, next_funding: int) -> dict[str, Any]:
    """A linear ticker at the close of bar `current`. The bar prices stand for last, mark and index
    price alike (PLAY-LANGUAGE.md 7.3); with no order book, bid1 and ask1 are the last price with no
    size; 24h figures are over the data bars of the last 24 hours; open interest is not modelled."""
    ts = bars.ts_open
    data_ms = int(ts[1] - ts[0]) if len(ts) > 1 else 60_000
    now = int(ts[current]) + data_ms
    lo = int(np.searchsorted(ts, now - DAY_MS, side="left"))
    hi = current + 1
    last = float(bars.close[current])
    prev24 = float(bars.open[lo]) if lo < hi else last
    hour = int(np.searchsorted(ts, now - 3_600_000, side="left"))
    prev1h = float(bars.open[hour]) if hour < hi else last
    volume = float(bars.volume[lo:hi].sum())
    turnover = float((bars.volume[lo:hi] * bars.close[lo:hi]).sum())
    pct = (last / prev24 - 1.0) if prev24 else 0.0
    return {
        "symbol": bars.symbol,
        "tickDirection": "ZeroPlusTick",
        "lastPrice": f.price(last),
        "indexPrice": f.price(last),
        "markPrice": f.price(last),
        "prevPrice24h": f.price(prev24),
        "price24hPcnt": plain(pct, 6),
        "highPrice24h": f.price(float(bars.high[lo:hi].max()) if lo < hi else last),
        "lowPrice24h": f.price(float(bars.low[lo:hi].min()) if lo < hi else last),
        "prevPrice1h": f.price(prev1h),
        "openInterest": "0",
        "openInterestValue": "0",
        "turnover24h": plain(turnover, 4),
        "volume24h": plain(volume, 4),
        "fundingRate": plain(funding_rate, 8),
        "nextFundingTime": str(next_funding),
        "fundingIntervalHour": "8",
        "fundingCap": "0.005",
        "predictedDeliveryPrice": "",
        "basisRate": "",
        "deliveryFeeRate": "",
        "deliveryTime": "0",
        "ask1Size": "0",
        "bid1Price": f.price(last),
        "ask1Price": f.price(last),
        "bid1Size": "0",
        "basis": "",
        "preOpenPrice": "",
        "preQty": "",
        "curPreListingPhase": "",
    }
