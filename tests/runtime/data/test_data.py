"""Bars, resampling, the no-lookahead MTF map, FeedStore, synthetic data, CSV import and the cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playdeck.runtime.data import cache

from playdeck.runtime.data import synthetic
from playdeck.runtime.data.bars import (
    TIMEFRAMES, Bars, exec_close_index, resample, slice_time, tf_minutes, tf_ms,
)
from playdeck.runtime.data.csv_import import DataError, DataProblem, format_ts, import_csv, parse_timestamp
from playdeck.runtime.data.feeds import FeedStore

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MIN = 60_000


def make_bars(minutes: list[int], tf: str = "1m", seed: int = 0) -> Bars:
    """Valid random bars opening at T0 + minute * 1m for each given minute offset."""
    rng = np.random.default_rng(seed)
    n = len(minutes)
    close = np.round(100 + np.cumsum(rng.standard_normal(n)), 1)
    open_ = np.round(close + rng.standard_normal(n), 1)
    high = np.maximum(open_, close) + np.round(rng.random(n), 1)
    low = np.minimum(open_, close) - np.round(rng.random(n), 1)
    return Bars("BTCUSDT", tf, T0 + np.array(minutes, dtype=np.int64) * MIN, open_, high, low, close,
                np.round(rng.random(n) * 10, 3))


# --------------------------------------------------------------------------- timeframes


def test_timeframe_helpers():
    assert [tf_minutes(tf) for tf in TIMEFRAMES] == [1, 3, 5, 15, 30, 60, 120, 240, 360, 720, 1440]
    assert tf_ms("4h") == 4 * 3_600_000
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        tf_minutes("7m")


def test_bars_reject_mismatched_columns():
    with pytest.raises(ValueError, match="column high"):
        Bars("X", "1m", [T0], [1.0], [1.0, 2.0], [1.0], [1.0], [1.0])


# --------------------------------------------------------------------------- resample


def resample_by_loop(bars: Bars, tf: str) -> list[tuple]:
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(bars.ts_open.tolist()):
        groups.setdefault(t // tf_ms(tf), []).append(i)
    out = []
    for bucket, idx in groups.items():
        if bars.ts_open[idx[0]] > bucket * tf_ms(tf) and idx[0] == 0:
            continue  # the data starts inside this bucket: not a whole bar
        out.append((bucket * tf_ms(tf), bars.open[idx[0]], max(bars.high[i] for i in idx),
                    min(bars.low[i] for i in idx), bars.close[idx[-1]], sum(bars.volume[i] for i in idx)))
    return out


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 600), min_size=1, max_size=200), st.sampled_from(["3m", "5m", "15m", "1h", "4h"]))
def test_resample_matches_a_plain_loop_even_with_gaps(minutes, tf):
    bars = make_bars(sorted(minutes))
    htf = resample(bars, tf)
    got = list(zip(htf.ts_open.tolist(), htf.open, htf.high, htf.low, htf.close, htf.volume))
    expected = resample_by_loop(bars, tf)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g[:5] == e[:5] and g[5] == pytest.approx(e[5])


def test_resample_flags_only_an_incomplete_trailing_bucket():
    assert resample(make_bars(list(range(7))), "5m").partial_last  # 00:05-00:10 has 2 of 5 bars
    complete = resample(make_bars(list(range(10))), "5m")
    assert not complete.partial_last and complete.n_complete == 2
    # data starting mid-bucket: the leading short bucket is dropped, the next one is whole
    mid = resample(make_bars(list(range(3, 10))), "5m")
    assert not mid.partial_last and mid.ts_open.tolist() == [T0 + 5 * 60_000]


def test_a_leading_bucket_the_data_starts_inside_is_dropped():
    # 1m data from 00:03: the 00:00 5m bar would have 2 of its 5 minutes (its high, low and volume
    # not the period's), so the first 5m bar is 00:05, with its own five minutes' volume
    bars = make_bars(list(range(3, 15)))
    htf = resample(bars, "5m")
    assert htf.ts_open.tolist() == [T0 + 5 * 60_000, T0 + 10 * 60_000]
    assert htf.volume[0] == pytest.approx(sum(bars.volume[2:7]))
    assert len(resample(make_bars([3, 4]), "5m")) == 0  # not one whole bucket


def test_resample_aligns_days_to_utc_midnight():
    bars = make_bars(list(range(0, 3 * 1440, 60)))  # hourly-spaced 1m bars over three days
    assert (resample(bars, "1d").ts_open == T0 + np.arange(3) * 86_400_000).all()


def test_resample_rejects_a_non_multiple():
    with pytest.raises(ValueError, match="not a multiple"):
        resample(make_bars(list(range(0, 20, 3)), tf="3m"), "5m")


# --------------------------------------------------------------------------- no lookahead


def test_htf_bar_becomes_visible_exactly_at_its_last_exec_bar():
    bars = make_bars(list(range(12)))
    htf = resample(bars, "5m")  # [0..4], [5..9], partial [10, 11]
    assert exec_close_index(bars, htf).tolist() == [-1, -1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 1]


def test_nothing_is_visible_before_the_first_whole_htf_bar_closes():
    bars = make_bars(list(range(3, 12)))  # starts at 00:03
    htf = resample(bars, "5m")  # [00:03, 00:04] dropped, [00:05..00:09], partial [00:10, 00:11]
    assert exec_close_index(bars, htf).tolist() == [-1, -1, -1, -1, -1, -1, 0, 0, 0]


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 300), min_size=1, max_size=120), st.sampled_from(["3m", "5m", "15m", "1h"]))
def test_visible_htf_bar_is_built_only_from_exec_bars_already_closed(minutes, tf):
    bars = make_bars(sorted(minutes))
    htf = resample(bars, tf)
    index = exec_close_index(bars, htf)
    exec_close = bars.ts_close
    for i, j in enumerate(index.tolist()):
        if j < 0:
            assert htf.n_complete == 0 or htf.ts_close[0] > exec_close[i]
            continue
        assert j < htf.n_complete and htf.ts_close[j] <= exec_close[i]
        # latest: the next complete bar has not closed yet
        assert j + 1 >= htf.n_complete or htf.ts_close[j + 1] > exec_close[i]
        # no lookahead: rebuilding from the data known at bar i gives the same htf bar
        known = resample(bars.take(0, i + 1), tf)
        assert (known.ts_open[j], known.open[j], known.high[j], known.low[j], known.close[j]) == (
            htf.ts_open[j], htf.open[j], htf.high[j], htf.low[j], htf.close[j])


def test_slice_time_is_half_open():
    bars = make_bars(list(range(10)))
    part = slice_time(bars, T0 + 2 * MIN, T0 + 5 * MIN)
    assert part.ts_open.tolist() == [T0 + k * MIN for k in (2, 3, 4)]
    assert len(slice_time(bars, None, None)) == 10 and len(slice_time(bars, T0 + 100 * MIN)) == 0


# --------------------------------------------------------------------------- FeedStore


def test_feedstore_maps_exec_bars_to_closed_htf_bars():
    bars = make_bars(list(range(12)))
    feed = FeedStore.build(bars, {"htf": "5m"})
    assert feed.timeframes == ("1m", "5m") and len(feed) == 12
    assert feed.resolve("htf") == "5m"
    assert feed.array("htf", "close").tolist() == resample(bars, "5m").close.tolist()
    assert feed.index_at_exec("5m", 3) == -1 and feed.index_at_exec("htf", 4) == 0
    assert feed.index_at_exec("1m", 7) == 7
    assert feed.index_at_close("5m", T0 + 5 * MIN) == 0
    assert feed.index_at_close("5m", T0 + 15 * MIN) is None  # the forming bar has not closed


def test_series_on_exec_forward_fills_without_lookahead():
    bars = make_bars(list(range(12)))
    feed = FeedStore.build(bars, ["5m"])
    mapped = feed.series_on_exec("5m", np.array([10.0, 20.0, 30.0]))
    assert np.isnan(mapped[:4]).all()
    assert mapped[4:].tolist() == [10.0] * 5 + [20.0] * 3  # 30 (partial bar) never shows
    flags = feed.series_on_exec("5m", np.array([True, False, True]))
    assert flags.tolist() == [False] * 4 + [True] * 5 + [False] * 3


def test_feedstore_rejects_a_timeframe_that_is_not_a_multiple():
    with pytest.raises(ValueError, match="not a whole multiple"):
        FeedStore(make_bars(list(range(0, 30, 3)), tf="3m"), {"5m": make_bars([0], tf="5m")})


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_per_seed():
    a, b, c = synthetic.generate(2000, seed=7), synthetic.generate(2000, seed=7), synthetic.generate(2000, seed=8)
    for name in ("ts_open", "open", "high", "low", "close", "volume"):
        assert np.array_equal(a.column(name), b.column(name))
    assert not np.array_equal(a.close, c.close)


def test_synthetic_bars_are_valid_btc_minutes():
    bars = synthetic.generate(20_000, seed=3)
    assert bars.synthetic and bars.symbol == "BTCUSDT" and bars.tf == "1m" and len(bars) == 20_000
    assert bars.ts_open[0] == T0 and (np.diff(bars.ts_open) == MIN).all()
    assert (bars.high >= np.maximum(bars.open, bars.close)).all()
    assert (bars.low <= np.minimum(bars.open, bars.close)).all() and (bars.low > 0).all()
    for column in (bars.open, bars.high, bars.low, bars.close):
        assert np.array_equal(column, np.round(column, 1))  # on the 0.1 tick, as exact decimals
    assert (bars.volume >= 0).all() and np.array_equal(bars.volume, np.round(bars.volume, 3))
    assert 0.9 < np.mean(bars.open[1:] == bars.close[:-1]) < 1.0
    assert 40_000 < bars.close.min() and bars.close.max() < 90_000


def test_synthetic_returns_are_fat_tailed_and_busier_in_us_hours():
    bars = synthetic.generate(30 * 1440, seed=5)
    r = np.diff(np.log(bars.close))
    kurtosis = np.mean((r - r.mean()) ** 4) / np.var(r) ** 2
    assert kurtosis > 6
    hour = (bars.ts_open[1:] // 3_600_000) % 24
    assert np.abs(r[(hour >= 13) & (hour < 17)]).mean() > 1.3 * np.abs(r[(hour >= 2) & (hour < 6)]).mean()


# --------------------------------------------------------------------------- CSV import


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_timestamp_accepts_epoch_ms_and_iso():
    for text in ("1735689600000", "2025-01-01T00:00:00Z", "2025-01-01 00:00:00", "2025-01-01T01:00:00+01:00",
                 "2025-01-01", "1735689600000.0"):
        assert parse_timestamp(text) == T0, text
    with pytest.raises(ValueError, match="seconds"):
        parse_timestamp("1735689600")


def test_a_timestamp_of_thousands_of_digits_is_a_bad_row_not_a_crash(tmp_path):
    # Python refuses int() of 4,300+ digits; the first rows also decide whether a file is in seconds
    huge = "1" + "0" * 5000
    with pytest.raises(ValueError, match="of 5001 digits is no time in epoch milliseconds"):
        parse_timestamp(huge)
    rows = [huge] + [str(T0 + k * MIN) for k in range(1, 4)]
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n" + "".join(f"{t},100,101,99,100,1\n" for t in rows))
    found = problems_of(path)
    assert set(found) == {2}
    assert found[2].startswith("timestamp '10000000000000000000'... of 5001 digits is no time in epoch milliseconds")


def test_import_generic_iso(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                           "2025-01-01T00:00:00Z,100,101,99,100.5,3\n"
                           "2025-01-01T00:15:00Z,100.5,102,100,101,4.5\n")
    result = import_csv(path, "BTCUSDT", "15m")
    assert result.filled_gaps == 0 and not result.reversed
    bars = result.bars
    assert bars.ts_open.tolist() == [T0, T0 + 15 * MIN] and bars.close.tolist() == [100.5, 101.0]
    assert bars.tf == "15m" and not bars.synthetic


def test_import_generic_epoch_ms_with_columns_in_any_order_and_extras(tmp_path):
    path = write(tmp_path, "Volume,Timestamp,Open,High,Low,Close,turnover\n"
                           f"3,{T0},100,101,99,100.5,300\n4,{T0 + MIN},100.5,102,100,101,400\n")
    bars = import_csv(path, "BTCUSDT", "1m").bars
    assert bars.volume.tolist() == [3.0, 4.0] and bars.open.tolist() == [100.0, 100.5]


def test_import_bybit_export_header(tmp_path):
    path = write(tmp_path, "startTime,openPrice,highPrice,lowPrice,closePrice,volume,turnover\n"
                           f"{T0},100,101,99,100.5,3,301.5\n{T0 + 5 * MIN},100.5,102,100,101,4,404\n")
    assert import_csv(path, "BTCUSDT", "5m").bars.high.tolist() == [101.0, 102.0]


def test_import_headerless_newest_first_bybit_rows_is_reversed(tmp_path):
    rows = [f"{T0 + k * MIN},{100 + k},{101 + k},{99 + k},{100 + k},1,100" for k in range(4)]
    result = import_csv(write(tmp_path, "\n".join(reversed(rows)) + "\n"), "BTCUSDT", "1m")
    assert result.reversed and result.bars.ts_open.tolist() == [T0 + k * MIN for k in range(4)]
    assert result.bars.open.tolist() == [100.0, 101.0, 102.0, 103.0]


def problems_of(path: Path, tf: str = "1m", **kw) -> dict[int, str]:
    with pytest.raises(DataError) as info:
        import_csv(path, "BTCUSDT", tf, **kw)
    found: dict[int, str] = {}
    for p in info.value.problems:
        found[p.row] = found.get(p.row, "") + p.message + "; "
    return found


def test_every_bad_row_is_reported_with_its_line_number(tmp_path):
    path = write(tmp_path, "\n".join([
        "timestamp,open,high,low,close,volume",  # 1
        f"{T0},100,101,99,100,1",                 # 2 fine
        f"{T0 + MIN},100,abc,99,100,1",           # 3 non-numeric
        f"{T0 + 2 * MIN},100,98,99,100,1",        # 4 high < low (and below the body)
        f"{T0 + 3 * MIN},100,100.5,99,101,1",     # 5 high below close
        f"{T0 + 4 * MIN},100,101,100.5,101,1",    # 6 low above open
        f"{T0 + 5 * MIN},100,101,99,100,-2",      # 7 negative volume
        f"{T0 + 6 * MIN},100,101,99",             # 8 missing columns
        "",                                       # 9 blank: skipped
        f"{T0 + 7 * MIN},100,101,99,100,1",       # 10 fine
        f"{T0 + 7 * MIN},100,101,99,100,1",       # 11 duplicate of row 10
        f"{T0 + 8 * MIN + 30_000},100,101,99,100,1",  # 12 off the 1m grid
        f"{T0 + 9 * MIN},100,101,99,100,1",       # 13 fine
        "yesterday,100,101,99,100,1",             # 14 bad timestamp
        f"{T0 + 8 * MIN},100,101,99,100,1",       # 15 goes back in time
        f"{T0 + 10 * MIN},0,101,99,nan,1",        # 16 non-positive open, non-finite close
    ]) + "\n")
    found = problems_of(path)
    assert set(found) == {3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16}
    assert "open 0 must be positive" in found[16] and "close nan is not a finite number" in found[16]
    assert "high 'abc' is not a number" in found[3]
    assert "high 98 < low 99" in found[4]
    assert "high 100.5 < max(open, close) 101" in found[5]
    assert "low 100.5 > min(open, close) 100" in found[6]
    assert "volume -2 is negative" in found[7]
    assert "missing columns" in found[8]
    assert "duplicate timestamp 2025-01-01T00:07:00Z (same as row 10)" in found[11]
    assert "not on the 1m grid" in found[12]
    assert "neither epoch milliseconds nor ISO 8601" in found[14]
    assert "goes back in time" in found[15]


def test_gaps_are_errors_by_default(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                           f"{T0},100,101,99,100,1\n{T0 + MIN},100,101,99,100,1\n{T0 + 4 * MIN},100,102,99,102,1\n")
    found = problems_of(path)
    assert set(found) == {4}
    assert "gap: 2 missing 1m bars between 2025-01-01T00:01:00Z (row 3) and 2025-01-01T00:04:00Z" in found[4]


def test_gap_fill_inserts_flat_bars_at_the_previous_close(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                           f"{T0},100,101,99,100.5,1\n{T0 + 3 * MIN},100,103,99,102,2\n{T0 + 5 * MIN},101,102,100,101,3\n")
    result = import_csv(path, "BTCUSDT", "1m", gaps="fill")
    bars = result.bars
    assert result.filled_gaps == 3
    assert bars.ts_open.tolist() == [T0 + k * MIN for k in range(6)]
    assert bars.close.tolist() == [100.5, 100.5, 100.5, 102.0, 102.0, 101.0]
    assert bars.open.tolist()[1:3] == bars.high.tolist()[1:3] == bars.low.tolist()[1:3] == [100.5, 100.5]
    assert bars.volume.tolist() == [1.0, 0.0, 0.0, 2.0, 0.0, 3.0]


def test_a_rejected_row_is_not_also_reported_as_a_gap(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                           f"{T0},100,101,99,100,1\n{T0 + MIN},100,101,99,oops,1\n{T0 + 2 * MIN},100,101,99,100,1\n")
    assert set(problems_of(path)) == {3}


def test_gap_fill_still_reports_other_problems(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                           f"{T0},100,101,99,100,1\n{T0 + 3 * MIN},100,99,101,100,1\n{T0 + 5 * MIN},100,101,99,100,1\n")
    assert set(problems_of(path, gaps="fill")) == {3}


def test_file_level_problems(tmp_path):
    assert problems_of(write(tmp_path, "timestamp,open,high,low,close,volume\n")) == {0: "no data rows; "}
    found = problems_of(write(tmp_path, "time,open,high,low,close\n1,2,3,4,5\n", "b.csv"))
    assert "header lacks volume" in found[1]


def test_data_error_report_lists_the_first_twenty_and_counts_the_rest():
    error = DataError([DataProblem(row, f"bad {row}") for row in range(30, 0, -1)], "x.csv")
    text = str(error).splitlines()
    assert text[0] == "x.csv: 30 problems in the data"
    assert text[1] == "  row 1: bad 1" and text[20] == "  row 20: bad 20"
    assert text[21] == "  ... and 10 more" and len(text) == 22


# --------------------------------------------------------------------------- cache


def test_cache_round_trip_is_memory_mapped(tmp_path):
    bars = make_bars(list(range(50)), tf="1m")
    directory = cache.save(bars, tmp_path, source={"from": "test"})
    assert directory == tmp_path / "market" / "BTCUSDT" / "1m"
    assert cache.exists("BTCUSDT", "1m", tmp_path) and not cache.exists("BTCUSDT", "1m", tmp_path, synthetic=True)
    loaded = cache.load("BTCUSDT", "1m", tmp_path)
    for name in ("ts_open", "open", "high", "low", "close", "volume"):
        column = loaded.column(name)
        assert np.array_equal(column, bars.column(name)) and column.dtype == bars.column(name).dtype
        assert isinstance(column.base, np.memmap) and not column.flags.writeable
    assert cache.read_meta("BTCUSDT", "1m", tmp_path)["source"] == {"from": "test"}
    # saving again replaces the series, even while the old one is mapped
    cache.save(make_bars(list(range(10))), tmp_path)
    assert len(cache.load("BTCUSDT", "1m", tmp_path)) == 10 and len(loaded) == 50


def test_default_bars_regenerates_stale_data_once_then_reads_the_cache(tmp_path):
    stale = synthetic.generate(10, seed=1)
    cache.save(stale, tmp_path, source={"generator": "playdeck.runtime.data.synthetic", "version": 0})
    bars = cache.default_bars(tmp_path)  # the one full year generated in the test suite
    assert len(bars) == 525_600 and bars.synthetic and bars.ts_open[0] == T0
    assert isinstance(bars.close.base, np.memmap)
    meta_path = tmp_path / "synthetic" / "BTCUSDT" / "1m" / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["source"]["seed"] == synthetic.DEFAULT_SEED and meta["synthetic"] is True
    mtime = meta_path.stat().st_mtime_ns
    again = cache.default_bars(tmp_path)
    assert meta_path.stat().st_mtime_ns == mtime and np.array_equal(again.close[-100:], bars.close[-100:])


def test_row_numbers_survive_blank_lines_and_the_numeric_fast_path(tmp_path):
    good = [f"{T0 + k * MIN},100,101,99,100,1" for k in range(6)]
    plain = ["timestamp,open,high,low,close,volume", *good[:2], f"{T0 + 2 * MIN},100,98,99,100,1", *good[3:]]
    assert set(problems_of(write(tmp_path, "\n".join(plain) + "\n"))) == {4}
    with_blank = plain[:2] + ["", "   "] + plain[2:]
    assert set(problems_of(write(tmp_path, "\r\n".join(with_blank) + "\r\n", "b.csv"))) == {6}


def test_iso_and_epoch_files_import_to_the_same_bars(tmp_path):
    bars = synthetic.generate(50, seed=2)
    iso_rows = [f"{np.datetime64(int(t), 'ms')}Z,{o!r},{h!r},{l!r},{c!r},{v!r}" for t, o, h, l, c, v in zip(
        bars.ts_open.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.close.tolist(),
        bars.volume.tolist())]
    epoch_rows = [f"{t},{rest.split(',', 1)[1]}" for t, rest in zip(bars.ts_open.tolist(), iso_rows)]
    header = "timestamp,open,high,low,close,volume\n"
    a = import_csv(write(tmp_path, header + "\n".join(iso_rows)), "BTCUSDT", "1m").bars
    b = import_csv(write(tmp_path, header + "\n".join(epoch_rows), "b.csv"), "BTCUSDT", "1m").bars
    for name in ("ts_open", "open", "high", "low", "close", "volume"):
        assert np.array_equal(a.column(name), bars.column(name)) and np.array_equal(b.column(name), bars.column(name))


# --------------------------------------------------------------------------- newest-first files, epoch seconds


def bybit_rows(stamps: list[int]) -> str:
    """A Bybit kline export of flat bars at `stamps`, in the order given."""
    rows = [f"{t},100,101,99,100,1,100" for t in stamps]
    return "startTime,openPrice,highPrice,lowPrice,closePrice,volume,turnover\n" + "\n".join(rows) + "\n"


NEWEST_FIRST = [T0 + k * MIN for k in range(2000)][::-1]  # row r (from 2) holds minute 2001 - r


def test_newest_first_export_with_one_duplicate_reports_that_row_only(tmp_path):
    stamps = NEWEST_FIRST[:100] + [NEWEST_FIRST[99]] + NEWEST_FIRST[100:]  # row 102 repeats row 101
    found = problems_of(write(tmp_path, bybit_rows(stamps)))
    assert found == {102: f"duplicate timestamp {format_ts(NEWEST_FIRST[99])} (same as row 101); "}


def test_newest_first_export_with_one_swapped_row_reports_that_row_only(tmp_path):
    stamps = list(NEWEST_FIRST)
    stamps[50], stamps[51] = stamps[51], stamps[50]  # rows 52 and 53
    found = problems_of(write(tmp_path, bybit_rows(stamps)))
    assert set(found) == {53}
    assert (f"timestamp {format_ts(stamps[51])} is newer than {format_ts(stamps[50])} (row 52); this file is "
            "newest-first") in found[53]


def test_newest_first_gap_names_both_ends_in_time_order(tmp_path):
    stamps = NEWEST_FIRST[:10] + NEWEST_FIRST[12:]  # rows 11 and 12 are three minutes apart
    found = problems_of(write(tmp_path, bybit_rows(stamps)))
    assert found == {12: f"gap: 2 missing 1m bars between {format_ts(NEWEST_FIRST[12])} and "
                         f"{format_ts(NEWEST_FIRST[9])} (row 11); "}


def test_a_newest_first_file_with_a_defect_elsewhere_is_still_read_newest_first(tmp_path):
    """The direction is the majority's: a misplaced first row does not flip it."""
    stamps = [NEWEST_FIRST[-1]] + NEWEST_FIRST[:-1]  # the oldest bar put on top
    found = problems_of(write(tmp_path, bybit_rows(stamps)))
    assert set(found) == {3}  # only the step from row 2 to row 3 runs the wrong way


