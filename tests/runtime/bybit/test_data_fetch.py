"""Kline history into the cache (`runtime/bybit/history.py`) against the emulator on loopback, through
BybitRest and pybit: pages of the emulator's bars exactly, never the newest (maybe forming) candle,
paced by the limiter, and resumable: a fetch stopped half-way (a failing venue, an exception from the
progress callback, a damaged page) asks again only for the pages it has not kept. Which requests went
out is read from the HTTP client's own response hook, so nothing in the path is replaced."""
from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from emulator_kit import MINUTE, T0, start, walk_bars
from playdeck.runtime.bybit.client import BybitRest
from playdeck.runtime.bybit.history import PAGES, FetchError, FetchProgress, FetchResult, fetch_klines
from playdeck.runtime.bybit.limiter import RateLimiter
from playdeck.runtime.data import cache
from playdeck.runtime.data.bars import Bars, resample

BARS = walk_bars(700, seed=11)
CURRENT = 650  # the emulator's newest candle: bar 650 (1m), the bucket opened at bar 650 (5m)


@pytest.fixture(scope="module")
def emu():
    bg = start(BARS, start_bar=CURRENT)
    yield bg
    bg.stop()


class Recorded:
    """A BybitRest on `url` and the query of every kline request it sent, read from requests' hook."""

    def __init__(self, url: str, **kw: Any) -> None:
        self.rest = BybitRest(key=None, secret=None, endpoint=url, **kw)
        self.asked: list[dict[str, str]] = []
        self.rest.session.client.hooks["response"].append(self._record)

    def _record(self, response: Any, *args: Any, **kwargs: Any) -> None:
        url = urlsplit(response.request.url)
        if url.path == "/v5/market/kline":
            self.asked.append(dict(parse_qsl(url.query)))

    def windows(self) -> list[tuple[int, int, int]]:
        """(start, end, limit) of each page request, in the order sent (the newest-candle probe left out)."""
        return [(int(q["start"]), int(q["end"]), int(q["limit"])) for q in self.asked if "start" in q]


def fetch(rec: Recorded, cache_dir: Path, first: int = 0, end: int | None = 600, tf: str = "1m",
          **kw: Any) -> FetchResult:
    """Fetch BTCUSDT from bar `first` to before bar `end` (None: to the newest closed candle)."""
    return asyncio.run(fetch_klines("BTCUSDT", tf, T0 + first * MINUTE, None if end is None else T0 + end * MINUTE,
                                    rest=rec.rest, cache_dir=cache_dir, **kw))


def pages(first: int, end: int, size: int) -> list[tuple[int, int, int]]:
    """The page requests (start, end, limit) for bars [first, end) in pages of `size`: `end` is the page's
    last millisecond."""
    return [(T0 + a * MINUTE, T0 + min(end, a + size) * MINUTE - 1, size) for a in range(first, end, size)]


def assert_bars_are(got: Bars, want: Bars) -> None:
    assert np.array_equal(got.ts_open, want.ts_open)
    for name in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(got.column(name), want.column(name)), name


def page_files(cache_dir: Path, tf: str = "1m") -> list[str]:
    folder = cache_dir / PAGES / "BTCUSDT" / tf
    return sorted(p.name for p in folder.glob("*.npz")) if folder.is_dir() else []


def test_a_range_of_several_pages_is_the_emulators_bars_exactly(emu, tmp_path):
    rec = Recorded(emu.url)
    got = fetch(rec, tmp_path, 0, 600, page_limit=100)
    assert rec.asked[0] == {"category": "linear", "symbol": "BTCUSDT", "interval": "1", "limit": "1"}
    assert rec.windows() == pages(0, 600, 100)
    assert (got.n_bars, got.first_ts, got.last_ts, got.fetched, got.pages, got.kept) == \
        (600, T0, T0 + 599 * MINUTE, 600, 6, 0)
    assert (got.replaced, got.forming, got.missing, got.unchanged) == (None, None, 0, False)
    assert_bars_are(cache.load("BTCUSDT", "1m", tmp_path), BARS.take(0, 600))
    meta = cache.read_meta("BTCUSDT", "1m", tmp_path)
    assert meta["source"] == {"kind": "bybit", "endpoint": emu.url, "interval": "1", "from": T0,
                              "to": T0 + 600 * MINUTE}
    assert not (tmp_path / PAGES).exists()  # the pages are gone once the series is written


