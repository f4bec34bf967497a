"""Read a Play file: YAML with a position kept for every key and value.

`yaml.compose` gives nodes with marks; we turn them into `YValue`s so that the compiler can point
at the line of `account.leverage`, and so that the `blocks: |` text knows where it sits in the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import yaml
from yaml.constructor import SafeConstructor

from .diagnostics import Diagnostic, PlayError
from .spans import LineMap, Span


@attrs.frozen(slots=True)
class YValue:
    """A YAML value with its span. Mappings hold `dict[str, YEntry]`, sequences `list[YValue]`."""

    value: Any
    span: Span
    raw: str = ""  # the scalar exactly as written (for features and blocks)
    where: LineMap | None = None  # where a scalar's text starts in the file
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
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlayError(p, "", [Diagnostic("file", "no such file", None, "check the path")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlayError(p, "", [Diagnostic("file", f"cannot read the file: {e}", None,
                                           "a Play is a UTF-8 text file")]) from None
    return parse_play_text(text, p)


# libyaml composes the same nodes and marks ~20x faster than pure-Python PyYAML (plain scalars
# report style '' instead of None); PyYAML's own messages are better, so a broken file is composed
# again by the pure-Python loader to describe it.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str) -> yaml.Node | None:
    if _FAST_LOADER is not yaml.SafeLoader:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse_play_text(text: str, path: str = "<play>") -> PlaySource:
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        span = Span(mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2) if mark else None
        problem = e.problem or e.context or "invalid YAML"
        raise PlayError(path, text, [Diagnostic("yaml", f"invalid YAML: {problem}", span,
                                                "check indentation and that every 'key: value' has a space after ':'")]) from None
    if node is None:
        raise PlayError(path, text, [Diagnostic("yaml", "the file is empty; a Play needs 'play', 'market' and 'blocks'", None,
                                                "start from an example such as plays/ema_cross.yml")])
    lines = text.splitlines()
    try:
        root = _convert(node, lines, SafeConstructor())
    except PlayError as e:  # re-raise with the file it belongs to
        raise PlayError(path, text, e.diagnostics) from None
    if not root.is_map:
        raise PlayError(path, text, [Diagnostic("yaml", "a Play is a YAML mapping of keys such as 'play', 'market' and 'blocks'", root.span,
                                                "write 'play: NAME', 'market:' and 'blocks: |' at the start of lines")])
    return PlaySource(path, text, root)


def _convert(node: yaml.Node, lines: list[str], scalars: SafeConstructor) -> YValue:
    if isinstance(node, yaml.MappingNode):
        entries: dict[str, YEntry] = {}
        for k, v in node.value:
            key = str(k.value)
            if key in entries:
                raise PlayError("", "", [Diagnostic("yaml", f"duplicate key '{key}'", _span(k),
                                                    f"'{key}' is already set on line {entries[key].key_span.line}")])
            entries[key] = YEntry(key, _span(k), _convert(v, lines, scalars))
        return YValue(entries, _span(node))
    if isinstance(node, yaml.SequenceNode):
        return YValue([_convert(v, lines, scalars) for v in node.value], _span(node))
    value = scalars.construct_object(node) if node.tag else node.value
    style = node.style or None  # plain: None from PyYAML, '' from libyaml
    return YValue(value, _span(node), str(node.value), _text_origin(node, lines), style)


def _text_origin(node: yaml.ScalarNode, lines: list[str]) -> LineMap:
    """Where the scalar's own text starts, so positions inside it map to the file."""
    m = node.start_mark
    if node.style in ("|", ">"):
        # The text starts on the line after the indicator; every line is stripped of the same indent.
        first = m.line + 1
        indent = 0
        for ln in lines[first:]:
            if ln.strip():
                indent = len(ln) - len(ln.lstrip(" "))
                break
        return LineMap(first + 1, indent + 1, indent)
    quote = 1 if node.style in ("'", '"') else 0
    return LineMap(m.line + 1, m.column + 1 + quote, m.column + quote)
