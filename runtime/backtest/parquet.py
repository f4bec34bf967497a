"""fills.parquet and equity.parquet: the columns of fills.csv and equity.csv, typed.

pyarrow is imported by the writers, so only a run that writes files loads it. The arrays are made
from their buffers (numpy arrays, UTF-8 bytes and offsets) and the table from a record batch:
`pa.array`, `pa.table` and `Table.from_arrays` each look whether their input is a pandas object,
which imports pandas (0.1 s and 60 MB) wherever it is installed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from playdeck.runtime.backtest.artifacts import FillColumns

# zstd, and bar and ts (rising integers) as deltas: a million-bar equity.parquet is 3 MB, not 15,
# and writes faster than with the default dictionary pages of values that never repeat. Row groups
# of 131,072 rows: the writer holds one group's pages at a time (a million-row group costs 10 MiB more).
_OPTIONS: dict[str, Any] = {"compression": "zstd", "row_group_size": 1 << 17,
                            "column_encoding": {"bar": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"}}


def write_fills_parquet(path: Path, c: FillColumns) -> None:
    """int64 bar, timestamp[ms, UTC] ts, string order_id, float64 qty, price and fee, the
    repeating words (tag, side, liquidity) as dictionary<int32, string>, and timestamp[ms, UTC]
    detail_ts; a fill without a tag has a null tag, one without a detail bar (no bar magnifier) a
    null detail_ts (fills.csv writes '' for both)."""
    import pyarrow as pa  # noqa: PLC0415 (only a run that writes files pays for pyarrow)

    _write(path, [("bar", _numbers(pa, pa.int64(), c.bar)), ("ts", _numbers(pa, pa.timestamp("ms", tz="UTC"), c.ts)),
                  ("order_id", _strings(pa, c.order_id)), ("tag", _dictionary(pa, c.tag)),
                  ("side", _dictionary(pa, c.side)), ("qty", _numbers(pa, pa.float64(), c.qty)),
                  ("price", _numbers(pa, pa.float64(), c.price)), ("fee", _numbers(pa, pa.float64(), c.fee)),
                  ("liquidity", _dictionary(pa, c.liquidity)),
                  ("detail_ts", _numbers(pa, pa.timestamp("ms", tz="UTC"), c.detail_ts, valid=c.has_detail))],
           dictionary=["tag", "side", "liquidity"])


def write_equity_parquet(path: Path, ts_open: np.ndarray, start: int, equity: np.ndarray) -> None:
    """int64 bar, timestamp[ms, UTC] ts, float64 equity (unrounded: equity.csv has six decimals)."""
    import pyarrow as pa  # noqa: PLC0415

    n = len(equity)
    _write(path, [("bar", _numbers(pa, pa.int64(), np.arange(start, start + n, dtype=np.int64))),
                  ("ts", _numbers(pa, pa.timestamp("ms", tz="UTC"), np.asarray(ts_open[start:start + n]))),
                  ("equity", _numbers(pa, pa.float64(), np.asarray(equity)))], dictionary=[])


def _write(path: Path, columns: list[tuple[str, Any]], dictionary: list[str]) -> None:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    schema = pa.schema([(name, array.type) for name, array in columns])
    batch = pa.RecordBatch.from_arrays([array for _, array in columns], schema=schema)
    pq.write_table(pa.Table.from_batches([batch]), path, use_dictionary=dictionary, **_OPTIONS)


def _numbers(pa: Any, kind: Any, values: np.ndarray, valid: np.ndarray | None = None) -> Any:
    """An array of 8-byte values (int64, float64, timestamp[ms]) over the numpy array's own memory;
    null where `valid` (bools, when given) is false."""
    data = np.ascontiguousarray(values, dtype=np.float64 if pa.types.is_floating(kind) else np.int64)
    bitmap = None if valid is None or valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(kind, len(data), [bitmap, pa.py_buffer(data)])


def _strings(pa: Any, values: Sequence[str]) -> Any:
    """A string array: the UTF-8 bytes end to end and where each value starts."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded)), out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _dictionary(pa: Any, values: Sequence[str | None]) -> Any:
    """dictionary<int32, string> of a few repeating words; None is null."""
    words = [w for w in dict.fromkeys(values) if w is not None]
    code: dict[str | None, int] = {w: k for k, w in enumerate(words)}
    code[None] = -1
    indices = np.fromiter(map(code.__getitem__, values), dtype=np.int32, count=len(values))
    present = indices >= 0
    valid = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    index_array = pa.Array.from_buffers(pa.int32(), len(indices), [valid, pa.py_buffer(np.maximum(indices, 0))])
    return pa.DictionaryArray.from_arrays(index_array, _strings(pa, words))