def test_the_same_fetch_again_sends_no_request_and_writes_nothing(emu, tmp_path):
    fetch(Recorded(emu.url), tmp_path, 0, 600, page_limit=100)
    entry = cache.bars_dir("BTCUSDT", "1m", tmp_path)
    version = entry.readlink()
    rec = Recorded(emu.url)
    got = fetch(rec, tmp_path, 0, 600, page_limit=100)
    assert rec.asked == []
    assert got.unchanged and (got.fetched, got.pages, got.kept, got.n_bars) == (0, 0, 600, 600)
    assert entry.readlink() == version


def test_without_an_end_the_newest_candle_is_not_stored_though_every_older_one_is(emu, tmp_path):
    rec = Recorded(emu.url)
    got = fetch(rec, tmp_path, 0, None, page_limit=300)
    assert rec.windows() == pages(0, CURRENT, 300)
    assert got.forming == T0 + CURRENT * MINUTE and got.last_ts == T0 + (CURRENT - 1) * MINUTE
    assert_bars_are(cache.load("BTCUSDT", "1m", tmp_path), BARS.take(0, CURRENT))
    # an --to beyond the newest candle is the same: it is no more closed for being asked for
    other = tmp_path / "other"
    assert fetch(Recorded(emu.url), other, 0, 10_000).last_ts == T0 + (CURRENT - 1) * MINUTE


def test_a_forming_candle_of_a_coarser_interval_is_not_stored(emu, tmp_path):
    # 650 = 130 x 5: the 5m candle opened at bar 650 holds that bar alone and is forming
    rec = Recorded(emu.url)
    got = fetch(rec, tmp_path, 0, None, tf="5m", page_limit=50)
    assert rec.asked[0]["interval"] == "5"
    assert rec.windows() == [(T0 + a * 5 * MINUTE, T0 + min(130, a + 50) * 5 * MINUTE - 1, 50)
                             for a in (0, 50, 100)]
    assert got.forming == T0 + 650 * MINUTE and got.n_bars == 130
    assert_bars_are(cache.load("BTCUSDT", "5m", tmp_path), resample(BARS.take(0, 650), "5m"))


def test_a_failing_venue_stops_the_fetch_and_the_next_run_asks_only_for_the_pages_it_lacks(emu, tmp_path):
    async def no_wait(seconds: float) -> None:
        pass

    rec = Recorded(emu.url, attempts=2, sleep=no_wait)

    def fail_after_three(p: FetchProgress) -> None:
        if p.page == 3:  # the next request, and its one retry, answer HTTP 502
            emu.call(emu.emu.fail_next, 502, 2)

    with pytest.raises(FetchError) as e:
        fetch(rec, tmp_path, 0, 600, page_limit=100, progress=fail_after_three)
    assert str(e.value) == (f"{emu.url} answered HTTP 502 at page 4 of 6; 3 pages fetched so far are kept: "
                            "run the same command again to fetch the rest")
    assert rec.windows() == pages(0, 600, 100)[:3] + [pages(0, 600, 100)[3]] * 2  # page 4, then its retry
    assert not cache.exists("BTCUSDT", "1m", tmp_path)  # no series until every page is there
    assert page_files(tmp_path) == [f"{T0 + a * MINUTE}-{T0 + (a + 100) * MINUTE}.npz" for a in (0, 100, 200)]

    again = Recorded(emu.url)
    got = fetch(again, tmp_path, 0, 600, page_limit=100)
    assert again.windows() == pages(300, 600, 100)
    assert (got.fetched, got.kept, got.pages, got.n_bars) == (300, 300, 3, 600)
    assert_bars_are(cache.load("BTCUSDT", "1m", tmp_path), BARS.take(0, 600))
    assert not (tmp_path / PAGES).exists()


class Stop(Exception):
    pass


def test_an_exception_from_the_progress_callback_keeps_the_pages_committed_before_it(emu, tmp_path):
    seen: list[FetchProgress] = []

    def stop_at_two(p: FetchProgress) -> None:
        seen.append(p)
        if p.page == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises

    with pytest.raises(KeyboardInterrupt):
        fetch(Recorded(emu.url), tmp_path, 0, 600, page_limit=100, progress=stop_at_two)
    assert seen == [FetchProgress(1, 6, 100), FetchProgress(2, 6, 200)]
    assert len(page_files(tmp_path)) == 2
    # resumed with other page sizes: the missing range is cut anew, the pages kept are not asked for
    rec = Recorded(emu.url)
    got = fetch(rec, tmp_path, 0, 600, page_limit=250)
    assert rec.windows() == pages(200, 600, 250)
    assert (got.fetched, got.kept) == (400, 200)
    assert_bars_are(cache.load("BTCUSDT", "1m", tmp_path), BARS.take(0, 600))