def test_a_file_in_epoch_seconds_is_one_problem_with_or_without_a_timeframe(tmp_path):
    seconds = [f"{T0 // 1000 + k * 60},100,101,99,100,1" for k in range(6000)]
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n" + "\n".join(seconds) + "\n")
    expected = {0: "timestamps look like epoch seconds (e.g. 1735689600 on row 2; 6000 of 6000 rows); playdeck "
                   "expects epoch milliseconds or ISO dates; "}
    assert problems_of(path, tf=None) == expected
    assert problems_of(path, tf="1m") == expected
    headerless = write(tmp_path, "\n".join(seconds) + "\n", "headerless.csv")
    assert problems_of(headerless, tf=None) == {0: expected[0].replace("on row 2", "on row 1")}


def test_a_stray_seconds_value_in_a_millisecond_file_is_that_row_s_problem(tmp_path):
    rows = [f"{T0 + k * MIN},100,101,99,100,1" for k in range(5)]
    rows[2] = f"{(T0 + 2 * MIN) // 1000},100,101,99,100,1"
    found = problems_of(write(tmp_path, "timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n"))
    assert set(found) == {4} and "too small for epoch milliseconds (seconds?)" in found[4]


def test_row_problems_are_kept_when_too_few_rows_remain_to_tell_the_timeframe(tmp_path):
    path = write(tmp_path, f"timestamp,open,high,low,close,volume\n{T0},100,101,99,100,1\n{T0 + MIN},x,101,99,100,1\n")
    found = problems_of(path, tf=None)
    assert "open 'x' is not a number" in found[3] and "cannot tell the timeframe" in found[0]


