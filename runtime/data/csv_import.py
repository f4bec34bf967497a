"""Import OHLCV bars from CSV, reporting every problem with its line number.

Accepted layouts (detected from the first non-blank line):

- generic, with a header naming `timestamp,open,high,low,close,volume` (any order; extra columns
  such as `turnover` are ignored; a few common aliases like `time`/`date`/`open_time` work too);
- Bybit's kline export, header `startTime,openPrice,highPrice,lowPrice,closePrice,volume,turnover`;
- headerless rows, positional `timestamp,open,high,low,close,volume[,turnover]` (Bybit's API
  rows are the 7-column form).

A header may also name a `funding_rate` column (or `fundingRate`, `funding`): each row's funding
rate per interval as a fraction (0.0001 is 0.01%), read into `Bars.funding_rate` for the simulator
(PLAY-LANGUAGE.md 7.3). An empty cell is an unknown rate (NaN: the account's rate is used there); a
non-number, a non-finite number and a rate beyond +-5% (a percentage written as a number) are
errors on their row. A headerless file has no funding column; bars `gaps="fill"` makes up have none.

`timestamp` is the bar's open time, either epoch milliseconds (an integer, as Bybit writes it) or
ISO 8601 (`2025-01-01T00:00:00Z`, `2025-01-01 00:00`, with or without an offset; a naive time is
UTC). Integers below 10^11 are rejected as probably epoch *seconds*; a file whose timestamps are
mostly seconds-sized gets one file-level error saying so, not one per row.

Order: a file runs oldest-first or newest-first (Bybit exports klines newest-first); its direction
is the one most of its steps take, so a single misplaced row is reported alone instead of making
every other row look out of order. A newest-first file is reversed (`ImportResult.reversed`).

Plain numeric files (epoch ms, every field written with the characters `0-9 . + - e E`, no quotes,
no blank lines, no bare carriage returns) are parsed by pyarrow in C++ (a million rows in about a
quarter of a second); what it declines goes to numpy's `loadtxt`, and anything that cannot read
(ISO times, quotes, a non-number, a short row) goes row by row. The first two give the same numbers
for every file they both take, and the value and order checks are the same vectorized code on
whichever parsed the file, so the path a file takes never changes its bars or its errors.

A number is written with ASCII digits: Python's `float` also takes `１２３`, `٣` and `1_000`, none of
which a CSV writer means as a number, so they are bad values on their row. There are no comments:
a `#` is a character like any other, so a line starting with one is a bad row, and `7#00` is not 7.

Every row is checked and all problems are reported together in one `DataError`: missing columns,
non-numeric or non-finite values, non-positive prices, high < low, high below the body, low above
the body, negative volume, unsorted and duplicate timestamps, timestamps off the timeframe grid
(bars open on UTC epoch multiples of the timeframe), and gaps. Gaps are errors unless
`gaps="fill"`, which inserts flat bars (open = high = low = close = previous close, volume 0) and
counts them in `ImportResult.filled_gaps`.

Row numbers are 1-based physical line numbers of the file, header included. Row 0 means the
whole file (e.g. it is empty).
"""

from __future__ import annotations

import bisect
import codecs
import csv
import os
from datetime import datetime, timezone
from typing import Any, Iterable

import attrs
import numpy as np

from playdeck.runtime.data.bars import FUNDING_RATE, MAX_FUNDING_RATE, TIMEFRAMES, Bars, tf_ms

FIELDS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
GAP_POLICIES: tuple[str, ...] = ("error", "fill")
_MAX_REPORTED = 20
_MIN_EPOCH_MS = 10**11  # 1973-03-03: anything smaller is almost surely seconds, not ms
MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01: anything later is a typo or microseconds (exclusive)
_MAX_FILLED = 1_000_000  # --gaps fill inserts at most this many bars (and no more than the file's rows,
_MIN_FILL_CAP = 1_000  # or than this many for a short file)
# More digits than any epoch time has, even in microseconds (so int() is never asked for thousands).
_MAX_DIGITS = 20
_MIN_EPOCH_S = 10**8  # 1973-03-03 again, in seconds: smaller integers are not seconds either (row counters?)
# Bump whenever a file may import differently (other bars, other errors): a --data file's bars are
# remembered in the cache under a key holding this number (see runtime/data/sources.py).
IMPORT_VERSION = 3  # 3: a funding_rate column is read

# Header names (lower-cased, spaces/underscores kept) for each field, generic and Bybit spellings.
_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "time", "date", "datetime", "starttime", "start_time", "open_time", "opentime", "ts"),
    "open": ("open", "openprice", "open_price", "o"),
    "high": ("high", "highprice", "high_price", "h"),
    "low": ("low", "lowprice", "low_price", "l"),
    "close": ("close", "closeprice", "close_price", "c"),
    "volume": ("volume", "vol", "v"),
}
# The optional funding rate column: ours, Bybit's `fundingRate` (lower-cased), and the short word.
_FUNDING_ALIASES: tuple[str, ...] = ("funding_rate", "fundingrate", "funding")


