"""Import OHLCV bars from CSV, reporting every problem with its line number.

Accepted layouts (detected from the first non-blank line):

- generic, with a header naming `timestamp,open,high,low,close,volume` (any order; extra columns
  such as `turnover` are ignored; a few common aliases like `time`/`date`/`open_time` work too);
- Bybit's kline export, header `startTime,openPrice,highPrice,lowPrice,closePrice,volume,turnover`;
- headerless rows, positional `timestamp,open,high,low,close,volume[,turnover]` (Bybit's API
  rows are the 7-column form).

`timestamp` is the bar's open time, either epoch milliseconds (an integer, as Bybit writes it) or
ISO 8601 (`2025-01-01T00:00:00Z`, `2025-01-01 00:00`, with or without an offset; a naive time is
UTC). Integers below 10^11 are rejected as probably epoch *seconds*.

Order: ascending time is expected. Bybit's API returns klines newest-first, so a file whose
timestamps are strictly *descending* throughout is accepted and reversed (`ImportResult.reversed`
says so); any other disorder is an error.

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

import csv
import math
import os
from datetime import datetime, timezone
from typing import Iterable, Iterator

import attrs
import numpy as np

from playdeck.runtime.bars import Bars, tf_ms

FIELDS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
GAP_POLICIES: tuple[str, ...] = ("error", "fill")
_MAX_REPORTED = 20
_MIN_EPOCH_MS = 10**11  # 1973-03-03: anything smaller is almost surely seconds, not ms

# Header names (lower-cased, spaces/underscores kept) for each field, generic and Bybit spellings.
_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "time", "date", "datetime", "starttime", "start_time", "open_time", "opentime", "ts"),
    "open": ("open", "openprice", "open_price", "o"),
    "high": ("high", "highprice", "high_price", "h"),
    "low": ("low", "lowprice", "low_price", "l"),
    "close": ("close", "closeprice", "close_price", "c"),
    "volume": ("volume", "vol", "v"),
}


@attrs.frozen
class DataProblem:
    """One problem in an input file; `row` is its 1-based line number (0: the whole file)."""

    row: int
    message: str


class DataError(Exception):
    """Bad input data: carries every problem found, rendered as a readable multi-line report."""

    def __init__(self, problems: Iterable[DataProblem], path: str | os.PathLike[str] | None = None) -> None:
        self.problems: list[DataProblem] = sorted(problems, key=lambda p: p.row)
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.problems)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        count = len(self.problems)
        lines = [f"{where}{count} problem{'s' if count != 1 else ''} in the data"]
        for p in self.problems[:_MAX_REPORTED]:
            lines.append(f"  {'file' if p.row == 0 else f'row {p.row}'}: {p.message}")
        if count > _MAX_REPORTED:
            lines.append(f"  ... and {count - _MAX_REPORTED} more")
        return "\n".join(lines)


@attrs.frozen(eq=False)
class ImportResult:
    """The imported bars; `filled_gaps` flat bars were inserted; `reversed` if the file was newest-first."""

    bars: Bars
    filled_gaps: int = 0
    reversed: bool = False


def parse_timestamp(text: str) -> int:
    """Epoch ms from an integer epoch-ms string or an ISO 8601 time (naive = UTC). ValueError otherwise."""
    s = text.strip()
    if s and (s.isdigit() or (s[0] in "+-" and s[1:].isdigit())):
        value = int(s)
    elif s.replace(".", "", 1).isdigit() and float(s).is_integer():
        value = int(float(s))  # "1735689600000.0", as spreadsheets like to write it
    else:
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"timestamp {text!r} is neither epoch milliseconds nor ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if value < _MIN_EPOCH_MS:
        raise ValueError(f"timestamp {text!r} is too small for epoch milliseconds (seconds?)")
    return value


def format_ts(ms: int) -> str:
    """Epoch ms as a compact UTC ISO 8601 string, for messages and artifacts."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for every non-blank line."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets prepend a BOM
        reader = csv.reader(f)
        for fields in reader:
            if fields and any(cell.strip() for cell in fields):
                yield reader.line_num, fields


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
    try:
        parse_timestamp(fields[0])
        return True
    except (ValueError, IndexError):
        return False


def _parse_row(fields: list[str], columns: dict[str, int], width: int, row: int, problems: list[DataProblem]) -> tuple[int, float, float, float, float, float] | None:
    """One validated bar, or None after appending its problems."""
    if len(fields) < width:
        problems.append(DataProblem(row, f"missing columns: expected {width}, found {len(fields)}"))
        return None
    ok = True
    try:
        ts = parse_timestamp(fields[columns["timestamp"]])
    except ValueError as exc:
        problems.append(DataProblem(row, str(exc)))
        ok = False
    values: dict[str, float] = {}
    for name in ("open", "high", "low", "close", "volume"):
        text = fields[columns[name]].strip()
        try:
            value = float(text)
        except ValueError:
            problems.append(DataProblem(row, f"{name} {text!r} is not a number"))
            ok = False
            continue
        if not math.isfinite(value):
            problems.append(DataProblem(row, f"{name} {text!r} is not a finite number"))
            ok = False
        elif name != "volume" and value <= 0:
            problems.append(DataProblem(row, f"{name} {value:g} must be positive"))
            ok = False
        values[name] = value
    if len(values) == 5:
        o, h, l, c, v = (values[k] for k in ("open", "high", "low", "close", "volume"))
        if h < l:
            problems.append(DataProblem(row, f"high {h:g} < low {l:g}"))
            ok = False
        if h < max(o, c):
            problems.append(DataProblem(row, f"high {h:g} < max(open, close) {max(o, c):g}"))
            ok = False
        if l > min(o, c):
            problems.append(DataProblem(row, f"low {l:g} > min(open, close) {min(o, c):g}"))
            ok = False
        if v < 0:
            problems.append(DataProblem(row, f"volume {v:g} is negative"))
            ok = False
    return (ts, *(values[k] for k in ("open", "high", "low", "close", "volume"))) if ok else None