def test_a_whole_file_problem_is_one_line(tmp_path):
    with pytest.raises(DataError) as info:
        import_csv(write(tmp_path, "timestamp,open,high,low,close,volume\n"), "BTCUSDT", "1m")
    assert str(info.value) == f"{tmp_path / 'bars.csv'}: no data rows"


def test_a_file_with_nul_bytes_is_binary(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_bytes(b"timestamp,open,high,low,close,volume\n" + f"{T0},1,2,0.5,1,1\n".encode() + b"\x00\x01\x02")
    assert problems_of(path) == {0: "a NUL byte on row 3: this is a binary file, not a CSV; "}


def test_an_unknown_timeframe_fails_before_the_file_is_read(tmp_path):
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        import_csv(tmp_path / "never-read.csv", "BTCUSDT", "7m")


# --------------------------------------------------------------------------- cache paths and damage


@pytest.mark.parametrize("symbol", ["../../evil", "", "btcusdt", "BTC/USDT", "B", "X" * 31, "BTCUSD", "../USDT"])
def test_the_cache_never_builds_a_path_from_a_bad_symbol(tmp_path, symbol):
    with pytest.raises(ValueError, match="not a Bybit USDT perpetual"):
        cache.bars_dir(symbol, "1m", tmp_path)
    with pytest.raises(ValueError, match="unknown timeframe"):
        cache.bars_dir("BTCUSDT", "../1m", tmp_path)


def test_a_damaged_entry_is_a_cache_error_naming_the_folder(tmp_path):
    directory = cache.save(make_bars(list(range(20))), tmp_path)
    (directory / "volume.npy").write_bytes(b"not an npy file")
    with pytest.raises(cache.CacheError, match=r"is damaged \(volume\.npy: .*delete that folder"):
        cache.load("BTCUSDT", "1m", tmp_path)
    other = cache.save(make_bars(list(range(0, 20, 5)), tf="5m"), tmp_path)
    np.save(other / "close.npy", np.zeros(3))  # a column shorter than the others
    with pytest.raises(cache.CacheError, match="5m is damaged"):
        cache.load("BTCUSDT", "5m", tmp_path)


def test_a_gap_is_reported_even_when_rows_elsewhere_are_out_of_order(tmp_path):
    minutes = [0, 1, 3, 2, 4, 5, 6, 7, 10, 11, 12]  # rows 2.., row 5 goes back; 7 -> 10 is a gap
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                 + "".join(f"{T0 + m * MIN},100,101,99,100,1\n" for m in minutes))
    found = problems_of(path)
    assert set(found) == {5, 10}
    assert "goes back in time" in found[5]
    assert found[10] == "gap: 2 missing 1m bars between 2025-01-01T00:07:00Z (row 9) and 2025-01-01T00:10:00Z; "


