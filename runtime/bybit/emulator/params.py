"""Reading request fields as Bybit does: a missing or malformed field is 10001 naming it.

POST bodies are JSON objects (pybit sends qty / price / triggerPrice as strings, bools as JSON
bools, positionIdx as an int); GET queries are strings (`reduceOnly=True` from pybit). Numbers that
must sit on a grid (qty on qty_step, prices on the tick) are read as decimals so `0.0015` at a
0.001 step is caught exactly, never through float noise.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from playdeck.runtime.bybit.emulator.errors import BybitError, param_error

__all__ = ["ORDER_LINK_ID", "as_bool", "as_int", "decimal", "on_grid", "require_linear", "text"]

ORDER_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")


def text(p: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string field (None when absent; 10001 when required and absent, or not a string)."""
    v = p.get(name)
    if v is None or v == "":
        if required:
            raise BybitError(10001, f"params error: {name} is required")
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise param_error(name)
    return str(v)


def require_linear(p: dict[str, Any], *, default: bool = False) -> None:
    """`category` must be linear (the emulator serves USDT perpetuals only)."""
    v = p.get("category")
    if v is None or v == "":
        if default:
            return
        raise BybitError(10001, "params error: category is required")
    if v != "linear":
        raise BybitError(10001, f"params error: category {v} is not served (only linear)")


def as_bool(p: dict[str, Any], name: str) -> bool:
    v = p.get(name)
    if v is None or v == "":
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise param_error(name)


def as_int(p: dict[str, Any], name: str, default: int | None = None, *, low: int | None = None,
           high: int | None = None) -> int | None:
    v = p.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        raise param_error(name)
    try:
        n = int(v) if not isinstance(v, float) or v.is_integer() else None
    except (TypeError, ValueError):
        n = None
    if n is None or (low is not None and n < low) or (high is not None and n > high):
        raise param_error(name)
    return n


def decimal(p: dict[str, Any], name: str, *, message: str | None = None) -> Decimal | None:
    """A decimal number field (None when absent or empty); 10001 for text that is no finite number."""
    v = p.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise BybitError(10001, message or f"params error: {name} invalid")
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        raise BybitError(10001, message or f"params error: {name} invalid") from None
    if not d.is_finite():
        raise BybitError(10001, message or f"params error: {name} invalid")
    return d


def on_grid(value: Decimal, step: float) -> bool:
    """True when `value` is a whole number of `step`s (exactly, in decimal)."""
    return value % Decimal(repr(step)) == 0
