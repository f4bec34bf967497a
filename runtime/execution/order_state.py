"""The order state machine: one `(status, event) -> status` table shared by every backend.

Statuses are Bybit's (`New`, `PartiallyFilled`, ...), playdeck's `Expired`, and the local in-flight
states `Submitted`, `PendingAmend`, `PendingCancel` (a request is out and its answer has not come
back, or was lost). A status changes only through `OrderStateMachine.apply`; any move that is not in
`TRANSITIONS` raises `IllegalTransition`, so a bug or a surprising venue report is loud, never a
silently wrong order book. The console draws `TRANSITIONS` as a graph.

Events (the vocabulary every backend maps its venue reports onto):

    accept                  the venue took the order and it rests (or a triggered stop-limit rests)
    accept_conditional      the venue took a conditional order; it waits for its trigger
    reject                  the venue refused the order
    trigger                 a conditional order's trigger price was reached
    fill_partial            some, not all, of the quantity executed
    fill                    the rest of the quantity executed
    cancel                  the order is gone; nothing or, from PartiallyFilled, something had filled
    cancel_partial          the order is gone after a partial fill (Bybit linear says `Cancelled`
                            with cumExecQty > 0; playdeck records PartiallyFilledCanceled)
    deactivate              a conditional order was cancelled before it triggered
    expire                  playdeck's `expire N bars` ran out
    amend                   we sent an amend request
    amend_ack               the amend was answered (done or refused); the order rests unfilled
    amend_ack_partial       ... the order rests with a partial fill
    amend_ack_conditional   ... the order still waits for its trigger
    cancel_request          we sent a cancel request
    cancel_reject           the cancel was refused; the order rests unfilled
    cancel_reject_partial   ... the order rests with a partial fill
    cancel_reject_conditional ... the order still waits for its trigger

The answers to an amend or a cancel name the status the order is back in, because `PendingAmend`
and `PendingCancel` do not remember where they came from; this keeps `apply` a pure function of
`(status, event)`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from playdeck.runtime.execution.orders import OrderStatus

__all__ = [
    "EVENTS",
    "INITIAL",
    "TRANSITIONS",
    "Ev",
    "IllegalTransition",
    "OrderStateMachine",
    "amend_ack_event",
    "end_event",
    "path_to",
]


class Ev(enum.Enum):
    ACCEPT = "accept"
    ACCEPT_CONDITIONAL = "accept_conditional"
    REJECT = "reject"
    TRIGGER = "trigger"
    FILL_PARTIAL = "fill_partial"
    FILL = "fill"
    CANCEL = "cancel"
    CANCEL_PARTIAL = "cancel_partial"
    DEACTIVATE = "deactivate"
    EXPIRE = "expire"
    AMEND = "amend"
    AMEND_ACK = "amend_ack"
    AMEND_ACK_PARTIAL = "amend_ack_partial"
    AMEND_ACK_CONDITIONAL = "amend_ack_conditional"
    CANCEL_REQUEST = "cancel_request"
    CANCEL_REJECT = "cancel_reject"
    CANCEL_REJECT_PARTIAL = "cancel_reject_partial"
    CANCEL_REJECT_CONDITIONAL = "cancel_reject_conditional"

    __hash__ = object.__hash__  # see OrderStatus: looked up with every status change


_SUB = OrderStatus.SUBMITTED
_NEW = OrderStatus.NEW
_PF = OrderStatus.PARTIALLY_FILLED
_FILLED = OrderStatus.FILLED
_CXL = OrderStatus.CANCELLED
_PFC = OrderStatus.PARTIALLY_FILLED_CANCELED
_REJ = OrderStatus.REJECTED
_UNTRIG = OrderStatus.UNTRIGGERED
_TRIG = OrderStatus.TRIGGERED
_DEACT = OrderStatus.DEACTIVATED
_EXP = OrderStatus.EXPIRED
_PAMEND = OrderStatus.PENDING_AMEND
_PCXL = OrderStatus.PENDING_CANCEL

# Every order starts here: it exists locally and has been sent.
INITIAL = _SUB

E = Ev
TRANSITIONS: dict[tuple[OrderStatus, Ev], OrderStatus] = {
    # --- Submitted: sent, no answer yet ----------------------------------------------------------
    (_SUB, E.ACCEPT): _NEW,
    (_SUB, E.ACCEPT_CONDITIONAL): _UNTRIG,
    (_SUB, E.REJECT): _REJ,
    # The create reply can be lost or overtaken; the first news may already be an execution.
    (_SUB, E.FILL_PARTIAL): _PF,
    (_SUB, E.FILL): _FILLED,
    # An IOC that found nothing can be reported cancelled before any ack reaches us.
    (_SUB, E.CANCEL): _CXL,
    # The kill switch may cancel an order whose create is still in flight.
    (_SUB, E.CANCEL_REQUEST): _PCXL,
    # --- Untriggered: a conditional waiting for its trigger --------------------------------------
    (_UNTRIG, E.TRIGGER): _TRIG,
    (_UNTRIG, E.DEACTIVATE): _DEACT,  # cancelled before it ever triggered (Bybit's word)
    (_UNTRIG, E.EXPIRE): _EXP,
    (_UNTRIG, E.AMEND): _PAMEND,
    (_UNTRIG, E.CANCEL_REQUEST): _PCXL,
    # --- Triggered: transient, between the trigger and the resulting order -----------------------
    (_TRIG, E.ACCEPT): _NEW,  # a stop-limit that now rests as a limit
    (_TRIG, E.FILL): _FILLED,  # a stop-market, or a stop-limit marketable at the trigger
    (_TRIG, E.FILL_PARTIAL): _PF,
    (_TRIG, E.REJECT): _REJ,  # the venue refused the triggered order (e.g. margin at trigger time)
    (_TRIG, E.CANCEL): _CXL,  # e.g. a reduce-only order that found no position left to reduce
    # --- New: resting, nothing filled -------------------------------------------------------------
    (_NEW, E.FILL_PARTIAL): _PF,
    (_NEW, E.FILL): _FILLED,
    (_NEW, E.CANCEL): _CXL,
    (_NEW, E.EXPIRE): _EXP,
    (_NEW, E.AMEND): _PAMEND,
    (_NEW, E.CANCEL_REQUEST): _PCXL,
    # --- PartiallyFilled: resting with some quantity executed -------------------------------------
    (_PF, E.FILL_PARTIAL): _PF,
    (_PF, E.FILL): _FILLED,
    # Cancelling a partly filled order can only end PartiallyFilledCanceled, whatever it is called.
    (_PF, E.CANCEL): _PFC,
    (_PF, E.CANCEL_PARTIAL): _PFC,
    (_PF, E.EXPIRE): _EXP,
    (_PF, E.AMEND): _PAMEND,
    (_PF, E.CANCEL_REQUEST): _PCXL,
    # --- PendingAmend: an amend is out ------------------------------------------------------------
    (_PAMEND, E.AMEND_ACK): _NEW,
    (_PAMEND, E.AMEND_ACK_PARTIAL): _PF,
    (_PAMEND, E.AMEND_ACK_CONDITIONAL): _UNTRIG,
    # The market does not wait for our amend: fills, triggers and venue-side cancels can overtake it.
    (_PAMEND, E.FILL_PARTIAL): _PF,
    (_PAMEND, E.FILL): _FILLED,
    (_PAMEND, E.TRIGGER): _TRIG,
    (_PAMEND, E.CANCEL): _CXL,
    (_PAMEND, E.CANCEL_PARTIAL): _PFC,
    (_PAMEND, E.DEACTIVATE): _DEACT,
    (_PAMEND, E.CANCEL_REQUEST): _PCXL,
    # --- PendingCancel: a cancel (or a bar expiry, sent as a cancel) is out -----------------------
    (_PCXL, E.CANCEL): _CXL,
    (_PCXL, E.CANCEL_PARTIAL): _PFC,
    (_PCXL, E.DEACTIVATE): _DEACT,
    (_PCXL, E.EXPIRE): _EXP,
    # A cancel can race a fill and lose: Bybit reports Filled after the cancel was sent.
    (_PCXL, E.FILL): _FILLED,
    (_PCXL, E.FILL_PARTIAL): _PF,
    (_PCXL, E.TRIGGER): _TRIG,
    # The create that was still in flight (Submitted -> PendingCancel) was refused after all.
    (_PCXL, E.REJECT): _REJ,
    (_PCXL, E.CANCEL_REJECT): _NEW,
    (_PCXL, E.CANCEL_REJECT_PARTIAL): _PF,
    (_PCXL, E.CANCEL_REJECT_CONDITIONAL): _UNTRIG,
}
del E

EVENTS: frozenset[Ev] = frozenset(event for _, event in TRANSITIONS)

# For error messages: where an event normally leads, whatever the status.
_EVENT_TARGETS: dict[Ev, frozenset[OrderStatus]] = {
    event: frozenset(new for (_, e), new in TRANSITIONS.items() if e is event) for event in EVENTS
}


def end_event(current: OrderStatus, filled_qty: float) -> Ev:
    """The event that ends an order that is in `current` (possibly PendingCancel) without filling
    the rest: a conditional that never triggered is Deactivated, one with a partial fill ends
    PartiallyFilledCanceled, anything else Cancelled."""
    if current is _UNTRIG:
        return Ev.DEACTIVATE  # a conditional cancelled before it triggered
    return Ev.CANCEL_PARTIAL if filled_qty > 0 else Ev.CANCEL


# The answer to an amend names the status the order is back in, because PendingAmend does not
# remember where it came from.
_AMEND_ACK = {_NEW: Ev.AMEND_ACK, _PF: Ev.AMEND_ACK_PARTIAL, _UNTRIG: Ev.AMEND_ACK_CONDITIONAL}


def amend_ack_event(before: OrderStatus) -> Ev:
    """The answer to an amend sent while the order was in `before` (New, PartiallyFilled, Untriggered)."""
    return _AMEND_ACK[before]


class IllegalTransition(Exception):
    """A status change that is not in `TRANSITIONS`."""

    def __init__(self, current: OrderStatus, event: Ev | str, order_id: str | None = None) -> None:
        self.current = current
        self.event = event
        self.order_id = order_id
        targets = _EVENT_TARGETS.get(event) if isinstance(event, Ev) else None
        name = event.value if isinstance(event, Ev) else event
        if targets is None:
            target = f"? (unknown event {name!r})"
        else:
            target = "|".join(sorted(t.value for t in targets))
        who = f"order {order_id}: " if order_id is not None else ""
        super().__init__(f"{who}illegal transition {current.value} -> {target} on {name!r}")


class OrderStateMachine:
    """Stateless: the status lives with the order; this only says where an event takes it."""

    table = TRANSITIONS

    @staticmethod
    def apply(current: OrderStatus, event: Ev, order_id: str | None = None) -> OrderStatus:
        new = TRANSITIONS.get((current, event))
        if new is None:
            raise IllegalTransition(current, event, order_id)
        return new

    @staticmethod
    def can(current: OrderStatus, event: Ev) -> bool:
        return (current, event) in TRANSITIONS

    @staticmethod
    def events_from(current: OrderStatus) -> tuple[Ev, ...]:
        return tuple(sorted((e for (s, e) in TRANSITIONS if s is current), key=lambda e: e.value))

    @staticmethod
    def edges() -> Iterable[tuple[OrderStatus, Ev, OrderStatus]]:
        """(from, event, to) triples in table order, for drawing."""
        return ((s, e, n) for (s, e), n in TRANSITIONS.items())


def advance(path: list[OrderStatus], event: Ev, order_id: str | None = None) -> OrderStatus:
    """Move the status path `path` (a record's, oldest first) by `event`; returns the new status.
    Raises IllegalTransition and then changes nothing."""
    new = TRANSITIONS.get((path[-1], event))
    if new is None:
        raise IllegalTransition(path[-1], event, order_id)
    path.append(new)
    return new


def path_to(current: OrderStatus, target: OrderStatus) -> list[Ev] | None:
    """The fewest events that take an order from `current` to `target` through `TRANSITIONS`, or None
    when no path exists: how a venue's report of an order's status (read after a lost message, a
    reconnect, a restart) becomes events a TradingState can apply, every step a legal move. Among
    paths of one length the table's order decides (the first edge listed wins), so a conditional
    that is reported Filled goes Untriggered -> Triggered -> Filled."""
    if current is target:
        return []
    frontier: list[tuple[OrderStatus, list[Ev]]] = [(current, [])]
    seen = {current}
    while frontier:
        nxt: list[tuple[OrderStatus, list[Ev]]] = []
        for status, events in frontier:
            for (src, ev), dst in TRANSITIONS.items():
                if src is status and dst not in seen:
                    if dst is target:
                        return events + [ev]
                    seen.add(dst)
                    nxt.append((dst, events + [ev]))
        frontier = nxt
    return None
