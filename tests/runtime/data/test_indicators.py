"""Built-in indicators against plain-Python references written from the textbook definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playdeck.runtime.data import indicators as ind
from playdeck.compiler.builtins import INDICATORS
from playdeck.runtime.data.indicators import IMPLEMENTATIONS

NAN = math.nan


# --------------------------------------------------------------------------- references
# Deliberately naive: Python lists, one loop per definition, NaN meaning "no value".


def isnan(v: float) -> bool:
    return v != v


def ref_window(x, n, reduce):
    out = []
    for i in range(len(x)):
        w = x[i - n + 1 : i + 1] if i >= n - 1 else None
        out.append(NAN if w is None or any(isnan(v) for v in w) else reduce(w))
    return out


def ref_sma(x, n):
    return ref_window(x, n, lambda w: sum(w) / n)


def ref_wma(x, n):
    return ref_window(x, n, lambda w: sum((k + 1) * v for k, v in enumerate(w)) / (n * (n + 1) / 2))


def ref_stdev(x, n):
    def pstdev(w):
        m = sum(w) / len(w)
        return math.sqrt(sum((v - m) ** 2 for v in w) / len(w))

    return ref_window(x, n, pstdev)


def ref_highest(x, n):
    return ref_window(x, n, max)


def ref_lowest(x, n):
    return ref_window(x, n, min)


def ref_smoother(x, n, alpha):
    """Seeded exponential smoother restarting after every NaN (Pine's na handling)."""
    out, run, prev = [], [], NAN
    for v in x:
        if isnan(v):
            run, prev = [], NAN
            out.append(NAN)
            continue
        run.append(v)
        if len(run) < n:
            out.append(NAN)
        elif len(run) == n:
            prev = sum(run) / n
            out.append(prev)
        else:
            prev = alpha * v + (1 - alpha) * prev
            out.append(prev)
    return out


def ref_ema(x, n):
    return ref_smoother(x, n, 2 / (n + 1))


def ref_rma(x, n):
    return ref_smoother(x, n, 1 / n)


def ref_rsi(x, n):
    change = [NAN if i == 0 else x[i] - x[i - 1] for i in range(len(x))]
    gain = [v if isnan(v) else max(v, 0.0) for v in change]
    loss = [v if isnan(v) else max(-v, 0.0) for v in change]
    up, down = ref_rma(gain, n), ref_rma(loss, n)
    out = []
    for u, d in zip(up, down):
        if isnan(u) or isnan(d):
            out.append(NAN)
        elif d == 0:
            out.append(100.0)
        elif u == 0:
            out.append(0.0)
        else:
            out.append(100 - 100 / (1 + u / d))
    return out


def ref_atr(h, l, c, n):
    tr = []
    for i in range(len(h)):
        if i == 0:
            tr.append(h[0] - l[0])
        else:
            tr.append(max(h[i] - l[i], abs(h[i] - c[i - 1]), abs(l[i] - c[i - 1])))
    return ref_rma(tr, n)


def ref_roc(x, n):
    return [NAN if i < n else 100 * (x[i] - x[i - n]) / x[i - n] for i in range(len(x))]


def ref_vwap(h, l, c, v, n):
    out = []
    for i in range(len(h)):
        if i < n - 1:
            out.append(NAN)
            continue
        tp = [(h[j] + l[j] + c[j]) / 3 for j in range(i - n + 1, i + 1)]
        vol = v[i - n + 1 : i + 1]
        total = sum(vol)
        out.append(sum(t * w for t, w in zip(tp, vol)) / total if total else sum(tp) / n)
    return out


def ref_pivot_high(h, left, right):
    out, last = [], NAN
    for i in range(len(h)):
        p = i - right  # the bar confirmed at i
        if p - left >= 0:
            if all(h[p] > h[j] for j in range(p - left, p)) and all(h[p] >= h[j] for j in range(p + 1, i + 1)):
                last = h[p]
        out.append(last)
    return out


def ref_pivot_low(lo, left, right):
    return [-v for v in ref_pivot_high([-v for v in lo], left, right)]


def assert_close(actual, expected, rel=1e-9):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), (actual, expected)
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(actual[ok], expected[ok], rtol=rel, atol=1e-9)


