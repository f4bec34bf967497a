"""One error type for the whole front end, and one renderer.

A `Diagnostic` says where (a span), what was found, what was expected and a hint; passes return them
instead of printing. `render` draws `file:line:col`, the source line and a caret under the span.
"""
from __future__ import annotations

import re

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

    def __init__(self, path: str, source: str, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]):
        self.path = path
        self.source = source
        # one mistake reached from several places (a constant feature read by two cases) is said once
        self.diagnostics = tuple(dict.fromkeys(diagnostics))
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(render(self.path, self.source, d) for d in self.diagnostics)

    def first_line(self) -> str:
        """`file:line:col: message`, for `playdeck check` (one line per file)."""
        d = self.diagnostics[0]
        where = f"{self.path}:{d.span}" if d.span is not None else self.path
        return f"{where}: error[{d.code}]: {d.message}"


def render(path: str, source: str, d: Diagnostic) -> str:
    if d.span is None:
        out = [f"{path}: error[{d.code}]: {d.message}"]
    else:
        out = [f"{path}:{d.span.line}:{d.span.col}: error[{d.code}]: {d.message}"]
        lines = source_lines(source)
        # the line just past the last one is where an empty file (or a missing last line) is
        if 1 <= d.span.line <= len(lines) + 1:
            text = _visible(lines[d.span.line - 1].expandtabs(1)) if d.span.line <= len(lines) else ""
            gutter = str(d.span.line)
            width = 1
            if d.span.end_line == d.span.line and d.span.end_col > d.span.col:
                width = d.span.end_col - d.span.col
            width = max(1, min(width, len(text) - d.span.col + 1))
            out.append(f" {gutter} | {text}")
            out.append(f" {' ' * len(gutter)} | {' ' * (d.span.col - 1)}{'^' * width}")
    if d.hint:
        out.append(f"hint: {d.hint}")
    return "\n".join(out)


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