def test_microsecond_timestamps_are_one_file_level_error(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                 + "".join(f"{(T0 + k * MIN) * 1000},100,101,99,100,1\n" for k in range(5)))
    found = problems_of(path, tf=None)
    assert list(found) == [0] and "look like epoch microseconds" in found[0]


@pytest.mark.parametrize("stamp, message", [
    ("99999999999999999", "timestamp '99999999999999999' is after 2099 in epoch milliseconds"),
    (str((T0 + 5 * MIN) * 1000), f"timestamp '{(T0 + 5 * MIN) * 1000}' is after 2099 in epoch milliseconds (microseconds?)"),
    ("9999-12-31T23:59:00", "timestamp '9999-12-31T23:59:00' is outside 1970-2099"),
])
def test_a_timestamp_after_2099_is_that_rows_error(tmp_path, stamp, message):
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                 + "".join(f"{T0 + k * MIN},100,101,99,100,1\n" for k in range(5)) + f"{stamp},100,101,99,100,1\n")
    assert problems_of(path) == {7: message + "; "}


def test_filling_an_absurd_gap_is_an_error_not_an_allocation(tmp_path):
    path = write(tmp_path, "timestamp,open,high,low,close,volume\n"
                 f"{T0},100,101,99,100,1\n{T0 + MIN},100,101,99,100,1\n2090-12-31T23:59:00,100,101,99,100,1\n")
    found = problems_of(path, gaps="fill")
    assert list(found) == [0] and "would insert 34,712,637 flat bars into 3 rows" in found[0]


