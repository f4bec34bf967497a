"""CSV text from columns: text fields quoted as the csv module quotes them, and rows joined from
text matrices (see `numtext`) without a Python step per row.

The files were written with `csv.writer` (QUOTE_MINIMAL, lines ending in CRLF); these functions give
the same bytes, so tools and the pinned goldens see no change.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

CRLF = b"\r\n"  # csv.writer's line ending, kept in the files written with it before
_SPECIAL = (",", '"', "\r", "\n")  # what makes csv.writer quote a field (delimiter, quote, line end)


def quote(text: str) -> str:
    """A field as csv.writer writes it: quoted, with its quotes doubled, when it holds a comma, a
    quote or a line end; as it is otherwise."""
    if any(c in text for c in _SPECIAL):
        return '"' + text.replace('"', '""') + '"'
    return text


def text_column(values: Sequence[str]) -> np.ndarray:
    """Text fields (UTF-8, quoted as needed) as a text matrix."""
    n = len(values)
    if n == 0:
        return np.zeros((0, 1), dtype=np.uint8)
    joined = "".join(values)
    if "\0" in joined:
        # a NUL would be taken for padding (and no field of a run's files can hold one)
        raise ValueError("a text field holds a NUL character")
    if any(c in joined for c in _SPECIAL):  # one scan of all of them: most columns need no quotes
        values = [quote(v) for v in values]
        joined = "".join(values)
    if not joined.isascii():
        packed = np.array([v.encode("utf-8") for v in values], dtype=np.bytes_)
        return packed.view(np.uint8).reshape(n, max(packed.dtype.itemsize, 1))
    # ASCII (the common case): one character is one byte, so the joined text is cut into rows
    # by the lengths alone, without encoding each value on its own
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    out = np.zeros((n, max(int(lengths.max()), 1)), dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths
    row = np.repeat(np.arange(n), lengths)
    out[row, np.arange(len(joined)) - starts[row]] = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    return out


def header(names: Sequence[str], newline: bytes) -> bytes:
    return ",".join(quote(n) for n in names).encode("utf-8") + newline


def join_rows(columns: Sequence[np.ndarray], newline: bytes) -> bytes:
    """The lines `col0,col1,...` of equally long text matrices, each ended by `newline`."""
    n = len(columns[0])
    widths = [c.shape[1] for c in columns]
    out = np.zeros((n, sum(widths) + len(columns) - 1 + len(newline)), dtype=np.uint8)
    at = 0
    for k, (c, w) in enumerate(zip(columns, widths)):
        out[:, at:at + w] = c
        at += w
        if k < len(columns) - 1:
            out[:, at] = ord(",")
            at += 1
    out[:, at:] = np.frombuffer(newline, dtype=np.uint8)
    return out[out != 0].tobytes()
