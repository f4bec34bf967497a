"""Intents and the IntentProcessor: what a block asked for -> orders, the same way for every backend.

The engine turns an action into an `Intent` with its prices and size inputs already evaluated at
the bar close. The processor sizes it (qty, usdt, % equity, risk, % of position), rounds quantity
down to the step and prices to the tick, validates, applies the same-tag rule (a pending order with
the same tag is amended, or cancelled and re-sent when its type changes), and talks to the async
backend through a rate limiter, retrying only what can change (tenacity).
"""
from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from math import isfinite
from typing import Any, Awaitable, Callable, NamedTuple

from playdeck.runtime.execution.orders import (AttachedProtection, Order, OrderResult, OrderRole, OrderStatus, OrderType, Side, TimeInForce,
                     below_min_qty)
from playdeck.runtime.bybit.limits import TokenBucket


class TransientBackendError(Exception):
    """A failure worth retrying: rate limited, timed out, 5xx. Anything else is final."""


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
    attached: tuple[AttachedProtection, ...] = ()
    value: float = math.nan  # stop_loss / take_profit price, trail distance
    where: str = ""  # file:line:col of the action


class Rejection(NamedTuple):
    """An intent that became no order, and why (a NamedTuple for the same reason as `Intent`)."""

    bar: int
    kind: str
    tag: str | None
    reason: str
    where: str


_ENTRY_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT}
_ROLES = {"scale": OrderRole.SCALE, "partial_close": OrderRole.PARTIAL_CLOSE, "close": OrderRole.CLOSE}
_CLOSING_KINDS = frozenset({"scale", "partial_close", "close"})  # a limit with a price, else market
_INF = math.inf
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


