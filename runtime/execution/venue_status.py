"""What a venue says about its own health and about reconciliation, as frozen snapshots for a screen.

A live backend (Bybit demo/live, or the loopback emulator) has a stream that can drop, request
budgets per endpoint, a clock offset, retries, a journal, and a reconciler that compares the
exchange's orders and position with ours. The simulator has none of these: it is its own book.
A venue that has them offers `health() -> HealthSnapshot` and `reconciliation() ->
ReconciliationSnapshot` (the Session asks for them when present); every field a venue cannot
know is None, so a screen says "n/a" instead of inventing a zero.

Values are taken when the snapshot is made: `last_message_age_s` is an age at that moment, so a
snapshot never needs a clock to be read.
"""
from __future__ import annotations

import attrs

__all__ = ["DriftEvent", "EndpointBudget", "HealthSnapshot", "ReconciliationSnapshot", "SIMULATOR_HEALTH",
           "SIMULATOR_RECONCILIATION"]


@attrs.frozen
class EndpointBudget:
    """Requests used of one endpoint's rate limit in its current window (Bybit's X-Bapi-Limit-*)."""

    endpoint: str  # e.g. /v5/order/create
    used: int
    limit: int
    window_s: float = 1.0


@attrs.frozen
class HealthSnapshot:
    venue: str  # simulator | emulator | demo | live
    stream: str | None = None  # connected | reconnecting | disconnected; None: the venue has no stream
    reconnects: int | None = None
    last_message_age_s: float | None = None  # seconds since the stream's last message
    rate_limits: tuple[EndpointBudget, ...] | None = None
    clock_offset_ms: float | None = None  # the venue's clock minus ours
    retries: int | None = None  # requests retried since the start
    journal_path: str | None = None
    journal_bytes: int | None = None
    note: str = ""  # said when the venue has none of it


@attrs.frozen
class DriftEvent:
    """One difference reconciliation found (the journal's `drift` row): what, ours, theirs, what was done."""

    ts: int  # epoch ms when found
    what: str
    local: str
    exchange: str
    action: str


@attrs.frozen
class ReconciliationSnapshot:
    venue: str
    last_run_ts: int | None = None  # epoch ms of the last reconciliation; None: never ran
    result: str | None = None  # e.g. "in sync", "2 drifts fixed"
    runs: int | None = None
    drift: tuple[DriftEvent, ...] = ()  # newest last
    drift_count: int | None = None  # all drift found, also what `drift` no longer holds
    note: str = ""


# The simulator is the exchange itself: no stream, no budgets, nothing to reconcile against.
SIMULATOR_HEALTH = HealthSnapshot("simulator", note="simulated venue: no stream, no rate limits, no journal")
SIMULATOR_RECONCILIATION = ReconciliationSnapshot("simulator", note="no venue to reconcile")
