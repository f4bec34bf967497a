"""The canonical text of a Play: `playdeck fmt`.

Expressions get the fewest parentheses that keep their tree, numbers keep their spelling, options
come in one order. Parsing the output gives the same syntax tree (and so the same IR).
"""
from __future__ import annotations

import bisect
from typing import Any, Sequence

import yaml

from . import syntax as s
from .source import PlayDumper, PlaySource, YValue
from .limits import room_to_recurse
from .vocabulary import PROTECTION_KINDS

# Binding strength of each node as printed; a child weaker than its slot needs parentheses.
_OR, _AND, _NOT, _CMP, _ARITH, _TERM, _NEG, _POSTFIX, _ATOM = range(1, 10)


def _prec(e: s.Expr) -> int:
    if isinstance(e, s.Or):
        return _OR
    if isinstance(e, s.And):
        return _AND
    if isinstance(e, s.Not):
        return _NOT
    if isinstance(e, (s.Compare, s.Cross)):
        return _CMP
    if isinstance(e, s.BinOp):
        return _ARITH if e.op in "+-" else _TERM
    if isinstance(e, s.Neg):
        return _NEG
    if isinstance(e, (s.Offset, s.Field)):
        return _POSTFIX
    return _ATOM


def _wrap(e: s.Expr, at_least: int) -> str:
    text = format_expr(e)
    return f"({text})" if _prec(e) < at_least else text


def number_text(value: float, text: str = "") -> str:
    if text:
        return text
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def format_expr(e: s.Expr) -> str:
    if isinstance(e, s.Num):
        return number_text(e.value, e.text)
    if isinstance(e, s.Pct):
        return e.text or number_text(e.value) + "%"
    if isinstance(e, s.Name):
        return e.id
    if isinstance(e, s.Call):
        return f"{e.fn}({', '.join(format_expr(a) for a in e.args)})"
    if isinstance(e, s.Field):
        return f"{_wrap(e.obj, _POSTFIX)}.{e.name}"
    if isinstance(e, s.Offset):
        return f"{_wrap(e.obj, _POSTFIX)}[{e.bars}]"
    if isinstance(e, s.Neg):
        return f"-{_wrap(e.operand, _NEG)}"
    if isinstance(e, s.Not):
        return f"not {_wrap(e.operand, _NOT)}"
    if isinstance(e, s.BinOp):
        p = _prec(e)
        return f"{_wrap(e.left, p)} {e.op} {_wrap(e.right, p + 1)}"
    if isinstance(e, s.Compare):
        return f"{_wrap(e.left, _ARITH)} {e.op} {_wrap(e.right, _ARITH)}"
    if isinstance(e, s.Cross):
        return f"{_wrap(e.left, _ARITH)} crosses_{e.direction} {_wrap(e.right, _ARITH)}"
    if isinstance(e, s.And):
        return f"{_wrap(e.left, _AND)} and {_wrap(e.right, _NOT)}"
    if isinstance(e, s.Or):
        return f"{_wrap(e.left, _OR)} or {_wrap(e.right, _AND)}"
    raise TypeError(f"no formatting rule for {type(e).__name__}")


_OPTION_ORDER = {"at": 0, "limit": 1, "expire": 2, "tif": 3, "tag": 4}


def _format_size(size: s.Size, action: str) -> str:
    if size.kind == "qty":
        return f"qty {format_expr(size.value)}"
    if size.kind == "usdt":
        return f"usdt {format_expr(size.value)}"
    pct = format_expr(size.value)
    if size.kind == "equity":
        return f"{pct} equity"
    if size.kind == "risk":
        return f"risk {pct}"
    return pct if action == "partial_close" else f"{pct} of position"


def _format_option(o: s.Option) -> str:
    if o.kind in ("at", "limit"):
        return f"{o.kind} {format_expr(o.value)}"
    if o.kind == "expire":
        return f"expire {number_text(o.value)} bars"
    if o.kind == "tif":
        return str(o.value)
    return f"as {o.value}"


def format_action(a: s.Action) -> str:
    if a.kind in PROTECTION_KINDS:
        return f"{a.kind} {format_expr(a.value)}"
    if a.kind == "cancel":
        return f"cancel {a.target if a.target is not None else 'all'}"
    words = [a.kind]
    if a.side is not None:
        words.append(a.side)
    if a.size is not None:
        words.append(_format_size(a.size, a.kind))
    for o in sorted(a.options, key=lambda o: _OPTION_ORDER[o.kind]):
        words.append(_format_option(o))
    return " ".join(words)


def _block_lines(blocks) -> list[tuple[str, int | None]]:
    """Canonical lines of the blocks, each with the source line it stands for (None for spacing)."""
    out: list[tuple[str, int | None]] = []

    def line_of(node) -> int | None:
        return node.span.line if node.span is not None else None

    def action(a: s.Action, depth: int) -> None:
        out.append(("  " * depth + format_action(a), line_of(a)))
        for child in a.children:
            action(child, depth + 1)

    for i, b in enumerate(blocks):
        if i:
            out.append(("", None))
        out.append((f"block {b.name}:", line_of(b)))
        for c in b.cases:
            out.append(("  otherwise:" if c.cond is None else f"  when {format_expr(c.cond)}:", line_of(c)))
            for a in c.actions:
                action(a, 2)
    return out


def format_blocks(blocks: tuple[s.Block, ...] | list[s.Block]) -> str:
    return "\n".join(text for text, _ in _block_lines(blocks)) + "\n"


