"""One error type for the whole front end, and one renderer.

A `Diagnostic` says where (a span), what was found, what was expected and a hint; passes return them
instead of printing. `render` draws `file:line:col`, the source line and a caret under the span.
"""
from __future__ import annotations

import re
from typing import Sequence

import attrs

from .spans import Span


@attrs.frozen(slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    hint: str = ""


class PlayError(Exception):
    """A Play could not be read or compiled. Carries every diagnostic found and the file's text."""

    def __init__(self, path: str, source: str, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...],
                 lines: Sequence[str] | None = None):
        self.path = path
        self.source = source
        # one mistake reached from several places (a constant feature read by two cases) is said once
        self.diagnostics = tuple(dict.fromkeys(diagnostics))
        # the file is split into lines once, however many diagnostics show one of them
        self.lines = source_lines(source) if lines is None else lines
        super().__init__(self.first_line() if self.diagnostics else path)

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        return "\n".join(render(self.path, self.lines, d) for d in self.diagnostics)

    def first_line(self) -> str:
        """`file:line:col: message`, for `playdeck check` (one line per file)."""
        d = self.diagnostics[0]
        where = f"{self.path}:{d.span}" if d.span is not None else self.path
        return f"{where}: error[{d.code}]: {d.message}"


# A line longer than this is shown as a window around the caret, so that the work (and the output)
# of one diagnostic does not grow with the file: a flow mapping or a feature can be one long line.
SHOWN_WIDTH = 160
_CONTEXT = 60  # characters kept before the caret in such a window


def render(path: str, source: str | Sequence[str], d: Diagnostic) -> str:
    """`file:line:col: error[code]: message`, the line with a caret under the span, and the hint.
    `source` is the file's text or, better when there are many diagnostics, its `source_lines`."""
    if d.span is None:
        out = [f"{path}: error[{d.code}]: {d.message}"]
    else:
        out = [f"{path}:{d.span.line}:{d.span.col}: error[{d.code}]: {d.message}"]
        lines = source_lines(source) if isinstance(source, str) else source
        # the line just past the last one is where an empty file (or a missing last line) is
        if 1 <= d.span.line <= len(lines) + 1:
            line = lines[d.span.line - 1] if d.span.line <= len(lines) else ""
            width = 1
            if d.span.end_line == d.span.line and d.span.end_col > d.span.col:
                width = d.span.end_col - d.span.col
            col = d.span.col
            start = 0
            if len(line) > SHOWN_WIDTH:  # cut to a window; a tab is one column (expandtabs(1))
                start = max(0, min(col - 1 - _CONTEXT, len(line) - SHOWN_WIDTH))
                line = line[start:start + SHOWN_WIDTH]
                col -= start
            text = _visible(line.expandtabs(1))
            width = max(1, min(width, len(text) - col + 1))
            gutter = str(d.span.line)
            cut_before = "... " if start > 0 else ""
            cut_after = " ..." if start + len(line) < _length(lines, d.span.line) else ""
            out.append(f" {gutter} | {cut_before}{text}{cut_after}")
            out.append(f" {' ' * len(gutter)} | {' ' * (len(cut_before) + col - 1)}{'^' * width}")
    if d.hint:
        out.append(f"hint: {d.hint}")
    return "\n".join(out)


def shorten(text: str, width: int = 24) -> str:
    """Text the user wrote, cut short for a message (a number of 5,000 digits is not repeated)."""
    return text if len(text) <= width else text[:width - 4] + "..."


def _length(lines: Sequence[str], number: int) -> int:
    return len(lines[number - 1]) if number <= len(lines) else 0


def source_lines(source: str) -> list[str]:
    """The file's lines as YAML and editors count them: `str.splitlines` also breaks at form feed and
    other control characters, which would show the wrong line under a `line:col`."""
    lines = re.split(r"\r\n|\r|\n", source)
    return lines[:-1] if lines and lines[-1] == "" else lines


_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _visible(line: str) -> str:
    # A control character would move the terminal's cursor (or colour the rest of the output);
    # one '?' keeps the caret under the right column.
    return _INVISIBLE.sub("?", line)
