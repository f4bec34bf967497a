"""A funding_rate column in the data (PLAY-LANGUAGE.md 7.3, issue #11): CSV import reads it on every
parsing path with the same values and the same errors, Bars keeps it through take() and drops it when
resampled, and the cache (imported series and remembered --data files) keeps it."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playdeck.runtime.data import cache, csv_import
from playdeck.runtime.data.bars import Bars, resample
from playdeck.runtime.data.csv_import import DataError, import_csv
from playdeck.runtime.data.sources import load_bars

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MIN = 60_000
HOUR = 3_600_000
HEADER = "timestamp,open,high,low,close,volume"


def bar(t: int, rate: str | None = None, price: float = 100.0) -> str:
    row = f"{t},{price},{price + 1},{price - 1},{price},1.5"
    return row if rate is None else f"{row},{rate}"


def write(tmp_path, lines: list[str], name: str = "bars.csv"):
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode())
    return path


def outcome(path, tf: str | None = "1m", gaps: str = "error"):
    """The columns (funding rate included) and flags byte for byte, or the problems."""
    try:
        result = import_csv(path, "BTCUSDT", tf, gaps)
    except DataError as exc:
        return ("error", [(p.row, p.message) for p in exc.problems])
    b = result.bars
    rates = None if b.funding_rate is None else (b.funding_rate.dtype.str, b.funding_rate.tobytes())
    return ("bars", b.tf, result.filled_gaps, result.reversed, rates,
            [b.column(n).tobytes() for n in ("ts_open", "open", "high", "low", "close", "volume")])


def each_path(path, monkeypatch, **kw) -> dict[str, object]:
    """The outcome by pyarrow, with pyarrow declining (numpy's loadtxt, which takes only files whose
    every funding cell holds a number), and row by row (both declining)."""
    got = {"arrow": outcome(path, **kw)}
    with monkeypatch.context() as m:
        m.setattr(csv_import, "_parse_arrow", lambda data, where: None)
        got["loadtxt"] = outcome(path, **kw)
        m.setattr(csv_import, "_parse_numeric", lambda body, first_row, columns: None)
        got["rows"] = outcome(path, **kw)
    return got


def taken_by_arrow(path) -> bool:
    return csv_import._parse_arrow(path.read_bytes(), path) is not None


def same(a: np.ndarray, b: list[float]) -> bool:
    """Equal as floats, NaN where NaN (a blank stays unknown, never 0)."""
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a.tolist(), b))


NAN = float("nan")


# ------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("name", ["funding_rate", "fundingRate", "funding", " Funding_Rate "])
def test_the_column_is_read_with_blanks_unknown_on_every_path(tmp_path, monkeypatch, name):
    rates = ["0.0001", "", "-0.00025", "", "", "1e-4", "0", ""]
    path = write(tmp_path, [f"{HEADER},{name}"] + [bar(T0 + k * MIN, r) for k, r in enumerate(rates)])
    assert taken_by_arrow(path)  # blank funding cells do not send a big file to the slow parsers
    got = each_path(path, monkeypatch)
    assert got["arrow"] == got["loadtxt"] == got["rows"]
    bars = import_csv(path, "BTCUSDT", "1m").bars
    assert bars.funding_rate.dtype == np.float64
    assert same(bars.funding_rate, [0.0001, NAN, -0.00025, NAN, NAN, 0.0001, 0.0, NAN])
    assert bars.open.tolist() == [100.0] * 8  # the other columns as ever


def test_a_file_of_numbers_only_goes_through_loadtxt_when_arrow_declines(tmp_path, monkeypatch):
    path = write(tmp_path, ["fundingRate," + HEADER] + [f"{r},{bar(T0 + k * MIN)}" for k, r in
                                                         enumerate(["0.0001", "0.0002", "-0.0003"])])
    with monkeypatch.context() as m:
        m.setattr(csv_import, "_parse_arrow", lambda data, where: None)
        lines = path.read_text().splitlines()
        parsed = csv_import._parse_numeric(lines[1:], 2, csv_import._layout(lines, path)[1])
    assert parsed is not None and same(parsed[1][:, 5], [0.0001, 0.0002, -0.0003])
    got = each_path(path, monkeypatch)
    assert got["arrow"] == got["loadtxt"] == got["rows"]


def test_an_iso_file_is_read_row_by_row_with_the_same_rates(tmp_path, monkeypatch):
    iso = [f"2025-01-01T00:0{k}:00Z,100,101,99,100,1.5,{r}" for k, r in enumerate(["0.0001", "", "-0.0002"])]
    epoch = [bar(T0 + k * MIN, r) for k, r in enumerate(["0.0001", "", "-0.0002"])]
    a = write(tmp_path, [f"{HEADER},funding_rate"] + iso, "iso.csv")
    b = write(tmp_path, [f"{HEADER},funding_rate"] + epoch, "epoch.csv")
    assert not taken_by_arrow(a)
    assert outcome(a) == outcome(b)


def test_files_without_the_column_have_none(tmp_path):
    headed = write(tmp_path, [HEADER + ",turnover"] + [bar(T0 + k * MIN, "7") for k in range(3)], "h.csv")
    headerless = write(tmp_path, [bar(T0 + k * MIN, "7") for k in range(3)], "n.csv")  # 7th: turnover
    for path in (headed, headerless):
        assert import_csv(path, "BTCUSDT", "1m").bars.funding_rate is None


@pytest.mark.parametrize("cell, message", [
    ("abc", "funding_rate 'abc' is not a number"),
    ("0.01%", "funding_rate '0.01%' is not a number (write a rate as a fraction: 0.0001 for 0.01%)"),
    ("１", "funding_rate '１' is not a number (only the ASCII digits 0-9 are read as digits)"),
    ("1_0", "funding_rate '1_0' is not a number"),
    ("nan", "funding_rate nan is not a finite number"),
    ("-inf", "funding_rate -inf is not a finite number"),
    ("1e999", "funding_rate inf is not a finite number"),
    ("0.0501", "funding_rate 0.0501 is beyond +-5% per funding interval; write a rate as a fraction "
               "(0.0001 for 0.01%)"),
    ("-0.06", "funding_rate -0.06 is beyond +-5% per funding interval; write a rate as a fraction "
              "(0.0001 for 0.01%)"),
    ("1", "funding_rate 1 is beyond +-5% per funding interval; write a rate as a fraction (0.0001 for 0.01%)"),
])
def test_a_bad_cell_is_an_error_on_its_row_on_every_path(tmp_path, monkeypatch, cell, message):
    rates = ["0.0001", "", "0.0002", "", "", ""]
    rates[3] = cell  # line 5: the header is line 1
    path = write(tmp_path, [f"{HEADER},funding_rate"] + [bar(T0 + k * MIN, r) for k, r in enumerate(rates)])
    got = each_path(path, monkeypatch)
    assert got["arrow"] == got["loadtxt"] == got["rows"]
    assert got["rows"] == ("error", [(5, message)])
    with pytest.raises(DataError, match=r"row 5: funding_rate"):
        import_csv(path, "BTCUSDT", "1m")


def test_the_limits_themselves_are_rates(tmp_path, monkeypatch):
    path = write(tmp_path, [f"{HEADER},funding_rate"] + [bar(T0 + k * MIN, r) for k, r in
                                                         enumerate(["0.05", "-0.05", "5e-2"])])
    assert same(import_csv(path, "BTCUSDT", "1m").bars.funding_rate, [0.05, -0.05, 0.05])


def test_a_bad_rate_is_reported_with_the_row_s_other_problems(tmp_path, monkeypatch):
    rows = [bar(T0 + k * MIN, "") for k in range(5)]
    rows[1] = f"{T0 + MIN},100,99,101,100,-1,0.2"  # high < low, negative volume, and a typo'd rate
    rows[3] = f"{T0 + 3 * MIN},100,101,99,100,1.5,x"
    path = write(tmp_path, [f"{HEADER},funding_rate"] + rows)
    got = each_path(path, monkeypatch)
    assert got["arrow"] == got["loadtxt"] == got["rows"]
    problems = dict.fromkeys(r for r, _ in got["rows"][1])
    assert list(problems) == [3, 5]
    messages = [m for r, m in got["rows"][1] if r == 3]
    assert any(m.startswith("funding_rate 0.2 is beyond") for m in messages)
    assert "high 99 < low 101" in messages and "volume -1 is negative" in messages
    assert [m for r, m in got["rows"][1] if r == 5] == ["funding_rate 'x' is not a number"]


def test_an_empty_cell_elsewhere_is_still_an_error_when_funding_cells_may_be_empty(tmp_path, monkeypatch):
    rows = [bar(T0 + k * MIN, "") for k in range(4)]
    rows[2] = f"{T0 + 2 * MIN},100,101,,100,1.5,0.0001"
    path = write(tmp_path, [f"{HEADER},funding_rate"] + rows)
    assert not taken_by_arrow(path)  # a null in a price column declines the fast path
    got = each_path(path, monkeypatch)
    assert got["arrow"] == got["loadtxt"] == got["rows"] == ("error", [(4, "low '' is not a number")])


def test_a_row_without_its_funding_cell_is_short(tmp_path, monkeypatch):
    rows = [bar(T0 + k * MIN, "0.0001") for k in range(4)]
    rows[1] = bar(T0 + MIN)  # no trailing comma: the cell is missing, not empty
    path = write(tmp_path, [f"{HEADER},funding_rate"] + rows)
    got = each_path(path, monkeypatch)
    assert got["arrow"] == got["loadtxt"] == got["rows"] == ("error", [(3, "missing columns: expected 7, found 6")])


def test_two_funding_columns_are_one_error_on_the_header(tmp_path):
    path = write(tmp_path, [f"{HEADER},fundingRate,funding"] + [bar(T0 + k * MIN, "0.0001,0.0002") for k in range(3)])
    with pytest.raises(DataError) as err:
        import_csv(path, "BTCUSDT", "1m")
    assert [(p.row, p.message) for p in err.value.problems] == [
        (1, "header names 2 funding rate columns (fundingRate, funding); keep one")]


def test_gap_fill_bars_have_no_rate_and_a_newest_first_file_keeps_each_rate_on_its_bar(tmp_path, monkeypatch):
    stamps = [T0, T0 + MIN, T0 + 4 * MIN, T0 + 5 * MIN]  # minutes 2 and 3 missing
    rates = ["0.0001", "", "-0.0002", "0.0003"]
    lines = [f"{HEADER},funding_rate"] + [bar(t, r) for t, r in zip(stamps, rates)][::-1]  # newest first
    path = write(tmp_path, lines)
    got = each_path(path, monkeypatch, gaps="fill")
    assert got["arrow"] == got["loadtxt"] == got["rows"]
    result = import_csv(path, "BTCUSDT", "1m", gaps="fill")
    assert result.reversed and result.filled_gaps == 2
    assert result.bars.ts_open.tolist() == [T0 + k * MIN for k in range(6)]
    assert same(result.bars.funding_rate, [0.0001, NAN, NAN, NAN, -0.0002, 0.0003])
    assert result.bars.close.tolist() == [100.0] * 6


def test_bybit_s_export_with_its_funding_rate_column(tmp_path):
    header = "startTime,openPrice,highPrice,lowPrice,closePrice,volume,turnover,fundingRate"
    rows = [f"{T0 + k * HOUR},100,101,99,100,1.5,150,{r}" for k, r in enumerate(["0.0001", "", ""])]
    path = write(tmp_path, [header] + rows[::-1])
    bars = import_csv(path, "BTCUSDT", None).bars
    assert bars.tf == "1h" and same(bars.funding_rate, [0.0001, NAN, NAN])


_RATE_CELLS = st.one_of(
    st.sampled_from(["", "", "0.0001", "-0.00025", "0", "5e-2", "0.05", "-0.0501", "1", "1e999", ".5e-3"]),
    st.text("0123456789.+-eE", min_size=0, max_size=5),  # plain bytes that may or may not be numbers
    st.sampled_from(["nan", "inf", "0.01%", " ", " 0.0001", "x", "１", '"0.0001"']),
)


@st.composite
def rated_files(draw) -> bytes:
    """Small CSV files with a funding rate column somewhere, most cells empty or good."""
    n = draw(st.integers(1, 10))
    where = draw(st.integers(0, 6))  # the funding column's place among the seven
    name = draw(st.sampled_from(["funding_rate", "fundingRate", "funding"]))
    header = HEADER.split(",")
    header.insert(where, name)
    lines = [",".join(header)]
    for k in range(n):
        t = T0 + k * draw(st.sampled_from([MIN, MIN, MIN, 2 * MIN]))
        cells = [str(t), "100", "101", "99", "100", draw(st.sampled_from(["1.5", "1.5", ""]))]
        cells.insert(where, draw(_RATE_CELLS) if draw(st.integers(0, 2)) == 0 else "")
        if draw(st.integers(0, 15)) == 0:
            cells = cells[:-1]  # a short row
        lines.append(",".join(cells))
    return ("\n".join(lines) + draw(st.sampled_from(["", "\n"]))).encode()


@settings(max_examples=200, deadline=None)
@given(rated_files(), st.sampled_from([None, "1m"]), st.sampled_from(["error", "fill"]))
def test_any_file_with_rates_imports_the_same_on_every_path(data, tf, gaps):
    # tmp_path is per test, not per example: one folder for all the examples of this run
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        path.write_bytes(data)
        with pytest.MonkeyPatch.context() as m:
            got = each_path(path, m, tf=tf, gaps=gaps)
        assert got["arrow"] == got["loadtxt"] == got["rows"]


# ------------------------------------------------------------------------------------------ Bars


def hourly(n: int, rates: list[float] | None) -> Bars:
    ts = T0 + np.arange(n, dtype=np.int64) * HOUR
    p = np.full(n, 100.0)
    return Bars("BTCUSDT", "1h", ts, p, p + 1, p - 1, p, np.ones(n), funding_rate=rates)


def test_take_keeps_the_rates_and_resampling_drops_them():
    bars = hourly(24, [k / 1e5 if k % 8 == 0 else NAN for k in range(24)])
    part = bars.take(8, 17)
    assert same(part.funding_rate, [8e-5] + [NAN] * 7 + [16e-5])
    assert hourly(24, None).take(1, 3).funding_rate is None
    # a coarser bar has no one rate that 7.3's rule would read off its source bars: none, not a guess
    assert resample(bars, "4h").funding_rate is None and resample(bars, "1d").funding_rate is None
    assert resample(bars, "1h").funding_rate is bars.funding_rate  # the same timeframe is the data itself


def test_a_rate_column_of_another_length_is_refused():
    with pytest.raises(ValueError, match="column funding_rate has 3 rows, ts_open has 4"):
        hourly(4, [0.0, 0.0, 0.0])


# ------------------------------------------------------------------------------------------ cache


def test_the_cache_keeps_the_rates_in_one_more_column(tmp_path):
    rates = [1e-4, NAN, -2e-4, NAN]
    entry = cache.save(hourly(4, rates), tmp_path)
    loaded = cache.load("BTCUSDT", "1h", tmp_path)
    assert same(loaded.funding_rate, rates) and loaded.funding_rate.dtype == np.float64
    assert isinstance(loaded.funding_rate.base, np.memmap) and not loaded.funding_rate.flags.writeable
    assert cache.read_meta("BTCUSDT", "1h", tmp_path)["funding_rate"] is True
    assert (entry.resolve() / "funding_rate.npy").is_file()


def test_a_series_without_rates_writes_what_it_always_did_and_loads_without(tmp_path):
    entry = cache.save(hourly(4, None), tmp_path)
    assert sorted(p.name for p in entry.resolve().iterdir()) == [
        "close.npy", "high.npy", "low.npy", "meta.json", "open.npy", "ts_open.npy", "volume.npy"]
    assert "funding_rate" not in cache.read_meta("BTCUSDT", "1h", tmp_path)
    assert cache.load("BTCUSDT", "1h", tmp_path).funding_rate is None


def test_an_entry_an_older_playdeck_wrote_loads_without_rates(tmp_path):
    # An older playdeck's plain folder of the six columns and a meta without the key.
    cache.save(hourly(3, None), tmp_path)
    old = tmp_path / "old"
    (cache.bars_dir("BTCUSDT", "1h", tmp_path).resolve()).rename(old)
    cache.bars_dir("BTCUSDT", "1h", tmp_path).unlink()
    old.rename(cache.bars_dir("BTCUSDT", "1h", tmp_path))
    assert cache.load("BTCUSDT", "1h", tmp_path).funding_rate is None


def test_a_missing_or_short_rate_column_is_a_damaged_entry(tmp_path):
    entry = cache.save(hourly(4, [0.0] * 4), tmp_path)
    column = entry.resolve() / "funding_rate.npy"
    np.save(column, np.zeros(3))
    with pytest.raises(cache.CacheError, match="is damaged"):
        cache.load("BTCUSDT", "1h", tmp_path)
    column.unlink()
    with pytest.raises(cache.CacheError, match=r"is damaged \(No such file or directory: funding_rate.npy\)"):
        cache.load("BTCUSDT", "1h", tmp_path)


def test_a_remembered_data_file_keeps_its_rates(tmp_path):
    path = write(tmp_path, [f"{HEADER},funding_rate"] + [bar(T0 + k * HOUR, r) for k, r in
                                                         enumerate(["0.0001", "", "-0.0002"])])
    first = load_bars("ETHUSDT", str(path), None, str(tmp_path / "cache"), "1h")
    again = load_bars("ETHUSDT", str(path), None, str(tmp_path / "cache"), "1h")
    assert first.cached is False and again.cached is True
    assert same(again.bars.funding_rate, [0.0001, NAN, -0.0002])
    meta = json.loads(next((tmp_path / "cache" / "files").glob("*/meta.json")).read_text())
    assert meta["funding_rate"] is True and meta["source"]["import_version"] == csv_import.IMPORT_VERSION