@attrs.frozen
class DataProblem:
    """One problem in an input file; `row` is its 1-based line number (0: the whole file)."""

    row: int
    message: str


class DataError(Exception):
    """Bad input data: carries every problem found, rendered as a readable multi-line report."""

    def __init__(self, problems: Iterable[DataProblem], path: str | os.PathLike[str] | None = None,
                 hint: str = "") -> None:
        self.problems: list[DataProblem] = sorted(problems, key=lambda p: p.row)
        self.path = None if path is None else os.fspath(path)
        self.hint = hint  # what to do about the problems, said once after them
        super().__init__(self.problems)

    def __str__(self) -> str:
        hint = f"\nhint: {self.hint}" if self.hint else ""
        where = f"{self.path}: " if self.path is not None else ""
        count = len(self.problems)
        if count == 1 and self.problems[0].row == 0:
            return f"{where}{self.problems[0].message}{hint}"  # a whole-file problem needs no list
        lines = [f"{where}{count} problem{'s' if count != 1 else ''} in the data"]
        for p in self.problems[:_MAX_REPORTED]:
            lines.append(f"  {'file' if p.row == 0 else f'row {p.row}'}: {p.message}")
        if count > _MAX_REPORTED:
            lines.append(f"  ... and {count - _MAX_REPORTED} more")
        return "\n".join(lines) + hint


@attrs.frozen(eq=False)
class ImportResult:
    """The imported bars; `filled_gaps` flat bars were inserted; `reversed` if the file was newest-first."""

    bars: Bars
    filled_gaps: int = 0
    reversed: bool = False