def _sequence_problems(ts: np.ndarray, rows: np.ndarray, step: int, tf: str, gaps: str) -> list[DataProblem]:
    """Order, duplicate, grid and (unless filling) gap problems of ascending-intended timestamps."""
    problems: list[DataProblem] = []
    first_row: dict[int, int] = {}
    for t, r in zip(ts.tolist(), rows.tolist()):
        if t in first_row:
            problems.append(DataProblem(r, f"duplicate timestamp {format_ts(t)} (same as row {first_row[t]})"))
        else:
            first_row[t] = r
    off_grid = ts % step != 0
    for i in np.flatnonzero(off_grid).tolist():
        problems.append(DataProblem(int(rows[i]), f"timestamp {format_ts(int(ts[i]))} is not on the {tf} grid"))
    diff = np.diff(ts)
    for i in np.flatnonzero(diff < 0).tolist():
        problems.append(DataProblem(int(rows[i + 1]), f"timestamp {format_ts(int(ts[i + 1]))} goes back in time after "
                                    f"{format_ts(int(ts[i]))} (row {int(rows[i])}); rows must be in ascending time"))
    # Gaps are only meaningful between rows in order; in a shuffled file they would be noise.
    if gaps == "error" and not (diff < 0).any():
        on_grid_pair = ~off_grid[:-1] & ~off_grid[1:]
        for i in np.flatnonzero((diff > step) & on_grid_pair).tolist():
            missing = int(diff[i]) // step - 1
            problems.append(DataProblem(int(rows[i + 1]), f"gap: {missing} missing {tf} bar{'s' if missing != 1 else ''} "
                                        f"between {format_ts(int(ts[i]))} (row {int(rows[i])}) and {format_ts(int(ts[i + 1]))}"))
    return problems


def _fill_gaps(data: np.ndarray, step: int) -> tuple[np.ndarray, int]:
    """Insert flat zero-volume bars at the previous close into every gap of sorted, on-grid data."""
    ts = data[:, 0].astype(np.int64)
    slots = (ts - ts[0]) // step
    total = int(slots[-1]) + 1
    filled = total - len(ts)
    if filled == 0:
        return data, 0
    out = np.empty((total, 6))
    present = np.zeros(total, dtype=bool)
    present[slots] = True
    out[slots] = data
    # Each missing slot copies the close of the latest present bar before it.
    last = np.maximum.accumulate(np.where(present, np.arange(total), 0))
    gap = ~present
    out[gap, 0] = ts[0] + np.flatnonzero(gap) * step
    out[gap, 1:5] = out[last[gap], 4][:, None]
    out[gap, 5] = 0.0
    return out, filled


def import_csv(path: str | os.PathLike[str], symbol: str, tf: str, gaps: str = "error") -> ImportResult:
    """Read `path` as `tf` bars of `symbol`; DataError listing every problem if anything is wrong."""
    if gaps not in GAP_POLICIES:
        raise ValueError(f"gaps must be one of {', '.join(GAP_POLICIES)}, was {gaps!r}")
    step = tf_ms(tf)
    problems: list[DataProblem] = []
    records: list[tuple[int, float, float, float, float, float]] = []
    row_numbers: list[int] = []
    columns: dict[str, int] | None = None
    width = 0
    for row, fields in _rows(path):
        if columns is None:
            if _looks_like_data(fields):
                if len(fields) not in (6, 7):
                    raise DataError([DataProblem(row, f"headerless rows need 6 or 7 columns "
                                                      f"(timestamp,open,high,low,close,volume[,turnover]), found {len(fields)}")], path)
                columns, width = {name: i for i, name in enumerate(FIELDS)}, 6
            else:
                columns, missing = _column_map(fields)
                if columns is None:
                    raise DataError([DataProblem(row, f"header lacks {', '.join(missing)}; expected "
                                                      f"{','.join(FIELDS)} or Bybit's startTime,openPrice,...")], path)
                width = max(columns.values()) + 1
                continue
        record = _parse_row(fields, columns, width, row, problems)
        if record is not None:
            records.append(record)
            row_numbers.append(row)
    if not records and not problems:
        raise DataError([DataProblem(0, "no data rows")], path)

    data = np.array(records, dtype=np.float64).reshape(-1, 6)
    ts = np.array([r[0] for r in records], dtype=np.int64)
    rows = np.array(row_numbers, dtype=np.int64)
    was_reversed = len(ts) > 1 and bool(np.all(np.diff(ts) < 0))
    if was_reversed:
        data, ts, rows = data[::-1], ts[::-1], rows[::-1]
    problems += _sequence_problems(ts, rows, step, tf, gaps)
    if problems:
        raise DataError(problems, path)

    filled = 0
    if gaps == "fill":
        data, filled = _fill_gaps(data, step)
        ts = data[:, 0].astype(np.int64)  # epoch ms < 2**53: exact in float64
    bars = Bars(symbol=symbol, tf=tf, ts_open=ts, open=data[:, 1], high=data[:, 2], low=data[:, 3],
                close=data[:, 4], volume=data[:, 5], synthetic=False)
    return ImportResult(bars=bars, filled_gaps=filled, reversed=was_reversed)
