"""The typed IR of a Play: frozen, slotted attrs classes with tuple children.

Every expression node carries its `type`. Spans are kept for messages but take no part in
equality, so the same expression written in two places is one value (and one feature job).
"""
from __future__ import annotations

from typing import Union

import attrs

from playdeck.dsl.spans import Span
from playdeck.dsl.vocabulary import DEFAULT_TIME_IN_FORCE, INTRABAR_MODELS, TIME_IN_FORCE

from .types import Type

SCHEMA_VERSION = 1

_span = attrs.field(eq=False, default=None, repr=False)


@attrs.frozen(slots=True)
class Const:
    value: float
    type: Type = Type.NUM
    span: Span | None = _span


@attrs.frozen(slots=True)
class Bar:
    """An OHLCV column of timeframe `tf`."""

    field: str
    tf: str
    type: Type = Type.NUM_SERIES
    span: Span | None = _span


@attrs.frozen(slots=True)
class Indicator:
    """A built-in indicator over series arguments on timeframe `tf`; `field` picks one output."""

    fn: str
    args: tuple["Expr", ...]
    params: tuple[float, ...]
    tf: str
    field: str | None = None
    type: Type = Type.NUM_SERIES
    span: Span | None = _span

    def job(self) -> "Indicator":
        """The computation without the output selection: all fields of one call are one job."""
        return attrs.evolve(self, field=None)


@attrs.frozen(slots=True)
class FeatureRef:
    name: str
    field: str | None
    tf: str
    type: Type = Type.NUM_SERIES
    span: Span | None = _span


@attrs.frozen(slots=True)
class State:
    """Trading state read at the bar close: `flat`, `equity`, `position.r`, ..."""

    name: str
    type: Type
    span: Span | None = _span


@attrs.frozen(slots=True)
class TagState:
    tag: str
    attr: str  # pending | price | filled
    type: Type
    span: Span | None = _span


@attrs.frozen(slots=True)
class FillPrice:
    """`fill` inside an attached action: the fill price of the entry it hangs under."""

    type: Type = Type.NUM
    span: Span | None = _span


@attrs.frozen(slots=True)
class Offset:
    operand: "Expr"
    bars: int
    type: Type
    span: Span | None = _span


@attrs.frozen(slots=True)
class Neg:
    operand: "Expr"
    type: Type
    span: Span | None = _span


@attrs.frozen(slots=True)
class Not:
    operand: "Expr"
    type: Type
    span: Span | None = _span


@attrs.frozen(slots=True)
class Arith:
    op: str
    left: "Expr"
    right: "Expr"
    type: Type
    span: Span | None = _span


@attrs.frozen(slots=True)
class Compare:
    op: str
    left: "Expr"
    right: "Expr"
    type: Type
    span: Span | None = _span


@attrs.frozen(slots=True)
class Cross:
    direction: str  # above | below
    left: "Expr"
    right: "Expr"
    type: Type = Type.BOOL_SERIES
    span: Span | None = _span


@attrs.frozen(slots=True)
class Logic:
    op: str  # and | or
    left: "Expr"
    right: "Expr"
    type: Type
    span: Span | None = _span


@attrs.frozen(slots=True)
class Func:
    fn: str  # min | max | abs
    args: tuple["Expr", ...]
    type: Type
    span: Span | None = _span


Expr = Union[Const, Bar, Indicator, FeatureRef, State, TagState, FillPrice, Offset, Neg, Not, Arith,
             Compare, Cross, Logic, Func]


def children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, (Offset, Neg, Not)):
        return (e.operand,)
    if isinstance(e, (Arith, Compare, Cross, Logic)):
        return (e.left, e.right)
    if isinstance(e, (Func, Indicator)):
        return e.args
    return ()