# --------------------------------------------------------------------------- import: awkward files

HEADER = "timestamp,open,high,low,close,volume"


def test_bare_carriage_returns_end_lines_as_an_editor_shows_them(tmp_path):
    # Old Mac line endings: each '\r' is a line break, so rows keep their line numbers.
    path = tmp_path / "mac.csv"
    path.write_bytes(f"{HEADER}\r{T0},100,101,99,100,1\r{T0 + MIN},100,101,99,100,1\r{T0 + 2 * MIN},100,99,99,100,1\r"
                     .encode())
    assert problems_of(path) == {4: "high 99 < max(open, close) 100; "}
    path.write_bytes(f"{HEADER}\r{T0},100,101,99,100,1\r{T0 + MIN},100,101,99,100,1\r".encode())
    assert import_csv(path, "BTCUSDT", "1m").bars.ts_open.tolist() == [T0, T0 + MIN]


def test_a_stray_carriage_return_inside_a_row_splits_it_and_says_where(tmp_path):
    path = tmp_path / "stray.csv"
    path.write_bytes(f"{HEADER}\n{T0},100,101,99,100,1\n{T0 + MIN},100\r,101,99,100,1\n".encode())
    found = problems_of(path)
    assert set(found) == {3, 4} and "missing columns" in found[3] and "missing columns" in found[4]


