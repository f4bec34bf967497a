"""The emulator's market endpoints through pybit's own methods: server time, klines (newest first,
paged by start/end/limit, never a bar after the current one, coarser intervals built from the data),
instruments-info and tickers; their shapes pinned by golden files."""
from __future__ import annotations

import time

import numpy as np
import pytest
from pybit.exceptions import InvalidRequestError

from emulator_kit import MINUTE, T0, golden, http, make_config, start, walk_bars
from playdeck.runtime.bybit.emulator import BackgroundEmulator, EmulatorConfig, InstrumentSpec, Market

BARS = walk_bars(300, seed=7)
CURRENT = 150


@pytest.fixture(scope="module")
def emu():
    bg = start(BARS, start_bar=CURRENT)
    yield bg
    bg.stop()


@pytest.fixture(scope="module")
def api(emu):
    return http(emu.url, key=None, secret=None)


def rows_of(api, **kw):
    return api.get_kline(category="linear", symbol="BTCUSDT", **kw)["result"]["list"]


def test_server_time_is_the_wall_clock_in_seconds_and_nanoseconds(api, json_snapshot):
    before = int(time.time() * 1000)
    reply = api.get_server_time()
    after = int(time.time() * 1000)
    result = reply["result"]
    assert before // 1000 <= int(result["timeSecond"]) <= after // 1000
    assert int(result["timeNano"]) // 1_000_000 == reply["time"]
    assert isinstance(reply["time"], int) and before <= reply["time"] <= after
    assert golden(reply) == json_snapshot


def test_kline_is_newest_first_and_ends_at_the_current_bar(api, json_snapshot):
    rows = rows_of(api, interval="1", limit=3)
    assert [int(r[0]) for r in rows] == [T0 + (CURRENT - k) * MINUTE for k in range(3)]
    newest = rows[0]
    assert newest[1:5] == [f"{x:.1f}" for x in (BARS.open[CURRENT], BARS.high[CURRENT], BARS.low[CURRENT],
                                                 BARS.close[CURRENT])]
    assert all(isinstance(x, str) for r in rows for x in r)
    assert golden(api.get_kline(category="linear", symbol="BTCUSDT", interval="1", limit=3)) == json_snapshot


def test_kline_defaults_to_200_bars_and_linear():
    bars = walk_bars(400, seed=2)
    with start(bars, start_bar=350) as bg:
        rows = http(bg.url).get_kline(symbol="BTCUSDT", interval="1")["result"]["list"]
    assert len(rows) == 200
    assert int(rows[0][0]) == T0 + 350 * MINUTE and int(rows[-1][0]) == T0 + 151 * MINUTE


def test_paging_backwards_by_end_covers_every_bar_once(api):
    seen: list[int] = []
    end = None
    while True:
        kw = {"interval": "1", "limit": 40}
        if end is not None:
            kw["end"] = end
        rows = rows_of(api, **kw)
        if not rows:
            break
        starts = [int(r[0]) for r in rows]
        assert starts == sorted(starts, reverse=True)
        seen.extend(starts)
        end = starts[-1] - 1
    assert seen == [T0 + k * MINUTE for k in range(CURRENT, -1, -1)]


def test_start_and_end_bound_the_bars_and_a_future_end_shows_no_future_bar(api):
    rows = rows_of(api, interval="1", start=T0 + 10 * MINUTE, end=T0 + 14 * MINUTE)
    assert [int(r[0]) for r in rows] == [T0 + k * MINUTE for k in (14, 13, 12, 11, 10)]
    rows = rows_of(api, interval="1", start=T0 + 148 * MINUTE, end=T0 + 10_000 * MINUTE)
    assert [int(r[0]) for r in rows] == [T0 + k * MINUTE for k in (150, 149, 148)]
    assert rows_of(api, interval="1", start=T0 + 151 * MINUTE) == []


def test_a_coarser_interval_is_built_from_the_bars_and_its_newest_candle_is_forming(api):
    rows = rows_of(api, interval="5", limit=3)
    # bar 150 opens a 5-minute bucket (150 = 30 x 5): it is the forming candle, one bar so far
    assert int(rows[0][0]) == T0 + 150 * MINUTE
    assert rows[0][4] == f"{BARS.close[150]:.1f}"
    full = rows[1]
    k = slice(145, 150)
    assert int(full[0]) == T0 + 145 * MINUTE
    assert full[1:6] == [f"{BARS.open[145]:.1f}", f"{BARS.high[k].max():.1f}", f"{BARS.low[k].min():.1f}",
                         f"{BARS.close[149]:.1f}", "10"]
    hourly = rows_of(api, interval="60")
    assert [int(r[0]) for r in hourly] == [T0 + 60 * MINUTE * 2, T0 + 60 * MINUTE, T0]
    assert hourly[-1][2] == f"{BARS.high[:60].max():.1f}"


