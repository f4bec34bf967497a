"""`playdeck data fetch` run in-process (`main(argv)`) against the emulator on loopback: pages of a
thousand, the summary line, `data list`, a backtest on the fetched bars, Ctrl-C then the same command
again, and every bad input as one `error:` line with exit 2."""
from __future__ import annotations

import _thread
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emulator_kit import start, walk_bars
from paths import ROOT_DIR
from playdeck.dsl.vocabulary import TIMEFRAMES
from playdeck.runtime.data import cache
from playdeck.tui.cli import main

EMA_CROSS = ROOT_DIR / "plays" / "ema_cross.yml"  # BTCUSDT, 15m exec bars
BARS = walk_bars(3200, seed=5)
CURRENT = 3100  # the emulator's newest candle (2025-01-03T03:40Z): bars 0 .. 3099 are the ones stored
FETCH = ("data", "fetch", "BTCUSDT", "--tf", "1m", "--from", "2025-01-01")
NEWEST = "the newest candle, opened at 2025-01-03T03:40:00Z, may still be forming: not stored"


@pytest.fixture(scope="module")
def emu():
    bg = start(BARS, start_bar=CURRENT)
    yield bg
    bg.stop()


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_stored(cache_dir: Path, n: int) -> None:
    got = cache.load("BTCUSDT", "1m", cache_dir)
    assert np.array_equal(got.ts_open, BARS.ts_open[:n])
    for name in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(got.column(name), BARS.column(name)[:n]), name


def test_a_fetch_pages_by_a_thousand_and_a_backtest_runs_on_the_bars_it_stored(emu, cache_dir, tmp_path, capsys):
    code, out, err = run(capsys, *FETCH, "--endpoint", emu.url)
    entry = cache_dir / "market" / "BTCUSDT" / "1m"
    assert (code, err) == (0, "")
    assert out == (f"fetched 3100 1m bars of BTCUSDT from {emu.url} in 4 pages; {entry} holds 3100 bars "
                   f"2025-01-01T00:00:00Z .. 2025-01-03T03:39:00Z ({NEWEST})\n")
    assert_stored(cache_dir, CURRENT)
    assert run(capsys, "data", "list")[1] == (
        f"BTCUSDT  1m   2025-01-01T00:00:00Z .. 2025-01-03T03:39:00Z  3100 rows  fetched from {emu.url}\n")
    code, out, err = run(capsys, "backtest", str(EMA_CROSS), "--out", str(tmp_path / "run"), "--no-progress")
    assert (code, err) == (0, "")
    data = json.loads((tmp_path / "run" / "report.json").read_text())["data"]
    assert (data["label"], data["from"]) == ("market data", "2025-01-01T00:00:00Z")
    assert data["bars"] == 206  # 3100 minutes: 206 whole 15m bars (the 207th is partial)
    assert "market data: 206 exec bars" in out
    # the same command again: nothing new is closed, so nothing is written
    assert run(capsys, *FETCH, "--endpoint", emu.url) == (
        0, f"{entry} already holds 3100 bars 2025-01-01T00:00:00Z .. 2025-01-03T03:39:00Z of BTCUSDT 1m from "
           f"{emu.url}; nothing to fetch\n", "")


def test_ctrl_c_keeps_the_pages_fetched_and_the_same_command_fetches_only_the_rest(emu, cache_dir, capsys):
    pages = cache_dir / "fetching" / "BTCUSDT" / "1m"

    def interrupt_after_the_first_page() -> None:
        deadline = time.monotonic() + 30
        while not list(pages.glob("*.npz")) and time.monotonic() < deadline:
            time.sleep(0.005)
        _thread.interrupt_main()  # as Ctrl-C does: SIGINT in the main thread

    emu.call(emu.emu.delay_replies, 150)  # every answer late, so the interrupt comes while pages remain
    watcher = threading.Thread(target=interrupt_after_the_first_page)
    watcher.start()
    try:
        code, out, err = run(capsys, *FETCH, "--endpoint", emu.url)
    finally:
        watcher.join()
        emu.call(emu.emu.delay_replies, 0)
    assert (code, out) == (130, "")
    assert err == ("interrupted: the pages fetched so far are kept in the cache; run the same command again to "
                   "fetch the rest\n")
    kept = len(list(pages.glob("*.npz")))
    assert 1 <= kept < 4 and not cache.exists("BTCUSDT", "1m", cache_dir)
    code, out, err = run(capsys, *FETCH, "--endpoint", emu.url)
    assert (code, err) == (0, "")
    assert out.startswith(f"fetched {CURRENT - kept * 1000} 1m bars of BTCUSDT from {emu.url} in {4 - kept} page")
    assert out.endswith(f"({kept * 1000} bars were fetched before; {NEWEST})\n")
    assert_stored(cache_dir, CURRENT)
    assert not (cache_dir / "fetching").exists()


