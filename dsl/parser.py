"""Parse the block language (and feature expressions) into the syntax tree of `syntax.py`.

The grammar is built once. Parse failures become `Diagnostic`s in words a trader understands,
positioned in the Play file through a `LineMap`.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterator

import attrs
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import Indenter

from . import syntax as s
from .diagnostics import Diagnostic
from .spans import IDENTITY, LineMap, Span

GRAMMAR = Path(__file__).with_name("play.lark")


class IndentationProblem(Exception):
    """A dedent to a column that no enclosing level opened. Columns are 0-based indents in the
    parsed text; `_run` turns them into columns of the Play file."""

    def __init__(self, line: int, col: int, levels: list[int]):
        super().__init__(f"dedent to column {col} at line {line}")
        self.line, self.col, self.levels = line, col, levels


class PlayIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token: Token) -> Iterator[Token]:
        # Same as lark's, but a dedent to a column that was never opened says where it happened.
        if self.paren_level > 0:
            return
        yield token
        indent_str = token.rsplit("\n", 1)[1]
        indent = indent_str.count(" ") + indent_str.count("\t") * self.tab_len
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token.new_borrow_pos(self.INDENT_type, indent_str, token)
        else:
            while indent < self.indent_level[-1]:
                self.indent_level.pop()
                yield Token.new_borrow_pos(self.DEDENT_type, indent_str, token)
            if indent != self.indent_level[-1]:
                raise IndentationProblem(token.end_line, token.end_column, list(self.indent_level))


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(
        GRAMMAR.read_text(), parser="lalr", postlex=PlayIndenter(), start=["start", "feature"],
        propagate_positions=True, maybe_placeholders=False,
    )


class ParseFailure(Exception):
    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def parse_blocks(text: str, where: LineMap = IDENTITY) -> tuple[s.Block, ...]:
    """Parse the `blocks:` text. Raises ParseFailure with a diagnostic positioned via `where`."""
    if not text.endswith("\n"):
        text += "\n"
    tree = _run(text, "start", where)
    return tuple(_Build(where).transform(tree))


def parse_feature(text: str, name: str, where: LineMap = IDENTITY) -> s.FeatureDef:
    """Parse one feature's value: `expr` or `expr @ tf`."""
    if "\n" in text.strip():
        raise ParseFailure(Diagnostic("syntax", "a feature is one expression on one line",
                                      where.span(1, 1, 1, 2), "write 'name: expression' on one line; "
                                      "split a long one into several features"))
    tree = _run(text.strip(), "feature", where)
    expr, tf, tf_span = _Build(where).transform(tree)
    return s.FeatureDef(name, expr, tf, expr.span, tf_span)


def _run(text: str, start: str, where: LineMap):
    try:
        return _lark().parse(text, start=start)
    except IndentationProblem as e:
        # Say columns of the Play file: the embedded text lost the YAML indentation.
        span = where.span(e.line, e.col, e.line, e.col + 1)
        levels = ", ".join(str(where.point(e.line, lvl + 1)[1]) for lvl in e.levels)
        raise ParseFailure(Diagnostic("indent", f"inconsistent indentation: this line starts at column "
                                      f"{span.col}, which matches no enclosing level (columns {levels})",
                                      span, "indent every line of a level by the same number of spaces")) from None
    except UnexpectedInput as e:
        raise ParseFailure(_describe(e, text, where)) from None


# ---- friendly syntax errors -------------------------------------------------------------------

_ACTIONS = ("market", "limit", "stop", "scale", "partial_close", "close", "cancel", "stop_loss",
            "take_profit", "trail")
_OPERATORS = {"+", "-", "*", "/", "and", "or", "crosses_above", "crosses_below", "[", ".", "COMP_OP"}
_WORDS = {  # named terminals, in the order they are listed
    "_INDENT": "an indented line", "_DEDENT": "a line indented less", "NAME": "a name",
    "NUMBER": "a number", "PERCENT": "a percentage such as 50%", "TFLIT": "a timeframe such as 4h",
    "BARS": "'bars'", "ALL": "'all'", "_NL": "the end of the line", "$END": "the end of the text",
}


