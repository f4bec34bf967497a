"""`playdeck console` on the command line: option, Play and data mistakes are one `error:` line and
exit 2 like every command's, a console without a terminal says so (after the Play and data are
checked), and only a console that starts imports textual."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from csv_kit import walk_csv
from paths import ROOT_DIR
from playdeck.tui.cli import UserError, main, parse_speed
from test_startup_imports import NEVER, imported

PLAY = ROOT_DIR / "plays" / "ema_pullback.yml"


def error_of(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def write_minutes(path: Path, n: int) -> Path:
    return walk_csv(path, n, seed=5, price=60_000.0)


@pytest.mark.parametrize("text, speed", [("4", 4.0), ("0.5", 0.5), ("max", math.inf), (" MAX ", math.inf)])
def test_speed_is_bars_a_second_or_max(text: str, speed: float) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["0", "-2", "fast", "nan", "inf", ""])
def test_a_speed_that_is_no_pace_is_refused(text: str) -> None:
    with pytest.raises(UserError, match="--speed"):
        parse_speed(text)


def test_a_bad_speed_is_one_error_line(capsys) -> None:
    assert "give bars a second" in error_of(capsys, "console", str(PLAY), "--speed", "fast")


def test_missing_data_is_one_error_line(capsys, tmp_path: Path) -> None:
    assert "nowhere.csv" in error_of(capsys, "console", str(PLAY), "--data", str(tmp_path / "nowhere.csv"))


def test_data_too_short_for_the_play_to_trade_is_said_before_any_screen(capsys, tmp_path: Path) -> None:
    short = write_minutes(tmp_path / "short.csv", 600)  # 40 bars of 15m: ema_pullback is ready at 3199
    assert "cannot trade on this data" in error_of(capsys, "console", str(PLAY), "--data", str(short))


def test_a_broken_play_is_shown_with_its_line_and_caret(capsys, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(PLAY.read_text().replace("limit buy risk", "limit buy rissk", 1))
    assert main(["console", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{broken}:") and "^" in err


def test_without_a_terminal_the_console_says_so_and_imports_no_textual(tmp_path: Path) -> None:
    data = write_minutes(tmp_path / "minutes.csv", 3000)
    play = ROOT_DIR / "plays" / "ema_cross.yml"  # ready at bar 21 of the 200 15m bars
    got = imported("console", str(play), "--data", str(data), cwd=tmp_path)
    assert got["code"] == 2
    assert NEVER.isdisjoint(got["packages"]), got["packages"]


def test_help_lists_the_console(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "console" in capsys.readouterr().out


@pytest.mark.parametrize("argv, said", [
    (["--endpoint", "http://127.0.0.1:1"], "--endpoint is for a venue"),
    (["--journal", "j.sqlite"], "--journal is for a venue"),
    (["--i-understand-live"], "--i-understand-live is for --backend live"),
    (["--backend", "emulator", "--gaps", "fill"], "--data-tf and --gaps are for the simulator's replay"),
    (["--backend", "emulator", "--endpoint", "http://127.0.0.1:1", "--data", "x.csv"],
     "--data is for the in-process emulator"),
    (["--backend", "live"], "--i-understand-live"),
])
def test_venue_options_that_do_not_fit_are_one_error_line(capsys, monkeypatch, argv: list[str], said: str) -> None:
    monkeypatch.delenv("PLAYDECK_BYBIT_KEY", raising=False)
    assert said in error_of(capsys, "console", str(PLAY), *argv)


def test_demo_without_keys_says_which_variables_to_set(capsys, monkeypatch) -> None:
    monkeypatch.delenv("PLAYDECK_BYBIT_KEY", raising=False)
    monkeypatch.delenv("PLAYDECK_BYBIT_SECRET", raising=False)
    assert "PLAYDECK_BYBIT_KEY and PLAYDECK_BYBIT_SECRET" in error_of(capsys, "console", str(PLAY), "--backend", "demo")


def test_the_emulator_console_without_a_terminal_says_so_before_connecting(tmp_path: Path) -> None:
    play = ROOT_DIR / "plays" / "ema_cross.yml"
    got = imported("console", str(play), "--backend", "emulator", cwd=tmp_path)
    assert got["code"] == 2
    assert "textual" not in got["packages"], got["packages"]
    assert not (tmp_path / "runs").exists()  # nothing started, no run folder claimed


def test_the_emulator_console_says_what_is_wrong_with_its_data_before_any_screen(capsys, tmp_path: Path) -> None:
    said = error_of(capsys, "console", str(ROOT_DIR / "plays" / "ema_cross.yml"), "--backend", "emulator",
                    "--data", str(tmp_path / "nowhere.csv"))
    assert "nowhere.csv" in said
