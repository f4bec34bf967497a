"""Read a Play file: YAML with a position kept for every key and value.

`yaml.compose` gives nodes with marks; we turn them into `YValue`s so that the compiler can point
at the line of `account.leverage`, and so that the `blocks: |` text knows where it sits in the file.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import attrs
import yaml
from yaml.constructor import SafeConstructor

from .diagnostics import Diagnostic, PlayError
from .spans import ColumnMap, LineMap, Span


@attrs.frozen(slots=True)
class YValue:
    """A YAML value with its span. Mappings hold `dict[str, YEntry]`, sequences `list[YValue]`."""

    value: Any
    span: Span
    raw: str = ""  # the scalar exactly as written (for features and blocks)
    where: LineMap | ColumnMap | None = None  # where a scalar's text starts in the file
    style: str | None = None

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)


@attrs.frozen(slots=True)
class YEntry:
    key: str
    key_span: Span
    value: YValue


@attrs.frozen(slots=True)
class PlaySource:
    path: str
    text: str
    root: YValue


def _span(node: yaml.Node) -> Span:
    s, e = node.start_mark, node.end_mark
    return Span(s.line + 1, s.column + 1, e.line + 1, e.column + 1)


def read_play(path: str | Path) -> PlaySource:
    """Read and YAML-parse a Play file. Raises PlayError (with position) on unreadable input."""
    p = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise PlayError(p, "", [Diagnostic("file", "no such file", None, "check the path")]) from None
    except OSError as e:
        raise PlayError(p, "", [Diagnostic("file", f"cannot read the file: {e.strerror or e}", None,
                                           "check the path and its permissions")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PlayError(p, data.decode("utf-8", errors="replace"), [_not_utf8(data, e)]) from None
    return parse_play_text(text, p)


def _not_utf8(data: bytes, e: UnicodeDecodeError) -> Diagnostic:
    """Where the first byte that is not UTF-8 is, as line:col of the text shown with U+FFFD."""
    line_start = data.rfind(b"\n", 0, e.start) + 1
    line = data.count(b"\n", 0, e.start) + 1
    col = len(data[line_start:e.start].decode("utf-8", errors="replace")) + 1
    return Diagnostic("file", f"byte 0x{data[e.start]:02x} is not UTF-8 text", Span(line, col, line, col + 1),
                      "a Play is a UTF-8 text file: save it as UTF-8")


# YAML 1.1 (PyYAML) reads a plain 2e-4 or 1e4 as text: it wants 1.0e+4. A Play reads them as
# YAML 1.2, JSON and users do, as numbers; `fmt` writes with the same rule (it quotes text that
# would read back as a number). Added to subclasses, so PyYAML's own loaders stay as they are.
EXPONENT_NUMBER = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$")
_NUMBER_STARTS = list("-+.0123456789")
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _SafeLoader(yaml.SafeLoader):
    pass


class _CSafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


class PlayDumper(yaml.SafeDumper):
    """The dumper `fmt` writes settings with: it knows the exponent rule above."""


for _cls in (_SafeLoader, _CSafeLoader, PlayDumper):
    _cls.add_implicit_resolver(_FLOAT_TAG, EXPONENT_NUMBER, _NUMBER_STARTS)

# libyaml composes the same nodes and marks ~20x faster than pure-Python PyYAML (plain scalars
# report style '' instead of None); PyYAML's own messages are better, so a broken file is composed
# again by the pure-Python loader to describe it.
_FAST_LOADER = _CSafeLoader if hasattr(yaml, "CSafeLoader") else _SafeLoader


def _compose(text: str) -> yaml.Node | None:
    if _FAST_LOADER is not _SafeLoader:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=_SafeLoader)


# What YAML refuses to read (its "printable" set, YAML 1.1 section 5.1), plus the three line breaks
# YAML counts but editors and our own line numbers do not: refused up front, so that PyYAML never
# raises a ReaderError without a position and every line number means the same line everywhere.
_UNREADABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029]")
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "backspace", 0x0B: "vertical tab", 0x0C: "form feed",
                  0x1B: "ESC", 0x7F: "DEL", 0x85: "NEL, next line", 0x2028: "line separator",
                  0x2029: "paragraph separator"}


def char_name(ch: str) -> str:
    """`U+001B (ESC)`, `U+00A0 (no-break space)`: a character a terminal may not show."""
    name = _CONTROL_NAMES.get(ord(ch)) or unicodedata.name(ch, "").lower()
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _unreadable_character(text: str) -> Diagnostic | None:
    m = _UNREADABLE.search(text)
    if m is None:
        return None
    ch = m.group()
    before = _LINE_BREAK.split(text[:m.start()])  # lines as YAML and the error display count them
    line, col = len(before), len(before[-1]) + 1
    span = Span(line, col, line, col + 1)
    if ch in "\x85\u2028\u2029":
        return Diagnostic("char", f"{char_name(ch)} is not allowed in a Play", span,
                          "a Play breaks lines with an ordinary line break (Enter); this one probably came "
                          "with pasted text: delete it")
    return Diagnostic("char", f"control character {char_name(ch)} is not allowed in a Play", span,
                      "delete it: it is invisible in most editors and often comes with pasted text "
                      "(a terminal colour code starts with ESC)")


def parse_play_text(text: str, path: str = "<play>") -> PlaySource:
    bad = _unreadable_character(text)
    if bad is not None:
        raise PlayError(path, text, [bad])
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as e:
        raise PlayError(path, text, [_yaml_problem(e, text)]) from None
    if node is None:
        raise PlayError(path, text, [Diagnostic("yaml", "the file is empty; a Play needs 'play', 'market' and 'blocks'",
                                                Span(1, 1, 1, 1), "start from an example such as plays/ema_cross.yml")])
    lines = text.splitlines()
    try:
        root = _convert(node, lines, SafeConstructor(), {})
    except PlayError as e:  # re-raise with the file it belongs to
        raise PlayError(path, text, e.diagnostics) from None
    if not root.is_map:
        span = root.span
        if span.line > len(lines):  # an empty document (`---` alone) ends past the last line
            span = Span(len(lines), 1, len(lines), 2)
        raise PlayError(path, text, [Diagnostic("yaml", "a Play is a YAML mapping of keys such as 'play', 'market' and 'blocks'", span,
                                                "write 'play: NAME', 'market:' and 'blocks: |' at the start of lines")])
    return PlaySource(path, text, root)


def _yaml_problem(e: yaml.MarkedYAMLError, text: str) -> Diagnostic:
    """PyYAML's message in a trader's words where we know them, at the place the fix goes."""
    mark = e.problem_mark or e.context_mark
    problem = e.problem or e.context or "invalid YAML"
    lines = text.splitlines()
    if e.context_mark is not None and "quoted scalar" in (e.context or "") and "end of stream" in problem:
        m = e.context_mark  # the end of the file is no help: the quote that never closes is
        return Diagnostic("yaml", "this quote is never closed", Span(m.line + 1, m.column + 1, m.line + 1, m.column + 2),
                          "end the value with the same quote on the same line, or write it without quotes")
    if mark is not None and problem.startswith("expected <block end>"):
        line = mark.line + 1
        first = _literal_first_line(lines, mark.line)
        if first is not None:
            return Diagnostic("yaml", f"this line is indented less than the first line of 'blocks: |' "
                              f"(line {first + 1}, column {_indent(lines[first]) + 1})",
                              Span(line, mark.column + 1, line, mark.column + 2),
                              "indent every line of the blocks text at least as far as its first line, and "
                              "further than 'blocks:'")
        return Diagnostic("yaml", "invalid YAML: this line is indented differently from the lines above it",
                          Span(line, mark.column + 1, line, mark.column + 2),
                          "indent the keys of one mapping by the same number of spaces")
    span = Span(mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2) if mark else None
    if span is not None and span.line > len(lines):  # past the end: show the last line instead
        span = Span(len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2) if lines else None
    return Diagnostic("yaml", f"invalid YAML: {problem}", span,
                      "check indentation and that every 'key: value' has a space after ':'")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _literal_first_line(lines: list[str], bad: int) -> int | None:
    """The first text line of the `key: |` block that 0-based line `bad` breaks out of, if any."""
    for i in range(bad - 1, -1, -1):
        ln = lines[i]
        if not ln.strip():
            continue
        if re.match(r"^[A-Za-z_][\w-]*:\s*[|>][-+0-9]*\s*(#.*)?$", ln):
            first = next((j for j in range(i + 1, bad) if lines[j].strip()), None)
            if first is not None and 0 < _indent(lines[bad]) < _indent(lines[first]):
                return first
            return None
        if _indent(ln) == 0:
            return None
    return None


def _convert(node: yaml.Node, lines: list[str], scalars: SafeConstructor, seen: dict[int, YValue]) -> YValue:
    # An alias (`*a`) is the very node its anchor made: converted once and shared, so nested aliases
    # ("billion laughs") cost their size in the file, not the size they would expand to.
    done = seen.get(id(node))
    if done is not None:
        return done
    if isinstance(node, yaml.MappingNode):
        entries: dict[str, YEntry] = {}
        for k, v in node.value:
            key = str(k.value)
            if key in entries:
                raise PlayError("", "", [Diagnostic("yaml", f"duplicate key '{key}'", _span(k),
                                                    f"'{key}' is already set on line {entries[key].key_span.line}")])
            entries[key] = YEntry(key, _span(k), _convert(v, lines, scalars, seen))
        out = YValue(entries, _span(node))
    elif isinstance(node, yaml.SequenceNode):
        out = YValue([_convert(v, lines, scalars, seen) for v in node.value], _span(node))
    else:
        style = node.style or None  # plain: None from PyYAML, '' from libyaml
        out = YValue(_scalar(node, scalars), _span(node), str(node.value), _text_origin(node, lines), style)
    seen[id(node)] = out
    return out


def _scalar(node: yaml.ScalarNode, scalars: SafeConstructor) -> Any:
    """The scalar's value as YAML types it; an explicit tag (`!!int x`, `!custom`) that cannot make
    one is an error at the value, not a crash."""
    if not node.tag:
        return node.value
    try:
        return scalars.construct_object(node)
    except (yaml.YAMLError, ValueError, KeyError, IndexError, AttributeError, TypeError, OverflowError) as e:
        unknown = isinstance(e, yaml.constructor.ConstructorError) and "could not determine" in str(e)
        text = str(node.value)
        shown = text if len(text) <= 30 and "\n" not in text else text.split("\n", 1)[0][:27] + "..."
        message = (f"unknown YAML tag '{node.tag}'" if unknown
                   else f"'{shown}' is not a valid {node.tag.rsplit(':', 1)[-1]} value")
        span = _span(node)
        if span.end_line != span.line:  # a block value: point at where it starts
            span = Span(span.line, span.col, span.line, span.col + 1)
        raise PlayError("", "", [Diagnostic("yaml", message, span,
                                            "remove the tag: a Play's values need none")]) from None


def _text_origin(node: yaml.ScalarNode, lines: list[str]) -> LineMap | ColumnMap:
    """Where the scalar's own text starts, so positions inside it map to the file."""
    m = node.start_mark
    if node.style in ("|", ">"):
        # The text starts on the line after the indicator; every line is stripped of the same indent:
        # the one written in the header (`|4`: the key's indentation + 4), else the first line's.
        first = m.line + 1
        written = re.match(r"[|>][-+]?([1-9])?", lines[m.line][m.column:]) if m.line < len(lines) else None
        if written is not None and written.group(1):
            indent = _indent(lines[m.line]) + int(written.group(1))
        else:
            indent = 0
            for ln in lines[first:]:
                if ln.strip():
                    indent = len(ln) - len(ln.lstrip(" "))
                    break
        return LineMap(first + 1, indent + 1, indent)
    quote = 1 if node.style in ("'", '"') else 0
    if quote and m.line == node.end_mark.line and m.line < len(lines):
        cols = _quoted_columns(lines[m.line], m.column, node.style)
        if cols is not None:
            return ColumnMap(m.line + 1, cols)
    return LineMap(m.line + 1, m.column + 1 + quote, m.column + quote)


_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}


def _quoted_columns(line: str, start: int, style: str) -> tuple[int, ...] | None:
    """The file column (1-based) of each character of a one-line quoted scalar's value, or None when
    nothing in it is escaped (then every character is where it is written)."""
    cols: list[int] = []
    i = start + 1
    escaped = False
    while i < len(line):
        ch = line[i]
        if style == '"' and ch == "\\":
            step = _ESCAPE_LENGTH.get(line[i + 1:i + 2], 2)
            escaped = True
        elif style == "'" and line.startswith("''", i):
            step = 2
            escaped = True
        elif ch == style:
            break
        else:
            step = 1
        cols.append(i + 1)
        i += step
    return tuple(cols) if escaped else None
