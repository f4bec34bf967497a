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

from collections.abc import Iterable

import attrs

from playdeck.runtime.execution.orders import OrderStatus

__all__ = [
    "EVENTS",
    "INITIAL",
    "TRANSITIONS",
    "IllegalTransition",
    "OrderStateMachine",
    "StatusPath",
]

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
_IN_FLIGHT = frozenset({_SUB, _PAMEND, _PCXL})  # local states of a request, not Bybit statuses

# Every order starts here: it exists locally and has been sent.
INITIAL = _SUB

TRANSITIONS: dict[tuple[OrderStatus, str], OrderStatus] = {
    # --- Submitted: sent, no answer yet ----------------------------------------------------------
    (_SUB, "accept"): _NEW,
    (_SUB, "accept_conditional"): _UNTRIG,
    (_SUB, "reject"): _REJ,
    # The create reply can be lost or overtaken; the first news may already be an execution.
    (_SUB, "fill_partial"): _PF,
    (_SUB, "fill"): _FILLED,
    # An IOC that found nothing can be reported cancelled before any ack reaches us.
    (_SUB, "cancel"): _CXL,
    # The kill switch may cancel an order whose create is still in flight.
    (_SUB, "cancel_request"): _PCXL,
    # --- Untriggered: a conditional waiting for its trigger --------------------------------------
    (_UNTRIG, "trigger"): _TRIG,
    (_UNTRIG, "deactivate"): _DEACT,  # cancelled before it ever triggered (Bybit's word)
    (_UNTRIG, "expire"): _EXP,
    (_UNTRIG, "amend"): _PAMEND,
    (_UNTRIG, "cancel_request"): _PCXL,
    # --- Triggered: transient, between the trigger and the resulting order -----------------------
    (_TRIG, "accept"): _NEW,  # a stop-limit that now rests as a limit
    (_TRIG, "fill"): _FILLED,  # a stop-market, or a stop-limit marketable at the trigger
    (_TRIG, "fill_partial"): _PF,
    (_TRIG, "reject"): _REJ,  # the venue refused the triggered order (e.g. margin at trigger time)
    (_TRIG, "cancel"): _CXL,  # e.g. a reduce-only order that found no position left to reduce
    # --- New: resting, nothing filled -------------------------------------------------------------
    (_NEW, "fill_partial"): _PF,
    (_NEW, "fill"): _FILLED,
    (_NEW, "cancel"): _CXL,
    (_NEW, "expire"): _EXP,
    (_NEW, "amend"): _PAMEND,
    (_NEW, "cancel_request"): _PCXL,
    # --- PartiallyFilled: resting with some quantity executed -------------------------------------
    (_PF, "fill_partial"): _PF,
    (_PF, "fill"): _FILLED,
    # Cancelling a partly filled order can only end PartiallyFilledCanceled, whatever it is called.
    (_PF, "cancel"): _PFC,
    (_PF, "cancel_partial"): _PFC,
    (_PF, "expire"): _EXP,
    (_PF, "amend"): _PAMEND,
    (_PF, "cancel_request"): _PCXL,
    # --- PendingAmend: an amend is out ------------------------------------------------------------
    (_PAMEND, "amend_ack"): _NEW,
    (_PAMEND, "amend_ack_partial"): _PF,
    (_PAMEND, "amend_ack_conditional"): _UNTRIG,
    # The market does not wait for our amend: fills, triggers and venue-side cancels can overtake it.
    (_PAMEND, "fill_partial"): _PF,
    (_PAMEND, "fill"): _FILLED,
    (_PAMEND, "trigger"): _TRIG,
    (_PAMEND, "cancel"): _CXL,
    (_PAMEND, "cancel_partial"): _PFC,
    (_PAMEND, "deactivate"): _DEACT,
    (_PAMEND, "cancel_request"): _PCXL,
    # --- PendingCancel: a cancel (or a bar expiry, sent as a cancel) is out -----------------------
    (_PCXL, "cancel"): _CXL,
    (_PCXL, "cancel_partial"): _PFC,
    (_PCXL, "deactivate"): _DEACT,
    (_PCXL, "expire"): _EXP,
    # A cancel can race a fill and lose: Bybit reports Filled after the cancel was sent.
    (_PCXL, "fill"): _FILLED,
    (_PCXL, "fill_partial"): _PF,
    (_PCXL, "trigger"): _TRIG,
    # The create that was still in flight (Submitted -> PendingCancel) was refused after all.
    (_PCXL, "reject"): _REJ,
    (_PCXL, "cancel_reject"): _NEW,
    (_PCXL, "cancel_reject_partial"): _PF,
    (_PCXL, "cancel_reject_conditional"): _UNTRIG,
}