# What a parser gives: timestamps, the value columns (open, high, low, close, volume[, funding_rate]),
# each row's line number, and which funding cells were empty (None when every one held a number, or
# there is no funding column).
_Parsed = tuple[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"]


def _digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (str.isdigit alone also takes '１２３', '٣' and '²')."""
    return text.isascii() and text.isdigit()


def _ascii_hint(text: str) -> str:
    """A word on digits that are not ASCII, which look like numbers but are not read as ones."""
    return " (only the ASCII digits 0-9 are read as digits)" if any(
        ch.isdigit() and not ch.isascii() for ch in text) else ""


def _number(text: str) -> float:
    """The float a CSV field writes; ValueError for anything but ASCII. Python's float() also reads
    '１２３' and '٣' (other scripts' digits) and '1_000' (a Python literal), which a CSV never means."""
    if not text.isascii() or "_" in text:
        raise ValueError(text)
    return float(text)


def parse_timestamp(text: str) -> int:
    """Epoch ms from an integer epoch-ms string or an ISO 8601 time (naive = UTC). ValueError otherwise."""
    s = text.strip()
    if s and (_digits(s) or (s[0] in "+-" and _digits(s[1:]))):
        if len(s.lstrip("+-").lstrip("0")) > _MAX_DIGITS:  # and Python refuses int() of 4,300+ digits
            raise ValueError(f"timestamp {s[:20]!r}... of {len(s)} digits is no time in epoch milliseconds")
        value = int(s)
    elif _digits(s.replace(".", "", 1)) and float(s).is_integer():
        value = int(float(s))  # "1735689600000.0", as spreadsheets like to write it
    else:
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"timestamp {text!r} is neither epoch milliseconds nor ISO 8601"
                             f"{_ascii_hint(s)}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
        value = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
        if not 0 <= value < MAX_EPOCH_MS:
            raise ValueError(f"timestamp {text.strip()!r} is outside 1970-2099")
        return value
    if value < _MIN_EPOCH_MS:
        raise ValueError(f"timestamp {text!r} is too small for epoch milliseconds (seconds?)")
    if value >= MAX_EPOCH_MS:
        unit = " (microseconds?)" if _micros_sized(str(value)) else ""
        raise ValueError(f"timestamp {text.strip()!r} is after 2099 in epoch milliseconds{unit}")
    return value


def parse_date(text: str) -> int:
    """A date or date-time as an option gives it (`--from`, `--to`; UTC when no zone is given) ->
    epoch ms. ValueError with what to write instead."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a date; write e.g. 2025-03-01 or 2025-03-01T12:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    ms = int(dt.timestamp() * 1000)
    if not 0 <= ms < MAX_EPOCH_MS:
        raise ValueError(f"{text!r} is outside 1970-2099 (UTC)")
    return ms


def range_problem(from_ms: int, to_ms: int) -> str | None:
    """What is wrong with `--from` .. `--to` (an exclusive end), or None."""
    if from_ms > to_ms:
        return f"--from ({format_ts(from_ms)}) is after --to ({format_ts(to_ms)})"
    if from_ms == to_ms:
        return f"--from and --to are both {format_ts(from_ms)}: an empty range (--to is exclusive)"
    return None


def format_ts(ms: int) -> str:
    """Epoch ms as a compact UTC ISO 8601 string, for messages and artifacts."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_problem(message: str, path: str | os.PathLike[str] | None = None) -> DataError:
    return DataError([DataProblem(0, message)], path)


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes without a leading UTF-8 byte order mark (spreadsheets prepend one).

    DataError (one line) when the file is missing, a folder or unreadable.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise _file_problem(f"no such data file: {name}") from None
    except IsADirectoryError:
        raise _file_problem(f"{name} is a folder, not a data file") from None
    except OSError as exc:
        raise _file_problem(f"cannot read the data file {name}: {exc.strerror or exc}") from None
    return data.removeprefix(codecs.BOM_UTF8)


def _read_lines(data: bytes, path: str | os.PathLike[str]) -> list[str]:
    """The file's physical lines (index + 1 = line number). A bare carriage return ends a line too
    (old Mac files; editors show a line break there), so no line holds a '\r' or '\n'.

    DataError (one line) when the bytes are not UTF-8 text or hold a NUL.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Decoded from the whole file at once, so the offset (and the line) is exact.
        line = data.count(b"\n", 0, exc.start) + 1
        raise _file_problem(f"not UTF-8 text: byte 0x{data[exc.start]:02x} on row {line} (offset {exc.start}); "
                            "give a CSV saved as UTF-8", path) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise _file_problem(f"a NUL byte on row {line}: this is a binary file, not a CSV", path)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _is_blank(line: str) -> bool:
    return not line.strip()


def _column_map(header: list[str]) -> tuple[dict[str, int] | None, list[str]]:
    """Field -> column index from a header row, or (None, missing fields)."""
    names = [h.strip().lower() for h in header]
    mapping: dict[str, int] = {}
    for field, aliases in _ALIASES.items():
        for i, name in enumerate(names):
            if name in aliases:
                mapping[field] = i
                break
    missing = [f for f in FIELDS if f not in mapping]
    return (None, missing) if missing else (mapping, [])


def _looks_like_data(fields: list[str]) -> bool:
    if fields and _seconds_sized(fields[0]):
        return True  # a headerless file in epoch seconds: data, to be reported as seconds, not as a header
    try:
        parse_timestamp(fields[0])
        return True
    except (ValueError, IndexError):
        return False


_VALUE_NAMES = ("open", "high", "low", "close", "volume")


def _parse_problems(fields: list[str], columns: dict[str, int], width: int, row: int) -> list[DataProblem]:
    """Why a row failed to parse: missing columns, a bad timestamp, non-numbers (the slow path)."""
    if fields and fields[0].lstrip().startswith("#"):
        # What a reader (and numpy's loadtxt, by default) would take for a comment line.
        return [DataProblem(row, "a line starting with '#' is not a comment in a data file; each line is one bar")]
    if len(fields) < width:
        return [DataProblem(row, f"missing columns: expected {width}, found {len(fields)}")]
    problems = []
    try:
        parse_timestamp(fields[columns["timestamp"]])
    except ValueError as exc:
        problems.append(DataProblem(row, str(exc)))
    for name in _VALUE_NAMES:
        text = fields[columns[name]].strip()
        try:
            _number(text)
        except ValueError:
            problems.append(DataProblem(row, f"{name} {text!r} is not a number{_ascii_hint(text)}"))
    if FUNDING_RATE in columns:
        text = fields[columns[FUNDING_RATE]].strip()
        try:
            _funding_cell(text)
        except ValueError:
            problems.append(DataProblem(row, f"{FUNDING_RATE} {text!r} is not a number{_rate_hint(text)}"))
    return problems


def _funding_cell(text: str) -> float:
    """A stripped funding rate cell: NaN for an empty one (the rate is unknown there), else the number
    it writes (ValueError as `_number`). A written 'nan' is a number here and a problem later."""
    return float("nan") if not text else _number(text)


def _rate_hint(text: str) -> str:
    if text.endswith("%"):
        return " (write a rate as a fraction: 0.0001 for 0.01%)"
    return _ascii_hint(text)


def _value_problems(values: np.ndarray, rows: np.ndarray,
                    blank: np.ndarray | None = None) -> tuple[list[DataProblem], np.ndarray]:
    """Checks on parsed (open, high, low, close, volume[, funding_rate]) rows, vectorized: (problems,
    row is bad). `blank` marks the rows whose funding cell was empty (their NaN is no problem)."""
    problems: list[DataProblem] = []
    bad = np.zeros(len(values), dtype=bool)

    def flag(mask: np.ndarray, message) -> None:
        for i in np.flatnonzero(mask).tolist():
            problems.append(DataProblem(int(rows[i]), message(values[i])))
        bad[mask] = True

    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values)
        for k, name in enumerate(_VALUE_NAMES):
            flag(~finite[:, k], lambda v, k=k, name=name: f"{name} {float(v[k])} is not a finite number")
            if name != "volume":
                flag(finite[:, k] & (values[:, k] <= 0), lambda v, k=k, name=name: f"{name} {v[k]:g} must be positive")
        o, h, l, c, vol = values[:, :5].T
        flag(h < l, lambda v: f"high {v[1]:g} < low {v[2]:g}")
        flag(h < np.maximum(o, c), lambda v: f"high {v[1]:g} < max(open, close) {max(v[0], v[3]):g}")
        flag(l > np.minimum(o, c), lambda v: f"low {v[2]:g} > min(open, close) {min(v[0], v[3]):g}")
        flag(vol < 0, lambda v: f"volume {v[4]:g} is negative")
        if values.shape[1] > 5:
            # A written nan or inf is not an unknown rate (that is an empty cell): it is a bad value.
            written = np.ones(len(values), dtype=bool) if blank is None else ~blank
            flag(written & ~finite[:, 5], lambda v: f"{FUNDING_RATE} {float(v[5])} is not a finite number")
            flag(written & finite[:, 5] & (np.abs(values[:, 5]) > MAX_FUNDING_RATE),
                 lambda v: f"{FUNDING_RATE} {v[5]:g} is beyond +-{MAX_FUNDING_RATE:.0%} per funding interval; "
                           "write a rate as a fraction (0.0001 for 0.01%)")
    return problems, bad


def file_direction(ts: np.ndarray) -> int:
    """+1 if the timestamps run oldest-first, -1 if newest-first: the direction most steps take.

    A majority, not "every step", so one duplicate or swapped row in a newest-first export is that
    one row's problem instead of turning the whole file into "goes back in time".
    """
    diff = np.diff(np.asarray(ts, dtype=np.int64))
    return -1 if np.count_nonzero(diff < 0) > np.count_nonzero(diff > 0) else 1


def _duplicate_problems(ts: np.ndarray, rows: np.ndarray) -> list[DataProblem]:
    """Each repeated timestamp, reported on every row after the first (in the file) that has it."""
    order = np.lexsort((rows, ts))  # by time, ties by row: the first of a run is the earliest row
    s_ts, s_rows = ts[order], rows[order]
    starts = np.ones(len(s_ts), dtype=bool)
    starts[1:] = s_ts[1:] != s_ts[:-1]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(s_ts)), 0))
    return [DataProblem(int(s_rows[j]), f"duplicate timestamp {format_ts(int(s_ts[j]))} "
                                        f"(same as row {int(s_rows[first[j]])})")
            for j in np.flatnonzero(~starts).tolist()]


def _order_message(ts: np.ndarray, rows: np.ndarray, i: int, direction: int) -> str:
    """Why row i+1 is out of order after row i in a file running in `direction`."""
    now, before = format_ts(int(ts[i + 1])), f"{format_ts(int(ts[i]))} (row {int(rows[i])})"
    if direction > 0:
        return f"timestamp {now} goes back in time after {before}; rows must be in ascending time"
    return (f"timestamp {now} is newer than {before}; this file is newest-first, so each row must be "
            "older than the row before it")


# Said after gap errors (not when most bars are another distance apart: filling would make most bars up).
GAPS_HINT = ("--gaps fill (an option of backtest --data and of data import) inserts flat bars where bars are "
             "missing, open = high = low = close = the previous close and volume 0, instead of failing")


def _sequence_problems(ts: np.ndarray, rows: np.ndarray, step: int, tf: str, gaps: str,
                       bad_rows: list[int], direction: int) -> tuple[list[DataProblem], str]:
    """Order, duplicate, grid and (unless filling) gap problems, in file order, and the hint to give.

    `direction` is the file's (see `file_direction`); a step against it is out of order.
    `bad_rows` (sorted) are data rows already rejected: each may be meant for one missing bar.
    """
    problems: list[DataProblem] = []
    forward = np.diff(ts) * direction  # > 0 for a step the file's way
    if not (forward > 0).all():  # the usual case: no duplicate can exist, skip the scan
        problems += _duplicate_problems(ts, rows)
    off_grid = ts % step != 0
    for i in np.flatnonzero(off_grid).tolist():
        problems.append(DataProblem(int(rows[i]), f"timestamp {format_ts(int(ts[i]))} is not on the {tf} grid"))
    for i in np.flatnonzero(forward < 0).tolist():
        problems.append(DataProblem(int(rows[i + 1]), _order_message(ts, rows, i, direction)))
    gap_problems: list[DataProblem] = []
    if gaps == "error":
        # An off-grid row is that row's problem: the slot it was probably meant for is no gap.
        rejected = sorted(set(bad_rows) | set(rows[off_grid].tolist()))
        gap_problems = _gap_problems(ts[~off_grid], rows[~off_grid], step, tf, rejected)
    spacing = _spacing_hint(ts, step, tf) if gap_problems or off_grid.any() else ""
    if spacing:
        problems.append(DataProblem(0, spacing))
    return problems + gap_problems, GAPS_HINT if gap_problems and not spacing else ""


def _step_counts(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct spacings (ms, ascending) between neighbouring distinct times of `ts`, and how
    often each occurs."""
    steps = np.abs(np.diff(np.asarray(ts, dtype=np.int64)))
    return np.unique(steps[steps > 0], return_counts=True)


def _majority_step(ts: np.ndarray) -> int | None:
    """The spacing (ms) of more than half of the steps between distinct times of `ts`, else None."""
    values, counts = _step_counts(ts)
    if len(values) == 0:
        return None
    k = int(np.argmax(counts))
    return int(values[k]) if 2 * int(counts[k]) > counts.sum() else None


def _spacing_hint(ts: np.ndarray, step: int, tf: str) -> str:
    """A word on a file whose bars are mostly another distance apart than `tf` (hourly rows
    imported as 1m, or minutes as 1h): its gap or grid errors are then one mistake, not many."""
    common = _majority_step(ts)
    if common is None or common == step:
        return ""
    minutes = common / 60000
    return (f"most bars are {minutes:g} minute{'s' if minutes != 1 else ''} apart, not {tf}: "
            f"is {tf} the file's timeframe?")


def _gap_problems(ts: np.ndarray, rows: np.ndarray, step: int, tf: str, bad_rows: list[int]) -> list[DataProblem]:
    """Every gap between consecutive bars in time (so rows out of order elsewhere hide none),
    reported on the row of the pair that comes later in the file, naming the other one. Each
    rejected row between the two in the file may be meant for one missing slot: that many slots
    are its problem, not a gap; any more are still reported."""
    problems: list[DataProblem] = []
    order = np.argsort(ts, kind="stable")
    s_ts, s_rows = ts[order], rows[order]
    for i in np.flatnonzero(np.diff(s_ts) > step).tolist():
        a, b = int(s_rows[i]), int(s_rows[i + 1])  # the earlier and the later bar in time
        lo, hi = min(a, b), max(a, b)
        rejected = bisect.bisect_left(bad_rows, hi) - bisect.bisect_right(bad_rows, lo)
        missing = int(s_ts[i + 1] - s_ts[i]) // step - 1 - rejected
        if missing <= 0:
            continue
        plural = "s" if missing != 1 else ""
        earlier, later = format_ts(int(s_ts[i])), format_ts(int(s_ts[i + 1]))
        if a < b:
            earlier += f" (row {a})"
        else:
            later += f" (row {b})"
        besides = f" besides the {rejected} rejected row{'s' if rejected != 1 else ''} there" if rejected else ""
        problems.append(DataProblem(hi, f"gap: {missing} missing {tf} bar{plural} between {earlier} and {later}"
                                        f"{besides}"))
    return problems


def _fill_gaps(ts: np.ndarray, values: np.ndarray, step: int, tf: str,
               path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Insert flat zero-volume bars at the previous close into every gap of sorted, on-grid data.

    A DataError when that would invent more bars than the file has rows (or _MIN_FILL_CAP, for a
    short file), or more than _MAX_FILLED: then most of the series would be made up, which is a
    typo'd date or a wrong timeframe (hourly rows imported as 1m), not a few missing bars."""
    slots = (ts - ts[0]) // step
    total = int(slots[-1]) + 1
    filled = total - len(ts)
    if filled == 0:
        return ts, values, 0
    if filled > min(_MAX_FILLED, max(_MIN_FILL_CAP, len(ts))):
        spacing = _spacing_hint(ts, step, tf)
        raise DataError([DataProblem(0, f"filling the gaps would insert {filled:,} flat bars into {len(ts):,} "
                                        f"rows, more than the file holds; "
                                        f"{spacing or 'check the dates, or import the parts separately'}")], path)
    present = np.zeros(total, dtype=bool)
    present[slots] = True
    out = np.empty((total, values.shape[1]))
    out[slots] = values
    # Each missing slot copies the close of the latest present bar before it.
    last = np.maximum.accumulate(np.where(present, np.arange(total), 0))
    gap = ~present
    out[gap, 0:4] = out[last[gap], 3][:, None]
    out[gap, 4] = 0.0
    out[gap, 5:] = np.nan  # a made-up bar's funding rate is unknown, not its neighbour's
    return ts[0] + np.arange(total, dtype=np.int64) * step, out, filled


def _layout(lines: list[str], path: str | os.PathLike[str]) -> tuple[int, dict[str, int], int]:
    """(index of the first data line, field -> column, minimum row width) from the first non-blank line."""
    for index, line in enumerate(lines):
        if _is_blank(line):
            continue
        row = index + 1
        try:
            fields = next(csv.reader([line]))
        except csv.Error as exc:
            raise DataError([DataProblem(row, f"unreadable CSV: {exc}")], path) from None
        if _looks_like_data(fields):
            if len(fields) not in (6, 7):
                message = ("headerless rows need 6 or 7 columns (timestamp,open,high,low,close,volume[,turnover]), "
                           f"found {len(fields)}")
                raise DataError([DataProblem(row, message)], path)
            return index, {name: i for i, name in enumerate(FIELDS)}, 6
        columns, missing = _column_map(fields)
        if columns is None and line.lstrip().startswith("#"):
            raise DataError([DataProblem(row, "a line starting with '#' is not a comment in a data file; the first "
                                              "line is the header or the first bar")], path)
        if columns is None:
            raise DataError([DataProblem(row, f"header lacks {', '.join(missing)}; expected "
                                         f"{','.join(FIELDS)} or Bybit's startTime,openPrice,...")], path)
        funding = [i for i, name in enumerate(fields) if name.strip().lower() in _FUNDING_ALIASES]
        if len(funding) > 1:
            # Which one holds the rates is a guess either way: the file must say.
            names = ", ".join(fields[i].strip() for i in funding)
            raise DataError([DataProblem(row, f"header names {len(funding)} funding rate columns ({names}); "
                                              "keep one")], path)
        if funding:
            columns[FUNDING_RATE] = funding[0]
        return index + 1, columns, max(columns.values()) + 1
    raise DataError([DataProblem(0, "no data rows")], path)


def _parse_numeric(body: list[str], first_row: int, columns: dict[str, int]) -> _Parsed | None:
    """Fast path for the common file (plain numbers, epoch-ms timestamps, no blank lines), parsed in C.

    None sends the file to the row-by-row parser, which can say what is wrong where (and reads an
    empty funding rate cell, which loadtxt cannot).
    """
    if "" in body or any(map(str.isspace, body)):  # C-speed blank-line scan
        return None  # numpy would skip blank lines and shift every row number after them
    try:
        # comments=None: numpy's default '#' would drop a line starting with one (shifting every
        # row number after it) and cut '7#00' to 7; here a '#' is a bad value on its row.
        table = np.loadtxt(body, delimiter=",", usecols=[columns[f] for f in _fields_of(columns)], dtype=np.float64,
                           ndmin=2, comments=None)
    except ValueError:
        return None
    ts = _epoch_ms(table[:, 0])
    if ts is None:
        return None
    rows = np.arange(first_row, first_row + len(body), dtype=np.int64)
    return ts, np.ascontiguousarray(table[:, 1:]), rows, None  # every funding cell held a number


def _fields_of(columns: dict[str, int]) -> tuple[str, ...]:
    """The fields a file's parsers read, in the order of their value columns: FIELDS, then the
    funding rate when the header names one."""
    return FIELDS + ((FUNDING_RATE,) if FUNDING_RATE in columns else ())


def _epoch_ms(ts: np.ndarray) -> np.ndarray | None:
    """Parsed timestamps as int64 epoch ms, or None when one is fractional or out of range (the
    line-based parser then says which and why). Epoch ms is exact in float64 below 2**53."""
    if not (np.all(ts == np.floor(ts)) and np.all(ts >= _MIN_EPOCH_MS) and np.all(ts < MAX_EPOCH_MS)):
        return None
    return ts.astype(np.int64)


# Every byte a plain numeric file may hold below its first line. Within these, pyarrow reads a
# field as a number only when Python's float() and numpy's loadtxt read the same number (checked
# by tests/runtime/data/test_csv_fast_path.py); anything else (spaces, quotes, letters, '#', other
# scripts' digits) sends the file to the slower parsers, which say what is wrong where.
_PLAIN_BYTES = b"0123456789.,+-eE\n"


def _parse_arrow(data: bytes, path: str | os.PathLike[str]) -> _Parsed | None:
    """Fast path for the common file, parsed by pyarrow (in C++): a first line that
    is a header or a data row, then rows of plain numbers, all as wide as that first line, epoch-ms
    timestamps, no blank line inside. (ts, values, rows, blank) as `_parse_numeric` gives them, or None to
    send the file to the line-based parsers.

    pyarrow is imported here, not at the top: `playdeck compile` never pays for it.
    """
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None  # a bare carriage return ends a line for us (see _read_lines), not for arrow
    end = data.find(b"\n")
    try:
        first = (data if end < 0 else data[:end]).decode("ascii")
        fields = next(csv.reader([first]))
        start, columns, _ = _layout([first], path)
    except (UnicodeDecodeError, csv.Error, StopIteration, DataError):
        return None  # no first line to read, or a header the line-based parser must report
    if _is_blank(first) or "\x00" in first:
        return None
    # The body as offsets into `data`, not a copy of it (a copy of 50 MB costs as much as a check).
    lo = (end + 1 if end >= 0 else len(data)) if start == 1 else 0
    hi = len(data)
    while hi > lo and data[hi - 1] == 0x0A:
        hi -= 1  # the slow path drops trailing blank lines too
    if hi == lo or data[lo] == 0x0A or data.find(b"\n\n", lo, hi) >= 0:
        return None  # no rows, or a blank line that arrow would count as a row the slow path skips
    # Deleting the plain bytes leaves only the first line's others (a header's letters) when the
    # body holds none: one pass over the whole file, no copy of the body.
    if len(data.translate(None, _PLAIN_BYTES)) != len(data[:lo].translate(None, _PLAIN_BYTES)):
        return None
    body = memoryview(data)[lo:hi]
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    names = [f"c{i}" for i in range(len(fields))]
    wanted = [names[columns[f]] for f in _fields_of(columns)]
    funding = FUNDING_RATE in columns
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(body),
            # One thread: with arrow's thread pool, a process that exited soon after the read (an
            # import refused by the cache) aborted now and then with "terminate called without an
            # active exception" (apache/arrow#34314), 2 runs in 60 here; serial, none in 400.
            read_options=pa_csv.ReadOptions(column_names=names, block_size=1 << 22, use_threads=False),
            # No quoting, no empty lines skipped: every line is one row, so row k is line first + k.
            parse_options=pa_csv.ParseOptions(delimiter=",", quote_char=False, escape_char=False,
                                              newlines_in_values=False, ignore_empty_lines=False),
            # No null spellings: an empty field is a failure here, a problem on its row later; but
            # with a funding rate column an empty cell is a null (an unknown rate there), and a null
            # in another column declines the file below.
            convert_options=pa_csv.ConvertOptions(column_types={n: pa.float64() for n in wanted},
                                                  include_columns=wanted, null_values=[""] if funding else [],
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                  check_utf8=False))
    except pa.ArrowException:
        return None  # a row of another width, a field that is no number
    if any(table.column(n).null_count for n in wanted[:len(FIELDS)]):
        return None
    ts = _epoch_ms(_column(table.column(wanted[0]))[0])
    if ts is None:
        return None
    values = np.empty((table.num_rows, len(wanted) - 1), dtype=np.float64)
    blank = None
    for k, name in enumerate(wanted[1:]):
        values[:, k], nulls = _column(table.column(name))  # a null (an empty funding cell) is NaN
        if funding and k == len(wanted) - 2:
            blank = nulls
    first_row = start + 1
    return ts, values, np.arange(first_row, first_row + table.num_rows, dtype=np.int64), blank


def _column(chunked: Any) -> tuple[np.ndarray, np.ndarray]:
    """A float64 column of pyarrow's as numpy values (NaN where null) and its null mask, read from
    its buffers: pyarrow's own `to_numpy` imports pandas wherever pandas is installed, which no
    backtest may pay for (a test checks)."""
    parts, masks = [], []
    for chunk in chunked.chunks:
        n, off = len(chunk), chunk.offset
        validity, data = chunk.buffers()[:2]
        values = np.frombuffer(data, dtype=np.float64, count=n, offset=off * 8).copy()
        if chunk.null_count and validity is not None:
            bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")[off:off + n]
            null = bits == 0
            values[null] = np.nan
        else:
            null = np.zeros(n, dtype=bool)
        parts.append(values)
        masks.append(null)
    if not parts:
        return np.empty(0), np.zeros(0, dtype=bool)
    return np.concatenate(parts), np.concatenate(masks)


def _fields(line: str) -> list[list[str]]:
    """The one record of `line` (none when it cannot be read: the row-by-row parser says why)."""
    try:
        return list(csv.reader([line]))
    except csv.Error:
        return []


def _seconds_sized(text: str) -> bool:
    s = text.strip()
    return _digits(s) and len(s) <= _MAX_DIGITS and _MIN_EPOCH_S <= int(s) < _MIN_EPOCH_MS


def _micros_sized(text: str) -> bool:
    s = text.strip()
    return _digits(s) and len(s) <= _MAX_DIGITS and _MIN_EPOCH_MS * 1000 <= int(s) < MAX_EPOCH_MS * 1000


def _epoch_unit_problem(body: list[str], first_row: int, column: int) -> DataProblem | None:
    """One whole-file problem when most timestamps are epoch seconds or microseconds (instead of
    one per row). Only the first data row is looked at unless it has such a size, so other files
    pay nothing."""
    # One line at a time, so a stray quote cannot join lines (the row-by-row parser reports it).
    stamps = ((first_row + k, fields[column]) for k, line in enumerate(body) for fields in _fields(line)
              if len(fields) > column and not _is_blank(fields[column]))
    head = next(stamps, None)
    if head is None:
        return None
    for sized, unit in ((_seconds_sized, "seconds"), (_micros_sized, "microseconds")):
        if sized(head[1]):
            break
    else:
        return None
    rest = list(stamps)
    count = 1 + sum(sized(text) for _, text in rest)
    if 2 * count <= 1 + len(rest):
        return None  # a few stray values of that size are reported row by row
    row, text = head
    return DataProblem(0, f"timestamps look like epoch {unit} (e.g. {text.strip()} on row {row}; {count} of "
                          f"{1 + len(rest)} rows); playdeck expects epoch milliseconds or ISO dates")


def _parse_rows(body: list[str], first_row: int, columns: dict[str, int], width: int,
                problems: list[DataProblem], swallowed: list[int]) -> _Parsed:
    """Row-by-row parse (ISO timestamps, quoted fields, bad rows); appends parse problems, and to
    `swallowed` the rows after the first of a record that ran over lines (rejected with it)."""
    ti, oi, hi, li, ci, vi = (columns[f] for f in FIELDS)
    fi = columns.get(FUNDING_RATE)
    ts_list: list[int] = []
    value_list: list[tuple[float, ...]] = []
    row_list: list[int] = []
    blank_list: list[bool] = []
    reader = csv.reader(body)
    consumed = 0  # lines the reader has taken so far: a record starts on the line after them
    while True:
        row = first_row + consumed
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(DataProblem(row, f"unreadable CSV: {exc}"))
            break
        took, consumed = reader.line_num - consumed, reader.line_num
        if took > 1:
            # A quoted field ran over the line's end: the reader joined lines an editor shows apart.
            problems.append(DataProblem(row, f"a quoted field runs on to row {row + took - 1}; each bar is one line"))
            swallowed.extend(range(row + 1, row + took))
            continue
        if not fields or (len(fields) == 1 and _is_blank(fields[0])):
            continue
        try:
            t = parse_timestamp(fields[ti])
            bar: tuple[float, ...] = (_number(fields[oi].strip()), _number(fields[hi].strip()),
                                      _number(fields[li].strip()), _number(fields[ci].strip()),
                                      _number(fields[vi].strip()))
            if fi is not None:
                rate = fields[fi].strip()
                bar += (_funding_cell(rate),)
                blank_list.append(not rate)
        except (ValueError, IndexError):
            problems += _parse_problems(fields, columns, width, row)
            continue
        ts_list.append(t)
        value_list.append(bar)
        row_list.append(row)
    width_out = len(_fields_of(columns)) - 1
    return (np.array(ts_list, dtype=np.int64), np.array(value_list, dtype=np.float64).reshape(-1, width_out),
            np.array(row_list, dtype=np.int64), None if fi is None else np.array(blank_list, dtype=bool))


def import_csv(path: str | os.PathLike[str], symbol: str, tf: str | None, gaps: str = "error") -> ImportResult:
    """Read `path` as `tf` bars of `symbol`; DataError listing every problem if anything is wrong.

    With `tf=None` the timeframe is the most common spacing of the timestamps (so a few gaps do
    not change it); a spacing that is no timeframe of the language is an error.
    """
    if gaps not in GAP_POLICIES:
        raise ValueError(f"gaps must be one of {', '.join(GAP_POLICIES)}, was {gaps!r}")
    if tf is not None:
        tf_ms(tf)  # an unknown timeframe fails before a large file is read (callers name their option)
    data = _read_bytes(path)
    problems: list[DataProblem] = []
    swallowed: list[int] = []
    parsed = _parse_arrow(data, path)
    if parsed is None:
        lines = _read_lines(data, path)
        start, columns, width = _layout(lines, path)
        body = lines[start:]
        while body and _is_blank(body[-1]):
            body.pop()  # trailing newline(s)
        if not body:
            raise DataError([DataProblem(0, "no data rows")], path)
        parsed = _parse_numeric(body, start + 1, columns)
        if parsed is None:
            unit = _epoch_unit_problem(body, start + 1, columns["timestamp"])
            if unit is not None:
                raise DataError([unit], path)
            parsed = _parse_rows(body, start + 1, columns, width, problems, swallowed)
    ts, values, rows, blank = parsed
    value_problems, bad = _value_problems(values, rows, blank)
    problems += value_problems
    if bad.any():  # the usual file has no bad row: skip three copies
        values, ts, rows = values[~bad], ts[~bad], rows[~bad]
    if tf is None:
        try:
            tf = infer_timeframe(ts, path)
        except DataError as exc:
            if not problems:
                raise
            # The rows' own problems are the real news; with them left out the spacing says little.
            raise DataError(problems + [DataProblem(0, "cannot tell the timeframe with the rejected rows left "
                                                       "out; mend them or give it (--data-tf / --tf)")],
                            path) from exc
    step = tf_ms(tf)
    direction = file_direction(ts)
    bad_rows = sorted({p.row for p in problems} | set(swallowed))
    sequence, hint = _sequence_problems(ts, rows, step, tf, gaps, bad_rows, direction)
    problems += sequence
    if problems:
        raise DataError(problems, path, hint)
    was_reversed = direction < 0
    if was_reversed:
        values, ts = values[::-1], ts[::-1]

    filled = 0
    if gaps == "fill":
        ts, values, filled = _fill_gaps(ts, values, step, tf, path)
    o, h, l, c, v = (np.ascontiguousarray(col) for col in values[:, :5].T)
    # NaN where a cell was empty (the checks above refused a written nan): the rate is unknown there.
    rates = np.ascontiguousarray(values[:, 5]) if values.shape[1] > 5 else None
    bars = Bars(symbol=symbol, tf=tf, ts_open=ts, open=o, high=h, low=l, close=c, volume=v, synthetic=False,
                funding_rate=rates)
    return ImportResult(bars=bars, filled_gaps=filled, reversed=was_reversed)


def infer_timeframe(ts: np.ndarray, path: str | os.PathLike[str] | None = None) -> str:
    """The timeframe whose length is the most common spacing of `ts` (epoch ms, any order); among
    spacings equally common, a timeframe of the language wins (one off-grid row in a short file
    must not make "0.5 minutes" the answer)."""
    values, counts = _step_counts(ts)
    if len(values) == 0:
        raise DataError([DataProblem(0, "cannot tell the timeframe from fewer than two distinct timestamps; "
                                        "give it (--data-tf / --tf)")], path)
    tied = values[counts == counts.max()].tolist()
    by_length = {tf_ms(name): name for name in TIMEFRAMES}
    for common in tied:  # ascending
        if common in by_length:
            return by_length[common]
    raise DataError([DataProblem(0, f"bars are {tied[0] / 60000:g} minutes apart, which is no timeframe "
                                    f"({' '.join(TIMEFRAMES)}); give it (--data-tf / --tf)")], path)
