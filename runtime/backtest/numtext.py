"""Numbers and times as text, a whole column at a time.

The artifact files hold up to a million rows (one per exec bar in equity.csv), and formatting them
one value at a time in Python (a `strftime` and a `format` per row) costs seconds. Here a column is
formatted with numpy operations over all its values at once, into a *text matrix*: a uint8 array of
shape (rows, width) holding each value's ASCII bytes, padded with NUL bytes anywhere (numbers are
right-aligned). `csvtext.join_rows` drops the NULs when it joins the columns into lines.

Every formatter gives byte for byte the text of its scalar counterpart (`num`, `'%.6f' % v`,
`str(i)`, an ISO time by `strftime`), which stays the definition: values the fast path cannot be
sure to round the same way (a decimal tie within the float error, a value out of the range of the
exact powers of ten, an infinity, NaN for `%.6f`) are formatted by the scalar, so the result never
depends on luck.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

_ZERO = ord("0")
_POW10 = 10 ** np.arange(19, dtype=np.int64)  # every power of ten an int64 holds
# Decimal scalings by an exact power of ten (10**22 is the largest a double holds exactly) round
# once, so a fast-path value is off by at most half an ulp before the tie check below.
_EXACT_POW = 22
_SIG = 10  # significant digits of `num`
_MS_PER_DAY = 86_400_000


def num(v: float | None) -> str:
    """A plain decimal (never 1e-05), at most 10 significant digits, no trailing zeros; '' for None
    and NaN. The files' number format, and the definition `num_column` is checked against."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return np.format_float_positional(float(f"{v:.10g}"), trim="-")