@lru_cache(maxsize=1)
def _literals() -> dict[str, str]:
    """Terminal name -> the keyword or symbol it stands for (`__ANON_0` -> `at`)."""
    from lark.lexer import PatternStr

    return {t.name: t.pattern.value for t in _lark().terminals if isinstance(t.pattern, PatternStr)}


def _describe_expected(expected: set[str]) -> str:
    lits = _literals()
    exp = {lits.get(t, t) for t in expected}
    exp.discard("__IGNORE_0")
    parts: list[str] = []
    if sum(a in exp for a in _ACTIONS) >= 5:
        parts.append("an action such as " + ", ".join(f"'{a}'" for a in _ACTIONS))
        exp -= set(_ACTIONS)
    if exp & {"when", "otherwise"}:
        parts.append("a case ('when CONDITION:' or 'otherwise:')")
        exp -= {"when", "otherwise"}
    if "SIDE" in exp:
        parts.append("'buy' or 'sell'")
        exp.discard("SIDE")
    if exp >= {"qty", "usdt", "risk"}:
        parts.append("a size ('qty Q', 'usdt N', 'N% equity', 'risk N%' or 'N% of position')")
        exp -= {"qty", "usdt", "risk", "PERCENT"}
    if {"NAME", "NUMBER"} <= exp:
        parts.append("an expression (a number, a name such as close or a feature, '(' or '-')")
        exp -= {"NAME", "NUMBER", "PERCENT", "(", "-", "not"}
    if exp & {"at", "expire", "as", "TIF"}:
        parts.append("an option ('at PRICE', 'limit PRICE', 'expire N bars', 'post_only', 'ioc', "
                     "'fok' or 'as TAG')")
        exp -= {"at", "expire", "as", "TIF", "limit"}
    if exp & _OPERATORS:
        parts.append("an operator")
        exp -= _OPERATORS | {"-", "(", "<", ">"}
    if "block" in exp:
        parts.append("'block NAME:'")
        exp.discard("block")
    for name, words in _WORDS.items():
        if name in exp:
            parts.append(words)
            exp.discard(name)
    parts.extend(f"'{t}'" for t in sorted(exp) if not t.startswith("_"))
    if not parts:
        return "something else"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _acceptable(e: UnexpectedInput) -> set[str]:
    """What the parser could take here. A token refused by the contextual lexer reports the lexer's
    set, which also holds the newline the Indenter always accepts; and a state that would only
    reduce lists every lookahead LALR merged into it (')' or '@' after `qty 1`). So feed each
    candidate to a copy of the parser and keep the ones it shifts."""
    ip = getattr(e, "interactive_parser", None)
    if ip is not None:
        try:
            return set(ip.accepts())
        except Exception:  # noqa: BLE001 - a worse message is better than no message
            pass
    state = getattr(e, "state", None)
    try:
        keys = state.parse_conf.parse_table.states[state.position].keys()
    except AttributeError:
        return set(e.expected)
    return {k for k in keys if k.isupper() or k.startswith("_") or k == "$END"}


def _found(tok: Token) -> str:
    if tok.type == "_NL":
        return "the end of the line"
    if tok.type == "$END":
        return "the end of the text"
    if tok.type == "_INDENT":
        return "an indented line"
    if tok.type == "_DEDENT":
        return "a line indented less"
    return f"'{tok}'"


def _describe(e: UnexpectedInput, text: str, where: LineMap) -> Diagnostic:
    lines = text.splitlines() or [""]
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "?"
        msg = f"unexpected character '{ch}'"
        expected = _acceptable(e) if getattr(e, "interactive_parser", None) is not None else set(e.allowed or ())
        if expected:
            msg += "; expected " + _describe_expected(expected)
        return Diagnostic("syntax", msg, where.span(e.line, e.column, e.line, e.column + 1),
                          f"'{ch}' has no meaning here: names are letters, digits and '_', numbers are "
                          "written like 1.5 or 2%, and comments start with '#'")
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type in ("_INDENT", "_DEDENT"):
            line, col = tok.end_line, tok.end_column
        elif tok.type == "$END" or tok.line is None:
            line = len(lines)
            col = len(lines[-1]) + 1
        elif tok.type == "_NL":
            line, col = tok.line, tok.column
        else:
            line, col = tok.line, tok.column
        width = max(1, len(str(tok))) if tok.type not in ("_NL", "$END", "_INDENT", "_DEDENT") else 1
        expected = _acceptable(e)
        msg = f"unexpected {_found(tok)}; expected {_describe_expected(expected)}"
        hint = _hint(tok, {_literals().get(t, t) for t in expected})
        return Diagnostic("syntax", msg, where.span(line, col, line, col + width), hint)
    if isinstance(e, UnexpectedEOF):
        line = len(lines)
        return Diagnostic("syntax", "unexpected end of the text; expected "
                          + _describe_expected(set(e.expected)),
                          where.span(line, len(lines[-1]) + 1, line, len(lines[-1]) + 2), _LAYOUT)
    return Diagnostic("syntax", str(e), None, _LAYOUT)