def first_valid(values: np.ndarray) -> int:
    valid = np.flatnonzero(~np.isnan(values))
    return int(valid[0]) if len(valid) else len(values)


def random_ohlcv(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.standard_normal(n) * 0.01))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.005)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.005)
    volume = rng.random(n) * 10
    return open_, high, low, close, volume


prices = st.lists(st.floats(1.0, 1000.0), min_size=0, max_size=60)
prices_with_gaps = st.lists(st.one_of(st.floats(1.0, 1000.0), st.just(NAN)), min_size=0, max_size=60)
lengths = st.integers(1, 8)


# --------------------------------------------------------------------------- hand-computed values


def test_sma_of_one_to_five_over_three():
    assert_close(ind.sma(np.array([1, 2, 3, 4, 5.0]), 3), [NAN, NAN, 2, 3, 4])


def test_ema_seeds_with_sma_then_smooths_with_two_over_n_plus_one():
    # alpha = 0.5: seed mean(1,2,3) = 2, then 0.5*4 + 0.5*2 = 3, then 0.5*10 + 0.5*3 = 6.5
    assert_close(ind.ema(np.array([1, 2, 3, 4, 10.0]), 3), [NAN, NAN, 2, 3, 6.5])


def test_rma_uses_one_over_n():
    assert_close(ind.rma(np.array([1, 2, 3, 4, 10.0]), 3), [NAN, NAN, 2, 8 / 3, 10 / 3 + (8 / 3) * (2 / 3)])


def test_wma_weighs_the_newest_bar_most():
    assert_close(ind.wma(np.array([1, 2, 3, 4.0]), 3), [NAN, NAN, 14 / 6, 20 / 6])


def test_rsi_small_case_by_hand():
    # changes +1 +1 -1 +1 +1; Wilder alpha 1/2; gains/losses seeded at bar 2 with (1, 0)
    assert_close(ind.rsi(np.array([1, 2, 3, 2, 3, 4.0]), 2), [NAN, NAN, 100, 50, 75, 87.5])


def test_rsi_is_zero_when_only_losses():
    assert_close(ind.rsi(np.array([5, 4, 3, 2.0]), 2), [NAN, NAN, 0, 0])


def test_atr_small_case_by_hand():
    # TR: 2 (first bar: high - low), max(3, 3, 0) = 3, max(4, 0, 4) = 4; RMA(2): seed 2.5, then 3.25
    high, low, close = np.array([10, 12, 11.0]), np.array([8, 9, 7.0]), np.array([9, 11, 8.0])
    assert_close(ind.atr(high, low, close, 2), [NAN, 2.5, 3.25])


def test_stdev_is_population_stdev():
    assert ind.stdev(np.array([2, 4, 4, 4, 5, 5, 7, 9.0]), 8)[-1] == pytest.approx(2.0)


def test_bbands_small_case():
    bands = ind.bbands(np.array([1, 2, 3.0]), 3, 2.0)
    width = 2 * math.sqrt(2 / 3)
    assert_close(bands["middle"], [NAN, NAN, 2])
    assert_close(bands["upper"], [NAN, NAN, 2 + width])
    assert_close(bands["lower"], [NAN, NAN, 2 - width])


def test_roc_in_percent():
    assert_close(ind.roc(np.array([100, 110, 121.0]), 1), [NAN, 10, 10])


def test_roc_of_a_zero_base_is_nan_like_any_division_by_zero():
    # volume after a filled gap bar: 0 -> 5 must not read as an infinite rate of change
    assert_close(ind.roc(np.array([2.0, 0.0, 5.0, 5.0]), 1), [NAN, -100, NAN, 0])


def test_highest_and_lowest_include_the_current_bar():
    x = np.array([1, 3, 2, 5, 4.0])
    assert_close(ind.highest(x, 2), [NAN, 3, 3, 5, 5])
    assert_close(ind.lowest(x, 2), [NAN, 1, 2, 2, 4])


def test_vwap_weights_typical_price_by_volume():
    price = np.array([10, 20, 30.0])
    assert_close(ind.vwap(price, price, price, np.array([1, 1, 2.0]), 2), [NAN, 15, 80 / 3])


