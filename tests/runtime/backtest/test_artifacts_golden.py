"""Every example Play's backtest files on fixed bars, pinned byte for byte: fills.csv, orders.csv,
trades.csv, rejections.csv, funding.csv and report.json (without the run's own folder). A change to the runtime
that moves one fill, status or number shows here as a diff to read.

Regenerate after an intended change with `pytest tests/test_artifacts_golden.py --snapshot-update`,
and say in the commit which Plays changed and why.
"""
from __future__ import annotations

from paths import ROOT_DIR

import hashlib
import json
from pathlib import Path

import pytest

from fixed_bars import write_fixed_csv
from playdeck.tui.cli import main

PLAYS = sorted((ROOT_DIR / "plays").glob("*.yml"))
FILES = ("fills.csv", "orders.csv", "trades.csv", "rejections.csv", "funding.csv")
# The snapshots were recorded in a checkout at /work/main, and rejections.csv names the Play by its
# path (`where`): a checkout anywhere else reads its own folder there, and nothing else differs.
RECORDED_ROOT = "/work/main"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fixed_csv(tmp_path_factory.mktemp("fixed") / "bars_5m.csv")


@pytest.fixture(scope="module")
def runs(data: Path, tmp_path_factory) -> dict[str, Path]:
    out: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("runs")
    for play in PLAYS:
        folder = root / play.stem
        # A cache of its own: each Play reads the file (not the arrays the Play before remembered),
        # so every report.json says "cached": false whichever Plays run.
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PLAYDECK_CACHE", str(root / f"{play.stem}-cache"))
            assert main(["backtest", str(play), "--data", str(data), "--out", str(folder), "--no-progress"]) == 0
        out[play.stem] = folder
    return out


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("play", [p.stem for p in PLAYS])
def test_artifact(play: str, name: str, runs, text_snapshot):
    assert (runs[play] / name).read_text().replace(str(ROOT_DIR), RECORDED_ROOT) == text_snapshot


@pytest.mark.parametrize("play", [p.stem for p in PLAYS])
def test_report_json(play: str, runs, text_snapshot):
    report = json.loads((runs[play] / "report.json").read_text())
    report.pop("out")  # the run's folder, different every time
    assert json.dumps(report, indent=2) == text_snapshot


def test_every_play_trades_on_the_fixed_bars(runs):
    # A golden of an empty file would pin nothing.
    idle = [play for play, folder in runs.items() if len((folder / "fills.csv").read_text().splitlines()) < 3]
    assert idle == []


@pytest.mark.parametrize("play", [p.stem for p in PLAYS])
def test_equity_csv_digest(play: str, runs, text_snapshot):
    # A bar per row is too long to read as a golden; its digest still pins every byte.
    text = (runs[play] / "equity.csv").read_bytes()
    lines = text.decode().splitlines()
    assert f"{len(lines)} lines, {lines[1]} .. {lines[-1]}, sha256 {hashlib.sha256(text).hexdigest()}" == text_snapshot
