"""Read a Play file: YAML with a position kept for every key and value.

`yaml.compose` gives nodes with marks; we turn them into `YValue`s so that the compiler can point
at the line of `account.leverage`, and so that the `blocks: |` text knows where it sits in the file.
"""
from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path
from typing import Any, Sequence

import attrs
import yaml
from yaml.constructor import SafeConstructor

from .diagnostics import Diagnostic, PlayError, source_lines
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
    # the file's lines, split once: diagnostics and passes index them instead of splitting again
    lines: tuple[str, ...] = attrs.field(eq=False, repr=False)

    @lines.default
    def _split(self) -> tuple[str, ...]:
        return tuple(source_lines(self.text))


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


# ---- numbers as YAML 1.2 reads them ---------------------------------------------------------
# PyYAML reads YAML 1.1, whose numbers surprise: `1:30` is 90 (base 60), `1_000` is 1000, `012` is
# 10 (octal), `0b11` is 3, while `2e-4` is text (it wants 2.0e-4). A Play reads numbers as YAML 1.2's
# core schema, JSON and users do: `2e-4` is a number, `0x10` (16) and `0o17` (15) are integers,
# `012` is 12, and `1:30`, `1_000` and `0b11` are text (which a number setting then refuses, saying
# what YAML 1.1 would have made of it). `fmt` writes with the same rules, so it quotes text that
# would read back as a number. Booleans, null and dates are PyYAML's.
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
INT_1_2 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT_1_2 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def _yaml_1_2_resolvers() -> dict:
    """PyYAML's implicit resolvers with YAML 1.1's int and float rules swapped for YAML 1.2's."""
    table = {first: [(tag, rx) for tag, rx in rules if tag not in (_INT_TAG, _FLOAT_TAG)]
             for first, rules in yaml.resolver.Resolver.yaml_implicit_resolvers.items()}
    for tag, rx, firsts in ((_INT_TAG, INT_1_2, "-+0123456789"), (_FLOAT_TAG, FLOAT_1_2, "-+.0123456789")):
        for first in firsts:  # ints first: `12` matches both
            table.setdefault(first, []).append((tag, rx))
    return table


class PlayResolver(yaml.resolver.Resolver):
    """Tags plain scalars as a Play reads them (YAML 1.2 numbers)."""

    yaml_implicit_resolvers = _yaml_1_2_resolvers()


class PlayDumper(yaml.SafeDumper):
    """The dumper `fmt` writes settings with: it quotes text that a Play would read as a number."""

    yaml_implicit_resolvers = _yaml_1_2_resolvers()


_FLOAT_DIGITS = 309  # no float reaches 10**309; Python also refuses int() of 4,300+ digits


def yaml_1_2_int(text: str) -> int | float:
    """The integer a YAML 1.2 int means; one past any float is +-inf (settings then say it is not
    finite) instead of an integer of thousands of digits that Python cannot even print."""
    if INT_1_2.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a YAML 1.2 integer")
    if text[:2] in ("0x", "0o"):
        n = int(text[2:], 16 if text[1] == "x" else 8)
    else:
        sign = -1 if text[0] == "-" else 1
        digits = text.lstrip("+-").lstrip("0") or "0"
        if len(digits) > _FLOAT_DIGITS:
            return sign * math.inf
        n = sign * int(digits)
    if n.bit_length() > 1024:  # past the largest float
        return math.inf if n > 0 else -math.inf
    return n


def yaml_1_2_float(text: str) -> float:
    if FLOAT_1_2.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a YAML 1.2 float")
    low = text.lower()
    if low.endswith(".inf"):
        return -math.inf if low[0] == "-" else math.inf
    return math.nan if low == ".nan" else float(text)


class _Scalars(SafeConstructor):
    def construct_yaml_int(self, node: yaml.ScalarNode) -> int | float:
        return yaml_1_2_int(self.construct_scalar(node))

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        return yaml_1_2_float(self.construct_scalar(node))


_Scalars.add_constructor(_INT_TAG, _Scalars.construct_yaml_int)
_Scalars.add_constructor(_FLOAT_TAG, _Scalars.construct_yaml_float)


def reads_as_number(text: str) -> bool:
    """Whether a Play reads `text`, written plain, as a number."""
    return PlayResolver().resolve(yaml.ScalarNode, text, (True, False)) in (_INT_TAG, _FLOAT_TAG)


