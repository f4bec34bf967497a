"""What a failed Bybit request means, and whether to try it again: one place (bybit-v5.md section 3).

`classify(exc)` turns what pybit raised (`InvalidRequestError` carries Bybit's retCode in
`status_code`; `FailedRequestError` the HTTP status) or a network error into a `BybitFailure`, and
`should_retry` says whether the same request can succeed later. `retrying` states the retry policy
itself once (tenacity: that predicate, exponential backoff with jitter, a number of attempts); the
REST client adds what must happen between attempts (a 10006 blocks its endpoint in the rate limiter
until the reset, a 10002 measures the clock again before the request is signed anew).

Keys never reach a failure's text: Bybit's 10004 answer quotes the string it signed (which holds the
API key), so that part is cut out, and any text the caller names in `hide` (its key, its secret) is
masked wherever it appears.
"""
from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, Iterable

import attrs
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

__all__ = ["BybitFailure", "RETRYABLE", "classify", "retrying", "should_retry"]

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

# The backoff: 0.25 s, 0.5 s, 1 s, 2 s, ... up to 8 s, each plus up to 0.25 s of jitter (so callers
# that failed together do not come back together, and each wait is still longer than the last).
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 8.0
ATTEMPTS = 5

# Bybit's 10004 text is `error sign! origin_string[<timestamp><api key><recv_window><payload>]`.
# Everything from `origin_string[` on is cut (the payload may hold brackets of its own).
_ORIGIN = re.compile(r"origin_string\[.*", re.DOTALL)
HIDDEN = "<hidden>"


@attrs.frozen
class BybitFailure(Exception):
    """A request that did not succeed: Bybit's retCode (or an HTTP status, or 0 for a network error)."""

    code: int
    message: str
    http: int | None = None  # the HTTP status when the failure was one
    reset_ms: int | None = None  # X-Bapi-Limit-Reset-Timestamp, with a 10006 (the venue's clock)
    network: bool = False  # no answer at all: a timeout, a reset connection
    attempts: int = attrs.field(default=1, eq=False)  # how many times the request was sent, this one last

    def __str__(self) -> str:
        if self.network:
            text = f"no answer from Bybit: {self.message}"
        elif self.http is not None:
            text = f"HTTP {self.http}: {self.message}"
        else:
            text = f"Bybit {self.code}: {self.message}"
        return text if self.attempts == 1 else f"{text} (after {self.attempts} attempts)"


def _scrub(text: str, hide: Iterable[str]) -> str:
    text = _ORIGIN.sub(f"origin_string[{HIDDEN}]", text)
    for secret in hide:
        if secret:
            text = text.replace(secret, HIDDEN)
    return text


def classify(exc: BaseException, hide: Iterable[str] = ()) -> BybitFailure:
    """What pybit raised (or requests, under it) as a BybitFailure; anything else (a bug, missing keys)
    is raised again. The failure's text never holds a string of `hide`, nor Bybit's quote of what it
    signed. pybit's own exception text adds the request's method, path and payload (never headers,
    so never the key or the signature); only Bybit's message is kept."""
    if isinstance(exc, BybitFailure):
        return exc
    hide = tuple(hide)
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    message = _scrub(str(getattr(exc, "message", "") or exc), hide)
    if name == "InvalidRequestError" and status is not None:
        reset = None
        if int(status) == 10006:  # every answer carries the header; only a 10006's reset means a wait
            headers: Any = getattr(exc, "resp_headers", None) or {}
            reset = headers.get("X-Bapi-Limit-Reset-Timestamp") if hasattr(headers, "get") else None
        return BybitFailure(int(status), message, reset_ms=int(reset) if reset else None)
    if name == "FailedRequestError" and status is not None:
        return BybitFailure(0, message, http=int(status))
    # requests' Timeout and ConnectionError are OSErrors; their text names the host and the timeout
    if isinstance(exc, (TimeoutError, ConnectionError, OSError)) or name in (
            "ReadTimeout", "ConnectTimeout", "ConnectionError", "Timeout"):
        return BybitFailure(0, _scrub(f"{name}: {exc}", hide), network=True)
    raise exc


def should_retry(failure: BybitFailure) -> bool:
    """Can the same request succeed later? Never for what the request itself got wrong (10001, a
    refused order such as 110007, a duplicate orderLinkId 110072): only for the venue's or the
    network's trouble."""
    if failure.network:
        return True
    if failure.http is not None:
        return failure.http in _RETRY_HTTP
    return failure.code in RETRYABLE


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, BybitFailure) and should_retry(exc)


def _backoff() -> Callable[[RetryCallState], float]:
    # wait_exponential + wait_random is exponential backoff with additive jitter, spelled the same in
    # every tenacity since 4 (wait_exponential_jitter renamed its first argument in 2026).
    exponential = wait_exponential(multiplier=BACKOFF_FIRST_S, max=BACKOFF_MAX_S) + wait_random(0, BACKOFF_FIRST_S)

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, BybitFailure) and (
                failure.code == 10002 or (failure.code == 10006 and failure.reset_ms is not None)):
            # 10002: sign again at once, with the clock measured again; 10006: the rate limiter holds
            # the next request until the venue's reset, so no backoff on top
            return 0.0
        return exponential(state)

    return wait


def retrying(*, attempts: int = ATTEMPTS, sleep: Callable[[float], Awaitable[None]] | None = None,
             before_sleep: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
    """The retry policy, for one request: at most `attempts` sends, again only when `should_retry`,
    waiting as `_backoff` says (with `sleep`); the last failure is raised as it is. `before_sleep` hears
    of every retry (the client logs it)."""
    kw: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    return AsyncRetrying(stop=stop_after_attempt(max(1, attempts)), wait=_backoff(),
                         retry=retry_if_exception(_retryable), reraise=True, before_sleep=before_sleep, **kw)