def test_a_quoted_field_running_over_a_line_is_an_error_and_later_rows_keep_their_numbers(tmp_path):
    path = write(tmp_path, f'{HEADER}\n{T0},"1\n00",101,99,100,1\n{T0 + MIN},100,101,99,100,1\n'
                           f"{T0 + 2 * MIN},100,99,99,100,1\n")
    found = problems_of(path)
    assert found == {2: "a quoted field runs on to row 3; each bar is one line; ",
                     5: "high 99 < max(open, close) 100; "}


def test_a_rejected_row_excuses_one_missing_bar_not_a_gap_of_any_size(tmp_path):
    path = write(tmp_path, f"{HEADER}\n{T0},100,101,99,100,1\n{T0 + MIN},100,101,99,100,1\n"
                           f"{T0 + 2 * MIN},100,101,99,nan,1\n{T0 + 1000 * MIN},100,101,99,100,1\n")
    found = problems_of(path)
    assert set(found) == {4, 5}
    # slots 2..999 are empty (998); the rejected row 4 may be meant for one of them
    assert "gap: 997 missing 1m bars between 2025-01-01T00:01:00Z (row 3)" in found[5]
    assert "besides the 1 rejected row there" in found[5]


def test_an_off_grid_row_is_its_own_problem_not_also_a_gap(tmp_path):
    path = write(tmp_path, f"{HEADER}\n{T0},100,101,99,100,1\n{T0 + MIN},100,101,99,100,1\n"
                           f"{T0 + 2 * MIN + 30_000},100,101,99,100,1\n{T0 + 3 * MIN},100,101,99,100,1\n")
    assert problems_of(path) == {4: "timestamp 2025-01-01T00:02:30Z is not on the 1m grid; "}
    # without --tf the spacing 1m still wins over the 0.5 and 1.5 minutes the odd row makes
    with pytest.raises(DataError) as info:
        import_csv(path, "BTCUSDT", None)
    assert [(p.row, p.message) for p in info.value.problems] == [
        (4, "timestamp 2025-01-01T00:02:30Z is not on the 1m grid")]