def test_session_vwap_accumulates_over_the_utc_day_and_starts_again_at_midnight():
    # 23:00, 23:30 of one day, then 00:00 and 00:30 of the next (times in ms)
    day = 86_400_000
    ts = np.array([day - 3_600_000, day - 1_800_000, day, day + 1_800_000], dtype=np.int64)
    price = np.array([10.0, 20.0, 30.0, 40.0])
    volume = np.array([1.0, 3.0, 0.0, 2.0])
    # day 1: 10, (10 + 60) / 4 = 17.5; day 2: no volume yet -> mean hlc3 30, then (0 + 80) / 2 = 40
    assert_close(ind.vwap_session(price, price, price, volume, ts), [10, 17.5, 30, 40])


def ref_vwap_session(h, l, c, v, ts):
    out, pv, vs, tps, k, day = [], 0.0, 0.0, 0.0, 0, None
    for hi, lo, cl, vol, t in zip(h, l, c, v, ts):
        if t // 86_400_000 != day:
            day, pv, vs, tps, k = t // 86_400_000, 0.0, 0.0, 0.0, 0
        tp = (hi + lo + cl) / 3
        pv, vs, tps, k = pv + tp * vol, vs + vol, tps + tp, k + 1
        out.append(pv / vs if vs else tps / k)
    return out


def test_session_vwap_matches_a_plain_python_reference_over_many_days():
    _, high, low, close, volume = random_ohlcv(3000, 5)
    volume[100:130] = 0.0  # a stretch without volume, across an hour
    ts = 1735689600000 + 7 * 60_000 + np.arange(3000, dtype=np.int64) * 900_000  # 15m bars, off the hour
    assert_close(ind.vwap_session(high, low, close, volume, ts),
                 ref_vwap_session(high.tolist(), low.tolist(), close.tolist(), volume.tolist(), ts.tolist()))


def test_vwap_without_volume_falls_back_to_mean_typical_price():
    price = np.array([10, 20, 30.0])
    assert_close(ind.vwap(price, price, price, np.zeros(3), 2), [NAN, 15, 25])


def test_pivot_high_appears_only_after_right_bars_and_is_forward_filled():
    high = np.array([1, 3, 2, 1, 5, 4, 3, 2.0])
    # bar 1 (3) is a pivot, confirmed at bar 1 + 2 = 3; bar 4 (5) confirmed at bar 6
    assert_close(ind.pivot_high(high, 1, 2), [NAN, NAN, NAN, 3, 3, 3, 5, 5])


def test_pivot_low_mirrors_pivot_high():
    low = np.array([5, 2, 4, 5, 1, 3, 4, 6.0])
    assert_close(ind.pivot_low(low, 1, 2), [NAN, NAN, NAN, 2, 2, 2, 1, 1])


def test_flat_top_yields_a_single_pivot_at_its_first_bar():
    high = np.array([1, 4, 4, 2, 1, 0.5])
    # bar 1 qualifies (above bar 0, >= bars 2..3); bar 2 does not (not strictly above bar 1)
    assert_close(ind.pivot_high(high, 1, 2), [NAN, NAN, NAN, 4, 4, 4])


def test_macd_fields_by_composition():
    x = random_ohlcv(200, 3)[3]
    out = ind.macd(x, 12, 26, 9)
    line = np.asarray(ref_ema(list(x), 12)) - np.asarray(ref_ema(list(x), 26))
    signal = ref_ema(list(line), 9)
    assert_close(out["macd"], line)
    assert_close(out["signal"], signal)
    assert_close(out["hist"], line - np.asarray(signal))
    assert first_valid(out["macd"]) == 25 and first_valid(out["signal"]) == 33


# --------------------------------------------------------------------------- properties vs references


@settings(max_examples=60, deadline=None)
@given(prices_with_gaps, lengths)
def test_window_indicators_match_references(xs, n):
    x = np.array(xs, dtype=float)
    assert_close(ind.sma(x, n), ref_sma(xs, n))
    assert_close(ind.wma(x, n), ref_wma(xs, n))
    assert_close(ind.stdev(x, n), ref_stdev(xs, n), rel=1e-7)
    assert_close(ind.highest(x, n), ref_highest(xs, n))
    assert_close(ind.lowest(x, n), ref_lowest(xs, n))