def to_float_array(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """float64 values with None as NaN (an order without a price, a missing trigger)."""
    return np.asarray(values, dtype=np.float64)  # numpy reads None as NaN for a float dtype


def _ascii_matrix(texts: Sequence[str]) -> np.ndarray:
    """ASCII strings (as the scalar fallbacks give) as a text matrix."""
    if not texts:
        return np.zeros((0, 1), dtype=np.uint8)
    packed = np.array([t.encode("ascii") for t in texts], dtype=np.bytes_)
    return packed.view(np.uint8).reshape(len(texts), packed.dtype.itemsize)


def _patch(matrix: np.ndarray, rows: np.ndarray, texts: list[str]) -> np.ndarray:
    """`matrix` with `rows` replaced by `texts` (right-aligned, widened when they are longer)."""
    if len(rows) == 0:
        return matrix
    extra = _ascii_matrix(texts)
    width = max(matrix.shape[1], extra.shape[1])
    out = np.zeros((matrix.shape[0], width), dtype=np.uint8)
    out[:, width - matrix.shape[1]:] = matrix
    out[rows] = 0
    lengths = (extra != 0).sum(axis=1)
    for k, (row, n) in enumerate(zip(rows.tolist(), lengths.tolist())):  # the rare fallback rows only
        out[row, width - n:] = extra[k, :n]
    return out


def _positional(digits: np.ndarray, last: np.ndarray | int, negative: np.ndarray, min_frac: int = 0) -> np.ndarray:
    """The text of sign * digits * 10**last in plain decimal notation: `digits` an int64 >= 0,
    `last` the exponent of its last digit (one for all rows, or one per row). Exponents below 0 are
    the fraction (at least `min_frac` of them, zero-padded), and a value below 1 has the integer part
    '0'. Each column of the matrix holds one decimal exponent, so the points line up."""
    n = len(digits)
    if n == 0:
        return np.zeros((0, 1), dtype=np.uint8)
    ndig = 1 + np.searchsorted(_POW10[1:], digits, side="right")  # digits of `digits` (0 has one)
    top = np.maximum(last + ndig - 1, 0)  # exponent of the first character of the integer part
    frac = np.maximum(-np.asarray(last), min_frac)  # characters after the point
    int_width, frac_width = int(top.max()) + 1, int(frac.max())
    sign_col = 1 if negative.any() else 0
    point = 1 if frac_width else 0
    out = np.zeros((n, sign_col + int_width + point + frac_width), dtype=np.uint8)
    column = {x: sign_col + int_width - 1 - x + (point if x < 0 else 0) for x in range(-frac_width, int_width)}
    if point:
        out[:, sign_col + int_width] = np.where(frac > 0, ord("."), 0)
    if np.ndim(last) == 0:
        # One exponent for all (a fixed number of decimals): peel the digits off from the last one up.
        # Below the last digit a shown place is a padding '0' (the 0s of 2.500000).
        q = digits
        for x in range(-frac_width, int_width):
            if x >= last:
                digit = q % 10
                q = q // 10
            else:
                digit = 0
            shown = (x <= top) if x >= 0 else (-x <= frac)
            out[:, column[x]] = np.where(shown, digit + _ZERO, 0)
    else:
        for x in range(-frac_width, int_width):
            shift = x - last
            inside = (shift >= 0) & (shift < len(_POW10))
            digit = np.where(inside, digits // _POW10[np.clip(shift, 0, len(_POW10) - 1)] % 10, 0)
            shown = (x <= top) if x >= 0 else (-x <= frac)
            out[:, column[x]] = np.where(shown, digit + _ZERO, 0)
    if sign_col:
        # the sign goes just before the first digit, so the value stays one run of bytes
        first = sign_col + (int_width - 1 - top)
        rows = np.flatnonzero(negative)
        out[rows, first[rows] - 1] = ord("-")
    return out


def int_column(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """`str(i)` of each integer."""
    a = np.asarray(values, dtype=np.int64)
    return _positional(np.abs(a), 0, a < 0)


def fixed_column(values: Sequence[float] | np.ndarray, decimals: int = 6) -> np.ndarray:
    """`'%.{decimals}f' % v` of each value (negative zero keeps its sign, as printf does)."""
    v = to_float_array(values)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.abs(v) * 10.0 ** decimals  # exact power: one rounding
        rounded = np.rint(scaled)  # half to even, as the exact value is when not near a tie
        # Sure only with room for the product's rounding error (half an ulp, at most 2**-53 of it;
        # twice that is kept) between it and a tie: equity up to 2 billion takes this path.
        sure = (scaled < 2.0 ** 52) & (np.abs(scaled - np.floor(scaled) - 0.5) > scaled * 2.0 ** -52 + 1e-300)
    digits = np.where(sure, rounded, 0).astype(np.int64)
    out = _positional(digits, -decimals, np.signbit(v), decimals)
    rows = np.flatnonzero(~sure)
    return _patch(out, rows, [f"%.{decimals}f" % x for x in v[rows].tolist()])


def num_column(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """`num(v)` of each value: 10 significant digits, plain decimal, trailing zeros trimmed."""
    v = to_float_array(values)
    a = np.abs(v)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exp = np.floor(np.log10(a))  # exponent of the first significant digit (a guess; checked below)
        q = (_SIG - 1 - np.nan_to_num(exp, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.int64)
        in_range = np.isfinite(exp) & (np.abs(q) <= _EXACT_POW)
        qq = np.where(in_range, q, 0)
        # one correctly rounded operation by an exact power: the 10 digits before rounding
        scaled = np.where(qq >= 0, a * 10.0 ** np.maximum(qq, 0), a / 10.0 ** np.maximum(-qq, 0))
        rounded = np.rint(scaled)
        sure = (in_range & (scaled >= 10.0 ** (_SIG - 1)) & (scaled < 10.0 ** _SIG)
                & (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-5))  # ulp(1e10) is 2e-6: far from a tie
    carry = rounded == 10.0 ** _SIG  # 9999999999.7 rounds to 1.000000000 at the next exponent
    digits = np.where(sure, np.where(carry, 10.0 ** (_SIG - 1), rounded), 0).astype(np.int64)
    last = np.where(sure, -qq + carry, 0)
    # trailing zeros go (trim="-"): each one moves the last digit's exponent up
    for _ in range(_SIG - 1):
        zero = sure & (digits % 10 == 0)
        if not zero.any():
            break
        digits = np.where(zero, digits // 10, digits)
        last = last + zero
    missing = np.isnan(v)  # None and NaN: an empty field (an order without a price)
    sure |= (a == 0) | missing  # 0 is '0' and '-0' (format_float_positional keeps the sign)
    out = _positional(digits, last, np.signbit(v) & ~missing)
    out[missing] = 0
    rows = np.flatnonzero(~sure)
    return _patch(out, rows, [num(x) for x in v[rows].tolist()])


def iso_column(ts_ms: Sequence[int] | np.ndarray) -> np.ndarray:
    """`YYYY-MM-DDTHH:MM:SSZ` (UTC, the milliseconds cut off) of each epoch-ms time, as
    `report.iso` gives. Its three parts are looked up in small tables (the days the times span, the
    1,440 minutes of a day, the 60 seconds): three gathers instead of a calendar sum per value."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    out = np.empty((len(ts), 20), dtype=np.uint8)
    if len(ts) == 0:
        return out
    day = ts // _MS_PER_DAY
    first = int(day.min())
    minute, second = np.divmod((ts - day * _MS_PER_DAY) // 1000, 60)
    out[:, :11] = _date_texts(first, int(day.max()) + 1)[day - first]
    out[:, 11:17] = _minute_texts()[minute]
    out[:, 17:] = _second_texts()[second]
    return out


def _digits_into(out: np.ndarray, value: np.ndarray, cols: Sequence[int]) -> None:
    for k, c in enumerate(reversed(cols)):
        out[:, c] = value // 10 ** k % 10 + _ZERO


def _template(text: bytes, n: int) -> np.ndarray:
    out = np.empty((n, len(text)), dtype=np.uint8)
    out[:] = np.frombuffer(text, dtype=np.uint8)
    return out


def _date_texts(first_day: int, end_day: int) -> np.ndarray:
    """`YYYY-MM-DDT` of the days [first_day, end_day) since 1970-01-01."""
    days = np.arange(first_day, end_day).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    out = _template(b"0000-00-00T", len(days))
    _digits_into(out, months.astype(np.int64) // 12 + 1970, range(4))
    _digits_into(out, months.astype(np.int64) % 12 + 1, (5, 6))
    _digits_into(out, (days - months).astype(np.int64) + 1, (8, 9))
    return out


@functools.cache
def _minute_texts() -> np.ndarray:
    """`HH:MM:` of every minute of a day."""
    minutes = np.arange(1440)
    out = _template(b"00:00:", len(minutes))
    _digits_into(out, minutes // 60, (0, 1))
    _digits_into(out, minutes % 60, (3, 4))
    return out


@functools.cache
def _second_texts() -> np.ndarray:
    """`SSZ` of every second of a minute."""
    out = _template(b"00Z", 60)
    _digits_into(out, np.arange(60), (0, 1))
    return out


def matrix_strings(matrix: np.ndarray) -> list[str]:
    """The text of each row of a text matrix (its NUL padding dropped): for tests and fallbacks."""
    return [bytes(row[row != 0]).decode("ascii") for row in matrix]