_LAYOUT = ("a block is 'block NAME:', then its cases 'when CONDITION:' (or 'otherwise:') indented under it, "
           "then each case's actions indented under the case")


def _hint(tok: Token, expected: set[str]) -> str:
    """Every syntax error gets a hint; the most specific rule that fits wins."""
    if tok.type == "_INDENT":
        return "only attached actions (stop_loss, take_profit, trail) are indented under an action"
    if ":" in expected and tok.type == "_NL":
        return "a 'when' condition ends with ':'"
    if "SIDE" in expected:
        return "write the side right after the order type, e.g. 'market buy qty 1'"
    if {"qty", "usdt", "risk"} <= expected:
        return "e.g. 'qty 0.01', 'usdt 500', '10% equity', 'risk 1%'"
    if "BARS" in expected:
        return "write 'expire N bars'"
    if tok.type == "COMP_OP" and "COMP_OP" not in expected:
        return "comparisons do not chain: write 'a < b and b < c'"
    if expected & {")", ","} and not expected & {"at", "as", "when"}:
        return "close every '(' with ')'; separate a call's arguments with ',', e.g. ema(close, 21)"
    if sum(a in expected for a in _ACTIONS) >= 5:
        return "an action line starts with what to do, e.g. 'market buy 10% equity', 'close' or 'cancel all'"
    if expected & {"at", "expire", "as", "TIF"}:
        return ("options come after the size: 'at PRICE', 'limit PRICE' (stop-limit), 'expire N bars', "
                "'post_only', 'ioc' or 'fok' (orders are GTC unless told), 'as TAG'")
    return _LAYOUT


# ---- tree -> syntax nodes ---------------------------------------------------------------------