@settings(max_examples=60, deadline=None)
@given(prices_with_gaps, lengths)
def test_recursive_indicators_match_references_and_restart_after_nan(xs, n):
    x = np.array(xs, dtype=float)
    assert_close(ind.ema(x, n), ref_ema(xs, n))
    assert_close(ind.rma(x, n), ref_rma(xs, n))
    assert_close(ind.rsi(x, n), ref_rsi(xs, n))


@settings(max_examples=60, deadline=None)
@given(prices, lengths, st.integers(1, 4), st.integers(1, 4))
def test_price_indicators_match_references(xs, n, left, right):
    x = np.array(xs, dtype=float)
    assert_close(ind.roc(x, n), ref_roc(xs, n))
    assert_close(ind.pivot_high(x, left, right), ref_pivot_high(xs, left, right))
    assert_close(ind.pivot_low(x, left, right), ref_pivot_low(xs, left, right))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("n", [1, 2, 14, 50])
def test_ohlcv_indicators_match_references_on_long_series(seed, n):
    # 1,000 bars crosses several 128-bar blocks of the recurrence solver.
    _, high, low, close, volume = random_ohlcv(1000, seed)
    h, l, c, v = (list(a) for a in (high, low, close, volume))
    assert_close(ind.atr(high, low, close, n), ref_atr(h, l, c, n))
    assert_close(ind.vwap(high, low, close, volume, n), ref_vwap(h, l, c, v, n))
    assert_close(ind.ema(close, n), ref_ema(c, n))
    assert_close(ind.rsi(close, n), ref_rsi(c, n))
    assert_close(ind.stdev(close, n), ref_stdev(c, n), rel=1e-7)
    assert_close(ind.highest(high, n), ref_highest(h, n))


