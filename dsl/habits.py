"""Habits from other languages that break a Play's syntax, and what to write instead.

A Pine Script, Python or JavaScript user writes `=` to compare, `//` before a comment, `stopLoss`
for `stop_loss` and `ta.rsi(close, 14)` for `rsi(close, 14)`. The parser fails at some token of
such a habit; these functions look at the line around that token and, when they recognise one,
say what was meant. Each returns None when the line shows no habit it knows.
"""
from __future__ import annotations

import re
from typing import Collection

import attrs

from .diagnostics import shorten

# Pine names of calls that are spelled otherwise here (ta.bb is bbands, ta.pivothigh pivot_high).
PINE_NAMES = {"bb": "bbands", "pivothigh": "pivot_high", "pivotlow": "pivot_low"}
# Pine's crossings are operators here: `ta.crossover(a, b)` is `a crosses_above b`.
PINE_CROSSES = {"crossover": "crosses_above", "crossunder": "crosses_below"}


@attrs.frozen
class Habit:
    """What to report instead of the parser's words: columns are 1-based, `end_col` exclusive."""

    message: str
    col: int
    end_col: int
    hint: str


def _code_end(line: str) -> int:
    """Where the line's comment starts (its length when it has none)."""
    at = line.find("#")
    return len(line) if at < 0 else at


def slash_comment(line: str, col: int | None = None) -> Habit | None:
    """`// text` (Pine, JavaScript) where the parser failed: at either slash, or anywhere on the
    line when `col` is None (an indentation problem of the comment's own line)."""
    at = line.find("//", 0, _code_end(line))
    if at < 0 or (col is not None and col - 1 not in (at, at + 1)):
        return None
    text = line[at + 2:].strip()
    example = f"'# {shorten(text, 40)}'" if text else "'# ...'"
    return Habit("unexpected '//'; a comment starts with '#'", at + 1, at + 3,
                 f"write {example} ('//' starts a comment in Pine and JavaScript, not in a Play)")


def equals_sign(line: str, col: int, after_operand: bool) -> Habit | None:
    """A single `=` (Pine and Python assign with it). After a value it was meant as `==`."""
    i = col - 1
    if line[i:i + 1] != "=":
        return None
    if after_operand:
        code = line[:_code_end(line)]
        code = code[:code.find("//")] if "//" in code[i:] else code  # a Pine comment after it is no code
        fixed = (code[:i] + "==" + code[i + 1:]).strip()
        return Habit("unexpected '='; a comparison is written '=='", col, col + 1,
                     f"write '{shorten(fixed, 60)}' (a single '=' assigns in Pine and Python; a Play assigns nothing)")
    return Habit("unexpected '='; a Play assigns nothing", col, col + 1,
                 "a Play names values under 'features:' ('fast: ema(close, 9)'), and an action takes its value "
                 "without '=' ('stop_loss fill - 2 * atr')")


def _word_at(line: str, col: int) -> tuple[int, int]:
    """The 0-based [start, end) of the identifier that holds column `col`."""
    start = end = col - 1
    while start > 0 and (line[start - 1].isalnum() or line[start - 1] == "_"):
        start -= 1
    while end < len(line) and (line[end].isalnum() or line[end] == "_"):
        end += 1
    return start, end


def _squeezed(word: str) -> str:
    return word.lower().replace("_", "")


def misspelled_keyword(line: str, col: int, keywords: Collection[str]) -> Habit | None:
    """`stopLoss`, `StopLoss`, `stoploss`, `takeProfit`, `postOnly`: a keyword of the language written
    in camel case, capitals or without its '_'. The parser may have failed inside the word (it reads
    `stoploss` as the action `stop` and then 'loss'), so the whole word is looked at."""
    start, end = _word_at(line, col)
    word = line[start:end]
    if not word:
        return None
    wanted = next((k for k in keywords if _squeezed(k) == _squeezed(word) and k != word), None)
    if wanted is None:
        return None
    return Habit(f"unknown word '{shorten(word)}'; did you mean '{wanted}'?", start + 1, end + 1,
                 f"write '{wanted}': the words of a Play are lower case, with '_' between words")


_LISTED = 10  # names listed in a hint at most (as the checker's hints)
_NAMESPACED = re.compile(r"(?<![\w.])(ta|math)\.([A-Za-z_]\w*)\s*$")


def _arguments(line: str, open_at: int) -> tuple[str, int] | None:
    """The text between the '(' at `open_at` (0-based) and its ')' on the same line, and the index
    just past that ')'; None when it does not close on this line."""
    depth = 0
    for i in range(open_at, _code_end(line)):
        depth += line[i] == "("
        depth -= line[i] == ")"
        if depth == 0:
            return line[open_at + 1:i], i + 1
    return None


def _split_arguments(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()]


def namespaced_call(line: str, col: int, functions: Collection[str]) -> Habit | None:
    """`ta.rsi(close, 14)` or `math.max(a, b)` (Pine v5): the parser fails at the '(' after a field.
    Here built-ins are called by their bare name."""
    found = _NAMESPACED.search(line[:col - 1])
    if found is None or line[col - 1:col] != "(":
        return None
    space, name = found.group(1), found.group(2)
    called = _arguments(line, col - 1)
    args, end = called if called is not None else ("...", col)
    written = f"{space}.{name}"
    message = f"unknown function '{written}': a Play calls its built-ins without '{space}.'"
    start = found.start() + 1
    if name in PINE_CROSSES:
        parts = _split_arguments(args)
        fixed = f"{parts[0]} {PINE_CROSSES[name]} {parts[1]}" if len(parts) == 2 else f"a {PINE_CROSSES[name]} b"
        return Habit(message, start, end + 1,
                     f"Pine's {written}(a, b) is an operator here: write '{shorten(fixed, 60)}'")
    bare = PINE_NAMES.get(name, name)
    if bare in functions:
        return Habit(message, start, end + 1, f"write '{shorten(f'{bare}({args})', 60)}'")
    names = list(functions)
    shown = ", ".join(names[:_LISTED]) + (f", ... ({len(names)} in all)" if len(names) > _LISTED else "")
    return Habit(message, start, end + 1, f"'{name}' is not a built-in either; the built-ins are {shown}")