def yaml_1_1_number(text: str) -> int | float | None:
    """What YAML 1.1 (PyYAML) reads a plain scalar as when it is a number: 90 for `1:30`; else None.
    Only the scalar rules are applied: the text is never parsed as YAML (it may be anything)."""
    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))
    if tag not in (_INT_TAG, _FLOAT_TAG):
        return None
    try:
        value = SafeConstructor().construct_object(yaml.ScalarNode(tag, text))
    except (yaml.YAMLError, ValueError, OverflowError):  # e.g. an integer of 4,300+ digits
        return None
    if isinstance(value, int) and value.bit_length() >= 1024:  # past the largest float, as yaml_1_2_int
        return math.inf if value > 0 else -math.inf
    return value


# ---- composing the YAML, bounded ------------------------------------------------------------
# The values are built from YAML's event stream by a loop, not by recursion, with three bounds:
# how deep values nest (a Play's settings nest three levels: account.fees.maker), an alias inside
# the value it names (`&r [*r]`, a value that would never end), and how many values aliases repeat
# in all (nested aliases, "billion laughs", name 10^9 values in a few lines). An alias is the very
# value its anchor made, shared, never copied.
MAX_YAML_DEPTH = 32
MAX_ALIASED_VALUES = 10_000

# libyaml parses ~20x faster than pure-Python PyYAML; PyYAML's own messages are better, so a
# broken file is parsed again by the pure-Python parser to describe it.
_FAST_PARSER = getattr(yaml, "CBaseLoader", None)


@attrs.define
class _Open:
    """A mapping or sequence whose end has not come yet."""

    start: yaml.Event
    items: list[YValue] | dict[str, YEntry]
    size: int = 1  # values in it, counting each alias as all the values it repeats
    key: tuple[str, Span] | None = None  # a mapping's key waiting for its value


@attrs.frozen
class _Anchor:
    value: YValue | None  # None while the anchored mapping or sequence is still open
    size: int
    span: Span


def _compose(text: str, lines: Sequence[str]) -> YValue | None:
    if _FAST_PARSER is not None:
        try:
            return _build(yaml.parse(text, Loader=_FAST_PARSER), lines)
        except yaml.YAMLError:
            pass
    return _build(yaml.parse(text, Loader=yaml.BaseLoader), lines)


def _refuse(message: str, span: Span, hint: str) -> PlayError:
    return PlayError("", "", [Diagnostic("yaml", message, span, hint)])