class IntentProcessor:
    def __init__(self, backend: Any, instrument: Any, *, limiter: TokenBucket | None = None,
                 clock: Callable[[], float] = time.monotonic, attempts: int = 4, id_prefix: str = "pd"):
        self.backend = backend
        self.instrument = instrument
        self.limiter = limiter
        self.clock = clock
        self.attempts = attempts
        # Client ids become Bybit's orderLinkId: at most 36 of [A-Za-z0-9_-]. A 16-character prefix
        # leaves room for "-{bar}-{seq}" up to ten-digit bars and eight-digit counts.
        self.id_prefix = re.sub(r"[^A-Za-z0-9_-]", "", id_prefix)[:16] or "pd"
        self.rejections: list[Rejection] = []
        self._seq = 0

    # ---- public ------------------------------------------------------------------------------
    async def process(self, intent: Intent, state: Any) -> OrderResult | None:
        """Handle one intent given the `StateView` of its bar. Rejections are recorded, not raised."""
        if intent.kind not in ORDER_KINDS:
            try:
                return await self._process_command(intent, state)
            except _Reject as r:
                self.reject(intent, r.reason)
                return None
        order = self.order_for(intent, state)
        if order is None:
            return None
        return await self.send(order, intent, state)

    def order_for(self, intent: Intent, state: Any) -> Order | None:
        """Size, round and validate an order intent: the `Order` to send, or None when it is refused
        (the refusal is recorded). Synchronous, so the common refusal (a size below min_qty on every
        signal of a spent account) costs no coroutine and no exception."""
        order = self._build(intent, state)
        if type(order) is str:
            self.rejections.append(Rejection(intent.bar, intent.kind, intent.tag, order, intent.where))
            return None
        return order

    async def send(self, order: Order, intent: Intent, state: Any) -> OrderResult | None:
        """Send an order made by `order_for`, applying the same-tag rule (amend, or cancel and resend)."""
        tag = intent.tag
        pending = state.pending_order(tag) if tag is not None else None
        if pending is not None:
            same = pending.type is order.type and pending.side is order.side
            if same and pending.is_conditional and order.trigger != pending.trigger \
                    and state.order_status(pending.order_id) is not OrderStatus.UNTRIGGERED:
                # A stop-limit that triggered rests as a limit and has no trigger left to amend:
                # a new trigger means a new conditional order, so cancel and re-send.
                same = False
            if same:
                # A replacement: the venue's fields are amended, and the new intent's expiry and
                # attached protection (bound to this bar) take the old ones' place.
                return self._checked(await self._call(self.backend.amend_order, pending.order_id, qty=order.qty,
                                                      price=order.price, trigger=order.trigger,
                                                      expire_bar=order.expire_bar, attached=order.attached), intent)
            await self._call(self.backend.cancel_order, pending.order_id)
        return self._checked(await self._call(self.backend.submit_order, order), intent)

    def reject(self, intent: Intent, reason: str) -> None:
        self.rejections.append(Rejection(intent.bar, intent.kind, intent.tag, reason, intent.where))

    def rejections_by_reason(self) -> Counter:
        counts = Counter(r.reason for r in self.rejections)
        out: Counter = Counter()
        for reason, n in counts.items():
            out[_reason_class(reason)] += n
        return out

    # ---- sizing and validation -----------------------------------------------------------------
    async def _process_command(self, it: Intent, st: Any) -> OrderResult | None:
        """`cancel` and the protection kinds: no order is built."""
        if it.kind == "cancel":
            if it.tag is None:
                await self._call(self.backend.cancel_all)
            else:
                pending = st.pending_order(it.tag)
                if pending is not None:
                    await self._call(self.backend.cancel_order, pending.order_id)
            return None
        if st.flat:
            raise _Reject(f"{it.kind} needs an open position")
        value = it.value
        if not _finite(value) or value <= 0:
            raise _Reject(f"{it.kind} {'distance' if it.kind == 'trail' else 'price'} is {value:g}")
        if it.kind != "trail":
            value = self.instrument.round_price(value)
        return self._checked(await self._call(self.backend.set_protection, it.kind, value), it)

    def _checked(self, result: OrderResult | None, it: Intent) -> OrderResult | None:
        if result is not None and not result.accepted:
            self.reject(it, result.reject_reason or "rejected by the backend")
        return result

    def _build(self, it: Intent, st: Any) -> Order | str:
        """The order for `it`, or the reason it is refused."""
        inst = self.instrument
        kind = it.kind
        price = it.price
        trigger = it.trigger
        # `not v > 0` is also true for NaN; +inf is the one non-finite value left to catch.
        if price is not None:
            if not 0.0 < price < _INF:
                return f"{kind} price is {price:g}"
        if trigger is not None:
            if not 0.0 < trigger < _INF:
                return f"{kind} trigger is {trigger:g}"
            trigger = inst.round_price(trigger)
            if trigger <= 0.0:
                return f"{kind} trigger {it.trigger:g} rounds to 0 at tick {inst.tick:g}"
        if price is not None:
            price = inst.round_price(price)
            if price <= 0.0:
                return f"{kind} price {it.price:g} rounds to 0 at tick {inst.tick:g}"
        reduce_only = kind == "partial_close" or kind == "close"
        role = _ROLES.get(kind, OrderRole.ENTRY)
        side = it.side
        if reduce_only:
            if st.flat:
                return f"{kind} with no open position"
            side = Side.SELL if st.long else Side.BUY
        if kind == "scale":
            if st.flat or (it.side is Side.BUY) != st.long:
                return "scale needs an open position in the same direction"
        # the price the size is computed at: the order's own price, else the last close
        ref = trigger if trigger is not None else price if price is not None else st.close
        if kind == "close":
            qty = abs(st.pos_size)
        else:
            qty = self._qty(it, st, ref)
            if type(qty) is str:
                return qty
        qty = inst.round_qty(qty)
        if below_min_qty(qty, inst.min_qty, whole_position=kind == "close"):
            return f"qty {qty:g} below min_qty {inst.min_qty:g}"
        if kind == "stop":
            otype = OrderType.STOP_LIMIT if price is not None else OrderType.STOP
        elif kind in _CLOSING_KINDS:
            otype = OrderType.LIMIT if price is not None else OrderType.MARKET
        else:
            otype = _ENTRY_TYPES[kind]
        self._seq += 1
        bar = it.bar
        client_id = f"{self.id_prefix}-{bar}-{self._seq}"
        expire = it.expire
        return Order("", client_id, side, otype, qty, price, trigger, it.tif, reduce_only, role, it.tag,
                     bar, None if expire is None else bar + expire, it.attached)

    def _qty(self, it: Intent, st: Any, ref: float) -> float | str:
        """The unrounded quantity, or the reason there is none."""
        v = it.size_value
        if v is None or not isfinite(v):
            return f"size is {v:g}"
        k = it.size_kind
        if k == "qty":
            q = v
        elif k == "usdt":
            q = v / ref
        elif k == "equity":
            q = v * st.equity / ref
        elif k == "position":
            if st.flat:
                return "'% of position' with no open position"
            q = v * abs(st.pos_size)
        elif k == "risk":
            stop = next((a for a in it.attached if a.kind == "stop_loss"), None)
            stop_price = stop.value(ref) if stop is not None else math.nan
            if _finite(stop_price) and stop_price > 0:
                stop_price = self.instrument.round_price(stop_price)  # where the stop will be placed
            dist = abs(ref - stop_price)
            if not _finite(dist) or dist <= 0:
                return f"risk sizing: the stop_loss ({stop_price:g}) is no distance from the entry ({ref:g})"
            q = v * st.equity / dist
        else:
            raise ValueError(f"no sizing rule for {k!r}")
        if not isfinite(q) or q <= 0:
            return f"size is {q:g}"
        return q

    # ---- transport -----------------------------------------------------------------------------
    def _call(self, fn: Callable, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Await the result: `await self._call(backend.method, ...)`."""
        if self.limiter is None and self.attempts <= 1:
            # Nothing to pace or retry: hand back the backend's own coroutine, without a wrapper
            # coroutine per call (a backtest sends every order through here).
            return fn(*args, **kwargs)
        return self._call_guarded(fn, *args, **kwargs)

    async def _call_guarded(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        if self.limiter is not None:
            wait = self.limiter.acquire(self.clock())
            if wait > 0:
                await asyncio.sleep(wait)
        if self.attempts <= 1:
            return await fn(*args, **kwargs)
        # imported here: only a live backend retries, and a backtest (one attempt) never loads tenacity
        from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientBackendError),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.1),
            stop=stop_after_attempt(self.attempts), reraise=True,
        ):
            with attempt:
                return await fn(*args, **kwargs)


class _Reject(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _reason_class(reason: str) -> str:
    """Group reasons for the report: the text before a colon, without the numbers."""
    head = reason.split(":", 1)[0]
    words = [w for w in head.split() if not any(ch.isdigit() for ch in w)]
    return " ".join(words) or reason