def test_gap_fill_refuses_to_make_up_more_bars_than_the_file_has(tmp_path):
    # A typo'd year: 4 rows would become a year of flat bars.
    path = write(tmp_path, f"{HEADER}\n2025-01-01T00:00,100,101,99,100,1\n2025-01-01T00:01,100,101,99,100,1\n"
                           "2025-01-01T00:02,100,101,99,100,1\n2026-01-01T00:03,100,101,99,100,1\n")
    found = problems_of(path, gaps="fill")
    assert list(found) == [0] and "would insert 525,600 flat bars into 4 rows" in found[0]


def test_hourly_rows_imported_as_1m_are_called_out(tmp_path):
    path = write(tmp_path, HEADER + "\n" + "".join(f"{T0 + k * 60 * MIN},100,101,99,100,1\n" for k in range(50)))
    hint = "most bars are 60 minutes apart, not 1m: is 1m the file's timeframe?"
    filled = problems_of(path, gaps="fill")
    assert list(filled) == [0] and "would insert 2,891 flat bars into 50 rows" in filled[0] and hint in filled[0]
    found = problems_of(path)
    assert found[0] == hint + "; " and len(found) == 50  # the hint, then each of the 49 gaps
    assert import_csv(path, "BTCUSDT", "1h").bars.tf == "1h"  # with the right timeframe it is clean


def test_a_file_too_broken_to_tell_its_timeframe_names_the_bad_rows_first(tmp_path):
    path = write(tmp_path, f"{HEADER}\n{T0},100,101,99,100,1\n{T0 + 2 * MIN},100,101,99,nan,1\n"
                           f"{T0 + 4 * MIN},100,101,99,100,1\n{T0 + 6 * MIN},100,101,99,100,1\n")
    with pytest.raises(DataError) as info:
        import_csv(path, "BTCUSDT", None)
    assert [(p.row, p.message) for p in info.value.problems] == [
        (0, "cannot tell the timeframe with the rejected rows left out; mend them or give it (--data-tf / --tf)"),
        (3, "close nan is not a finite number")]


def test_minute_rows_imported_as_1h_are_called_out_once_before_the_grid_errors(tmp_path):
    path = write(tmp_path, HEADER + "\n" + "".join(f"{T0 + k * MIN},100,101,99,100,1\n" for k in range(30)))
    found = problems_of(path, tf="1h")
    assert found[0] == "most bars are 1 minute apart, not 1h: is 1h the file's timeframe?; "
    assert all("not on the 1h grid" in found[row] for row in range(3, 32))