def format_feature(f: s.FeatureDef) -> str:
    return format_expr(f.expr) + (f" @ {f.tf}" if f.tf is not None else "")


# ---- the whole file ---------------------------------------------------------------------------

_KEY_ORDER = ["play", "description", "market", "account", "features", "blocks",
              "symbol", "exec", "timeframes", "equity", "leverage", "fees", "maker", "taker",
              "slippage_bps", "intrabar", "instrument", "tick", "qty_step", "min_qty"]


def _ordered(entries: dict) -> list:
    """Known keys in canonical order; a user's own keys (timeframe names) keep their order."""
    order = {key: i for i, key in enumerate(_KEY_ORDER)}
    ranked = sorted(enumerate(entries.values()), key=lambda ie: (order.get(ie[1].key, 99), ie[0]))
    return [e for _, e in ranked]


def _scalar(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return number_text(v)
    # Everything else through YAML's own writer: a bare `1e-05` would read back as text in YAML 1.1
    # (PyYAML wants `1.0e-05`), so a float must not be spelled by repr.
    return yaml.dump(v, Dumper=PlayDumper, default_flow_style=True, width=10**9,
                     allow_unicode=True).strip().removesuffix("...").strip()


def _flow(v: YValue) -> str:
    if v.is_map:
        return "{" + ", ".join(f"{e.key}: {_flow(e.value)}" for e in _ordered(v.value)) + "}"
    if isinstance(v.value, list):
        return "[" + ", ".join(_flow(x) for x in v.value) + "]"
    return _scalar(v.value)


@room_to_recurse()
def format_play(src: PlaySource, features: list[s.FeatureDef], blocks: tuple[s.Block, ...]) -> str:
    """The canonical text of a Play that has already been checked. Comments are kept: each goes
    before the line it preceded in the source, or at the end of the line it ended."""
    out: list[tuple[str, int | None]] = []
    blocks_lines: range = range(0)
    for e in _ordered(src.root.value):
        if e.value.value is None and e.key in ("account", "description"):
            continue  # left empty: the defaults, which the canonical form does not spell out
        if e.key == "features":
            if not features:
                continue
            out.append(("features:", e.key_span.line))
            out.extend((f"  {f.name}: {format_feature(f)}", f.span.line if f.span else None) for f in features)
        elif e.key == "blocks":
            out.append(("blocks: |", e.key_span.line))
            out.extend((("  " + ln) if ln else "", anchor) for ln, anchor in _block_lines(blocks))
            # the scalar ends where the next line starts less indented (end column 1): not that line
            end = e.value.span.end_line + (0 if e.value.span.end_col == 1 else 1)
            blocks_lines = range(e.value.span.line + 1, end)
        elif e.value.is_map:
            out.append((f"{e.key}:", e.key_span.line))
            out.extend((f"  {sub.key}: {_flow(sub.value)}", sub.key_span.line) for sub in _ordered(e.value.value))
        elif e.key == "play" and isinstance(e.value.value, bool):
            out.append((f"play: {e.value.raw}", e.key_span.line))  # `play: on` is the name 'on', not true
        else:
            out.append((f"{e.key}: {_flow(e.value)}", e.key_span.line))
    return "\n".join(_with_comments(out, _comments(src.lines, blocks_lines))) + "\n"


def _comments(lines: Sequence[str], blocks_lines: range) -> list[tuple[int, str, bool, bool]]:
    """(line, '# text', trailing, in the blocks) for every comment of the file."""
    found = []
    for number, line in enumerate(lines, 1):
        col = line.find("#") if number in blocks_lines else _yaml_comment_col(line)
        if col is None or col < 0:
            continue
        found.append((number, line[col:].rstrip(), bool(line[:col].strip()), number in blocks_lines))
    return found


def _yaml_comment_col(line: str) -> int | None:
    """Where a YAML comment starts: a '#' at the line start or after a space, outside quotes. A
    quote opens a quoted scalar only where a value starts (`it's` in a plain value is text)."""
    quote = None
    prev = ""  # the last character that is not a space
    for i, ch in enumerate(line):
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"" and prev in ("", ":", "-", "[", "{", ",", "?"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
        if not ch.isspace():
            prev = ch
    return None


def _with_comments(lines: list[tuple[str, int | None]], comments) -> list[str]:
    anchors = sorted({a for _, a in lines if a is not None})
    printed = set(anchors)
    before: dict[int, list[str]] = {}
    after: dict[int, str] = {}
    tail: list[str] = []
    for number, text, trailing, in_blocks in comments:
        # found by bisection: a linear scan per comment would make fmt quadratic in the file
        if trailing:
            # the end of a line that is printed, or of the line that now holds it (a flow mapping)
            below = bisect.bisect_left(anchors, number)
            owner = number if number in printed else (anchors[below - 1] if below else None)
            if owner is not None:
                after[owner] = f"{after[owner]} {text}" if owner in after else text
                continue
        # a comment belongs to the next line that is printed (keys may move, comments go with them)
        at = (bisect.bisect_right if trailing else bisect.bisect_left)(anchors, number)
        nxt = anchors[at] if at < len(anchors) else None
        if nxt is None:
            tail.append(("  " if in_blocks else "") + text)
        else:
            before.setdefault(nxt, []).append(text)
    out = []
    for text, anchor in lines:
        if anchor is not None:
            indent = text[: len(text) - len(text.lstrip(" "))]
            out.extend(indent + c for c in before.pop(anchor, []))
            if anchor in after:
                text = f"{text}  {after.pop(anchor)}"
        out.append(text)
    return out + tail