@pytest.mark.parametrize("a", [0.0, 1 / 3, 0.9, 0.999, 1.0])
def test_linear_recurrence_matches_the_plain_loop(a):
    rng = np.random.default_rng(5)
    u = rng.standard_normal(1000) * 100
    y, expected = 3.0, []
    for value in u:
        y = a * y + value
        expected.append(y)
    np.testing.assert_allclose(ind.linear_recurrence(u, a, 3.0), expected, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- warm-ups and NaN


TYPICAL_PARAMS = {
    "sma": (20,), "ema": (21,), "wma": (10,), "rma": (14,), "rsi": (14,), "atr": (14,),
    "stdev": (20,), "highest": (10,), "lowest": (10,), "roc": (9,), "macd": (12, 26, 9),
    "bbands": (20, 2.0), "vwap": (20,), "vwap_session": (), "pivot_high": (3, 2), "pivot_low": (3, 2),
}


def call(name: str, params: tuple, series: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run a builtin on random bars; `series` replaces the explicit series argument."""
    sig = INDICATORS[name]
    _, high, low, close, volume = random_ohlcv(300, 11)
    ts_open = 1735689600000 + np.arange(300, dtype=np.int64) * 3_600_000  # hourly: 12 UTC days and a half
    columns = {"high": high, "low": low, "close": close, "volume": volume, "ts_open": ts_open}
    args = [columns[c] for c in sig.implicit] + ([close if series is None else series] * sig.series_args)
    out = IMPLEMENTATIONS[name](*args, *params)
    return out if isinstance(out, dict) else {"": out}


def test_every_builtin_has_typical_params_in_this_test():
    assert set(INDICATORS) == set(TYPICAL_PARAMS)


@pytest.mark.parametrize("name", sorted(TYPICAL_PARAMS))
def test_warmup_is_the_index_of_the_first_valid_value(name):
    sig, params = INDICATORS[name], TYPICAL_PARAMS[name]
    for field, values in call(name, params).items():
        assert len(values) == 300 and values.dtype == np.float64
        expected = sig.first_value(params, field or None)
        if name.startswith("pivot"):
            # data-dependent: the earliest possible confirmation, later if no pivot formed yet
            assert first_valid(values) >= expected
        else:
            assert first_valid(values) == expected, field
            assert not np.isnan(values[expected:]).any()
    assert sig.first_value(params) == max(sig.first_value(params, f) for f in (sig.fields or (None,)))


def test_pivot_warmup_is_reached_when_a_pivot_forms_at_once():
    high = np.array([1, 2, 3, 9, 3, 2, 1, 1.0])
    assert first_valid(ind.pivot_high(high, 3, 2)) == INDICATORS["pivot_high"].first_value((3, 2)) == 5


@pytest.mark.parametrize("outer", ["sma", "ema", "wma", "rma", "rsi", "stdev", "highest", "lowest", "roc", "macd", "bbands"])
@pytest.mark.parametrize("inner", ["rsi", "ema", "macd"])
def test_warmup_of_a_composition_is_the_sum(outer, inner):
    inner_params, outer_params = TYPICAL_PARAMS[inner], TYPICAL_PARAMS[outer]
    inner_out = call(inner, inner_params)
    inner_series = inner_out.get("", inner_out.get("macd"))
    inner_warmup = INDICATORS[inner].first_value(inner_params, "macd" if inner == "macd" else None)
    for field, values in call(outer, outer_params, series=inner_series).items():
        expected = inner_warmup + INDICATORS[outer].first_value(outer_params, field or None)
        assert first_valid(values) == expected
        assert not np.isnan(values[expected:]).any()


def test_ema_of_rsi_is_ready_at_22():
    close = random_ohlcv(100, 4)[3]
    assert first_valid(ind.ema(ind.rsi(close, 14), 9)) == 22


def test_nan_inside_a_series_restarts_recursive_warmup():
    x = np.arange(1.0, 21.0)
    x[10] = NAN
    out = ind.ema(x, 3)
    assert first_valid(out) == 2
    assert np.isnan(out[10:13]).all()
    assert out[13] == pytest.approx(np.mean(x[11:14]))


def test_nan_inside_a_series_only_blanks_windows_that_contain_it():
    x = np.arange(1.0, 21.0)
    x[10] = NAN
    out = ind.sma(x, 3)
    assert np.isnan(out[10:13]).all() and not np.isnan(out[13:]).any() and not np.isnan(out[2:10]).any()


# --------------------------------------------------------------------------- registry


def test_registry_signatures_are_what_the_compiler_checks():
    expected = {
        "sma": (("series", "int"), (), ()), "ema": (("series", "int"), (), ()),
        "wma": (("series", "int"), (), ()), "rma": (("series", "int"), (), ()),
        "rsi": (("series", "int"), (), ()), "roc": (("series", "int"), (), ()),
        "stdev": (("series", "int"), (), ()), "highest": (("series", "int"), (), ()),
        "lowest": (("series", "int"), (), ()),
        "atr": (("int",), ("high", "low", "close"), ()),
        "macd": (("series", "int", "int", "int"), (), ("macd", "signal", "hist")),
        "bbands": (("series", "int", "float"), (), ("upper", "middle", "lower")),
        "vwap": (("int",), ("high", "low", "close", "volume"), ()),
        "vwap_session": ((), ("high", "low", "close", "volume", "ts_open"), ()),
        "pivot_high": (("int", "int"), ("high",), ()),
        "pivot_low": (("int", "int"), ("low",), ()),
    }
    assert set(expected) == set(INDICATORS)
    for name, (inputs, implicit, fields) in expected.items():
        sig = INDICATORS[name]
        series_args, params = inputs.count("series"), tuple(k for k in inputs if k != "series")
        assert (sig.name, sig.series_args, sig.params, sig.implicit, sig.fields) == (
            name, series_args, params, implicit, fields)
        assert sig.doc


def test_bad_lengths_raise():
    with pytest.raises(ValueError, match="ema length"):
        ind.ema(np.ones(5), 0)


def test_short_and_empty_inputs_are_all_nan():
    for name, params in TYPICAL_PARAMS.items():
        sig = INDICATORS[name]
        for size in (0, 3):
            args = [np.ones(size)] * (len(sig.implicit) + sig.series_args)
            out = IMPLEMENTATIONS[name](*args, *params)
            for values in (out.values() if isinstance(out, dict) else [out]):
                # shorter than the warm-up: no value (vwap(), warm from its first bar, has them all)
                assert len(values) == size and (np.isnan(values).all() if sig.first_value(params) >= size
                                                else not np.isnan(values).any())


@pytest.mark.parametrize("m", [1, 5, 127, 128, 129, 256, 1000])
def test_the_recurrence_of_a_prefix_is_bit_for_bit_the_prefix_of_the_recurrence(m):
    # no lookahead even in the last digit: a value never depends on how many bars come after it
    u = np.random.default_rng(1).normal(size=3000)
    assert np.array_equal(ind.linear_recurrence(u[:m], 0.9, 0.5), ind.linear_recurrence(u, 0.9, 0.5)[:m])


# --------------------------------------------------------------------------- audit additions


def ref_bbands(x, n, k):
    """Textbook Bollinger bands: middle = SMA(n), upper/lower = middle +/- k * population stdev(n).

    README (indicator table) and PLAY-LANGUAGE.md section 2 both say "k population stdevs" (ddof 0).
    """
    mid, sd = ref_sma(x, n), ref_stdev(x, n)
    upper = [NAN if isnan(m) or isnan(s) else m + k * s for m, s in zip(mid, sd)]
    lower = [NAN if isnan(m) or isnan(s) else m - k * s for m, s in zip(mid, sd)]
    return {"upper": upper, "middle": mid, "lower": lower}


@settings(max_examples=80, deadline=None)
@given(prices_with_gaps, lengths, st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]))
def test_bbands_match_sma_plus_minus_k_population_stdev(xs, n, k):
    x = np.array(xs, dtype=float)
    out = ind.bbands(x, n, k)
    expected = ref_bbands(xs, n, k)
    assert set(out) == {"upper", "middle", "lower"}
    # lower can cancel to ~0 when k*stdev ~ middle: use an absolute tolerance scaled to the prices
    scale = 1.0 + max((abs(v) for v in xs if not isnan(v)), default=0.0)
    for field in ("upper", "middle", "lower"):
        actual, want = np.asarray(out[field]), np.asarray(expected[field], dtype=float)
        assert actual.shape == want.shape
        assert np.array_equal(np.isnan(actual), np.isnan(want)), (field, actual, want)
        ok = ~np.isnan(want)
        np.testing.assert_allclose(actual[ok], want[ok], rtol=1e-9, atol=1e-9 * scale, err_msg=field)


def test_bbands_use_population_not_sample_stdev():
    # x = 2,4,4,4,5,5,7,9 (n = 8): mean 5, squared deviations 9+1+1+1+0+0+4+16 = 32;
    # population stdev sqrt(32/8) = 2 (sample stdev would be sqrt(32/7) ~ 2.138)
    bands = ind.bbands(np.array([2, 4, 4, 4, 5, 5, 7, 9.0]), 8, 1.5)
    assert bands["middle"][-1] == pytest.approx(5.0)
    assert bands["upper"][-1] == pytest.approx(5.0 + 1.5 * 2.0)  # 8
    assert bands["lower"][-1] == pytest.approx(5.0 - 1.5 * 2.0)  # 2
    assert np.isnan(bands["upper"][:7]).all() and np.isnan(bands["lower"][:7]).all()


def test_macd_small_case_by_hand():
    # x = 1, 3, 2, 6, 0, 3; macd(x, 2, 3, 2)
    # ema2 (alpha 2/3), SMA seed at bar 1: (1+3)/2 = 2
    #   bar 2: 2/3*2 + 1/3*2 = 2;  bar 3: 2/3*6 + 1/3*2 = 14/3
    #   bar 4: 2/3*0 + 1/3*14/3 = 14/9;  bar 5: 2/3*3 + 1/3*14/9 = 2 + 14/27 = 68/27
    # ema3 (alpha 1/2), SMA seed at bar 2: (1+3+2)/3 = 2
    #   bar 3: (6+2)/2 = 4;  bar 4: (0+4)/2 = 2;  bar 5: (3+2)/2 = 5/2
    # line = ema2 - ema3, first at bar 2 = max(2,3)-1:
    #   bar 2: 0;  bar 3: 14/3 - 4 = 2/3;  bar 4: 14/9 - 2 = -4/9;  bar 5: 68/27 - 5/2 = 1/54
    # signal = ema2 of the line (its first value at bar 2), SMA seed at bar 3: (0 + 2/3)/2 = 1/3
    #   bar 4: 2/3*(-4/9) + 1/3*(1/3) = -8/27 + 3/27 = -5/27
    #   bar 5: 2/3*(1/54) + 1/3*(-5/27) = 1/81 - 5/81 = -4/81
    #   first at bar 3 = max(2,3) + 2 - 2 (README)
    # hist = line - signal: bar 3: 2/3 - 1/3 = 1/3;  bar 4: -4/9 + 5/27 = -7/27;
    #   bar 5: 1/54 + 4/81 = 3/162 + 8/162 = 11/162
    out = ind.macd(np.array([1, 3, 2, 6, 0, 3.0]), 2, 3, 2)
    assert set(out) == {"macd", "signal", "hist"}
    assert_close(out["macd"], [NAN, NAN, 0, 2 / 3, -4 / 9, 1 / 54])
    assert_close(out["signal"], [NAN, NAN, NAN, 1 / 3, -5 / 27, -4 / 81])
    assert_close(out["hist"], [NAN, NAN, NAN, 1 / 3, -7 / 27, 11 / 162])


def test_macd_of_a_straight_line_by_hand():
    # x = 1..6, macd(x, 2, 3, 2): on a line an SMA-seeded EMA lags by (n-1)/2 exactly
    # ema2: seed 1.5 at bar 1, then 2/3*3 + 1/3*1.5 = 2.5, 3.5, 4.5, 5.5
    # ema3: seed 2 at bar 2, then (4+2)/2 = 3, 4, 5
    # line from bar 2: 0.5 each; signal: seed (0.5+0.5)/2 = 0.5 at bar 3, stays 0.5; hist 0
    out = ind.macd(np.arange(1.0, 7.0), 2, 3, 2)
    assert_close(out["macd"], [NAN, NAN, 0.5, 0.5, 0.5, 0.5])
    assert_close(out["signal"], [NAN, NAN, NAN, 0.5, 0.5, 0.5])
    assert_close(out["hist"], [NAN, NAN, NAN, 0, 0, 0])


def _clean_bars(m: int = 400):
    """A long NaN-free OHLCV series whose bar 3 is a sharp pivot high (in high) and low (in low),
    so pivot_*(3, 2) can confirm at the earliest possible bar."""
    _, high, low, close, volume = random_ohlcv(m, 21)
    high[3], low[3] = 1e6, 1e-3  # above/below every other bar (prices stay within ~50..200)
    ts_open = 1735689600000 + np.arange(m, dtype=np.int64) * 3_600_000
    return high, low, close, volume, ts_open


# (label, call on the clean bars, field or None, first value written by hand from README's table)
_HAND_WARMUPS = [
    ("sma(20)", lambda h, l, c, v, t: ind.sma(c, 20), None, 19),            # n-1 = 20-1
    ("ema(9)", lambda h, l, c, v, t: ind.ema(c, 9), None, 8),               # n-1 = 9-1
    ("rma(14)", lambda h, l, c, v, t: ind.rma(c, 14), None, 13),            # n-1
    ("wma(10)", lambda h, l, c, v, t: ind.wma(c, 10), None, 9),             # n-1
    ("rsi(14)", lambda h, l, c, v, t: ind.rsi(c, 14), None, 14),            # n (first change at bar 1)
    ("roc(9)", lambda h, l, c, v, t: ind.roc(c, 9), None, 9),               # n (needs x[9 bars ago])
    ("atr(14)", lambda h, l, c, v, t: ind.atr(h, l, c, 14), None, 13),      # n-1 (first TR = high-low)
    ("stdev(20)", lambda h, l, c, v, t: ind.stdev(c, 20), None, 19),        # n-1
    ("highest(5)", lambda h, l, c, v, t: ind.highest(c, 5), None, 4),       # n-1
    ("lowest(5)", lambda h, l, c, v, t: ind.lowest(c, 5), None, 4),         # n-1
    # macd line = ema12 - ema26: ready when ema26 is, 26-1 = 25
    ("macd(12,26,9).macd", lambda h, l, c, v, t: ind.macd(c, 12, 26, 9), "macd", 25),
    # signal = ema9 of the line: 25 + (9-1) = 33 = max(12,26)+9-2 (README)
    ("macd(12,26,9).signal", lambda h, l, c, v, t: ind.macd(c, 12, 26, 9), "signal", 33),
    ("macd(12,26,9).hist", lambda h, l, c, v, t: ind.macd(c, 12, 26, 9), "hist", 33),
    ("bbands(20,2).upper", lambda h, l, c, v, t: ind.bbands(c, 20, 2.0), "upper", 19),   # n-1
    ("bbands(20,2).middle", lambda h, l, c, v, t: ind.bbands(c, 20, 2.0), "middle", 19),
    ("bbands(20,2).lower", lambda h, l, c, v, t: ind.bbands(c, 20, 2.0), "lower", 19),
    ("vwap(20)", lambda h, l, c, v, t: ind.vwap(h, l, c, v, 20), None, 19),             # n-1
    ("vwap()", lambda h, l, c, v, t: ind.vwap_session(h, l, c, v, t), None, 0),         # session: 0
    # l + r = 3 + 2: pivot at bar 3 (spike), confirmed 2 bars later
    ("pivot_high(3,2)", lambda h, l, c, v, t: ind.pivot_high(h, 3, 2), None, 5),
    ("pivot_low(3,2)", lambda h, l, c, v, t: ind.pivot_low(l, 3, 2), None, 5),
]


@pytest.mark.parametrize("label, fn, field, hand", _HAND_WARMUPS, ids=[row[0] for row in _HAND_WARMUPS])
def test_warmups_match_the_readme_table_written_by_hand(label, fn, field, hand):
    bars = _clean_bars()
    out = fn(*bars)
    values = out[field] if field else out
    assert isinstance(values, np.ndarray) and len(values) == len(bars[0])
    assert first_valid(values) == hand, label
    assert np.isnan(values[:hand]).all() and not np.isnan(values[hand:]).any(), label


def test_pivot_warmups_see_the_spike_at_bar_3():
    high, low = _clean_bars()[:2]
    assert ind.pivot_high(high, 3, 2)[5] == 1e6
    assert ind.pivot_low(low, 3, 2)[5] == 1e-3


def test_pivot_low_warmup_is_reached_when_a_pivot_forms_at_once():
    # V-shape: bar 3 (1) is strictly below bars 0..2 and <= bars 4..5, so confirmed at 3 + 2 = 5
    low = np.array([9, 8, 7, 1, 7, 8, 9, 9.0])
    assert_close(ind.pivot_low(low, 3, 2), [NAN, NAN, NAN, NAN, NAN, 1, 1, 1])
    # asymmetric: bar 2 (1) below bars 0..1, <= bars 3..5: confirmed at 2 + 3 = 5
    low2 = np.array([5, 4, 1, 4, 5, 6, 7.0])
    assert_close(ind.pivot_low(low2, 2, 3), [NAN, NAN, NAN, NAN, NAN, 1, 1])


# --------------------------------------------------------------------------- flat stretches


def test_a_flat_stretch_late_in_a_long_series_is_exactly_its_price():
    # Filled gap bars late in a year of minutes: one running total over the series would leave the
    # mean ~1e-6 off, making `close > sma(close, 20)` true on every flat bar.
    rng = np.random.default_rng(1)
    x = np.round(60_000 + np.cumsum(rng.normal(0, 20, 600_000)), 1)
    x[500_000:500_100] = x[499_999]
    flat = slice(500_018, 500_100)  # windows of 20 of one price (bar 499_999 is the price copied)
    assert np.array_equal(ind.sma(x, 20)[flat], x[flat])
    assert not (x[flat] > ind.sma(x, 20)[flat]).any()
    assert np.array_equal(ind.stdev(x, 20)[flat], np.zeros(82))
    bands = ind.bbands(x, 20, 2.0)
    assert np.array_equal(bands["upper"][flat], x[flat]) and np.array_equal(bands["lower"][flat], x[flat])
    hlc = ind.vwap(x, x, x, np.where(np.arange(len(x)) >= 500_000, 0.0, 1.0), 20)
    assert np.array_equal(hlc[flat], x[flat])
    # the window that still holds the last bar of another price is not flat
    assert ind.stdev(x, 20)[500_017] > 0 and ind.sma(x, 20)[500_017] != x[500_017]


def test_sma_stays_within_rounding_of_an_exact_sum_on_a_long_series():
    rng = np.random.default_rng(2)
    x = np.round(60_000 + np.cumsum(rng.normal(0, 20, 1_000_000)), 1)
    got = ind.sma(x, 20)
    for i in rng.integers(19, len(x), 300).tolist():
        exact = math.fsum(x[i - 19 : i + 1].tolist()) / 20
        assert abs(got[i] - exact) <= 1e-9, (i, got[i], exact)  # a running total is ~1e-6 off here
