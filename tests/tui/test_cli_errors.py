"""User mistakes on the command line: each is one `error:` line and exit 2, never `internal error`.

Bad paths (--out, --data, --cache-dir, the file given to `data import`), bad files (binary, epoch
seconds), bad options (timeframes, symbols, an inverted --from/--to), cached data that cannot make
the Play's exec bars or is damaged; and the progress bar, which must end at 100%.
"""
from __future__ import annotations

from csv_kit import walk_csv
from paths import ROOT_DIR

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from playdeck.runtime.backtest.run import BacktestError, claim_out_dir, run_backtest
from playdeck.tui import cli as cli_module
from playdeck.tui.cli import progress_text

ROOT = ROOT_DIR
EMA_CROSS = ROOT / "plays" / "ema_cross.yml"


def cli(*args: str, cache: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PLAYDECK_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "playdeck.tui.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def one_error(r: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a run that failed on a user mistake."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def write_bars(path: Path, n: int = 3000, step_ms: int = 60_000, newest_first: bool = False,
               skip: range = range(0)) -> Path:
    """A valid generic CSV of `n` bars `step_ms` apart from 2025-01-01, as a random walk; the bars
    numbered in `skip` left out (a gap)."""
    return walk_csv(path, n, seed=11, step_ms=step_ms, skip=skip, newest_first=newest_first)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """3000 1m bars: 200 exec bars for the 15m ema_cross Play, ready at bar 21."""
    return write_bars(tmp_path_factory.mktemp("data") / "bars.csv")


# --------------------------------------------------------------------------- paths


def test_out_that_is_a_file_is_an_error_naming_it(tmp_path: Path, data: Path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    line = one_error(cli("backtest", str(EMA_CROSS), "--data", str(data), "--out", str(afile), cache=tmp_path / "c"))
    assert line == f"error: cannot use {afile} as the output folder: {afile} is a file, not a folder"
    assert afile.read_text() == "keep me"


def test_out_under_a_file_names_the_file_in_the_way(tmp_path: Path, data: Path):
    afile = tmp_path / "afile"
    afile.write_text("")
    line = one_error(cli("backtest", str(EMA_CROSS), "--data", str(data), "--out", str(afile / "sub"),
                         cache=tmp_path / "c"))
    assert line == f"error: cannot use {afile / 'sub'} as the output folder: {afile} is a file, not a folder"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a Linux /proc")
def test_out_in_an_uncreatable_place(tmp_path: Path, data: Path):
    line = one_error(cli("backtest", str(EMA_CROSS), "--data", str(data), "--out", "/proc/foo", cache=tmp_path))
    assert line.startswith("error: cannot use /proc/foo as the output folder: ")


def test_out_folder_where_no_file_can_be_written_is_an_error_before_the_run(tmp_path: Path, data: Path):
    """An existing folder in which no file can be created: mkdir (exist_ok) accepts it, and before
    the write probe the run went ahead and failed only when writing its files.

    Tests may run as root, whom a chmod does not stop, so the folder is made unwritable in a way
    that stops anyone: its path is so long that a file name no longer fits under PATH_MAX (the
    folder itself still fits). Its files would have failed the same way (`equity.parquet` under it
    is past the limit too), after the run."""
    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")  # bytes, with the terminating NUL
    length = path_max - 10
    folder = str(tmp_path)
    while len(folder) < length:  # levels of at most 200 characters (a name may have 255)
        folder += "/" + "d" * min(200, length - len(folder) - 1)
    os.makedirs(folder)
    assert len(folder) == length and len(folder + "/equity.parquet") >= path_max
    shown: list[tuple[int, int]] = []
    with pytest.raises(BacktestError) as e:
        run_backtest(str(EMA_CROSS), data=str(data), out=folder, progress=lambda i, n: shown.append((i, n)))
    assert shown == []  # the bar loop never started
    assert str(e.value) == f"cannot write files in the output folder {folder}: File name too long"
    line = one_error(cli("backtest", str(EMA_CROSS), "--data", str(data), "--out", folder, cache=tmp_path / "c"))
    assert line == f"error: {e.value}"
    assert os.listdir(folder) == []


def test_the_write_probe_leaves_nothing_behind(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    assert claim_out_dir(str(tmp_path), "ema_cross", datetime.now(timezone.utc)) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_empty_out_is_an_error_and_writes_nothing(tmp_path: Path, data: Path):
    line = one_error(cli("backtest", str(EMA_CROSS), "--data", str(data), "--out", "", cache=tmp_path / "c",
                         cwd=tmp_path))
    assert "--out is empty" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even the cache: --data needs none


def test_data_that_is_a_folder(tmp_path: Path):
    line = one_error(cli("backtest", str(EMA_CROSS), "--data", str(tmp_path), cache=tmp_path / "c"))
    assert line == f"error: {tmp_path} is a folder, not a data file"


def test_a_missing_file_is_the_same_error_for_import_and_backtest(tmp_path: Path):
    missing = tmp_path / "nonexist.csv"
    imported = one_error(cli("data", "import", str(missing), "--symbol", "BTCUSDT", cache=tmp_path / "c"))
    backtested = one_error(cli("backtest", str(EMA_CROSS), "--data", str(missing), cache=tmp_path / "c"))
    assert imported == backtested == f"error: no such data file: {missing}"


def test_a_binary_file_is_not_utf8_text(tmp_path: Path):
    binary = tmp_path / "bars.csv"
    binary.write_bytes(b"timestamp,open,high,low,close,volume\n" + bytes(range(128, 256)))
    for args in (("data", "import", str(binary), "--symbol", "BTCUSDT"),
                 ("backtest", str(EMA_CROSS), "--data", str(binary))):
        line = one_error(cli(*args, cache=tmp_path / "c"))
        assert line == f"error: {binary}: not UTF-8 text: byte 0x80 on row 2 (offset 37); give a CSV saved as UTF-8"


def test_unknown_timeframes_list_the_valid_ones(tmp_path: Path, data: Path):
    valid = "expected one of 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d"
    imported = one_error(cli("data", "import", str(data), "--symbol", "BTCUSDT", "--tf", "7m", cache=tmp_path))
    assert imported == f"error: --tf: unknown timeframe '7m'; {valid}"
    backtested = one_error(cli("backtest", str(EMA_CROSS), "--data", str(data), "--data-tf", "7m", cache=tmp_path))
    assert backtested == f"error: --data-tf: unknown timeframe '7m'; {valid}"


def test_a_cache_dir_that_is_a_file(tmp_path: Path, data: Path):
    afile = tmp_path / "afile"
    afile.write_text("")
    line = one_error(cli("data", "import", str(data), "--symbol", "BTCUSDT", "--cache-dir", str(afile),
                         cache=tmp_path / "unused"))
    assert line.startswith(f"error: cannot write to the cache folder {afile}: {afile} is a file, not a folder")
    # PLAYDECK_CACHE too, where the backtest would generate the synthetic set
    line = one_error(cli("backtest", str(EMA_CROSS), cache=afile))
    assert line.startswith(f"error: cannot write to the cache folder {afile}: {afile} is a file, not a folder")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a Linux /proc")
def test_a_cache_dir_that_cannot_be_created(tmp_path: Path, data: Path):
    line = one_error(cli("data", "import", str(data), "--symbol", "BTCUSDT", "--cache-dir", "/proc/x",
                         cache=tmp_path))
    assert line.startswith("error: cannot write to the cache folder /proc/x: ")


def test_an_empty_cache_dir_is_an_error(tmp_path: Path, data: Path):
    line = one_error(cli("data", "import", str(data), "--symbol", "BTCUSDT", "--cache-dir", "", cache=tmp_path,
                         cwd=tmp_path))
    assert "--cache-dir is empty" in line and not (tmp_path / "market").exists()


@pytest.mark.parametrize("damage,reason", [
    (lambda entry: (entry / "meta.json").write_text("{not json"), "meta.json is not valid JSON"),
    (lambda entry: (entry / "close.npy").unlink(), "No such file or directory: close.npy"),
    (lambda entry: (entry / "high.npy").write_bytes(b"\x93NUMPY"), "high.npy: "),
])
def test_a_damaged_cache_entry_says_so_and_how_to_fix_it(tmp_path: Path, data: Path, damage, reason):
    cache = tmp_path / "cache"
    assert cli("data", "import", str(data), "--symbol", "BTCUSDT", cache=cache).returncode == 0
    entry = cache / "market" / "BTCUSDT" / "1m"
    damage(entry)
    line = one_error(cli("backtest", str(EMA_CROSS), cache=cache))
    assert line.startswith(f"error: the cache entry {entry} is damaged (")
    assert line.endswith("re-import the data with `playdeck data import`, or delete that folder")
    assert reason in line


def test_a_last_resort_os_error_is_a_user_error_not_a_bug(tmp_path: Path, monkeypatch, capsys):
    """A file problem no layer names (here writing a Play back in `fmt --write`) still exits 2."""
    play = tmp_path / "p.yml"
    play.write_text(EMA_CROSS.read_text().replace("market:\n", "market:\n\n"))  # not canonical: fmt rewrites it

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)
    assert cli_module.main(["fmt", str(play), "--write"]) == 2
    assert capsys.readouterr().err == f"error: Permission denied: {play}\n"


# --------------------------------------------------------------------------- cached timeframes


def test_cached_bars_that_cannot_build_the_exec_bars_are_an_error_not_a_fallback(tmp_path: Path):
    cache = tmp_path / "cache"
    hourly = write_bars(tmp_path / "h1.csv", n=300, step_ms=3_600_000)
    eth_play = tmp_path / "eth.yml"
    eth_play.write_text(EMA_CROSS.read_text().replace("BTCUSDT", "ETHUSDT"))
    # the bundled set is BTCUSDT: only there is --data synthetic a way out
    others = {"BTCUSDT": ", give --data FILE, or give --data synthetic for the bundled set",
              "ETHUSDT": " or give --data"}
    for symbol, play in (("BTCUSDT", EMA_CROSS), ("ETHUSDT", eth_play)):
        assert cli("data", "import", str(hourly), "--symbol", symbol, cache=cache).returncode == 0
        line = one_error(cli("backtest", str(play), cache=cache))
        assert line == (f"error: {symbol} is cached at 1h, which cannot build the Play's exec timeframe 15m; "
                        f"import 1m, 3m, 5m or 15m bars{others[symbol]}")
    assert not (cache / "synthetic").exists()  # the synthetic set was never the quiet answer


# --------------------------------------------------------------------------- symbols


_NOT_USDT = "is not a Bybit USDT perpetual: capitals and digits ending in USDT, e.g. BTCUSDT or 1000PEPEUSDT"


@pytest.mark.parametrize("symbol,message", [
    ("../../evil", f"error: --symbol '../../evil' {_NOT_USDT}"),
    ("", f"error: --symbol '' {_NOT_USDT}"),
    ("btcusdt", "error: --symbol 'btcusdt' must be in capitals: BTCUSDT"),
    ("B", f"error: --symbol 'B' {_NOT_USDT}"),
    # the one rule a Play's market.symbol follows too: a cache no Play could read is never filled
    ("BTCUSD", f"error: --symbol 'BTCUSD' {_NOT_USDT}"),
])
def test_bad_symbols_are_refused_and_nothing_is_written(tmp_path: Path, data: Path, symbol: str, message: str):
    cache = tmp_path / "deep" / "cache"
    assert one_error(cli("data", "import", str(data), "--symbol", symbol, cache=cache)) == message
    assert list(tmp_path.rglob("*")) == []


def test_a_symbol_with_digits_is_fine(tmp_path: Path, data: Path):
    r = cli("data", "import", str(data), "--symbol", "1000PEPEUSDT", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "market" / "1000PEPEUSDT" / "1m" / "meta.json").is_file()


# --------------------------------------------------------------------------- range and out folder


def test_from_after_to_says_so(tmp_path: Path):
    line = one_error(cli("backtest", str(EMA_CROSS), "--from", "2025-05-01", "--to", "2025-04-01", cache=tmp_path))
    assert line == "error: --from (2025-05-01T00:00:00Z) is after --to (2025-04-01T00:00:00Z)"


def test_data_tf_without_data_is_an_error_not_ignored(tmp_path: Path):
    line = one_error(cli("backtest", str(EMA_CROSS), "--data-tf", "1m", cache=tmp_path))
    assert line == "error: --data-tf is about a --data file; give it with --data"
    line = one_error(cli("backtest", str(EMA_CROSS), "--gaps", "fill", cache=tmp_path))
    assert line == "error: --gaps is about a --data file; give it with --data"


def test_a_gappy_data_file_backtests_with_gaps_fill(tmp_path: Path, data: Path):
    rows = data.read_text().splitlines()
    gappy = tmp_path / "gappy.csv"
    gappy.write_text("\n".join(rows[:1000] + rows[1010:]) + "\n")  # ten 1m bars missing
    r = cli("backtest", str(EMA_CROSS), "--data", str(gappy), "--out", str(tmp_path / "a"), cache=tmp_path)
    assert r.returncode == 2 and "row 1001: gap: 10 missing 1m bars" in r.stderr
    r = cli("backtest", str(EMA_CROSS), "--data", str(gappy), "--gaps", "fill", "--out", str(tmp_path / "b"),
            cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "200 exec bars" in r.stdout  # 3000 1m bars again, as 15m bars


def test_runs_in_the_same_second_get_their_own_default_folders(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = datetime(2025, 3, 1, 12, 30, 5, tzinfo=timezone.utc)
    got = [claim_out_dir(None, "ema_cross", now) for _ in range(3)]
    assert got == [Path("runs/ema_cross-20250301-123005"), Path("runs/ema_cross-20250301-123005-2"),
                   Path("runs/ema_cross-20250301-123005-3")]
    assert all(p.is_dir() for p in got)


def test_an_existing_out_folder_is_reused(tmp_path: Path):
    assert claim_out_dir(str(tmp_path), "ema_cross", datetime.now(timezone.utc)) == tmp_path


# --------------------------------------------------------------------------- progress bar


def test_progress_text_runs_from_empty_to_full():
    assert progress_text(0, 200) == "[" + "." * 30 + "]   0.0%"
    assert progress_text(50, 200) == "[" + "#" * 7 + "." * 23 + "]  25.0%"
    assert progress_text(200, 200) == "[" + "#" * 30 + "] 100.0%"
    assert progress_text(250, 200) == progress_text(200, 200)  # never past full
    assert progress_text(0, 0) == progress_text(1, 1)  # nothing to run is done


def test_the_last_progress_report_of_a_run_is_complete(tmp_path: Path):
    """A 1m Play over 70,000 bars: the engine reports at 65,536 bars in, then the run says 100%."""
    play = tmp_path / "m1.yml"
    play.write_text(EMA_CROSS.read_text().replace("exec: 15m", "exec: 1m"))
    data = write_bars(tmp_path / "m1.csv", n=70_000)
    seen: list[tuple[int, int]] = []
    run_backtest(str(play), data=str(data), start="2025-01-01T00:10", write=False, cache_dir=str(tmp_path),
                 progress=lambda i, n: seen.append((i, n)))
    span = 70_000 - 10  # --from drops the first ten minutes
    assert seen[-1] == (span, span) and len(seen) >= 2
    assert all(n == span and 0 <= i <= span for i, n in seen)
    assert [i for i, _ in seen] == sorted(i for i, _ in seen)


def test_a_dangling_runs_link_is_an_error_not_an_endless_search(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "runs").symlink_to(tmp_path / "nowhere" / "runs")
    line = one_error(cli("backtest", str(EMA_CROSS), cache=tmp_path, cwd=work))
    assert line.startswith("error: cannot use runs as the output folder")


def test_a_symbol_with_a_trailing_newline_is_refused_by_check(tmp_path: Path):
    # `$` in a regex also matches before a final newline: the symbol must match in full
    play = tmp_path / "p.yml"
    play.write_text(EMA_CROSS.read_text().replace("symbol: BTCUSDT", 'symbol: "BTCUSDT\\n"'))
    r = cli("check", str(play), cache=tmp_path)
    assert r.returncode == 2 and "'market.symbol' is 'BTCUSDT\\n', not a Bybit USDT perpetual" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["backtest", str(EMA_CROSS), "--gaps", "maybe"], "error: argument --gaps: invalid choice: 'maybe'"),
    (["backtest", str(EMA_CROSS), "--data"], "error: argument --data: expected one argument"),
    (["data", "import", "x.csv"], "error: the following arguments are required: --symbol"),
])
def test_an_option_mistake_is_one_error_line_not_a_usage_block(tmp_path: Path, args, message):
    line = one_error(cli(*args, cache=tmp_path / "cache"))
    assert line.startswith(message) and line.endswith("--help')")


def test_a_from_date_outside_1970_2099_is_an_option_error(tmp_path: Path, data: Path):
    r = cli("backtest", str(EMA_CROSS), "--data", str(data), "--from", "9999-12-31T23:59:59-01:00",
            "--out", str(tmp_path / "out"), cache=tmp_path / "cache")
    assert one_error(r) == "error: '9999-12-31T23:59:59-01:00' is outside 1970-2099 (UTC)"


def test_a_range_with_one_bar_after_the_warm_up_can_trade(tmp_path: Path):
    # ready at bar 21, the range ends at bar 22: an order sent at the close of 21 fills in 22
    r = cli("backtest", str(EMA_CROSS), "--to", "2025-01-01T05:45", "--out", str(tmp_path / "run"),
            cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert "22 exec bars" in r.stdout or "23 exec bars" in r.stdout


def test_the_report_says_when_gaps_were_filled(tmp_path: Path):
    data = write_bars(tmp_path / "gappy.csv", n=600, skip=range(100, 107))
    r = cli("backtest", str(EMA_CROSS), "--data", str(data), "--gaps", "fill", "--out", str(tmp_path / "run"),
            cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    data_line = next(line for line in r.stdout.splitlines() if line.startswith("data"))
    assert data_line.startswith("data        market data: 40 exec bars")
    assert data_line.endswith("(7 missing 1m bars of the file filled flat)")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["data"]["filled_gaps"] == 7 and report["data"]["filled_tf"] == "1m"
    plain = cli("backtest", str(EMA_CROSS), "--data", str(write_bars(tmp_path / "whole.csv", n=600)),
                "--out", str(tmp_path / "run2"), cache=tmp_path / "c")
    assert "filled" not in plain.stdout and "filled_gaps" not in (tmp_path / "run2" / "report.json").read_text()


def test_an_import_over_a_cached_series_says_it_replaced_it(tmp_path: Path):
    first = write_bars(tmp_path / "a.csv", n=600)
    second = write_bars(tmp_path / "b.csv", n=600, skip=range(500, 600))  # the same minutes, without the last 100
    one = cli("data", "import", str(first), "--symbol", "TESTUSDT", cache=tmp_path / "c")
    assert one.returncode == 0 and "replaced" not in one.stdout
    two = cli("data", "import", str(second), "--symbol", "TESTUSDT", cache=tmp_path / "c")
    assert two.returncode == 0, two.stderr
    assert "(replaced the cached 600 bars 2025-01-01T00:00:00Z .. 2025-01-01T09:59:00Z)" in two.stdout
    assert two.stdout.startswith("imported 500 1m bars of TESTUSDT")


def test_progress_goes_to_stderr_when_asked_and_never_into_the_report(tmp_path: Path):
    shown = cli("backtest", str(EMA_CROSS), "--progress", "--out", str(tmp_path / "a"), cache=tmp_path / "c")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.endswith("[" + "#" * 30 + "] 100.0%\n") and "%" not in shown.stdout.splitlines()[0]
    quiet = cli("backtest", str(EMA_CROSS), "--out", str(tmp_path / "b"), cache=tmp_path / "c")
    assert quiet.returncode == 0 and quiet.stderr == ""  # captured, not a terminal: no frames
    assert quiet.stdout == shown.stdout.replace(str(tmp_path / "a"), str(tmp_path / "b"))


def test_a_range_of_one_bar_after_the_warm_up_is_an_error(tmp_path: Path):
    # warm-up long done, but the range is the single bar 2025-01-04T00:00 (bar 288): an order sent
    # at its close could only fill in bar 289, outside the range
    line = one_error(cli("backtest", str(EMA_CROSS), "--from", "2025-01-04T00:00", "--to", "2025-01-04T00:15",
                         cache=tmp_path / "c"))
    assert line == ("error: the Play cannot trade in this run: the chosen range is the one bar 288, and an "
                    "order sent at its close would fill in bar 289 at the earliest; give --from and --to at "
                    "least two 15m bars apart")


# --------------------------------------------------------------------------- what to do about the data

GAPS_HINT = ("hint: --gaps fill (an option of backtest --data and of data import) inserts flat bars where bars are "
             "missing, open = high = low = close = the previous close and volume 0, instead of failing")


def run_main(capsys, *args: str) -> tuple[int, list[str]]:
    """`playdeck ARGS` in this process: the exit code and the lines of stderr."""
    code = cli_module.main(list(args))
    return code, capsys.readouterr().err.splitlines()


def test_a_gap_in_a_backtest_data_file_names_gaps_fill(tmp_path: Path, capsys):
    gappy = write_bars(tmp_path / "gappy.csv", skip=range(1000, 1010))  # ten 1m bars missing
    code, err = run_main(capsys, "backtest", str(EMA_CROSS), "--data", str(gappy), "--out", str(tmp_path / "o"),
                         "--no-progress")
    assert code == 2
    assert err == [f"error: {gappy}: 1 problem in the data",
                   "  row 1002: gap: 10 missing 1m bars between 2025-01-01T16:39:00Z (row 1001) and "
                   "2025-01-01T16:50:00Z", GAPS_HINT]


def test_a_gap_in_an_imported_file_names_gaps_fill_and_importing_with_it_works(tmp_path: Path, capsys):
    gappy = write_bars(tmp_path / "gappy.csv", skip=range(5, 7))
    args = ("data", "import", str(gappy), "--symbol", "BTCUSDT", "--tf", "1m", "--cache-dir", str(tmp_path / "c"))
    code, err = run_main(capsys, *args)
    assert code == 2
    assert err[1:] == ["  row 7: gap: 2 missing 1m bars between 2025-01-01T00:04:00Z (row 6) and 2025-01-01T00:07:00Z",
                       GAPS_HINT]
    code, err = run_main(capsys, *args, "--gaps", "fill")
    assert code == 0, err


def test_a_file_of_another_timeframe_is_not_told_to_fill_its_gaps(tmp_path: Path, capsys):
    hourly = write_bars(tmp_path / "hourly.csv", n=50, step_ms=3_600_000)
    code, err = run_main(capsys, "data", "import", str(hourly), "--symbol", "BTCUSDT", "--tf", "1m",
                         "--cache-dir", str(tmp_path / "c"))
    assert code == 2
    assert any("most bars are 60 minutes apart, not 1m" in line for line in err)
    assert not any(line.startswith("hint:") for line in err)


@pytest.mark.parametrize("args,chosen", [
    (("--from", "2031-01-01"), "--from 2031-01-01"),
    (("--to", "2024-06-01"), "--to 2024-06-01"),
    (("--from", "2024-01-01", "--to", "2024-12-31T23:59"), "--from 2024-01-01 --to 2024-12-31T23:59"),
])
def test_a_range_without_bars_names_the_range_of_the_data(tmp_path: Path, data: Path, capsys, args, chosen):
    code, err = run_main(capsys, "backtest", str(EMA_CROSS), "--data", str(data), *args, "--out", str(tmp_path / "o"),
                         "--no-progress")
    assert code == 2
    # 3000 1m bars from 2025-01-01 are 200 15m bars, the last opening at 49:45 hours
    assert err == [f"error: no bars in the chosen range ({chosen}): the data's 15m bars open from "
                   "2025-01-01T00:00:00Z to 2025-01-03T01:45:00Z"]
