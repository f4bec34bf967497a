"""Source positions in a Play file.

Every position is 1-based and counted in the *Play file*, not in the YAML scalar it came from:
`LineMap` shifts a position inside the `blocks: |` text (or a feature's value) to the file.
"""
from __future__ import annotations

import attrs


@attrs.frozen(slots=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


@attrs.frozen(slots=True)
class LineMap:
    """Maps (line, col) in an embedded text to the Play file.

    `first_line`/`first_col` are where the embedded text's line 1 starts in the file; every later line
    starts at `indent` (a literal block scalar strips the same indentation from each line).
    """

    first_line: int
    first_col: int
    indent: int

    def point(self, line: int, col: int) -> tuple[int, int]:
        if line == 1:
            return self.first_line, self.first_col + col - 1
        return self.first_line + line - 1, self.indent + col

    def span(self, line: int, col: int, end_line: int, end_col: int) -> Span:
        l1, c1 = self.point(line, col)
        l2, c2 = self.point(end_line, end_col)
        return Span(l1, c1, l2, c2)


IDENTITY = LineMap(1, 1, 0)


@attrs.frozen(slots=True)
class ColumnMap:
    """Maps positions in a one-line quoted scalar to the file when escapes (`\\t`, `''`) make the
    value shorter than what is written: `cols[i]` is the file column of the value's character i."""

    line: int
    cols: tuple[int, ...]

    def point(self, line: int, col: int) -> tuple[int, int]:
        i = col - 1
        if i < len(self.cols):
            return self.line, self.cols[max(i, 0)]
        return self.line, self.cols[-1] + 1 + i - len(self.cols) if self.cols else col

    def span(self, line: int, col: int, end_line: int, end_col: int) -> Span:
        l1, c1 = self.point(line, col)
        l2, c2 = self.point(end_line, end_col)
        return Span(l1, c1, l2, c2)
