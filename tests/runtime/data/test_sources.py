"""Where a backtest's bars come from: a --data file is parsed once, then its arrays are mapped from
the cache while the file is unchanged, and the run is the same either way."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from csv_kit import walk_csv
from paths import ROOT_DIR
from playdeck.runtime.data import cache, sources
from playdeck.runtime.data.sources import SourceError, fingerprint, load_bars
from playdeck.tui.cli import main

EMA_CROSS = ROOT_DIR / "plays" / "ema_cross.yml"
ARTIFACTS = ("fills.csv", "orders.csv", "trades.csv", "rejections.csv", "equity.csv", "equity.svg")


def write_bars(path: Path, n: int = 3000, skip: range = range(0)) -> Path:
    """A random walk of n 1m bars from 2025-01-01 (the bars numbered in `skip` left out)."""
    return walk_csv(path, n, seed=5, skip=skip)


def backtest(capsys, out: Path, *args: str) -> tuple[str, dict]:
    """The data line of the report and report.json of one backtest through the command line."""
    assert main(["backtest", str(EMA_CROSS), *args, "--out", str(out), "--no-progress"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("data"))
    return line, json.loads((out / "report.json").read_text())


def test_a_data_file_is_parsed_once_then_mapped_and_the_run_is_the_same(tmp_path, cache_dir, capsys, monkeypatch):
    data = write_bars(tmp_path / "bars.csv")
    first_line, first = backtest(capsys, tmp_path / "a", "--data", str(data))
    assert first_line.startswith("data        market data: 200 exec bars")
    assert first["data"]["cached"] is False and first["data"]["label"] == "market data"

    def no_parse(*args, **kwargs):
        raise AssertionError("the file was parsed again")

    monkeypatch.setattr(sources, "import_csv", no_parse)
    second_line, second = backtest(capsys, tmp_path / "b", "--data", str(data))
    assert second_line == first_line.replace("market data:", "market data (cached):")
    assert second["data"]["cached"] is True and second["data"]["label"] == "market data (cached)"
    for report in (first, second):
        report.pop("out")
        report["data"].pop("cached")
        report["data"].pop("label")
    assert first == second
    for name in ARTIFACTS:
        a, b = (tmp_path / "a" / name).read_text(), (tmp_path / "b" / name).read_text()
        assert a == (b.replace("market data (cached)", "market data") if name == "equity.svg" else b), name


def test_remembered_bars_are_memory_mapped_and_the_same_as_parsed(tmp_path, cache_dir):
    data = write_bars(tmp_path / "bars.csv", n=500)
    parsed = load_bars("BTCUSDT", str(data), None, None, "15m")
    mapped = load_bars("ETHUSDT", str(data), None, None, "15m")  # a file's bars serve any symbol
    assert (parsed.cached, mapped.cached) == (False, True)
    assert mapped.bars.symbol == "ETHUSDT" and mapped.bars.tf == "1m" and not mapped.bars.synthetic
    for name in ("ts_open", "open", "high", "low", "close", "volume"):
        column = mapped.bars.column(name)
        assert isinstance(column.base, np.memmap) and not column.flags.writeable
        assert column.dtype == parsed.bars.column(name).dtype
        assert column.tobytes() == parsed.bars.column(name).tobytes()


def test_a_changed_file_or_other_options_are_read_again(tmp_path, cache_dir):
    data = write_bars(tmp_path / "bars.csv", n=500, skip=range(200, 203))
    first = load_bars("BTCUSDT", str(data), None, None, "15m", gaps="fill")
    assert (first.cached, first.filled_gaps) == (False, 3)
    again = load_bars("BTCUSDT", str(data), None, None, "15m", gaps="fill")
    assert (again.cached, again.filled_gaps) == (True, 3)  # the report still says what was filled
    # other options that change the result: a key of their own
    assert load_bars("BTCUSDT", str(data), "1m", None, "15m", gaps="fill").cached is False
    with pytest.raises(Exception, match="gap: 3 missing 1m bars"):
        load_bars("BTCUSDT", str(data), None, None, "15m", gaps="error")
    # a touch, an edit: read again
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_bars("BTCUSDT", str(data), None, None, "15m", gaps="fill").cached is False
    write_bars(data, n=600)
    changed = load_bars("BTCUSDT", str(data), None, None, "15m")
    assert changed.cached is False and len(changed.bars) == 600


@pytest.mark.parametrize("where", [0, -2])  # a byte in the first block, a byte in the last
def test_the_key_sees_an_edit_at_either_end_that_keeps_size_and_time(tmp_path, where):
    data = write_bars(tmp_path / "bars.csv", n=20_000)  # over 2 x 64 KiB: two blocks hashed
    before = fingerprint(data, None, "error")
    raw = bytearray(data.read_bytes())
    stat = data.stat()
    raw[where] = ord("7") if raw[where] != ord("7") else ord("8")
    data.write_bytes(bytes(raw))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = fingerprint(data, None, "error")
    assert before is not None and after is not None
    assert (after.size, after.mtime_ns) == (before.size, before.mtime_ns) and after.key != before.key


def test_an_edited_file_leaves_one_remembered_copy_and_other_options_keep_theirs(tmp_path, cache_dir):
    data = write_bars(tmp_path / "bars.csv")
    other = write_bars(tmp_path / "other.csv")
    load_bars("BTCUSDT", str(data), None, None, "15m", None)
    load_bars("BTCUSDT", str(data), None, None, "15m", "fill")  # the same file read another way
    load_bars("BTCUSDT", str(other), None, None, "15m", None)
    for n in (2900, 2800):  # two edits: each changes the size, so the file is read again
        write_bars(data, n)
        load_bars("BTCUSDT", str(data), None, None, "15m", None)

    def remembered() -> dict[tuple[str, str], list[str]]:
        found: dict[tuple[str, str], list[str]] = {}
        for e in cache.file_entries(cache_dir):
            source = e.meta["source"]
            found.setdefault((Path(source["file"]).name, source["gaps"]), []).append(e.name)
        return found

    now = remembered()
    assert sorted(now) == [("bars.csv", "error"), ("bars.csv", "fill"), ("other.csv", "error")]
    assert now[("bars.csv", "error")] == [fingerprint(data, None, "error").key]  # the latest, alone
    assert all(len(keys) == 1 for keys in now.values())
    assert load_bars("BTCUSDT", str(data), None, None, "15m", None).cached  # and it serves the next run


def test_a_damaged_remembered_copy_is_read_again_and_replaced(tmp_path, cache_dir):
    data = write_bars(tmp_path / "bars.csv", n=500)
    load_bars("BTCUSDT", str(data), None, None, "15m")
    entry = cache.file_entry(fingerprint(data, None, "error").key, cache_dir)
    (entry / "close.npy").write_bytes(b"not an npy file")
    repaired = load_bars("BTCUSDT", str(data), None, None, "15m")
    assert repaired.cached is False and len(repaired.bars) == 500
    assert load_bars("BTCUSDT", str(data), None, None, "15m").cached is True


def test_a_data_file_cannot_be_remembered_in_a_cache_that_is_a_file(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("PLAYDECK_CACHE", str(afile))
    data = write_bars(tmp_path / "bars.csv", n=500)
    with pytest.raises(cache.CacheError, match=f"cannot write to the cache folder {afile}: {afile} is a file"):
        load_bars("BTCUSDT", str(data), None, None, "15m")


def test_data_synthetic_is_the_bundled_set_and_takes_no_file_options(cache_dir):
    loaded = load_bars("BTCUSDT", "synthetic", None, None, "15m")
    assert loaded.bars.synthetic and loaded.label == "synthetic" and loaded.cached is None
    for option, kw in (("--data-tf", {"data_tf": "1m"}), ("--gaps", {"gaps": "fill"})):
        with pytest.raises(SourceError, match=f"{option} is about a --data file, not the bundled synthetic set"):
            load_bars("BTCUSDT", "synthetic", kw.get("data_tf"), None, "15m", kw.get("gaps"))
    with pytest.raises(SourceError, match="--data synthetic is the bundled BTCUSDT set, and the Play trades ETHUSDT"):
        load_bars("ETHUSDT", "synthetic", None, None, "15m")
