"""The built-in indicators and functions: the one registry of them.

`INDICATORS` lists every built-in with what the checker needs (arguments, implicit OHLCV columns,
fields, warm-ups). The runtime binds each to its numpy implementation by the signature's name
(`runtime/data/indicators.py`, whose import fails on a signature without one), called as
`fn(*implicit_columns, *series_args, *params)`; tests/compiler/test_builtins_agree.py checks that
each implementation takes those arguments and has its first value where the signature says.
`warmup` is the number of leading bars without a value (index of the first value).
"""
from __future__ import annotations

from typing import Callable

import attrs

from playdeck.dsl.vocabulary import PROTECTION_KINDS, SIDES, TIF_WORDS


@attrs.frozen(slots=True)
class IndicatorSig:
    name: str
    series_args: int  # leading series arguments written by the user
    params: tuple[str, ...]  # kinds of the parameters that follow: "int" (a length) or "float"
    implicit: tuple[str, ...] = ()  # OHLCV columns taken without being written
    fields: tuple[str, ...] = ()  # outputs of a multi-output indicator
    warmup: Callable[..., int] = attrs.field(default=lambda *p: 0, eq=False)  # every output has a value
    doc: str = ""
    # (params..., field) -> the first value of one output, when outputs start at different bars
    field_warmup: Callable[..., int] | None = attrs.field(default=None, eq=False)
    written: str = ""  # the name a user writes, when it is not `name` (`vwap()` is vwap_session)

    def first_value(self, params: tuple, field: str | None = None) -> int:
        """Index of the first value of `field` (of every output when None)."""
        if field is not None and self.field_warmup is not None:
            return self.field_warmup(*params, field)
        return self.warmup(*params)

    @property
    def arity(self) -> int:
        return self.series_args + len(self.params)

    def usage(self) -> str:
        args = ["series"] * self.series_args + [("length" if k == "int" else "number") for k in self.params]
        return f"{self.name}({', '.join(args)})"


def _n1(n: int, *_: float) -> int:
    return int(n) - 1


INDICATORS: dict[str, IndicatorSig] = {s.name: s for s in (
    IndicatorSig("sma", 1, ("int",), warmup=_n1, doc="simple moving average"),
    IndicatorSig("ema", 1, ("int",), warmup=_n1, doc="exponential moving average, alpha 2/(n+1), seeded with the SMA"),
    IndicatorSig("wma", 1, ("int",), warmup=_n1, doc="linearly weighted moving average"),
    IndicatorSig("rma", 1, ("int",), warmup=_n1, doc="Wilder's moving average, alpha 1/n, seeded with the SMA"),
    IndicatorSig("rsi", 1, ("int",), warmup=lambda n: int(n), doc="Wilder's RSI"),
    IndicatorSig("atr", 0, ("int",), implicit=("high", "low", "close"), warmup=_n1, doc="Wilder's average true range"),
    IndicatorSig("stdev", 1, ("int",), warmup=_n1, doc="population standard deviation over n bars"),
    IndicatorSig("highest", 1, ("int",), warmup=_n1, doc="highest value over n bars"),
    IndicatorSig("lowest", 1, ("int",), warmup=_n1, doc="lowest value over n bars"),
    IndicatorSig("roc", 1, ("int",), warmup=lambda n: int(n), doc="rate of change in percent over n bars"),
    IndicatorSig("macd", 1, ("int", "int", "int"), fields=("macd", "signal", "hist"),
                 warmup=lambda f, s, g: int(max(f, s)) - 1 + int(g) - 1, doc="MACD line, signal line, histogram",
                 field_warmup=lambda f, s, g, field: int(max(f, s)) - 1 + (0 if field == "macd" else int(g) - 1)),
    IndicatorSig("bbands", 1, ("int", "float"), fields=("upper", "middle", "lower"), warmup=_n1,
                 doc="Bollinger bands: SMA +/- k population stdev"),
    IndicatorSig("vwap", 0, ("int",), implicit=("high", "low", "close", "volume"), warmup=_n1,
                 doc="rolling n-bar volume-weighted average of the typical price"),
    IndicatorSig("vwap_session", 0, (), implicit=("high", "low", "close", "volume", "ts_open"),
                 warmup=lambda: 0, written="vwap",
                 doc="anchored at each UTC day"),  # the session VWAP of hlc3, from 00:00 UTC
    IndicatorSig("pivot_high", 0, ("int", "int"), implicit=("high",), warmup=lambda l, r: int(l) + int(r),
                 doc="last confirmed pivot high, visible `right` bars after the pivot"),
    IndicatorSig("pivot_low", 0, ("int", "int"), implicit=("low",), warmup=lambda l, r: int(l) + int(r),
                 doc="last confirmed pivot low, visible `right` bars after the pivot"),
)}

# A call written without arguments that names another indicator: `vwap()` is the session VWAP.
NO_ARGUMENT_FORMS = {s.written: s.name for s in INDICATORS.values() if s.written and not s.arity}

# Plain functions usable anywhere an expression is.
FUNCTIONS: dict[str, int] = {"min": 2, "max": 2, "abs": 1}

# Every name a Play may call, as written (`vwap`, not vwap_session): the parser's hints name them.
CALLS: tuple[str, ...] = tuple(dict.fromkeys([*(s.written or s.name for s in INDICATORS.values()), *FUNCTIONS]))

SERIES = ("open", "high", "low", "close", "volume")
STATE_WORDS = {"flat": "bool", "long": "bool", "short": "bool", "equity": "float"}
POSITION_FIELDS = {"size": "float", "entry": "float", "layers": "float", "upnl": "float", "r": "float",
                   "bars": "float", "reduced": "bool"}
TAG_FIELDS = {"pending": "bool", "price": "float", "filled": "bool"}
KEYWORDS = frozenset("""block when otherwise market limit stop scale partial_close close cancel at expire
bars bar as qty usdt risk of all and or not crosses_above crosses_below""".split()) | frozenset(
    SIDES + TIF_WORDS + PROTECTION_KINDS)
# Names a feature or tag may not take. Indicator and function names stay free (`atr: atr(14)` is
# fine): a call is told apart from a name by its parentheses.
RESERVED = frozenset(SERIES) | frozenset(STATE_WORDS) | {"position", "fill"} | KEYWORDS
