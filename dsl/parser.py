"""Parse the block language (and feature expressions) into the syntax tree of `syntax.py`.

The grammar is built once. Parse failures become `Diagnostic`s in words a trader understands,
positioned in the Play file through a `LineMap`.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Collection, Iterator

import attrs
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import Indenter

from . import syntax as s
from .diagnostics import Diagnostic
from .habits import Habit, equals_sign, misspelled_keyword, namespaced_call, slash_comment
from .source import char_name
from .limits import DEPTH_HINT, MAX_DEPTH, room_to_recurse
from .spans import IDENTITY, LineMap, Span
from .vocabulary import PROTECTION_KINDS, SIDES, TIF_WORDS

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


def parse_blocks(text: str, where: LineMap = IDENTITY, functions: Collection[str] = ()) -> tuple[s.Block, ...]:
    """Parse the `blocks:` text. Raises ParseFailure with a diagnostic positioned via `where`.
    `functions` are the names a call may have, for hints (`ta.rsi(...)` is `rsi(...)`)."""
    if not text.endswith("\n"):
        text += "\n"
    tab = _tab_in_indentation(text)
    if tab is not None:
        line, col = tab
        raise ParseFailure(Diagnostic("indent", "a tab in the indentation of this line; indent with spaces, not tabs",
                                      where.span(line, col, line, col + 1),
                                      "editors show a tab as 2, 4 or 8 columns, so whether a line is under an action "
                                      "(an attached stop_loss) or beside it would depend on the editor"))
    tree = _run(text, "start", where, functions)
    with room_to_recurse():
        return tuple(_Build(where).transform(tree))


def _tab_in_indentation(text: str) -> tuple[int, int] | None:
    """(line, col) of the first tab before the first word of a line; tabs between words are fine."""
    for n, line in enumerate(text.split("\n"), start=1):
        indent = line[:len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent and _code(line):
            return n, indent.index("\t") + 1
    return None


def parse_feature(text: str, name: str, where: LineMap = IDENTITY, functions: Collection[str] = ()) -> s.FeatureDef:
    """Parse one feature's value: `expr` or `expr @ tf` (`functions` as for parse_blocks)."""
    if "\n" in text.strip():
        raise ParseFailure(Diagnostic("syntax", "a feature is one expression on one line",
                                      where.span(1, 1, 1, 2), "write 'name: expression' on one line; "
                                      "split a long one into several features"))
    # Leading spaces stay (the lexer skips them) so that columns still match the file.
    tree = _run(text.rstrip(), "feature", where, functions)
    with room_to_recurse():
        expr, tf, tf_span = _Build(where).transform(tree)
    return s.FeatureDef(name, expr, tf, expr.span, tf_span)


def _run(text: str, start: str, where: LineMap, functions: Collection[str] = ()):
    paren = _too_many_parentheses(text)
    if paren is not None:
        # Refused before parsing: a line of thousands of '(' would cost seconds to parse first.
        line, col = paren
        raise ParseFailure(Diagnostic(
            "depth", f"this expression nests too deeply (more than {MAX_DEPTH} parentheses inside each other)",
            where.span(line, col, line, col + 1), "drop parentheses around a single term, or split the "
            "expression into features"))
    try:
        tree = _lark().parse(text, start=start)
    except IndentationProblem as e:
        lines = text.split("\n")
        slashes = slash_comment(lines[e.line - 1]) if e.line <= len(lines) else None
        if slashes is not None:  # a `// comment` line indented as no code line is
            raise ParseFailure(_habit_diagnostic(slashes, e.line, where)) from None
        # Say columns of the Play file: the embedded text lost the YAML indentation.
        span = where.span(e.line, e.col, e.line, e.col + 1)
        levels = ", ".join(str(where.point(e.line, lvl + 1)[1]) for lvl in e.levels)
        raise ParseFailure(Diagnostic("indent", f"inconsistent indentation: this line starts at column "
                                      f"{span.col}, which matches no enclosing level (columns {levels})",
                                      span, "indent every line of a level by the same number of spaces")) from None
    except UnexpectedInput as e:
        raise ParseFailure(_describe(e, text, where, functions)) from None
    deep = too_deep(tree)
    if deep is not None:
        root, depth = deep
        m = root.meta
        raise ParseFailure(Diagnostic(
            "depth", f"this expression nests too deeply ({depth} levels; at most {MAX_DEPTH})",
            where.span(m.line, m.column, m.line, m.column + 1), DEPTH_HINT))
    return tree


