"""Bybit's request signing, checked as Bybit checks it (bybit-v5.md 1.3, 5.2). Sans-I/O: the
headers, the raw payload and the clock come in; an error or nothing comes out.

REST: HMAC-SHA256 (hex) with the secret over `timestamp + api_key + recv_window + payload`, where
payload is the query string exactly as received (GET) or the body exactly as received (POST); a
re-encoded or re-sorted payload would not be what the client signed. The timestamp must satisfy
`server_time - recv_window <= timestamp < server_time + 1000`. Checks run key, timestamp, signature:
an unknown (or missing) key is 10003, a stale or future timestamp 10002, a wrong signature 10004
with the string the server signed, so a client can see what differed.

WebSocket: `{"op":"auth","args":[key, expires, signature]}` with signature = HMAC-SHA256 over
`"GET/realtime" + str(expires)`; `expires` (ms) must still be in the future.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from playdeck.runtime.bybit.emulator.errors import MSG_KEY, BybitError

__all__ = ["check_rest", "check_ws", "sign"]


def sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def timestamp_msg(timestamp: int | str, server_ms: int, recv_window: int | str) -> str:
    # Bybit's 10002 text (pybit#191)
    return (f"invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{server_ms}],recv_window[{recv_window}]")


def check_rest(headers: Mapping[str, str], payload: str, now_ms: int, key: str, secret: str) -> None:
    """Raise the BybitError Bybit would answer for this signed request (nothing when it is good)."""
    given_key = headers.get("X-BAPI-API-KEY")
    if not given_key or not hmac.compare_digest(given_key, key):
        raise BybitError(10003, MSG_KEY)
    ts_text = headers.get("X-BAPI-TIMESTAMP", "")
    recv_text = headers.get("X-BAPI-RECV-WINDOW", "5000")  # Bybit's default when the header is absent
    try:
        ts = int(ts_text)
        recv = int(recv_text)
    except ValueError:
        raise BybitError(10002, timestamp_msg(ts_text, now_ms, recv_text)) from None
    if not now_ms - recv <= ts < now_ms + 1000:
        raise BybitError(10002, timestamp_msg(ts, now_ms, recv))
    origin = f"{ts_text}{given_key}{recv_text}{payload}"
    if not hmac.compare_digest(headers.get("X-BAPI-SIGN", ""), sign(secret, origin)):
        raise BybitError(10004, f"error sign! origin_string[{origin}]")


def check_ws(args: Any, now_ms: int, key: str, secret: str) -> bool:
    """True when a private stream's auth args are good: the key, an `expires` still ahead of the
    clock, and its signature."""
    if not isinstance(args, list) or len(args) != 3:
        return False
    given_key, expires, signature = args
    if not isinstance(given_key, str) or not isinstance(signature, str):
        return False
    try:
        expires_ms = int(expires)
    except (TypeError, ValueError):
        return False
    if expires_ms <= now_ms:
        return False
    return hmac.compare_digest(given_key, key) and hmac.compare_digest(signature,
                                                                       sign(secret, f"GET/realtime{expires}"))