def test_a_damaged_page_is_fetched_again(emu, tmp_path):
    with pytest.raises(Stop):
        fetch(Recorded(emu.url), tmp_path, 0, 300, page_limit=100, progress=lambda p: _stop_at(p, 3))
    damaged = tmp_path / PAGES / "BTCUSDT" / "1m" / page_files(tmp_path)[1]
    damaged.write_bytes(damaged.read_bytes()[:40])
    rec = Recorded(emu.url)
    fetch(rec, tmp_path, 0, 300, page_limit=100)
    assert rec.windows() == pages(100, 200, 100)
    assert_bars_are(cache.load("BTCUSDT", "1m", tmp_path), BARS.take(0, 300))


def _stop_at(p: FetchProgress, page: int) -> None:
    if p.page == page:
        raise Stop


def test_pages_from_another_endpoint_are_not_mixed_in(emu, tmp_path):
    with pytest.raises(Stop):
        fetch(Recorded(emu.url), tmp_path, 0, 300, page_limit=100, progress=lambda p: _stop_at(p, 2))
    shifted = walk_bars(700, seed=12)
    with start(shifted, start_bar=CURRENT) as other:
        rec = Recorded(other.url)
        fetch(rec, tmp_path, 0, 300, page_limit=100)
    assert rec.windows() == pages(0, 300, 100)
    assert_bars_are(cache.load("BTCUSDT", "1m", tmp_path), shifted.take(0, 300))


def test_a_later_fetch_extends_the_series_and_a_range_apart_replaces_it(emu, tmp_path):
    fetch(Recorded(emu.url), tmp_path, 100, 300)
    rec = Recorded(emu.url)
    got = fetch(rec, tmp_path, 200, 500, page_limit=100)  # overlaps: only 300..500 is asked for
    assert rec.windows() == pages(300, 500, 100)
    assert (got.first_ts, got.n_bars, got.kept, got.replaced) == (T0 + 100 * MINUTE, 400, 200, None)
    assert_bars_are(cache.load("BTCUSDT", "1m", tmp_path), BARS.take(100, 500))
    rec = Recorded(emu.url)
    got = fetch(rec, tmp_path, 0, 100)  # meets it at bar 100: extended by the bars before it
    assert rec.windows() == pages(0, 100, 1000)
    assert got.n_bars == 500
    got = fetch(Recorded(emu.url), tmp_path, 600, 650)  # apart: replaced, and said so
    assert got.n_bars == 50
    assert got.replaced == f"500 bars 2025-01-01T00:00:00Z .. 2025-01-01T08:19:00Z (fetched from {emu.url})"
    assert_bars_are(cache.load("BTCUSDT", "1m", tmp_path), BARS.take(600, 650))


class CountingLimiter(RateLimiter):
    """BybitRest's limiter, noting the endpoint of every request it is asked to let go."""

    def __init__(self) -> None:
        super().__init__()
        self.acquired: list[str] = []

    def acquire(self, endpoint: str, now: float) -> float:
        self.acquired.append(endpoint)
        return super().acquire(endpoint, now)


def test_every_request_goes_through_the_clients_limiter(emu, tmp_path):
    limiter = CountingLimiter()
    rec = Recorded(emu.url, limiter=limiter)
    fetch(rec, tmp_path, 0, 600, page_limit=100)
    assert len(rec.asked) == 7  # the newest candle, then six pages
    assert limiter.acquired == ["/v5/market/time"] + ["/v5/market/kline"] * 7


def test_another_fetch_of_the_same_series_is_refused_while_one_runs(emu, tmp_path):
    folder = tmp_path / PAGES / "BTCUSDT" / "1m"
    folder.mkdir(parents=True)
    with open(folder / cache.LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(FetchError) as e:
            fetch(Recorded(emu.url), tmp_path, 0, 100)
    assert str(e.value) == f"another `playdeck data fetch` of BTCUSDT 1m is writing to {folder}; wait for it to end"
    fetch(Recorded(emu.url), tmp_path, 0, 100)  # and goes once it ended
    assert cache.exists("BTCUSDT", "1m", tmp_path)


def test_a_fetch_that_finds_nothing_leaves_no_pages_folder(emu, tmp_path):
    with pytest.raises(FetchError, match="has no BTCUSDT 1m klines from 2024-12-31T00:00:00Z"):
        fetch(Recorded(emu.url), tmp_path, -1440, 0)
    assert not (tmp_path / PAGES).exists() and not cache.exists("BTCUSDT", "1m", tmp_path)