def _too_many_parentheses(text: str) -> tuple[int, int] | None:
    """(line, col) of the first '(' opened inside MAX_DEPTH others (each is a level of nesting)."""
    if text.count("(") <= MAX_DEPTH:
        return None
    for n, line in enumerate(text.split("\n"), start=1):
        depth = 0
        for col, ch in enumerate(line.split("#", 1)[0], start=1):
            if ch == "(":
                depth += 1
                if depth > MAX_DEPTH:
                    return n, col
            elif ch == ")":
                depth -= 1
    return None


# Rules whose nodes are expressions (the `?` rules that alias to them), see play.lark.
_EXPR_RULES = frozenset({"or_op", "and_op", "not_op", "compare", "crosses_above", "crosses_below", "binop",
                         "neg", "offset", "field", "number", "percent", "name", "call", "paren"})


_LEAVES = frozenset({"number", "percent", "name"})


def too_deep(tree: Tree) -> tuple[Tree, int] | None:
    """The first expression (in source order) that nests more than MAX_DEPTH levels, and its depth.

    Iterative on purpose: this runs before anything that recurses over the tree."""
    depth_of: dict[int, int] = {}  # id of an expression node -> levels from it down to its deepest leaf
    stack: list[tuple[Tree, bool]] = [(tree, False)]
    while stack:
        node, done = stack.pop()
        kids = [c for c in node.children if isinstance(c, Tree)]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(kids))
            continue
        below = [depth_of.pop(id(c), 0) for c in kids]
        if node.data in _EXPR_RULES:
            # A name or a number is not a level: `a and b` nests one level deep.
            depth_of[id(node)] = max(below, default=0) + (node.data not in _LEAVES)
            continue
        for c, d in zip(kids, below):  # `node` holds whole expressions: judge each one
            if d > MAX_DEPTH:
                return c, d
    return None


# ---- friendly syntax errors -------------------------------------------------------------------

_ACTIONS = ("market", "limit", "stop", "scale", "partial_close", "close", "cancel") + PROTECTION_KINDS
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
    """What the parser met, to follow the word 'unexpected'."""
    if tok.type == "_NL":
        return "end of the line"
    if tok.type == "$END":
        return "end of the text"
    if tok.type == "_INDENT":
        return "indentation (this line is indented further than the one above)"
    if tok.type == "_DEDENT":
        return "dedent (this line is indented less than the one above)"
    return f"'{tok}'"


_LEADING_POINT = "write a number with a digit before the point: 0.5, not .5"


def _char_hint(ch: str, shown: str) -> str:
    if ch == ".":
        return _LEADING_POINT
    if ch.isspace():
        return f"{shown} looks like a space but is not one; retype it as an ordinary space"
    return (f"{shown} has no meaning here: names are letters, digits and '_', numbers are written like 1.5 "
            "or 2%, and comments start with '#'")


# Keywords someone may write in camel case, in capitals or without their '_' (`stopLoss`).
_SPELLED = _ACTIONS + TIF_WORDS + ("crosses_above", "crosses_below")


def _habit(line: str, col: int, expected: set[str], functions: Collection[str]) -> Habit | None:
    """A habit of Pine, Python or JavaScript at the place the parser failed (dsl/habits.py)."""
    return (slash_comment(line, col) or equals_sign(line, col, after_operand="COMP_OP" in expected)
            or namespaced_call(line, col, functions) or misspelled_keyword(line, col, _SPELLED))


def _habit_diagnostic(h: Habit, line: int, where: LineMap) -> Diagnostic:
    return Diagnostic("syntax", h.message, where.span(line, h.col, line, h.end_col), h.hint)


