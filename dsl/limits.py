"""How deeply an expression may nest, and the Python stack the front end needs for that.

The parser, the checker, the printers and the run-time evaluator all walk expressions recursively,
a few Python frames per level. `MAX_DEPTH` keeps every Play inside what the evaluator (which runs at
Python's default recursion limit) can handle; the compiler's own passes run under `room_to_recurse`,
since they spend more frames per level than the evaluator does.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

MAX_DEPTH = 200
DEPTH_HINT = ("group a long chain with parentheses, e.g. '(a and b and c) and (d and e and f)': each group "
              "nests on its own")
# How far back an offset reaches (`close[n]`) and how long an order may wait (`expire N bars`), in
# bars: about two years of 1-minute bars. More is a typo, and Python refuses even to read an integer
# of 4,300 digits or more (so the parser never turns a longer one into an int).
MAX_BARS = 1_000_000
# ~5 frames per level in the checker, plus the caller's stack; far below what overflows the C stack.
_STACK = 40 * MAX_DEPTH


@contextmanager
def room_to_recurse() -> Iterator[None]:
    old = sys.getrecursionlimit()
    if old < _STACK:
        sys.setrecursionlimit(_STACK)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