def test_rows_joined_into_a_quoted_field_are_rejected_with_it_not_called_a_gap(tmp_path):
    # rows 3-5 are one record (a quote opened on row 3 closes on row 5): three bars are missing
    # from the data, and the error is that record's; no gap is reported around it
    rows = [f"{T0 + k * MIN},100,101,99,100,1" for k in range(6)]
    rows[1] = f'{T0 + MIN},"100,101,99,100,1'
    rows[3] = f'{T0 + 3 * MIN},100",101,99,100,1'
    found = problems_of(write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n"))
    assert found == {3: "a quoted field runs on to row 5; each bar is one line; "}


def test_gap_fill_of_a_short_file_fills_a_real_outage(tmp_path):
    # 6 rows with a 7-bar hole: more bars than rows, but a short file may fill up to 1,000
    path = write(tmp_path, HEADER + "\n" + "".join(f"{T0 + k * MIN},100,101,99,100,1\n" for k in (0, 1, 2, 10, 11, 12)))
    result = import_csv(path, "BTCUSDT", "1m", gaps="fill")
    assert result.filled_gaps == 7 and len(result.bars) == 13


# --------------------------------------------------------------------------- import: no comments, ASCII digits


def test_a_hash_starts_no_comment_and_cuts_no_value(tmp_path):
    # numpy's loadtxt once took '#' for a comment: the line starting with one crashed the import
    # (the rows no longer matched their numbers) and 7#00 was read as 7
    path = write(tmp_path, f"{HEADER}\n{T0},100,101,99,100,1\n# exported by hand\n{T0 + MIN},100,101,99,100,1\n"
                           f"{T0 + 2 * MIN},100,101,99,100,7#00\n#{T0 + 3 * MIN},100,101,99,100,1\n"
                           f"{T0 + 4 * MIN},100,99,99,100,1\n")
    comment = "a line starting with '#' is not a comment in a data file; each line is one bar; "
    assert problems_of(path) == {3: comment, 5: "volume '7#00' is not a number; ", 6: comment,
                                 7: "high 99 < max(open, close) 100; "}
    only_cut = write(tmp_path, f"{HEADER}\n{T0},100,101,99,100,1\n{T0 + MIN},100,101,99,100,7#00\n", "cut.csv")
    assert problems_of(only_cut) == {3: "volume '7#00' is not a number; "}
    first = write(tmp_path, f"# bars\n{HEADER}\n{T0},100,101,99,100,1\n", "first.csv")
    assert problems_of(first) == {1: "a line starting with '#' is not a comment in a data file; the first line is "
                                     "the header or the first bar; "}


@pytest.mark.parametrize("row, message", [
    (f"{T0 + 2 * MIN},１００,101,99,100,1", "open '１００' is not a number (only the ASCII digits 0-9 are read as digits)"),
    (f"{T0 + 2 * MIN},100,101,99,100,٣", "volume '٣' is not a number (only the ASCII digits 0-9 are read as digits)"),
    (f"{T0 + 2 * MIN},100,101,99,100,1_000", "volume '1_000' is not a number"),
    ("１７３５６８９７２００００", "timestamp '１７３５６８９７２００００' is neither epoch milliseconds nor ISO 8601 "
                              "(only the ASCII digits 0-9 are read as digits)"),
])
def test_only_ascii_digits_are_numbers(tmp_path, row, message):
    if "," not in row:
        row += ",100,101,99,100,1"
    rows = [f"{T0},100,101,99,100,1", f"{T0 + MIN},100,101,99,100,1", row, f"{T0 + 3 * MIN},100,101,99,100,1"]
    path = write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    assert problems_of(path) == {4: message + "; "}
    for text in ("１７３５６８９６０００００", "٣", "1735689600000\u0660"):
        with pytest.raises(ValueError):
            parse_timestamp(text)


# --------------------------------------------------------------------------- cache: versions, removal, its folder


def test_an_entry_is_a_link_to_a_whole_version_replaced_in_one_step(tmp_path):
    first = cache.save(make_bars(list(range(50))), tmp_path)
    old_version = first.parent / os.readlink(first)
    assert first.is_symlink() and (old_version / "meta.json").is_file()
    mapped = cache.load("BTCUSDT", "1m", tmp_path)
    cache.save(make_bars(list(range(10))), tmp_path)
    new_version = first.parent / os.readlink(first)
    assert new_version != old_version and not old_version.exists()  # the replaced version is deleted
    assert len(cache.load("BTCUSDT", "1m", tmp_path)) == 10 and len(mapped) == 50 and mapped.close[-1] != 0


def test_an_entry_an_older_playdeck_wrote_is_read_then_replaced(tmp_path):
    # before versions, an entry was a plain folder of columns
    legacy = cache.bars_dir("BTCUSDT", "1m", tmp_path)
    legacy.mkdir(parents=True)
    cache._write_series(legacy, make_bars(list(range(30))), {"kind": "csv"})
    assert cache.exists("BTCUSDT", "1m", tmp_path) and len(cache.load("BTCUSDT", "1m", tmp_path)) == 30
    cache.save(make_bars(list(range(20))), tmp_path)
    assert legacy.is_symlink() and len(cache.load("BTCUSDT", "1m", tmp_path)) == 20
    assert sorted(p.name for p in legacy.parent.iterdir()) == sorted([".lock", "1m", os.readlink(legacy)])
    assert cache.delete_entry(legacy) and not cache.exists("BTCUSDT", "1m", tmp_path)
    assert sorted(p.name for p in legacy.parent.iterdir()) == [".lock"] and not cache.delete_entry(legacy)


def test_a_link_to_a_missing_version_is_damaged_not_absent(tmp_path):
    # absent would let a BTCUSDT backtest fall back to the synthetic set without a word
    entry = cache.save(make_bars(list(range(20))), tmp_path)
    shutil.rmtree(entry.parent / os.readlink(entry))
    assert cache.exists("BTCUSDT", "1m", tmp_path)
    with pytest.raises(cache.CacheError, match=r"1m is damaged \(No such file or directory: meta.json\)"):
        cache.load("BTCUSDT", "1m", tmp_path)


def test_reading_creates_nothing_where_nothing_is_cached(tmp_path):
    assert not cache.exists("ETHUSDT", "1m", tmp_path) and cache.read_entry(tmp_path / "market" / "ETHUSDT" / "1m") is None
    assert cache.entries(tmp_path) == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [" ", "\t", "  \n"])
def test_a_blank_playdeck_cache_is_an_error_naming_it(monkeypatch, value):
    monkeypatch.setenv("PLAYDECK_CACHE", value)
    with pytest.raises(cache.CacheError, match=r"^PLAYDECK_CACHE is .*, only blanks; set it to a folder"):
        cache.default_cache_dir()


def test_an_empty_playdeck_cache_means_the_default(monkeypatch):
    monkeypatch.setenv("PLAYDECK_CACHE", "")
    assert cache.default_cache_dir() == Path.home() / ".cache" / "playdeck"