@pytest.mark.parametrize("interval, message", [
    ("W", "params error: interval W is not served by the emulator"),
    ("2", "params error: interval invalid"),
])
def test_intervals_the_emulator_cannot_serve_are_10001(api, interval, message):
    with pytest.raises(InvalidRequestError) as e:
        rows_of(api, interval=interval)
    assert (e.value.status_code, e.value.message) == (10001, message)


def test_an_interval_finer_than_the_data_is_10001():
    bars = walk_bars(50, seed=3)
    five = type(bars)(bars.symbol, "5m", T0 + np.arange(50) * 300_000, bars.open, bars.high, bars.low, bars.close,
                      bars.volume)
    with BackgroundEmulator(EmulatorConfig((Market(InstrumentSpec("BTCUSDT"), five),), start_bar=20)) as bg:
        api = http(bg.url)
        with pytest.raises(InvalidRequestError) as e:
            api.get_kline(category="linear", symbol="BTCUSDT", interval="1")
        assert e.value.status_code == 10001 and "5-minute bars" in e.value.message
        assert len(api.get_kline(category="linear", symbol="BTCUSDT", interval="15")["result"]["list"]) == 7


def test_an_unknown_symbol_is_10001_and_the_emulator_keeps_serving(api):
    with pytest.raises(InvalidRequestError) as e:
        api.get_kline(category="linear", symbol="DOGEUSDT", interval="1")
    assert (e.value.status_code, e.value.message) == (10001, "params error: symbol invalid")
    assert len(rows_of(api, interval="1", limit=2)) == 2


def test_instruments_info_has_the_filters_the_emulator_was_started_with(api, json_snapshot):
    reply = api.get_instruments_info(category="linear")
    item = reply["result"]["list"][0]
    assert item["priceFilter"]["tickSize"] == "0.1"
    assert item["lotSizeFilter"] == {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                                     "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000",
                                     "minNotionalValue": "5"}
    assert item["leverageFilter"] == {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"}
    assert golden(reply) == json_snapshot


def test_instruments_of_another_tick_and_step_are_formatted_on_them():
    bars = walk_bars(20, seed=4, symbol="ETHUSDT")
    with start(bars, start_bar=5, spec={"tick": 0.01, "qty_step": 0.01, "min_qty": 0.01}) as bg:
        item = http(bg.url).get_instruments_info(category="linear", symbol="ETHUSDT")["result"]["list"][0]
    assert (item["priceFilter"]["tickSize"], item["priceFilter"]["minPrice"], item["priceFilter"]["maxPrice"]) == \
        ("0.01", "0.01", "199999.98")
    assert (item["lotSizeFilter"]["qtyStep"], item["lotSizeFilter"]["maxOrderQty"]) == ("0.01", "1190.00")
    assert item["priceScale"] == "2" and item["baseCoin"] == "ETH"


def test_tickers_show_the_current_close_and_the_next_funding_instant(api, json_snapshot):
    reply = api.get_tickers(category="linear", symbol="BTCUSDT")
    t = reply["result"]["list"][0]
    assert t["lastPrice"] == t["markPrice"] == f"{BARS.close[CURRENT]:.1f}"
    assert t["nextFundingTime"] == str(T0 + 8 * 3_600_000) and t["fundingRate"] == "0.0001"
    assert t["volume24h"] == str((CURRENT + 1) * 2)
    assert t["highPrice24h"] == f"{BARS.high[:CURRENT + 1].max():.1f}"
    assert golden(reply) == json_snapshot


def test_tickers_need_the_category(api):
    with pytest.raises(InvalidRequestError) as e:
        api.get_tickers(symbol="BTCUSDT")
    assert e.value.status_code == 10001


def test_after_advancing_the_newest_kline_is_the_next_bar():
    bars = walk_bars(30, seed=5)
    with start(bars, start_bar=10) as bg:
        api = http(bg.url)
        assert bg.advance(2) == 2
        rows = api.get_kline(category="linear", symbol="BTCUSDT", interval="1", limit=1)["result"]["list"]
        assert int(rows[0][0]) == T0 + 12 * MINUTE
        assert bg.advance(100) == 17  # to the last bar, then no further
        rows = api.get_kline(category="linear", symbol="BTCUSDT", interval="1", limit=1)["result"]["list"]
        assert int(rows[0][0]) == T0 + 29 * MINUTE
        assert bg.call(lambda: bg.emu.state()["end"]) is True


def test_two_symbols_need_bars_at_the_same_times():
    a, b = walk_bars(10, seed=1), walk_bars(11, seed=2, symbol="ETHUSDT")
    with pytest.raises(ValueError, match="do not line up"):
        make_config(a, b).markets and BackgroundEmulator(make_config(a, b)).start()