def walk(e: Expr):
    """Every node of `e`, parents before children."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def home_tf(e: Expr) -> str | None:
    """The one timeframe every market-data part of `e` is on, or None when they mix timeframes
    (or there are none). Features, indicator calls and OHLCV columns carry their own timeframe."""
    found: set[str] = set()
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, (FeatureRef, Indicator, Bar)):
            found.add(node.tf)
        else:
            stack.extend(children(node))
    return found.pop() if len(found) == 1 else None


# ---- settings ---------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class Market:
    symbol: str
    exec_tf: str
    timeframes: tuple[tuple[str, str], ...]  # (alias, tf)


@attrs.frozen(slots=True)
class Account:
    equity: float
    leverage: float
    maker_fee: float
    taker_fee: float
    slippage_bps: float
    intrabar: str
    tick: float
    qty_step: float
    min_qty: float
    mmr: float = 0.005  # maintenance margin rate (7.4)
    funding: float = 0.0001  # funding rate per 8 hours when the data has none (7.3)

    @property
    def magnifier(self) -> str | None:
        """The detail timeframe of the bar magnifier (7.5), or None."""
        return None if self.intrabar in INTRABAR_MODELS else self.intrabar


# ---- features ---------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class Feature:
    name: str
    expr: Expr
    tf: str
    fields: tuple[str, ...]  # outputs, when the feature is one multi-output indicator
    warmup: int  # bars of its own timeframe without a value
    span: Span | None = _span


@attrs.frozen(slots=True)
class Job:
    """One indicator computation, shared by every feature and condition that uses it."""

    indicator: Indicator
    warmup: int  # bars of `indicator.tf` without a value, inputs included

    @property
    def tf(self) -> str:
        return self.indicator.tf


# ---- actions ----------------------------------------------------------------------------------

@attrs.frozen(slots=True)
class Size:
    kind: str  # qty | usdt | equity | risk | position
    value: Expr | None = None  # qty / usdt
    pct: float | None = None  # equity / risk / position, as a fraction (1% -> 0.01)
    span: Span | None = _span


@attrs.frozen(slots=True)
class Protection:
    """stop_loss / take_profit / trail, attached under an entry or standing alone. With `percent`
    (PLAY-LANGUAGE.md 7.1: a bare percentage literal such as `stop_loss 2%`), `value` is the
    fraction (a Const 0.02) of a distance from the reference price (the fill, or the position's
    average entry), on the losing side for a stop and the winning side for a take_profit; a trail's
    stop follows the best price by that fraction."""

    kind: str
    value: Expr
    span: Span | None = _span
    percent: bool = False


@attrs.frozen(slots=True)
class OrderAction:
    kind: str  # market | limit | stop | scale
    side: str  # buy | sell
    size: Size
    price: Expr | None = None  # limit price (limit, stop-limit, scale at)
    trigger: Expr | None = None  # stop trigger
    expire: int | None = None
    tif: str = TIME_IN_FORCE[DEFAULT_TIME_IN_FORCE]  # GTC | PostOnly | IOC | FOK
    tag: str | None = None
    attached: tuple[Protection, ...] = ()
    span: Span | None = _span


@attrs.frozen(slots=True)
class PartialClose:
    size: Size  # qty or position percent
    price: Expr | None = None
    span: Span | None = _span


@attrs.frozen(slots=True)
class Close:
    price: Expr | None = None
    span: Span | None = _span


@attrs.frozen(slots=True)
class Cancel:
    tag: str | None  # None: cancel all
    span: Span | None = _span


Action = Union[OrderAction, PartialClose, Close, Cancel, Protection]


@attrs.frozen(slots=True)
class Case:
    cond: Expr | None  # None: otherwise
    actions: tuple[Action, ...]
    span: Span | None = _span


@attrs.frozen(slots=True)
class Block:
    name: str
    cases: tuple[Case, ...]
    span: Span | None = _span


@attrs.frozen(slots=True)
class PlayIR:
    name: str
    description: str
    market: Market
    account: Account
    features: tuple[Feature, ...]
    jobs: tuple[Job, ...]
    blocks: tuple[Block, ...]
    tags: tuple[str, ...]
    warmup: int  # first exec bar where every feature and block input is known (data on tf boundaries)
    schema_version: int = SCHEMA_VERSION

    def timeframe_of(self, alias_or_tf: str) -> str:
        return dict(self.market.timeframes).get(alias_or_tf, alias_or_tf)
