"""Order value types shared by the IntentProcessor, every backend, the journal and the console.

Everything here is an immutable value (`@attrs.frozen`): a backend never edits an `Order` in place,
it replaces it (`attrs.evolve`) when an amend lands, so an `Order` seen by the console is a snapshot.
Enum values are the spellings the wire uses (Bybit's `orderStatus`, `timeInForce`), so the live
backend converts with `OrderStatus(raw)` and nothing else.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Literal

import attrs

__all__ = [
    "AttachedProtection",
    "Fill",
    "KEEP",
    "Instrument",
    "Liquidity",
    "Order",
    "OrderEvent",
    "OrderResult",
    "OrderRole",
    "OrderStatus",
    "OrderType",
    "ProtectionKind",
    "Side",
    "TimeInForce",
]

ProtectionKind = Literal["stop_loss", "take_profit", "trail"]
Liquidity = Literal["maker", "taker"]


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"

    sign: int  # +1 for buy, -1 for sell: signed position change per unit of qty

    def __init__(self, value: str) -> None:
        # A plain attribute, not a property: the simulator reads it several times per fill.
        self.sign = 1 if value == "buy" else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # stop-market: a conditional that sends a market order when triggered
    STOP_LIMIT = "stop_limit"  # a conditional that becomes a limit at `price` when triggered


class TimeInForce(enum.Enum):
    GTC = "GTC"
    POST_ONLY = "PostOnly"
    IOC = "IOC"
    FOK = "FOK"


class OrderRole(enum.Enum):
    """Why the order exists: the block action that made it, or the protection it implements."""

    ENTRY = "entry"  # market / limit / stop entries
    SCALE = "scale"
    PARTIAL_CLOSE = "partial_close"
    CLOSE = "close"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TRAIL = "trail"

    is_protection: bool  # a position-level stop_loss / take_profit / trail order

    def __init__(self, value: str) -> None:
        # Set once per member (read per order and per fill; a property would hash the enum each time).
        self.is_protection = value in ("stop_loss", "take_profit", "trail")


_PROTECTION_ROLES = frozenset({OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT, OrderRole.TRAIL})


class OrderStatus(enum.Enum):
    """Bybit's `orderStatus` values, playdeck's `Expired`, and three local in-flight states.

    The legal moves between them live in `runtime.order_state.TRANSITIONS`.
    """

    # Bybit
    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    PARTIALLY_FILLED_CANCELED = "PartiallyFilledCanceled"
    REJECTED = "Rejected"
    UNTRIGGERED = "Untriggered"
    TRIGGERED = "Triggered"
    DEACTIVATED = "Deactivated"
    # playdeck: `expire N bars` ran out (sent to Bybit as a cancel)
    EXPIRED = "Expired"
    # local: a request is on its way and its answer has not arrived (or was lost)
    SUBMITTED = "Submitted"
    PENDING_AMEND = "PendingAmend"
    PENDING_CANCEL = "PendingCancel"

    @property
    def is_final(self) -> bool:
        """No transition leaves this status; the order is done."""
        return self in _FINAL

    @property
    def is_open(self) -> bool:
        """Working or possibly working: resting, waiting for a trigger, or with a request in flight."""
        return self not in _FINAL

    @property
    def is_in_flight(self) -> bool:
        """A local state: we asked for something and the venue has not answered yet."""
        return self in _IN_FLIGHT


_FINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.PARTIALLY_FILLED_CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.DEACTIVATED,
        OrderStatus.EXPIRED,
    }
)
_IN_FLIGHT = frozenset({OrderStatus.SUBMITTED, OrderStatus.PENDING_AMEND, OrderStatus.PENDING_CANCEL})


@attrs.frozen
class AttachedProtection:
    """A stop_loss / take_profit / trail written under an entry.

    `value(fill)` gives the stop or take-profit price (or the trail distance) from the entry's fill
    price; everything else in the expression was bound when the intent was made, so the backend only
    has to call it when the entry fills.
    """

    kind: ProtectionKind
    value: Callable[[float], float] = attrs.field(eq=False)
    where: str = attrs.field(default="", eq=False)  # file:line:col of the attached action


@attrs.frozen
class Order:
    """One order as sent. `price` is the limit price, `trigger` the stop trigger.

    For `close` orders `qty` is the position size when sent; a close fills the whole live position
    when it fills, and a backend caps any other reduce-only fill at the live position, so a
    reduce-only order never flips it. `expire_bar` and `attached` are playdeck's, not the venue's:
    a same-tag replacement (an amend) takes them from the new intent.
    """

    order_id: str
    client_id: str
    side: Side
    type: OrderType
    qty: float
    price: float | None
    trigger: float | None
    tif: TimeInForce
    reduce_only: bool
    role: OrderRole
    tag: str | None
    created_bar: int
    expire_bar: int | None  # the order expires at the close of this bar
    attached: tuple[AttachedProtection, ...] = ()

    @property
    def is_conditional(self) -> bool:
        return self.type is OrderType.STOP or self.type is OrderType.STOP_LIMIT


def order_with(o: Order, order_id: str, qty: float, price: float | None, trigger: float | None,
               reduce_only: bool) -> Order:
    """`attrs.evolve(o, order_id=..., qty=..., price=..., trigger=..., reduce_only=...)` for the
    simulator's hot paths: a direct constructor call, without evolve's per-call field walk.
    `_ORDER_FIELDS` below fails the import if a field is added to `Order` and not here."""
    return Order(order_id, o.client_id, o.side, o.type, qty, price, trigger, o.tif, reduce_only, o.role, o.tag,
                 o.created_bar, o.expire_bar, o.attached)


_ORDER_FIELDS = ("order_id", "client_id", "side", "type", "qty", "price", "trigger", "tif", "reduce_only", "role",
                 "tag", "created_bar", "expire_bar", "attached")
if tuple(f.name for f in attrs.fields(Order)) != _ORDER_FIELDS:
    raise ImportError("Order's fields changed: update order_with() in runtime/orders.py")


class _Keep:
    """The default of an amend's `expire_bar` / `attached`: leave them as they are."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


