"""Orders as every venue, the journal and the console see them.

- `OrderRequest`: what the strategy asks a venue for, frozen and serialisable (plain numbers and
  strings; attached protection as a small expression of the fill price, `FillExpr`, resolved into a
  price when the entry fills), so it can go to a journal or to Bybit as it is.
- `OrderRecord`: one order's life inside a book (the simulator's, or `TradingState`'s mirror):
  mutable and slotted, its live qty / price / trigger, status path and fills. Records are owned by
  their book; readers outside the runtime get `snapshot()`s.
- `Fill` and `OrderEvent`: what a backend emits, made once per change (NamedTuples: immutable and
  built several times faster than a frozen class, which counts at tens of thousands per run).
- `Refusal`: why a venue (or the sizing before it) said no: a `RefusalCode` (Bybit's code where it
  has one) and the text with the numbers.

Enum values are the spellings the wire uses (Bybit's `orderStatus`, `timeInForce`), so a live
backend converts with `OrderStatus(raw)` and nothing else.
"""

from __future__ import annotations

import enum
import math
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Union

import attrs

from playdeck.compiler.operators import OPERATORS

__all__ = [
    "FILL",
    "CashFlow",
    "Fill",
    "FillExpr",
    "Instrument",
    "KEEP",
    "Liquidity",
    "OrderEvent",
    "OrderRecord",
    "OrderRequest",
    "OrderResult",
    "OrderRole",
    "OrderSnapshot",
    "OrderStatus",
    "OrderType",
    "ProtectionKind",
    "ProtectionSpec",
    "Refusal",
    "RefusalCode",
    "Refused",
    "Side",
    "TimeInForce",
    "below_min_qty",
    "rekey_refused",
    "resolve_fill_expr",
    "step_decimals",
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

    is_conditional: bool

    def __init__(self, value: str) -> None:
        self.is_conditional = value in ("stop", "stop_limit")


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
    LIQUIDATION = "liquidation"  # made by the venue to close a position at its liquidation price

    is_protection: bool  # a position-level stop_loss / take_profit / trail order

    def __init__(self, value: str) -> None:
        # Set once per member (read per order and per fill; a property would hash the enum each time).
        self.is_protection = value in ("stop_loss", "take_profit", "trail")


class OrderStatus(enum.Enum):
    """Bybit's `orderStatus` values, playdeck's `Expired`, and three local in-flight states.

    The legal moves between them live in `runtime.execution.order_state.TRANSITIONS`.
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

    # Members are singletons: identity hashing in C, not Enum's hash of the name in Python (every
    # status change looks a (status, event) pair up in the transition table).
    __hash__ = object.__hash__

    is_final: bool  # no transition leaves this status; the order is done
    is_in_flight: bool  # a local state: we asked for something and the venue has not answered yet

    def __init__(self, value: str) -> None:
        self.is_final = value in ("Filled", "Cancelled", "PartiallyFilledCanceled", "Rejected", "Deactivated",
                                  "Expired")
        self.is_in_flight = value in ("Submitted", "PendingAmend", "PendingCancel")

    @property
    def is_open(self) -> bool:
        """Working or possibly working: resting, waiting for a trigger, or with a request in flight."""
        return not self.is_final


# ------------------------------------------------------------------------------ attached protection
# A price written under an entry (`stop_loss fill - 2 * atr`) with everything but `fill` already
# bound to numbers at the bar the entry was sent: a float, the leaf FILL, or (op, operand, ...)
# with op one of + - * / neg min max abs. Plain tuples, so a request stays a value that JSON (as
# lists) and a journal can hold, and resolving it costs a few operations per fill.
FILL = "fill"
FillExpr = Union[float, str, tuple]


def resolve_fill_expr(expr: Any, fill: float) -> float:
    """The value of `expr` for an entry filled at `fill`, each operator computed by the language's one
    operator table (compiler/operators.py: division by zero and min/max of NaN are NaN)."""
    if expr.__class__ is float:
        return expr
    if expr == FILL:
        return fill
    return _SCALAR[expr[0]](*[resolve_fill_expr(x, fill) for x in expr[1:]])


_SCALAR = {name: op.scalar for name, op in OPERATORS.items()}


@attrs.frozen(slots=True)
class ProtectionSpec:
    """A stop_loss / take_profit / trail written under an entry: set when that entry fills, at
    `resolve_fill_expr(value, fill price)` (a price, or the trail's distance)."""

    kind: ProtectionKind
    value: Any  # FillExpr
    where: str = attrs.field(default="", eq=False)  # file:line:col of the attached action
    percent: bool = False  # a trail by a fraction of the best price (`trail 1.5%`): value is the fraction

    def resolve(self, fill: float) -> float:
        return resolve_fill_expr(self.value, fill)


# ------------------------------------------------------------------------------ requests and records
@attrs.frozen(slots=True)
class OrderRequest:
    """One order as the strategy sends it. `price` is the limit price, `trigger` the stop trigger.

    `client_id` is Bybit's orderLinkId: the venue-neutral key of the order everywhere. For `close`
    orders `qty` is the position size when sent; a close fills the whole live position when it
    fills, and a venue caps any other reduce-only fill at the live position, so a reduce-only
    order never flips it. `expire_bar` and `attached` are playdeck's, not the venue's: a same-tag
    replacement (an amend) takes them from the new intent. `origin` is the file:line:col of the
    Play action behind the order ('' when none), for refusals found later (at a fill).
    """

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
    attached: tuple[ProtectionSpec, ...] = ()
    origin: str = ""

    @property
    def is_conditional(self) -> bool:
        return self.type.is_conditional

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (enums by their wire spelling), for the journal."""
        return {
            "client_id": self.client_id, "side": self.side.value, "type": self.type.value, "qty": self.qty,
            "price": self.price, "trigger": self.trigger, "tif": self.tif.value, "reduce_only": self.reduce_only,
            "role": self.role.value, "tag": self.tag, "created_bar": self.created_bar,
            "expire_bar": self.expire_bar, "origin": self.origin,
            "attached": [{"kind": p.kind, "value": _expr_json(p.value), "where": p.where, "percent": p.percent}
                         for p in self.attached],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OrderRequest:
        return cls(
            d["client_id"], Side(d["side"]), OrderType(d["type"]), float(d["qty"]),
            None if d["price"] is None else float(d["price"]),
            None if d["trigger"] is None else float(d["trigger"]),
            TimeInForce(d["tif"]), bool(d["reduce_only"]), OrderRole(d["role"]), d["tag"], int(d["created_bar"]),
            None if d["expire_bar"] is None else int(d["expire_bar"]),
            tuple(ProtectionSpec(p["kind"], _expr_value(p["value"]), p.get("where", ""), bool(p.get("percent")))
                  for p in d["attached"]),
            d.get("origin", ""),
        )


def _expr_json(expr: Any) -> Any:
    return list(map(_expr_json, expr)) if isinstance(expr, tuple) else expr


def _expr_value(expr: Any) -> Any:
    if isinstance(expr, list):
        return (expr[0], *map(_expr_value, expr[1:]))
    return expr if expr == FILL or isinstance(expr, str) else float(expr)


@attrs.frozen(slots=True)
class OrderSnapshot:
    """A record's values at one moment, for readers outside the runtime (console, journal)."""

    client_id: str
    order_id: str
    request: OrderRequest
    qty: float
    price: float | None
    trigger: float | None
    status: OrderStatus
    path: tuple[OrderStatus, ...]
    filled_qty: float
    avg_price: float | None
    reason: str


class OrderRecord:
    """An order's life in one book: the request as sent, its live values and its status path.

    Mutable and owned by its book (a venue's, or the TradingState mirror); nobody else writes it.
    `qty` / `price` / `trigger` are the live values (an amend, a protection following the position
    or a trail's ratchet change them in place); `request` stays what was sent, but for playdeck's
    own `expire_bar` and `attached`, which a same-tag replacement renews.
    """

    __slots__ = ("request", "client_id", "order_id", "side", "type", "role", "tag", "reduce_only", "qty", "price",
                 "trigger", "expire_bar", "attached", "path", "filled_qty", "avg_price", "reason")

    def __init__(self, request: OrderRequest, order_id: str, reduce_only: bool | None = None) -> None:
        self.request = request
        self.client_id = request.client_id
        self.order_id = order_id
        self.side = request.side
        self.type = request.type
        self.role = request.role
        self.tag = request.tag
        self.reduce_only = request.reduce_only if reduce_only is None else reduce_only
        self.qty = request.qty
        self.price = request.price
        self.trigger = request.trigger
        self.expire_bar = request.expire_bar
        self.attached = request.attached
        self.path = [OrderStatus.SUBMITTED]
        self.filled_qty = 0.0
        self.avg_price: float | None = None
        self.reason = ""  # the reason given with the latest status change (a reject reason, ...)

    @property
    def status(self) -> OrderStatus:
        return self.path[-1]

    @property
    def is_conditional(self) -> bool:
        return self.type.is_conditional

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(self.client_id, self.order_id, self.request, self.qty, self.price, self.trigger,
                             self.path[-1], tuple(self.path), self.filled_qty, self.avg_price, self.reason)

    def venue_path(self) -> str:
        """Bybit's statuses only (and Expired), as orders.csv shows them: `New>Filled` for an order
        amended on the way (`New>PendingAmend>New>Filled` in the events). The local in-flight
        states are requests, not statuses the exchange reports; the event stream keeps them."""
        shown: list[str] = []
        for s in self.path:
            if s.is_in_flight or (shown and shown[-1] == s._value_):
                continue
            shown.append(s._value_)
        return ">".join(shown) or self.path[-1]._value_

    def __repr__(self) -> str:
        return (f"OrderRecord({self.client_id} {self.order_id} {self.side.value} {self.type.value} {self.qty} "
                f"price={self.price} trigger={self.trigger} {'>'.join(s.value for s in self.path)})")


def rekey_refused(orders: dict[str, Any], rec: OrderRecord) -> None:
    """A client id whose create was refused is free again (the venue never made that order): move its
    record to `<client id>~<order id>` in `orders` (a book keyed by client id), keeping the order of
    the book's insertion only for the rest; every book applies this same rule, so they stay alike."""
    del orders[rec.client_id]
    rec.client_id = f"{rec.client_id}~{rec.order_id}"
    orders[rec.client_id] = rec


class _Keep:
    """The default of an amend's `expire_bar` / `attached`: leave them as they are."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


# ------------------------------------------------------------------------------ refusals
class RefusalCode(enum.Enum):
    """Why an intent or an order was refused: the group the report counts it in, with Bybit's
    retCode where Bybit has one for it (the emulator answers with that code; 0: none)."""

    INSUFFICIENT_MARGIN = ("insufficient margin", 110007)
    REDUCE_ONLY_NOTHING = ("reduce-only order with no position", 110017)
    REDUCE_ONLY_WRONG_SIDE = ("reduce-only order would not reduce", 110017)
    DUPLICATE_CLIENT_ID = ("duplicate client id", 110072)
    DUPLICATE_ORDER_ID = ("duplicate order id", 0)
    TOO_MANY_ORDERS = ("more than active orders", 110020)
    TOO_MANY_CONDITIONALS = ("more than active conditional orders", 110009)  # "stop orders exceeds the maximum"
    TRIGGER_MUST_RISE = ("trigger on the wrong side", 110092)  # Bybit: triggerDirection 1
    TRIGGER_MUST_FALL = ("trigger on the wrong side", 110093)  # Bybit: triggerDirection 2
    BELOW_MIN_NOTIONAL = ("order value below the minimum", 110094)
    BELOW_MIN_QTY = ("qty below min_qty", 10001)
    BAD_PRICE = ("bad price", 10001)
    BAD_SIZE = ("bad size", 10001)
    POST_ONLY_WOULD_TAKE = ("post_only limit would take liquidity", 0)  # Bybit: Cancelled, EC_PostOnlyWillTakeLiquidity
    NO_POSITION = ("needs an open position", 10001)
    NOT_OPEN = ("order is not open", 110001)
    BAD_AMEND = ("amend not possible", 10001)
    BAD_REQUEST = ("bad request", 10001)

    label: str
    bybit: int

    def __init__(self, label: str, bybit: int) -> None:
        self.label = label
        self.bybit = bybit


class Refusal(NamedTuple):
    code: RefusalCode
    text: str  # the full reason, with its numbers


class OrderResult(NamedTuple):
    """A venue's answer to a command: accepted or refused (with why)."""

    accepted: bool
    client_id: str | None
    status: OrderStatus
    order_id: str | None = None
    refusal: Refusal | None = None

    @property
    def reject_reason(self) -> str | None:
        return None if self.refusal is None else self.refusal.text


# ------------------------------------------------------------------------------ events
class Fill(NamedTuple):
    bar: int  # 0-based index of the exec bar the fill happened in
    ts: int  # epoch ms of that bar's open
    order_id: str
    tag: str | None
    side: Side
    qty: float
    price: float
    fee: float  # USDT, always >= 0 here (no maker rebates in v1)
    liquidity: str  # maker | taker
    role: OrderRole
    realized_pnl: float  # gross PnL of the part of the fill that reduced the position; fees not included
    client_id: str = ""
    detail_ts: int | None = None  # bar magnifier: epoch ms of the open of the detail bar it filled in
    exec_id: str = ""  # the venue's id of the execution (Bybit's execId; '' from the simulator)


class OrderEvent(NamedTuple):
    """One status change of one order (`old` None for its first status, Submitted).

    `ev` is the state-machine event that made the change (None for Submitted). `values` carries the
    order's values when they are new or changed (Submitted, an amend's answer, a protection moved):
    an `OrderRequest` with the live qty / price / trigger, so a mirror can follow from events alone.
    """

    order_id: str
    old: OrderStatus | None
    new: OrderStatus
    bar: int
    reason: str = ""
    client_id: str = ""
    ev: Any = None  # order_state.Ev
    values: OrderRequest | None = None
    code: RefusalCode | None = None


class CashFlow(NamedTuple):
    """Cash that moves without a fill: funding paid (amount < 0) or received at a funding instant,
    or the insurance fund covering a liquidation's loss past the wallet (amount > 0)."""

    bar: int  # the exec bar at whose open it happened
    ts: int  # epoch ms: the funding instant (funding), that bar's open (insurance)
    kind: str  # funding | insurance
    amount: float  # USDT added to the wallet (negative when paid)
    rate: float = 0.0  # the funding rate (funding only)
    qty: float = 0.0  # the signed position it was paid on (funding only)
    price: float = 0.0  # the price it was valued at: the bar's open (funding only)


class Refused(NamedTuple):
    """Part of an earlier command refused later: attached protection the venue would not place when
    its entry filled (the position stays open without it). An event like `Fill` and `OrderEvent`."""

    bar: int
    kind: str  # stop_loss | take_profit | trail
    reason: str
    where: str  # file:line:col of the attached action
    code: RefusalCode | None = None


# ------------------------------------------------------------------------------ instrument
def step_decimals(step: float) -> int:
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
        object.__setattr__(self, "_price_decimals", step_decimals(self.tick))
        object.__setattr__(self, "_qty_decimals", step_decimals(self.qty_step))
        object.__setattr__(self, "_price_memo", {})
        object.__setattr__(self, "_qty_memo", {})

    @property
    def qty_decimals(self) -> int:
        return self._qty_decimals

    @property
    def price_decimals(self) -> int:
        return self._price_decimals

    # Both roundings run for every order and every refused size. `price / tick` carries float noise
    # (0.3 / 0.1 = 2.9999999999999996, 73106.165 / 0.01 = 7310616.499999999): a quotient within
    # _NOISE of a whole step, or of a half tick, is taken to be exactly there, so a size already on
    # its step keeps it and a half tick goes up also at a million ticks or steps and more (an
    # absolute 1e-9 would be finer than the float spacing there). The last `round` strips noise
    # like 100.10000000000001 and is a pure function of an int, so it is remembered. Values past
    # _SNAP_BELOW ticks or steps are out of any market: callers refuse them (`in_range`) before
    # rounding, since the arithmetic would overflow to inf there.

    def round_price(self, price: float) -> float:
        """The nearest tick, an exact half tick up: `floor(price / tick + 0.5)` ticks, the quotient
        read as exact within its float noise; then `round(ticks * tick, price_decimals)`."""
        y = price / self.tick
        if not 0.0 <= y < _SNAP_BELOW:  # NaN, negative, absurd: no snapping
            return _round_far(y, self.tick, self._price_decimals, 0.5)
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
            return _round_far(x, self.qty_step, self._qty_decimals, 0.0)
        steps = int(x)
        frac = x - steps
        if frac >= 0.99 and frac >= 1.0 - max(1e-9, _NOISE * x):
            steps += 1
        return _snap(self._qty_memo, steps, self.qty_step, self._qty_decimals)

    def ceil_price(self, price: float) -> float:
        """Up to the tick (a price on its tick stays; float noise within 1e-9 of a tick counts as on it)."""
        ticks = math.ceil(price / self.tick - 1e-9)
        return _snap(self._price_memo, ticks, self.tick, self._price_decimals)

    def floor_price(self, price: float) -> float:
        """Down to the tick (a price on its tick stays)."""
        ticks = math.floor(price / self.tick + 1e-9)
        return _snap(self._price_memo, ticks, self.tick, self._price_decimals)

    def price_in_range(self, price: float) -> bool:
        """A price a market can have: positive, finite and under 10^10 ticks (1e9 USDT at a 0.1 tick)."""
        return 0.0 < price and price / self.tick < _SNAP_BELOW

    def qty_in_range(self, qty: float) -> bool:
        """A size an order can have: positive, finite and under 10^10 steps."""
        return 0.0 < qty and qty / self.qty_step < _SNAP_BELOW


def _round_far(x: float, unit: float, decimals: int, half: float) -> float:
    # NaN, negative or absurdly large quotients: no snapping, and never an OverflowError (a price of
    # 1e308 at a 0.1 tick is inf ticks): what cannot be a whole number of units stays as it is.
    if not math.isfinite(x):
        return x * unit
    return round(math.floor(x + half) * unit, decimals)


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
