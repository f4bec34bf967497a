"""What every operator of the expression language computes, written once.

Three places compute operators: the checker folds expressions of written numbers (`at max(1, 0/0)`
must be judged as the run would), the evaluator's per-bar closures over trading state compute one
value at a time, and the evaluator's series path computes whole numpy arrays. Each row of
`OPERATORS` gives the scalar function the first two call and the numpy function the third; the
functions of a row agree on every input, NaN and infinities included (tests/compiler/
test_operators.py runs each row over NaN, inf, 0 and ordinary operands). The rules (README,
"Expressions"):

- A comparison with NaN is false, `!=` too (NaN means "no value": an indicator still warming,
  `position.r` without a stop).
- Division by zero is NaN (0/0, x/0 and inf/0 alike, also for -0.0), never inf or an exception.
- `min` and `max` with a NaN argument are NaN, whichever argument it is, as numpy's
  `np.minimum`/`np.maximum` (Python's `max(1, nan)` is 1 but `max(nan, 1)` is nan).
- Otherwise IEEE 754 arithmetic: infinity is an ordinary value, inf - inf and 0 * inf are NaN,
  `abs` and unary minus keep NaN.

`and`, `or` and `not` are not here: they take booleans, which are never NaN, so the evaluator's
short-circuiting `and`/`or` and numpy's logical functions cannot disagree.

It sits in the compiler (below the runtime, which imports it) so the folding and the run cannot
drift apart again.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

import attrs

__all__ = ["OPERATORS", "Operator", "fold"]

NAN = math.nan


@attrs.frozen(slots=True)
class Operator:
    """One operator: `scalar(*values)` on Python or numpy scalars, `array(*values)` on numpy arrays
    (or scalars, broadcast as numpy does). Both return the same values."""

    name: str
    arity: int
    scalar: Callable[..., Any]
    array: Callable[..., Any]


# ---- scalar rules ------------------------------------------------------------------------------

def _divide(a: float, b: float) -> float:
    if b == 0:
        return NAN
    return a / b


def _not_equal(a: Any, b: Any) -> bool:
    # NaN is the only value unequal to itself; booleans (== and != between conditions) pass through
    return a == a and b == b and a != b


def _minimum(a: float, b: float) -> float:
    if a != a or b != b:
        return NAN
    return b if b < a else a


def _maximum(a: float, b: float) -> float:
    if a != a or b != b:
        return NAN
    return b if b > a else a


# ---- array rules -------------------------------------------------------------------------------

def _quiet(ufunc: str) -> Callable[..., Any]:
    """numpy's `ufunc` without its warnings for NaN and inf operands: they are values here, not
    faults. numpy is imported at the first call: compiling a Play never needs it, and
    `playdeck compile` must not pay for it."""
    def run(*args: Any) -> Any:
        import numpy as np

        with np.errstate(all="ignore"):
            return getattr(np, ufunc)(*args)
    run.__name__ = ufunc
    return run


def _array_divide(a: Any, b: Any) -> Any:
    import numpy as np

    with np.errstate(all="ignore"):
        out = np.divide(a, b)
    zero = np.asarray(b) == 0
    return np.where(zero, NAN, out) if np.any(zero) else out


def _array_not_equal(a: Any, b: Any) -> Any:
    import numpy as np

    # np.isnan is False for every boolean, so conditions compared with != are untouched
    with np.errstate(all="ignore"):
        return np.not_equal(a, b) & ~np.isnan(a) & ~np.isnan(b)


_ROWS = (
    Operator("+", 2, operator.add, _quiet("add")),
    Operator("-", 2, operator.sub, _quiet("subtract")),
    Operator("*", 2, operator.mul, _quiet("multiply")),
    Operator("/", 2, _divide, _array_divide),
    Operator("<", 2, operator.lt, _quiet("less")),
    Operator("<=", 2, operator.le, _quiet("less_equal")),
    Operator(">", 2, operator.gt, _quiet("greater")),
    Operator(">=", 2, operator.ge, _quiet("greater_equal")),
    Operator("==", 2, operator.eq, _quiet("equal")),
    Operator("!=", 2, _not_equal, _array_not_equal),
    Operator("neg", 1, operator.neg, _quiet("negative")),  # unary minus
    Operator("min", 2, _minimum, _quiet("minimum")),
    Operator("max", 2, _maximum, _quiet("maximum")),
    Operator("abs", 1, abs, _quiet("abs")),
)

OPERATORS: dict[str, Operator] = {op.name: op for op in _ROWS}


def fold(name: str, *values: float) -> float:
    """The value of operator `name` over written numbers, as the run computes it (as a float)."""
    return float(OPERATORS[name].scalar(*values))