def _mark_span(start: yaml.Mark, end: yaml.Mark) -> Span:
    return Span(start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def _build(events, lines: Sequence[str]) -> YValue | None:
    """The first document's value, built from YAML events."""
    scalars, resolver = _Scalars(), PlayResolver()
    anchors: dict[str, _Anchor] = {}
    stack: list[_Open] = []
    root: YValue | None = None
    documents = 0
    repeated = 0  # values repeated by aliases so far

    def attach(value: YValue, size: int, span: Span, key_text: str | None) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        top = stack[-1]
        top.size += size
        if isinstance(top.items, list):
            top.items.append(value)
        elif top.key is None:
            if key_text is None:
                raise _refuse("a key must be a plain word, not a list or a mapping", span,
                              "write 'key: value' with a name such as 'equity' before the ':'")
            if key_text in top.items:
                raise _refuse(f"duplicate key '{key_text}'", span,
                              f"'{key_text}' is already set on line {top.items[key_text].key_span.line}")
            top.key = (key_text, span)
        else:
            key, key_span = top.key
            top.items[key] = YEntry(key, key_span, value)
            top.key = None

    def open_anchor(name: str | None, span: Span) -> None:
        if name is None:
            return
        if name in anchors:
            raise _refuse(f"anchor '&{name}' is set twice (first on line {anchors[name].span.line})", span,
                          "give each anchor its own name")
        anchors[name] = _Anchor(None, 0, span)

    def close_anchor(name: str | None, value: YValue, size: int) -> None:
        if name is not None:
            anchors[name] = _Anchor(value, size, anchors[name].span)

    for ev in events:
        if isinstance(ev, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                m = ev.start_mark
                raise _refuse("a Play is one YAML document; a second one starts here", Span(m.line + 1, m.column + 1,
                              m.line + 1, m.column + 2), "remove this '---' line and what follows it, or make it "
                              "a Play file of its own")
        elif isinstance(ev, yaml.ScalarEvent):
            tag = ev.tag if ev.tag not in (None, "!") else resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit)
            node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
            span = _span(node)
            is_key = bool(stack) and isinstance(stack[-1].items, dict) and stack[-1].key is None
            # a key is the text written (`<<` is a key like any other, not a merge)
            typed = ev.value if is_key else _scalar(node, scalars)
            value = YValue(typed, span, str(ev.value), _text_origin(node, lines), ev.style or None)
            open_anchor(ev.anchor, span)
            close_anchor(ev.anchor, value, 1)
            attach(value, 1, span, str(ev.value))
        elif isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            span = _mark_span(ev.start_mark, ev.end_mark)
            if len(stack) >= MAX_YAML_DEPTH:
                raise _refuse(f"this value nests more than {MAX_YAML_DEPTH} levels deep", span,
                              "a Play's settings nest three levels (account: fees: maker: ...); remove the "
                              "extra brackets or indentation")
            open_anchor(ev.anchor, span)
            stack.append(_Open(ev, [] if isinstance(ev, yaml.SequenceStartEvent) else {}))
        elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            done = stack.pop()
            value = YValue(done.items, _mark_span(done.start.start_mark, ev.end_mark))
            close_anchor(done.start.anchor, value, done.size)
            attach(value, done.size, value.span, None)
        elif isinstance(ev, yaml.AliasEvent):
            span = _mark_span(ev.start_mark, ev.end_mark)
            named = anchors.get(ev.anchor)
            if named is None:
                raise _refuse(f"alias '*{ev.anchor}' names no anchor: '&{ev.anchor}' is not set above it", span,
                              f"write '&{ev.anchor}' before the value it names, or write the value out here")
            if named.value is None:
                raise _refuse(f"alias '*{ev.anchor}' is inside the value it names (anchored on line "
                              f"{named.span.line}), which would never end", span,
                              "write the value out instead of the alias")
            repeated += named.size
            if repeated > MAX_ALIASED_VALUES:
                raise _refuse(f"aliases repeat more than {MAX_ALIASED_VALUES:,} values by here (an alias of an "
                              "alias multiplies them)", span,
                              "write the values out; a Play needs few aliases, and none of aliases")
            key_text = named.value.raw if not isinstance(named.value.value, (dict, list)) else None
            attach(named.value, named.size, span, key_text)
    return root


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
    lines = tuple(source_lines(text))  # split once, for every later pass and message
    try:
        root = _compose(text, lines)
    except yaml.MarkedYAMLError as e:
        raise PlayError(path, text, [_yaml_problem(e, lines)], lines) from None
    except PlayError as e:  # re-raise with the file it belongs to
        raise PlayError(path, text, e.diagnostics, lines) from None
    if root is None:
        raise PlayError(path, text, [Diagnostic("yaml", "the file is empty; a Play needs 'play', 'market' and 'blocks'",
                                                Span(1, 1, 1, 1), "start from an example such as plays/ema_cross.yml")],
                        lines)
    if not root.is_map:
        span = root.span
        if span.line > len(lines):  # an empty document (`---` alone) ends past the last line
            span = Span(len(lines), 1, len(lines), 2)
        raise PlayError(path, text, [Diagnostic("yaml", "a Play is a YAML mapping of keys such as 'play', 'market' and 'blocks'", span,
                                                "write 'play: NAME', 'market:' and 'blocks: |' at the start of lines")],
                        lines)
    return PlaySource(path, text, root, lines)


def _yaml_problem(e: yaml.MarkedYAMLError, lines: Sequence[str]) -> Diagnostic:
    """PyYAML's message in a trader's words where we know them, at the place the fix goes."""
    mark = e.problem_mark or e.context_mark
    problem = e.problem or e.context or "invalid YAML"
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


def _literal_first_line(lines: Sequence[str], bad: int) -> int | None:
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


def _text_origin(node: yaml.ScalarNode, lines: Sequence[str]) -> LineMap | ColumnMap:
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
            for i in range(first, len(lines)):  # indexed: a slice would copy the rest of the file
                if lines[i].strip():
                    indent = _indent(lines[i])
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
