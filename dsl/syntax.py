"""The syntax tree: what the user wrote, untyped, with spans. No lark objects.

Equality ignores spans and number spellings, so the same Play written twice (or formatted and
parsed back) compares equal.
"""
from __future__ import annotations

from typing import Union

import attrs

from .spans import Span

_span = attrs.field(eq=False, default=None, repr=False)


@attrs.frozen(slots=True)
class Num:
    value: float
    text: str = attrs.field(eq=False, default="")
    span: Span | None = _span


@attrs.frozen(slots=True)
class Pct:
    """`2%`: `value` is the written number (2.0); the expression means value / 100."""

    value: float
    text: str = attrs.field(eq=False, default="")
    span: Span | None = _span


@attrs.frozen(slots=True)
class Name:
    id: str
    span: Span | None = _span


@attrs.frozen(slots=True)
class Call:
    fn: str
    args: tuple["Expr", ...]
    span: Span | None = _span


@attrs.frozen(slots=True)
class Field:
    obj: "Expr"
    name: str
    span: Span | None = _span


@attrs.frozen(slots=True)
class Offset:
    obj: "Expr"
    bars: int | float
    text: str = attrs.field(eq=False, default="")  # the offset as written: `1e2` is not a whole-number literal
    span: Span | None = _span


@attrs.frozen(slots=True)
class Neg:
    operand: "Expr"
    span: Span | None = _span


@attrs.frozen(slots=True)
class BinOp:
    op: str  # + - * /
    left: "Expr"
    right: "Expr"
    span: Span | None = _span


@attrs.frozen(slots=True)
class Compare:
    op: str  # < <= > >= == !=
    left: "Expr"
    right: "Expr"
    span: Span | None = _span


@attrs.frozen(slots=True)
class Cross:
    direction: str  # above | below
    left: "Expr"
    right: "Expr"
    span: Span | None = _span


@attrs.frozen(slots=True)
class And:
    left: "Expr"
    right: "Expr"
    span: Span | None = _span


@attrs.frozen(slots=True)
class Or:
    left: "Expr"
    right: "Expr"
    span: Span | None = _span


@attrs.frozen(slots=True)
class Not:
    operand: "Expr"
    span: Span | None = _span


Expr = Union[Num, Pct, Name, Call, Field, Offset, Neg, BinOp, Compare, Cross, And, Or, Not]


@attrs.frozen(slots=True)
class Size:
    """`qty E`, `usdt E`, `N% equity`, `risk N%`, `N% of position`.

    For the percent forms `value` is a `Pct`; for qty/usdt an expression.
    """

    kind: str  # qty | usdt | equity | risk | position
    value: Expr
    span: Span | None = _span


@attrs.frozen(slots=True)
class Option:
    kind: str  # at | limit | expire | tif | tag
    value: object  # Expr for at/limit, int for expire, str for tif/tag
    span: Span | None = _span


@attrs.frozen(slots=True)
class Action:
    """One action line. `children` are the lines indented under it (attached actions)."""

    kind: str  # market limit stop scale partial_close close cancel stop_loss take_profit trail
    side: str | None = None
    size: Size | None = None
    options: tuple[Option, ...] = ()
    target: str | None = None  # cancel: a tag, or None for `cancel all`
    value: Expr | None = None  # stop_loss / take_profit / trail
    children: tuple["Action", ...] = ()
    span: Span | None = _span


@attrs.frozen(slots=True)
class Case:
    cond: Expr | None  # None for `otherwise`
    actions: tuple[Action, ...]
    span: Span | None = _span


@attrs.frozen(slots=True)
class Block:
    name: str
    cases: tuple[Case, ...]
    span: Span | None = _span


@attrs.frozen(slots=True)
class FeatureDef:
    name: str
    expr: Expr
    tf: str | None
    span: Span | None = _span
    tf_span: Span | None = _span
