"""The compiler and the front end take timeframes, sides, time in force and protection kinds from
dsl/vocabulary.py: the grammar accepts exactly its words, the keywords are built from it, and no
module of compiler/ or dsl/ spells one of its words as a value of its own (a copy that could drift),
except where one specific word has a meaning of its own there (listed below)."""
from __future__ import annotations

from paths import ROOT_DIR

import ast
import re

import pytest

from playdeck.compiler.builtins import KEYWORDS
from playdeck.dsl.parser import _lark, _literals
from playdeck.dsl.vocabulary import (DEFAULT_TIME_IN_FORCE, INTRABAR_MODELS, PROTECTION_KINDS, SIDES, TIF_WORDS,
                                     TIME_IN_FORCE, TIMEFRAMES)

WORDS = (set(TIMEFRAMES) | set(SIDES) | set(TIME_IN_FORCE) | set(TIME_IN_FORCE.values()) | set(PROTECTION_KINDS)
         | set(INTRABAR_MODELS))
# (module, word): a word used for what it alone means there
ALLOWED = {
    ("compiler/actions.py", "trail"),  # a trail's value is a distance, the others' a price
    ("compiler/actions.py", "stop_loss"),  # 'risk' sizing needs a stop_loss
    ("compiler/printer.py", "trail"),  # a percentage trail follows the best price; the others name a reference
    ("compiler/settings.py", "worst_case"),  # the default intrabar model
    # the transformer turns each grammar rule into the action of its name
    ("dsl/parser.py", "stop_loss"), ("dsl/parser.py", "take_profit"), ("dsl/parser.py", "trail"),
}


def terminal(name: str) -> str:
    return next(t.pattern.to_regexp() for t in _lark().terminals if t.name == name)


def test_the_grammar_accepts_exactly_the_vocabulary_sides_and_time_in_force_words():
    side, tif = terminal("SIDE"), terminal("TIF")
    assert [w for w in ("buy", "sell", "long", "short", "gtc") if re.fullmatch(side, w)] == list(SIDES)
    assert [w for w in (*TIME_IN_FORCE, "gtd") if re.fullmatch(tif, w)] == list(TIF_WORDS)
    assert DEFAULT_TIME_IN_FORCE not in TIF_WORDS  # GTC is what an order is unless told, not a word
    assert all(re.fullmatch(terminal("TFLIT"), tf) for tf in TIMEFRAMES)


def test_every_protection_kind_is_an_action_keyword_of_the_grammar_and_every_word_is_reserved():
    assert set(PROTECTION_KINDS) <= set(_literals().values())
    assert set(SIDES) | set(TIF_WORDS) | set(PROTECTION_KINDS) <= KEYWORDS


@pytest.mark.parametrize("module", sorted(p.relative_to(ROOT_DIR).as_posix() for folder in ("compiler", "dsl")
                                          for p in (ROOT_DIR / folder).glob("*.py") if p.name != "vocabulary.py"))
def test_no_module_spells_a_vocabulary_word_itself(module: str):
    tree = ast.parse((ROOT_DIR / module).read_text())
    spelled = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in WORDS}
    assert {w for w in spelled if (module, w) not in ALLOWED} == set()
