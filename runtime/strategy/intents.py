"""Intents: what a block asked for at one bar, its prices and size inputs already evaluated."""
from __future__ import annotations

import math
from typing import NamedTuple

from playdeck.runtime.execution.orders import ProtectionSpec, Side, TimeInForce


class Intent(NamedTuple):
    """One action of a block at one bar, its prices and size inputs evaluated at the bar close.

    Immutable like the attrs values elsewhere, but a NamedTuple: the bar loop makes one per signal
    (tens of thousands a run), and a tuple is built several times faster than a frozen slotted class.
    """

    bar: int
    kind: str  # market limit stop scale partial_close close cancel stop_loss take_profit trail
    side: Side | None = None
    size_kind: str | None = None  # qty usdt equity risk position
    size_value: float = math.nan  # qty / usdt amount / fraction
    price: float | None = None  # limit price (limit, stop-limit, scale/close/partial_close at)
    trigger: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    expire: int | None = None
    tag: str | None = None
    attached: tuple[ProtectionSpec, ...] = ()
    value: float = math.nan  # stop_loss / take_profit price, trail distance
    where: str = ""  # file:line:col of the action
    percent: bool = False  # protection written as a bare percentage (7.1): `value` is the fraction


# Kinds that become an order (through `order_for`); the others are commands (cancel, protection).
ORDER_KINDS = frozenset({"market", "limit", "stop", "scale", "partial_close", "close"})


def sending_order(intents: list[Intent]) -> list[Intent]:
    """A bar's intents in the order they go out: every `cancel` first, then the rest in source order.

    A cancel acts on the orders that were pending when the blocks looked at the bar (5.1: the
    blocks are evaluated, then their orders are sent), never on one sent at the same close, so
    `close` followed by `cancel all` closes the position and clears what else was working.
    """
    cancels = [it for it in intents if it.kind == "cancel"]
    if not cancels or len(cancels) == len(intents):
        return intents
    return cancels + [it for it in intents if it.kind != "cancel"]