def _describe(e: UnexpectedInput, text: str, where: LineMap, functions: Collection[str] = ()) -> Diagnostic:
    lines = text.splitlines() or [""]
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else "?"
        shown = f"'{ch}'" if ch.isascii() and ch.isprintable() else char_name(ch)
        msg = f"unexpected character {shown}"
        expected = _acceptable(e) if getattr(e, "interactive_parser", None) is not None else set(e.allowed or ())
        habit = _habit(lines[e.line - 1], e.column, expected, functions) if e.line <= len(lines) else None
        if habit is not None:
            return _habit_diagnostic(habit, e.line, where)
        if expected:
            msg += "; expected " + _describe_expected(expected)
        return Diagnostic("syntax", msg, where.span(e.line, e.column, e.line, e.column + 1), _char_hint(ch, shown))
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type in ("_INDENT", "_DEDENT") and tok.end_line <= len(lines):
            line, col = tok.end_line, tok.end_column
        elif tok.type in ("$END", "_DEDENT") or tok.line is None:  # the dedents that end the text too
            line = len(lines)
            col = len(lines[-1]) + 1
        elif tok.type == "_NL":
            line, col = tok.line, tok.column
        else:
            line, col = tok.line, tok.column
        width = max(1, len(str(tok))) if tok.type not in ("_NL", "$END", "_INDENT", "_DEDENT") else 1
        expected = _acceptable(e)
        if 1 <= line <= len(lines):
            if tok.type in ("_INDENT", "_DEDENT"):
                habit = slash_comment(lines[line - 1])  # a `// comment` line indented as no other
            else:
                habit = None if tok.type in ("_NL", "$END") else _habit(lines[line - 1], col, expected, functions)
            if habit is not None:
                return _habit_diagnostic(habit, line, where)
        if expected == {"_INDENT"}:
            at = len(lines) + 1 if tok.type == "$END" or tok.line is None else \
                (tok.end_line if tok.type == "_DEDENT" else tok.line)
            return _nothing_under(lines, at, where)
        found = "end of the text" if tok.type == "_DEDENT" and tok.end_line > len(lines) else _found(tok)
        msg = f"unexpected {found}; expected {_describe_expected(expected)}"
        text = lines[line - 1] if 1 <= line <= len(lines) else ""
        hint = _hint(tok, {_literals().get(t, t) for t in expected}, text)
        return Diagnostic("syntax", msg, where.span(line, col, line, col + width), hint)
    if isinstance(e, UnexpectedEOF):
        line = len(lines)
        return Diagnostic("syntax", "unexpected end of the text; expected "
                          + _describe_expected(set(e.expected)),
                          where.span(line, len(lines[-1]) + 1, line, len(lines[-1]) + 2), _LAYOUT)
    return Diagnostic("syntax", str(e), None, _LAYOUT)


def _nothing_under(lines: list[str], at: int, where: LineMap) -> Diagnostic:
    """A `block`, `when` or `otherwise` line with no indented line under it. The parser only notices
    at the next line (which may be past the end of the text, or the next YAML key): point at the end
    of the line that is missing its body instead."""
    n = next((i for i in range(min(at, len(lines) + 1) - 1, 0, -1) if _code(lines[i - 1])), 1)
    code = _code(lines[n - 1]) if lines else ""
    col = len(lines[n - 1]) - len(lines[n - 1].lstrip()) + len(code) + 1 if lines else 1
    span = where.span(n, col, n, col + 1)
    word = re.match(r"\w*", code).group()
    if word == "block":
        return Diagnostic("syntax", "this block has no cases; expected 'when CONDITION:' or 'otherwise:' indented "
                          "under it", span, "write the block's cases on the next lines, indented further than 'block'")
    what = "'otherwise:'" if word == "otherwise" else "this 'when'"
    return Diagnostic("syntax", f"{what} has no actions; expected an action indented under it", span,
                      "write what to do on the next lines, indented further than the case, e.g. 'close' or "
                      "'market buy 10% equity'")


