"""Every example Play, pinned: its IR as canonical text and as JSON (one golden file each, under
tests/__snapshots__/test_plays_golden/), and `playdeck fmt` round trips.

Regenerate after an intended change with `pytest tests/test_plays_golden.py --snapshot-update`,
then read the diff.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from playdeck.compiler import compile_file, compile_text
from playdeck.compiler.printer import ir_json, ir_text
from playdeck.dsl.fmt import format_play

# Every example Play: a new file in plays/ gets its goldens without touching this test.
PLAYS = sorted((Path(__file__).resolve().parent.parent / "plays").glob("*.yml"))
IDS = [p.stem for p in PLAYS]


def canonical(compiled) -> str:
    return format_play(compiled.source, list(compiled.features), compiled.blocks)


def test_there_are_example_plays_including_the_default():
    names = {p.name for p in PLAYS}
    assert len(PLAYS) >= 10
    assert {"ema_cross.yml", "ema_pullback.yml"} <= names


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_ir_text(path, text_snapshot):
    assert ir_text(compile_file(path).ir) == text_snapshot


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_ir_json(path, json_snapshot):
    text = ir_json(compile_file(path).ir)
    data = json.loads(text)
    assert data["schema"] == "playdeck.ir/1" and data["name"] == path.stem
    assert text == json_snapshot


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_play_name_matches_file_and_has_a_description(path):
    play = compile_file(path).ir
    assert play.name == path.stem
    assert len(play.description) > 20


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_fmt_output_compiles_to_the_same_ir(path):
    compiled = compile_file(path)
    again = compile_text(canonical(compiled), str(path))
    assert again.ir == compiled.ir
    assert again.blocks == compiled.blocks and again.features == compiled.features
    # equal IR, and equal text: nothing that equality ignores (spans aside) was lost
    assert ir_text(again.ir) == ir_text(compiled.ir)


@pytest.mark.parametrize("path", PLAYS, ids=IDS)
def test_fmt_is_idempotent(path):
    once = canonical(compile_file(path))
    assert canonical(compile_text(once, str(path))) == once