def test_a_fetch_over_an_imported_series_replaces_it_and_says_so(emu, cache_dir, tmp_path, capsys):
    csv = tmp_path / "m1.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{int(BARS.ts_open[k])},100,101,99,100,1\n" for k in range(60)))
    assert run(capsys, "data", "import", str(csv), "--symbol", "BTCUSDT")[0] == 0
    code, out, _ = run(capsys, *FETCH, "--to", "2025-01-01T02:00", "--endpoint", emu.url)
    assert code == 0
    assert out.endswith("holds 120 bars 2025-01-01T00:00:00Z .. 2025-01-01T01:59:00Z (replaced the cached 60 bars "
                        f"2025-01-01T00:00:00Z .. 2025-01-01T00:59:00Z (imported from {csv}))\n")
    assert_stored(cache_dir, 120)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, message", [
    (["DOGEUSDT", "--tf", "1m", "--from", "2025-01-01"],
     "{url} refused DOGEUSDT 1m klines: params error: symbol invalid (retCode 10001)"),
    (["BTCUSDT", "--tf", "1m", "--from", "2025-01-03", "--to", "2025-01-02"],
     "--from (2025-01-03T00:00:00Z) is after --to (2025-01-02T00:00:00Z)"),
    (["BTCUSDT", "--tf", "1m", "--from", "2025-01-02", "--to", "2025-01-02T00:00Z"],
     "--from and --to are both 2025-01-02T00:00:00Z: an empty range (--to is exclusive)"),
    (["BTCUSDT", "--tf", "7m", "--from", "2025-01-01"],
     f"--tf: unknown timeframe '7m'; expected one of {', '.join(TIMEFRAMES)}"),
    (["btcusdt", "--tf", "1m", "--from", "2025-01-01"], "symbol 'btcusdt' must be in capitals: BTCUSDT"),
    (["BTCUSDT", "--tf", "1m", "--from", "2025-13-01"],
     "--from: cannot read '2025-13-01' as a date; write e.g. 2025-03-01 or 2025-03-01T12:00"),
    (["BTCUSDT", "--tf", "1m", "--from", "2026-01-01"],
     "{url} has no closed BTCUSDT 1m candle from 2026-01-01T00:00:00Z on: its newest opened at "
     "2025-01-03T03:40:00Z and is still forming"),
    (["BTCUSDT", "--tf", "1m", "--from", "2024-12-01", "--to", "2024-12-02"],
     "{url} has no BTCUSDT 1m klines from 2024-12-01T00:00:00Z to before 2024-12-02T00:00:00Z"),
    (["BTCUSDT", "--tf", "1m", "--from", "2025-01-01", "--endpoint", "http://127.0.0.1:{dead}"],
     "no answer from http://127.0.0.1:{dead} (Connection refused)"),
    (["BTCUSDT", "--tf", "1m", "--from", "2025-01-01", "--endpoint", "127.0.0.1:8765"],
     "--endpoint '127.0.0.1:8765' is not an http(s) address such as https://api.bybit.com or http://127.0.0.1:8765"),
])
def test_bad_input_is_one_error_line_and_exit_2(emu, cache_dir, capsys, args, message):
    dead = closed_port()
    argv = [a.format(dead=dead) for a in args]
    if "--endpoint" not in argv:
        argv += ["--endpoint", emu.url]
    code, out, err = run(capsys, "data", "fetch", *argv)
    assert (code, out) == (2, "")
    assert err == f"error: {message.format(url=emu.url, dead=dead)}\n"
    assert not cache_dir.exists() or not (cache_dir / "fetching").exists()  # nothing half made is left


def test_a_missing_option_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "fetch", "BTCUSDT", "--tf", "1m"])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "error: the following arguments are required: --from (see 'playdeck data fetch --help')\n")