def _code(line: str) -> str:
    """A line of the block language without its comment and surrounding spaces ('#' is always one)."""
    return line.split("#", 1)[0].strip()


_LOWER_ONLY = {"and", "or", "not", "when", "otherwise", "block", "at", "as", "qty", "usdt",
               "risk", "equity", "of", "position", "all", "expire", "bars", *SIDES}

_LAYOUT = ("a block is 'block NAME:', then its cases 'when CONDITION:' (or 'otherwise:') indented under it, "
           "then each case's actions indented under the case")


def _hint(tok: Token, expected: set[str], line: str = "") -> str:
    """Every syntax error gets a hint; the most specific rule that fits wins."""
    if tok.type == "_INDENT":
        return "only attached actions (stop_loss, take_profit, trail) are indented under an action"
    if ":" in expected and tok.type == "_NL":
        if _code(line).split(" ", 1)[0] == "block":
            return "a block starts with 'block NAME:', with its ':'"
        return "a 'when' condition ends with ':'"
    if "SIDE" in expected:
        return "write the side right after the order type, e.g. 'market buy qty 1'"
    if {"qty", "usdt", "risk"} <= expected:
        return "e.g. 'qty 0.01', 'usdt 500', '10% equity', 'risk 1%'"
    if "BARS" in expected:
        return "write 'expire N bars'"
    if tok.type == "COMP_OP" and "COMP_OP" not in expected:
        if re.fullmatch(r"\s*close\s*", line[:tok.column - 1]) and "at" in expected:  # an action line
            return ("'close' that starts an action line is the close action; a comparison such as "
                    "'close > open' goes after 'when'")
        return "comparisons do not chain: write 'a < b and b < c'"
    if expected & {")", ","} and not expected & {"at", "as", "when"}:
        return "close every '(' with ')'; separate a call's arguments with ',', e.g. ema(close, 21)"
    if sum(a in expected for a in _ACTIONS) >= 5:
        return "an action line starts with what to do, e.g. 'market buy 10% equity', 'close' or 'cancel all'"
    if tok.type == "NAME" and str(tok).lower() in _LOWER_ONLY:
        return f"words of the language are lower case: write '{str(tok).lower()}'"
    if expected & {"at", "expire", "as", "TIF"}:
        return ("options come after the size: 'at PRICE', 'limit PRICE' (stop-limit), 'expire N bars', "
                "'post_only', 'ioc' or 'fok' (orders are GTC unless told), 'as TAG'")
    if str(tok) == "." and "NUMBER" in expected:
        return _LEADING_POINT
    if "all" in expected:
        return "write 'cancel TAG' (an order's 'as TAG') or 'cancel all'"
    if "PERCENT" in expected and "NUMBER" not in expected:
        return "write a percentage with its '%', e.g. 'risk 1%', '10% equity', 'partial_close 50%'"
    if expected == {"NUMBER"}:
        return "a whole number written out goes here, e.g. 'expire 3 bars' or 'close[1]'"
    if expected == {"_NL"}:
        return "the line is complete before this: one action per line, options as the README lists them"
    if {"NAME", "NUMBER"} <= expected:
        return "write a value here: a number, a name or a calculation, e.g. 'close - 2 * atr'"
    if tok.type == "NAME" and expected & {"and", "or", "+", "COMP_OP"}:
        return "two values need an operator between them, e.g. 'and', '+' or '>'"
    if expected & {"block", "when", "otherwise", "_INDENT", "_DEDENT"} or tok.type in ("_INDENT", "_DEDENT"):
        return _LAYOUT
    return "see the block language in README.md ('A Play')"


# ---- tree -> syntax nodes ---------------------------------------------------------------------

def _whole(digits: str) -> int | float:
    """`digits` as an int, or inf when it has more than 18 significant digits: far past any offset
    the checker accepts (it says the limit), and Python refuses int() of 4,300 digits or more."""
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= 18 else math.inf


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
        text = str(num)
        bars: int | float = _whole(text) if text.isdigit() else float(text)
        return s.Offset(obj, -bars if negative else bars, ("-" if negative else "") + text, self._span(meta))

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