EVENTS: frozenset[str] = frozenset(event for _, event in TRANSITIONS)

# TRANSITIONS keyed by the status's wire value: the same table, looked up without hashing an enum
# member (a Python-level __hash__) on every status change of every order.
_BY_VALUE: dict[tuple[str, str], OrderStatus] = {(s.value, e): new for (s, e), new in TRANSITIONS.items()}

# For error messages: where an event normally leads, whatever the status.
_EVENT_TARGETS: dict[str, frozenset[OrderStatus]] = {
    event: frozenset(new for (_, e), new in TRANSITIONS.items() if e == event) for event in EVENTS
}


class IllegalTransition(Exception):
    """A status change that is not in `TRANSITIONS`."""

    def __init__(self, current: OrderStatus, event: str, order_id: str | None = None) -> None:
        self.current = current
        self.event = event
        self.order_id = order_id
        targets = _EVENT_TARGETS.get(event)
        if targets is None:
            target = f"? (unknown event {event!r})"
        else:
            target = "|".join(sorted(t.value for t in targets))
        who = f"order {order_id}: " if order_id is not None else ""
        super().__init__(f"{who}illegal transition {current.value} -> {target} on {event!r}")


class OrderStateMachine:
    """Stateless: the status lives with the order; this only says where an event takes it."""

    table = TRANSITIONS

    @staticmethod
    def apply(current: OrderStatus, event: str, order_id: str | None = None) -> OrderStatus:
        new = TRANSITIONS.get((current, event))
        if new is None:
            raise IllegalTransition(current, event, order_id)
        return new

    @staticmethod
    def can(current: OrderStatus, event: str) -> bool:
        return (current, event) in TRANSITIONS

    @staticmethod
    def events_from(current: OrderStatus) -> tuple[str, ...]:
        return tuple(sorted(e for (s, e) in TRANSITIONS if s is current))

    @staticmethod
    def edges() -> Iterable[tuple[OrderStatus, str, OrderStatus]]:
        """(from, event, to) triples in table order, for drawing."""
        return ((s, e, n) for (s, e), n in TRANSITIONS.items())


@attrs.define
class StatusPath:
    """The statuses one order went through, oldest first, starting at Submitted.

    `str()` gives the console's form, e.g. `New>PartiallyFilled>Filled`: the leading Submitted is
    left out of the text because every order has it, unless it is all there is.
    """

    order_id: str
    statuses: list[OrderStatus] = attrs.field(factory=lambda: [INITIAL])

    @property
    def current(self) -> OrderStatus:
        return self.statuses[-1]

    def apply(self, event: str) -> tuple[OrderStatus, OrderStatus]:
        """Move by `event`; returns (old, new). Raises IllegalTransition and then changes nothing."""
        statuses = self.statuses
        old = statuses[-1]
        # OrderStateMachine.apply, inlined: this runs for every status change of every order.
        new = _BY_VALUE.get((old._value_, event))
        if new is None:
            raise IllegalTransition(old, event, self.order_id)
        statuses.append(new)
        return old, new

    def as_tuple(self) -> tuple[OrderStatus, ...]:
        return tuple(self.statuses)

    def __str__(self) -> str:
        shown = self.statuses[1:] if len(self.statuses) > 1 else self.statuses
        return ">".join(s.value for s in shown)

    def venue(self) -> str:
        """Bybit's statuses only (and Expired), as orders.csv shows them: `New>Filled` for an order
        amended on the way (`New>PendingAmend>New>Filled` here). The local in-flight states are
        requests, not statuses the exchange reports; the event stream and `str()` keep them."""
        shown: list[str] = []
        for s in self.statuses:
            if s in _IN_FLIGHT or (shown and shown[-1] == s.value):
                continue
            shown.append(s.value)
        return ">".join(shown) or str(self)
