"""`playdeck compile --stage`: one canonical text per stage."""
from __future__ import annotations

from paths import ROOT_DIR

import subprocess
import sys
from pathlib import Path

ROOT = ROOT_DIR


def compile_stage(stage: str, play: str = "plays/ema_pullback.yml") -> str:
    r = subprocess.run([sys.executable, "-m", "playdeck.tui.cli", "compile", play, "--stage", stage],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_parse_stage_is_the_canonical_play():
    out = compile_stage("parse")
    assert out == (ROOT / "plays/ema_pullback.yml").read_text()  # the examples are kept canonical


def test_parse_stage_rewrites_a_messy_play_in_canonical_form(tmp_path: Path):
    messy = (ROOT / "plays/ema_cross.yml").read_text()
    messy = messy.replace("when short and fast crosses_above slow:", "when   (short)  and fast  crosses_above slow :")
    messy = messy.replace("market buy 50% equity", "market  buy   50%  equity", 1)
    assert messy != (ROOT / "plays/ema_cross.yml").read_text()
    play = tmp_path / "messy.yml"
    play.write_text(messy)
    assert compile_stage("parse", str(play)) == (ROOT / "plays/ema_cross.yml").read_text()


def test_lower_stage_splits_each_condition_into_guard_series_and_state():
    out = compile_stage("lower")
    lines = out.splitlines()
    assert lines[0] == "plan ema_pullback"
    assert "timeframes 15m 4h" in lines
    # `flat and fast crosses_above slow and close > trend`: the position word is the guard, the rest
    # reads only market data and is precomputed for every bar
    i = lines.index("block entries")
    assert lines[i + 1:i + 5] == ["  case 0", "    guard  flat",
                                  "    series (fast crosses_above slow) and (close > trend)", "    state  -"]
    # `long and position.r >= 1.5 and not position.reduced` reads trading state
    j = lines.index("block manage")
    assert lines[j + 2:j + 5] == ["    guard  long", "    series -",
                                  "    state  (position.r >= 1.5) and (not position.reduced)"]


def test_check_stage_is_the_default_ir_text():
    from playdeck.compiler import compile_file
    from playdeck.compiler.printer import ir_text

    expected = ir_text(compile_file(ROOT / "plays/ema_pullback.yml").ir)
    assert expected.startswith("playdeck IR v1\nplay ema_pullback")
    assert compile_stage("check") == expected
    assert subprocess.run([sys.executable, "-m", "playdeck.tui.cli", "compile", "plays/ema_pullback.yml"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60).stdout == expected
