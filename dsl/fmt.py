"""The canonical text of a Play: `playdeck fmt`.

Expressions get the fewest parentheses that keep their tree, numbers keep their spelling, options
come in one order. Parsing the output gives the same syntax tree (and so the same IR).
"""
from __future__ import annotations

from typing import Any

import yaml

from . import syntax as s
from .source import PlaySource, YValue

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
    if a.kind in ("stop_loss", "take_profit", "trail"):
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


def format_blocks(blocks: tuple[s.Block, ...] | list[s.Block]) -> str:
    out: list[str] = []

    def action(a: s.Action, depth: int) -> None:
        out.append("  " * depth + format_action(a))
        for child in a.children:
            action(child, depth + 1)

    for i, b in enumerate(blocks):
        if i:
            out.append("")
        out.append(f"block {b.name}:")
        for c in b.cases:
            out.append("  otherwise:" if c.cond is None else f"  when {format_expr(c.cond)}:")
            for a in c.actions:
                action(a, 2)
    return "\n".join(out) + "\n"


def format_feature(f: s.FeatureDef) -> str:
    return format_expr(f.expr) + (f" @ {f.tf}" if f.tf is not None else "")


# ---- the whole file ---------------------------------------------------------------------------

_KEY_ORDER = ["play", "description", "market", "account", "features", "blocks",
              "symbol", "exec", "timeframes", "equity", "leverage", "fees", "maker", "taker",
              "slippage_bps", "intrabar", "instrument", "tick", "qty_step", "min_qty"]


def _ordered(entries: dict) -> list:
    """Known keys in canonical order; a user's own keys (timeframe names) keep their order."""
    items = list(entries.values())
    return sorted(items, key=lambda e: (_KEY_ORDER.index(e.key) if e.key in _KEY_ORDER else 99, items.index(e)))


def _scalar(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return number_text(v)
    # Everything else through YAML's own writer: a bare `1e-05` would read back as text in YAML 1.1
    # (PyYAML wants `1.0e-05`), so a float must not be spelled by repr.
    return yaml.safe_dump(v, default_flow_style=True, width=10**9, allow_unicode=True).strip().removesuffix("...").strip()


def _flow(v: YValue) -> str:
    if v.is_map:
        return "{" + ", ".join(f"{e.key}: {_flow(e.value)}" for e in _ordered(v.value)) + "}"
    if isinstance(v.value, list):
        return "[" + ", ".join(_flow(x) for x in v.value) + "]"
    return _scalar(v.value)


def format_play(src: PlaySource, features: list[s.FeatureDef], blocks: tuple[s.Block, ...]) -> str:
    """The canonical text of a Play that has already been checked."""
    out: list[str] = []
    for e in _ordered(src.root.value):
        if e.key == "features":
            if not features:
                continue
            out.append("features:")
            out.extend(f"  {f.name}: {format_feature(f)}" for f in features)
        elif e.key == "blocks":
            out.append("blocks: |")
            out.extend(("  " + ln) if ln else "" for ln in format_blocks(blocks).splitlines())
        elif e.value.is_map:
            out.append(f"{e.key}:")
            out.extend(f"  {sub.key}: {_flow(sub.value)}" for sub in _ordered(e.value.value))
        else:
            out.append(f"{e.key}: {_flow(e.value)}")
    return "\n".join(out) + "\n"