@attrs.frozen
class OrderResult:
    accepted: bool
    order_id: str | None
    status: OrderStatus
    filled_qty: float = 0.0
    avg_price: float | None = None
    reject_reason: str | None = None


@attrs.frozen
class Fill:
    bar: int  # 0-based index of the exec bar the fill happened in
    ts: int  # epoch ms of that bar's open
    order_id: str
    tag: str | None
    side: Side
    qty: float
    price: float
    fee: float  # USDT, always >= 0 here (no maker rebates in v1)
    liquidity: Liquidity
    role: OrderRole
    realized_pnl: float  # gross PnL of the part of the fill that reduced the position; fees not included


@attrs.frozen
class OrderEvent:
    """One status change. `old` is None for the order's first status (Submitted)."""

    order_id: str
    old: OrderStatus | None
    new: OrderStatus
    bar: int
    reason: str = ""


def _decimals(step: float) -> int:
    # Digits after the point of the step as written (0.001 -> 3, 0.5 -> 1, 5 -> 0).
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


@attrs.frozen
class Instrument:
    symbol: str
    tick: float
    qty_step: float
    min_qty: float
    _price_decimals: int = attrs.field(init=False, eq=False, repr=False)
    _qty_decimals: int = attrs.field(init=False, eq=False, repr=False)
    # ticks -> price and steps -> qty, as the final `round` gives them (see `_snap`).
    _price_memo: dict[int, float] = attrs.field(init=False, eq=False, repr=False)
    _qty_memo: dict[int, float] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not (self.tick > 0 and self.qty_step > 0 and self.min_qty > 0):
            raise ValueError(f"instrument {self.symbol}: tick, qty_step and min_qty must be > 0")
        # Frozen class: derived constants are set once here, so rounding stays cheap in hot loops.
        object.__setattr__(self, "_price_decimals", _decimals(self.tick))
        object.__setattr__(self, "_qty_decimals", _decimals(self.qty_step))
        object.__setattr__(self, "_price_memo", {})
        object.__setattr__(self, "_qty_memo", {})

    @property
    def qty_decimals(self) -> int:
        return self._qty_decimals

    # Both roundings run for every order and every refused size. `price / tick` carries float noise
    # (0.3 / 0.1 = 2.9999999999999996, 73106.165 / 0.01 = 7310616.499999999): a quotient within
    # _NOISE of a whole step, or of a half tick, is taken to be exactly there, so a size already on
    # its step keeps it and a half tick goes up also at a million ticks or steps and more (an
    # absolute 1e-9 would be finer than the float spacing there). The last `round` strips noise
    # like 100.10000000000001 and is a pure function of an int, so it is remembered.

    def round_price(self, price: float) -> float:
        """The nearest tick, an exact half tick up: `floor(price / tick + 0.5)` ticks, the quotient
        read as exact within its float noise; then `round(ticks * tick, price_decimals)`."""
        y = price / self.tick
        if not 0.0 <= y < _SNAP_BELOW:  # NaN, negative, absurd: no snapping
            return round(math.floor(y + 0.5) * self.tick, self._price_decimals)
        ticks = int(y)
        frac = y - ticks  # exact
        if frac >= 0.5 or (frac >= 0.49 and frac >= 0.5 - max(1e-9, _NOISE * y)):  # (cheap tests first)
            ticks += 1
        return _snap(self._price_memo, ticks, self.tick, self._price_decimals)

    def round_qty(self, qty: float) -> float:
        """Down to qty_step: `floor(qty / step)` steps, the quotient read as exact within its float
        noise (so 0.3 / 0.1 counts as 3, and 26522.671 stays 26522.671 at step 0.001); then
        `round(steps * step, qty_decimals)`."""
        x = qty / self.qty_step
        if not 0.0 <= x < _SNAP_BELOW:
            return round(math.floor(x) * self.qty_step, self._qty_decimals)
        steps = int(x)
        frac = x - steps
        if frac >= 0.99 and frac >= 1.0 - max(1e-9, _NOISE * x):
            steps += 1
        return _snap(self._qty_memo, steps, self.qty_step, self._qty_decimals)


def below_min_qty(qty: float, min_qty: float, whole_position: bool) -> bool:
    """A size refused for being under min_qty. A close of the whole position is the exception: it
    takes whatever is left (Bybit closes with qty "0", reduceOnly and closeOnTrigger), so a sliver
    below min_qty left by a partial close can still be closed."""
    return qty < min_qty and not (whole_position and qty > 0.0)


# Relative float noise taken for exact by the roundings above: a quotient of two decimals is off by
# a few 1e-16 of itself, an expression's result by a few more; 1e-12 leaves a wide margin and is a
# ten-thousandth of a tick at 100 million ticks. Past _SNAP_BELOW ticks or steps (a hundredth of
# one there) nothing is snapped: no real price or size is that many ticks.
_NOISE = 1e-12
_SNAP_BELOW = 1e10


def _snap(memo: dict[int, float], n: int, unit: float, decimals: int) -> float:
    """`round(n * unit, decimals)`, remembered per n (a run sees few distinct sizes and prices)."""
    out = memo.get(n)
    if out is None:
        if len(memo) >= 65536:
            memo.clear()  # bounded: a long live session must not grow it forever
        out = memo[n] = round(n * unit, decimals)
    return out
