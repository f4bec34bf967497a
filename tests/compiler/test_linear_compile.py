"""Compiling is linear in the size of the Play, also when every feature or case has a mistake.

Shown structurally, not with a clock: the number of Python function calls a compile makes (and the
rendering of its diagnostics) must grow in proportion to the Play (twice the features: at most
2.25 times the calls), where work per feature or per diagnostic that reads the whole file (splitting
it into lines again, a did-you-mean over every feature, the warm-up of every feature a feature
reads) made it grow with the square. And the file is split into lines once per compile."""
from __future__ import annotations

import sys

import pytest

from playdeck.compiler import compile_text
from playdeck.dsl import diagnostics, source
from playdeck.dsl.diagnostics import SHOWN_WIDTH, Diagnostic, PlayError, render
from playdeck.dsl.fmt import format_play
from playdeck.dsl.spans import Span

HEAD = "play: many\nmarket:\n  symbol: BTCUSDT\n  exec: 15m\n"


def features(n: int) -> str:
    lines = [f"  # about f{i}\n  f{i}: ema(close, {i % 50 + 2}) - sma(close, {i % 30 + 2})  # feature {i}"
             for i in range(n)]
    return HEAD + "features:\n" + "\n".join(lines) + f"\nblocks: |\n  block main:\n    when f{n - 1} > 0:\n      close\n"


def misspelled_features(n: int) -> str:
    # each reads an unknown name one letter from a feature's: a did-you-mean has to look at names
    lines = [f"  fast{i}: ema(close, 9)\n  slow{i}: ema(fsat{i}, 21)" for i in range(n // 2)]
    return HEAD + "features:\n" + "\n".join(lines) + "\nblocks: |\n  block main:\n    when flat:\n      close\n"


def misspelled_blocks(n: int) -> str:
    cases = [f"  block b{i}:\n    when flat and fsat > close + {i}:\n      cancel dpi{i}\n" for i in range(n)]
    return HEAD + "features:\n  fast: ema(close, 9)\nblocks: |\n" + "".join(cases)


def layered_features(n: int) -> str:
    # 20 features a layer, each reading two of the layer before: every feature reaches most others
    width = 20
    lines = [f"  f0_{k}: ema(close, {k + 2})" for k in range(width)]
    for layer in range(1, n // width):
        lines += [f"  f{layer}_{k}: sma(f{layer - 1}_{k}, 2) + f{layer - 1}_{(k + 1) % width}" for k in range(width)]
    last = f"f{n // width - 1}_0"
    return HEAD + "features:\n" + "\n".join(lines) + f"\nblocks: |\n  block main:\n    when {last} > 0:\n      close\n"


def calls(make, n: int, fmt: bool = False) -> int:
    """Python lines run (loop turns included) and functions called to compile the Play and render
    its diagnostics, or to compile and format it."""
    text = make(n)
    try:  # first, so that building the grammar and first-use caches is not counted
        compile_text(make(40), "warm.yml")
    except PlayError:
        pass
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        count += 1  # a call, or a line run (each turn of a loop runs its line again)
        return trace

    sys.settrace(trace)
    try:
        try:
            compiled = compile_text(text, "many.yml")
            if fmt:
                format_play(compiled.source, list(compiled.features), compiled.blocks)
        except PlayError as e:
            e.render()
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize(("make", "n"), [
    (features, 150), (misspelled_features, 300), (misspelled_blocks, 150), (layered_features, 400),
], ids=["features", "misspelled features", "misspelled blocks", "features reading features"])
def test_twice_the_play_is_at_most_about_twice_the_work(make, n: int):
    assert calls(make, 2 * n) <= 2.25 * calls(make, n)


def test_formatting_twice_the_features_and_comments_is_about_twice_the_work():
    assert calls(features, 600, fmt=True) - calls(features, 600) <= \
        2.25 * (calls(features, 300, fmt=True) - calls(features, 300))


@pytest.mark.parametrize("make", [features, misspelled_features, misspelled_blocks])
def test_the_file_is_split_into_lines_once_per_compile(make, monkeypatch):
    splits = 0
    real = diagnostics.source_lines

    def counting(text: str) -> list[str]:
        nonlocal splits
        if len(text) > 100:  # the file, not the empty text of an error raised before the path is known
            splits += 1
        return real(text)

    monkeypatch.setattr(diagnostics, "source_lines", counting)
    monkeypatch.setattr(source, "source_lines", counting)
    try:
        compile_text(make(200), "many.yml")
    except PlayError as e:
        assert len(e.diagnostics) >= 100
        e.render()
    assert splits == 1


def test_a_diagnostic_on_a_line_of_a_million_characters_shows_a_window_of_it():
    line = "features: {" + ", ".join(f"f{i}: ema(clse, 9)" for i in range(60_000)) + "}"
    col = line.index("clse", len(line) // 2) + 1
    text = render("many.yml", [line], Diagnostic("name", "unknown name 'clse'", Span(1, col, 1, col + 4), "hint"))
    shown, caret = text.splitlines()[1:3]
    assert len(shown) <= SHOWN_WIDTH + 20 and shown.startswith(" 1 | ... ") and shown.endswith(" ...")
    assert shown[caret.index("^"):].startswith("clse")
    assert caret.count("^") == 4


def test_did_you_mean_is_searched_for_the_first_50_different_names_and_remembered():
    from playdeck.compiler.check import MAX_SUGGESTION_SEARCHES

    assert MAX_SUGGESTION_SEARCHES == 50
    # 60 different misspellings, then the first one again
    names = [f"fsat{i}" for i in range(60)] + ["fsat0"]
    feats = "".join(f"  fast{i}: ema(close, 9)\n" for i in range(60))
    cases = "".join(f"  block b{i}:\n    when {n} > 0:\n      close\n" for i, n in enumerate(names))
    with pytest.raises(PlayError) as info:
        compile_text(HEAD + "features:\n" + feats + "blocks: |\n" + cases, "many.yml")
    hints = [d.hint for d in info.value.diagnostics]
    assert len(hints) == 61
    assert hints[:50] == [f"did you mean 'fast{i}'?" for i in range(50)]
    assert all(h.startswith("names are open high low close volume") for h in hints[50:60])
    assert hints[60] == "did you mean 'fast0'?"


def test_a_hint_lists_at_most_ten_known_tags():
    orders = "".join(f"  block b{i}:\n    when flat:\n      limit buy qty 1 at close as t{i}\n" for i in range(30))
    with pytest.raises(PlayError) as info:
        compile_text(HEAD + "blocks: |\n" + orders + "  block c:\n    when long:\n      cancel zz\n", "many.yml")
    d = info.value.diagnostics[0]
    assert d.message == "unknown tag 'zz'"
    assert d.hint == ("tags are given with 'as TAG' on an order; known: t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, ... "
                      "(30 in all)")
