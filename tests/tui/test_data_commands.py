"""Data a user can manage through the command line: `data list`, `data remove`, `backtest --data
synthetic`, and the cache folder options."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from csv_kit import walk_csv
from paths import ROOT_DIR
from playdeck.tui.cli import main

EMA_CROSS = ROOT_DIR / "plays" / "ema_cross.yml"


def write_bars(path: Path, n: int, step_ms: int = 60_000) -> Path:
    return walk_csv(path, n, seed=3, step_ms=step_ms)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error(capsys, *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and err.startswith("error: "), (code, out, err)
    return err.rstrip("\n")


def test_data_synthetic_runs_the_bundled_set_where_imported_bars_cannot(tmp_path, cache_dir, capsys):
    hourly = write_bars(tmp_path / "h1.csv", 300, step_ms=3_600_000)
    assert run(capsys, "data", "import", str(hourly), "--symbol", "BTCUSDT")[0] == 0
    assert error(capsys, "backtest", str(EMA_CROSS)) == (
        "error: BTCUSDT is cached at 1h, which cannot build the Play's exec timeframe 15m; import 1m, 3m, 5m or 15m "
        "bars, give --data FILE, or give --data synthetic for the bundled set")
    code, out, _ = run(capsys, "backtest", str(EMA_CROSS), "--data", "synthetic", "--to", "2025-01-08",
                       "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 0
    assert "data        synthetic: 672 exec bars 2025-01-01T00:00:00Z .. 2025-01-07T23:45:00Z" in out
    data = json.loads((tmp_path / "run" / "report.json").read_text())["data"]
    assert data["label"] == "synthetic" and "cached" not in data  # no file: nothing to remember
    assert error(capsys, "backtest", str(EMA_CROSS), "--data", "synthetic", "--gaps", "fill") == (
        "error: --gaps is about a --data file, not the bundled synthetic set")


def test_data_list_shows_each_series_and_where_it_came_from(tmp_path, cache_dir, capsys):
    assert run(capsys, "data", "list") == (0, f"nothing cached in {cache_dir}\n", "")
    hourly = write_bars(tmp_path / "h1.csv", 300, step_ms=3_600_000)
    minutes = write_bars(tmp_path / "m1.csv", 3000)
    assert run(capsys, "data", "import", str(hourly), "--symbol", "BTCUSDT")[0] == 0
    assert run(capsys, "data", "import", str(minutes), "--symbol", "1000PEPEUSDT", "--tf", "1m")[0] == 0
    assert run(capsys, "backtest", str(EMA_CROSS), "--data", str(minutes), "--out", str(tmp_path / "r"),
               "--no-progress")[0] == 0
    code, out, err = run(capsys, "data", "list")
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"1000PEPEUSDT  1m   2025-01-01T00:00:00Z .. 2025-01-03T01:59:00Z  3000 rows  imported from {minutes}",
        f"BTCUSDT       1h   2025-01-01T00:00:00Z .. 2025-01-13T11:00:00Z  300 rows  imported from {hourly}",
        f"-             1m   2025-01-01T00:00:00Z .. 2025-01-03T01:59:00Z  3000 rows  --data {minutes} (remembered)",
    ]


def test_data_list_names_a_damaged_entry_and_remove_repairs_it(tmp_path, cache_dir, capsys):
    hourly = write_bars(tmp_path / "h1.csv", 300, step_ms=3_600_000)
    assert run(capsys, "data", "import", str(hourly), "--symbol", "BTCUSDT")[0] == 0
    entry = cache_dir / "market" / "BTCUSDT" / "1h"
    (entry / "meta.json").write_text("{not json")
    code, out, _ = run(capsys, "data", "list")
    assert code == 0 and out.startswith(f"BTCUSDT  1h   the cache entry {entry} is damaged (meta.json is not valid JSON")
    assert run(capsys, "data", "remove", "BTCUSDT") == (0, "removed BTCUSDT 1h (damaged)\n", "")
    assert run(capsys, "data", "list")[1] == f"nothing cached in {cache_dir}\n"


def test_data_remove_takes_imported_series_and_says_when_nothing_matches(tmp_path, cache_dir, capsys):
    hourly = write_bars(tmp_path / "h1.csv", 300, step_ms=3_600_000)
    five = write_bars(tmp_path / "m5.csv", 300, step_ms=300_000)
    for path in (hourly, five):
        assert run(capsys, "data", "import", str(path), "--symbol", "BTCUSDT")[0] == 0
    assert error(capsys, "data", "remove", "BTCUSDT", "--tf", "4h") == (
        "error: nothing imported for BTCUSDT at 4h (it is imported at 5m, 1h); `playdeck data list` shows what is cached")
    assert run(capsys, "data", "remove", "BTCUSDT", "--tf", "1h") == (
        0, "removed BTCUSDT 1h (300 bars 2025-01-01T00:00:00Z .. 2025-01-13T11:00:00Z)\n", "")
    assert [line.split()[:2] for line in run(capsys, "data", "list")[1].splitlines()] == [["BTCUSDT", "5m"]]
    assert run(capsys, "data", "remove", "BTCUSDT")[1] == (
        "removed BTCUSDT 5m (300 bars 2025-01-01T00:00:00Z .. 2025-01-02T00:55:00Z)\n")
    assert error(capsys, "data", "remove", "BTCUSDT") == (
        "error: nothing imported for BTCUSDT; `playdeck data list` shows what is cached")
    assert error(capsys, "data", "remove", "btcusdt") == "error: symbol 'btcusdt' must be in capitals: BTCUSDT"
    assert error(capsys, "data", "remove", "BTCUSD").startswith("error: symbol 'BTCUSD' is not a Bybit USDT perpetual")
    assert error(capsys, "data", "remove", "BTCUSDT", "--tf", "7m").startswith("error: --tf: unknown timeframe '7m'")


def test_the_synthetic_set_is_not_removed_as_imported_data(cache_dir, capsys):
    assert run(capsys, "backtest", str(EMA_CROSS), "--data", "synthetic", "--to", "2025-01-03", "--no-progress",
               "--out", str(cache_dir.parent / "run"))[0] == 0
    assert error(capsys, "data", "remove", "BTCUSDT").startswith("error: nothing imported for BTCUSDT;")
    assert run(capsys, "data", "list")[1].split()[:2] == ["BTCUSDT", "1m"]


@pytest.mark.parametrize("args", [
    ["backtest", str(EMA_CROSS)],
    ["backtest", str(EMA_CROSS), "--data", "DATA"],
    ["data", "import", "DATA", "--symbol", "BTCUSDT"],
    ["data", "list"],
    ["data", "remove", "BTCUSDT"],
])
def test_a_blank_playdeck_cache_is_one_error_and_no_folder_named_blank(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    data = write_bars(tmp_path / "bars.csv", 600)
    monkeypatch.setenv("PLAYDECK_CACHE", " ")
    line = error(capsys, *[str(data) if a == "DATA" else a for a in args])
    assert line == "error: PLAYDECK_CACHE is ' ', only blanks; set it to a folder, or unset it for ~/.cache/playdeck"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.csv"]


@pytest.mark.parametrize("command", [["data", "list"], ["data", "remove", "BTCUSDT"]])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_cache_dir_is_an_error_for_every_data_command(tmp_path, monkeypatch, capsys, command, value):
    monkeypatch.chdir(tmp_path)
    line = error(capsys, *command, "--cache-dir", value)
    assert line == "error: --cache-dir is empty; give a folder, or omit it for $PLAYDECK_CACHE or ~/.cache/playdeck"
    assert list(tmp_path.iterdir()) == []
