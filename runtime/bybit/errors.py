"""What a failed Bybit request means, and whether to try it again: one place (bybit-v5.md section 3).

`classify(exc)` turns what pybit raised (`InvalidRequestError` carries Bybit's retCode in
`status_code`; `FailedRequestError` the HTTP status) or a network error into a `BybitFailure`, and
`should_retry` says whether the same request can succeed later. The retry policy itself
(`retrying`: tenacity, exponential backoff with jitter) is stated once here; the backend adds what
must happen between attempts (wait for a 10006's reset, resync the clock after a 10002).
"""
from __future__ import annotations

from typing import Any

import attrs

__all__ = ["BybitFailure", "RETRYABLE", "classify", "should_retry"]

# Bybit's codes worth another try, with why:
RETRYABLE = {
    10000: "server timeout",  # re-send creates with the same orderLinkId, then look for 110072
    10002: "timestamp outside recv_window",  # after the clock is measured again
    10006: "too many visits",  # after X-Bapi-Limit-Reset-Timestamp
    10016: "server error",
    110079: "order is being processed",
}
# HTTP statuses worth another try: 429 (system frequency protection) and 5xx; a 403 is an IP ban
# (about ten minutes): not a retry, a stop.
_RETRY_HTTP = {429, 500, 502, 503, 504}


@attrs.frozen
class BybitFailure(Exception):
    """A request that did not succeed: Bybit's retCode (or an HTTP status, or 0 for a network error)."""

    code: int
    message: str
    http: int | None = None  # the HTTP status when the failure was one
    reset_ms: int | None = None  # X-Bapi-Limit-Reset-Timestamp, with a 10006
    network: bool = False  # no answer at all: a timeout, a reset connection

    def __str__(self) -> str:
        if self.network:
            return f"no answer from Bybit: {self.message}"
        if self.http is not None:
            return f"HTTP {self.http}: {self.message}"
        return f"Bybit {self.code}: {self.message}"


def classify(exc: BaseException) -> BybitFailure:
    """What pybit raised (or requests, under it) as a BybitFailure."""
    if isinstance(exc, BybitFailure):
        return exc
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", "") or exc)
    if name == "InvalidRequestError" and status is not None:
        headers: Any = getattr(exc, "resp_headers", None) or {}
        reset = headers.get("X-Bapi-Limit-Reset-Timestamp") if hasattr(headers, "get") else None
        return BybitFailure(int(status), message, reset_ms=int(reset) if reset else None)
    if name == "FailedRequestError" and status is not None:
        return BybitFailure(0, message, http=int(status))
    if isinstance(exc, (TimeoutError, ConnectionError, OSError)) or name in (
            "ReadTimeout", "ConnectTimeout", "ConnectionError", "Timeout"):
        return BybitFailure(0, f"{name}: {exc}", network=True)
    raise exc


def should_retry(failure: BybitFailure) -> bool:
    """Can the same request succeed later? Never for what the request itself got wrong (10001, a
    refused order such as 110007): only for the venue's or the network's trouble."""
    if failure.network:
        return True
    if failure.http is not None:
        return failure.http in _RETRY_HTTP
    return failure.code in RETRYABLE