@v_args(meta=True)
class _Build(Transformer):
    def __init__(self, where: LineMap):
        super().__init__()
        self.where = where

    def _span(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        return self.where.span(meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, tok: Token) -> Span:
        return self.where.span(tok.line, tok.column, tok.end_line, tok.end_column)

    # entry points
    def start(self, meta, children):
        return children

    def feature(self, meta, children):
        expr = children[0]
        if len(children) == 1:
            return expr, None, None
        tf_tok = children[1]
        return expr, str(tf_tok), self._tok(tf_tok)

    def timeframe(self, meta, children):
        return children[0]

    # structure
    def block(self, meta, children):
        name, *cases = children
        return s.Block(str(name), tuple(cases), self._tok(name))

    def when_case(self, meta, children):
        cond, *actions = children
        return s.Case(cond, tuple(actions), self._case_span(meta, actions))

    def otherwise_case(self, meta, children):
        return s.Case(None, tuple(children), self._case_span(meta, children))

    def _case_span(self, meta, actions) -> Span | None:
        # The rule ends with the newline and dedent after its last action, which lark places on the
        # next line (past the end of the file for the last case): end at the last action instead.
        start = self._span(meta)
        last = actions[-1]
        while last.children:
            last = last.children[-1]
        if start is None or last.span is None:
            return start
        return Span(start.line, start.col, last.span.end_line, last.span.end_col)

    def action_line(self, meta, children):
        action, *nested = children
        return action if not nested else attrs.evolve(action, children=tuple(nested))

    # actions
    def _order(self, kind, meta, children):
        side, size, *options = children
        return s.Action(kind, side=str(side), size=size, options=tuple(options), span=self._span(meta))

    def market(self, meta, children):
        return self._order("market", meta, children)

    def limit(self, meta, children):
        return self._order("limit", meta, children)

    def stop(self, meta, children):
        return self._order("stop", meta, children)

    def scale(self, meta, children):
        return self._order("scale", meta, children)

    def partial_close(self, meta, children):
        amount, *options = children
        return s.Action("partial_close", size=amount, options=tuple(options), span=self._span(meta))

    def close(self, meta, children):
        return s.Action("close", options=tuple(children), span=self._span(meta))

    def cancel(self, meta, children):
        target = str(children[0])
        return s.Action("cancel", target=None if target == "all" else target, span=self._span(meta))

    def stop_loss(self, meta, children):
        return s.Action("stop_loss", value=children[0], span=self._span(meta))

    def take_profit(self, meta, children):
        return s.Action("take_profit", value=children[0], span=self._span(meta))

    def trail(self, meta, children):
        return s.Action("trail", value=children[0], span=self._span(meta))

    # options
    def opt_at(self, meta, children):
        return s.Option("at", children[0], self._span(meta))

    def opt_limit(self, meta, children):
        return s.Option("limit", children[0], self._span(meta))

    def opt_expire(self, meta, children):
        n = children[0]
        return s.Option("expire", float(n), self._span(meta))

    def opt_tif(self, meta, children):
        return s.Option("tif", str(children[0]), self._span(meta))

    def opt_tag(self, meta, children):
        return s.Option("tag", str(children[0]), self._span(meta))

    # sizes
    def _pct(self, tok: Token) -> s.Pct:
        return s.Pct(float(str(tok)[:-1]), str(tok), self._tok(tok))

    def size_qty(self, meta, children):
        return s.Size("qty", children[0], self._span(meta))

    def size_usdt(self, meta, children):
        return s.Size("usdt", children[0], self._span(meta))

    def size_equity(self, meta, children):
        return s.Size("equity", self._pct(children[0]), self._span(meta))

    def size_risk(self, meta, children):
        return s.Size("risk", self._pct(children[0]), self._span(meta))

    def size_position(self, meta, children):
        return s.Size("position", self._pct(children[0]), self._span(meta))

    def amount_pct(self, meta, children):
        return s.Size("position", self._pct(children[0]), self._span(meta))

    def amount_qty(self, meta, children):
        return s.Size("qty", children[0], self._span(meta))

    # expressions
    def or_op(self, meta, c):
        return s.Or(c[0], c[1], self._span(meta))

    def and_op(self, meta, c):
        return s.And(c[0], c[1], self._span(meta))

    def not_op(self, meta, c):
        return s.Not(c[0], self._span(meta))

    def compare(self, meta, c):
        return s.Compare(str(c[1]), c[0], c[2], self._span(meta))

    def crosses_above(self, meta, c):
        return s.Cross("above", c[0], c[1], self._span(meta))

    def crosses_below(self, meta, c):
        return s.Cross("below", c[0], c[1], self._span(meta))

    def binop(self, meta, c):
        return s.BinOp(str(c[1]), c[0], c[2], self._span(meta))

    def neg(self, meta, c):
        return s.Neg(c[1], self._span(meta))

    def offset(self, meta, c):
        obj = c[0]
        negative = any(isinstance(t, Token) and t.type == "MINUS" for t in c[1:])
        num = next(t for t in c[1:] if isinstance(t, Token) and t.type == "NUMBER")
        value = float(str(num))
        bars = int(value) if value.is_integer() else value
        return s.Offset(obj, -bars if negative else bars, self._span(meta))

    def field(self, meta, c):
        return s.Field(c[0], str(c[1]), self._span(meta))

    def number(self, meta, c):
        return s.Num(float(str(c[0])), str(c[0]), self._span(meta))

    def percent(self, meta, c):
        return self._pct(c[0])

    def name(self, meta, c):
        return s.Name(str(c[0]), self._span(meta))

    def call(self, meta, c):
        fn = str(c[0])
        args = tuple(x for x in c[1:] if not isinstance(x, Token))
        return s.Call(fn, args, self._span(meta))

    def paren(self, meta, c):
        return c[1]
