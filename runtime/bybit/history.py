"""Bybit's kline history into the local cache (`playdeck data fetch`), resumable page by page.

`fetch_klines` asks `/v5/market/kline` (public, no keys) through `BybitRest`, so every request is
paced by its `RateLimiter` and retried by its one policy, and writes the bars where `data import`
writes them (`market/<SYMBOL>/<tf>` in the cache), which is where a backtest without `--data`
looks. A series an earlier fetch from the same endpoint left there is extended when its range and
the new one overlap or meet: its bars are kept and not asked for again. Any other series there (an
import, another endpoint's, a range apart from this one) is replaced, as an import replaces one,
and the result says what it held.

Only closed candles are stored. Bybit's newest candle may still be forming (its close is the last
price), and a candle is closed once a newer one exists: so one request (`limit=1`) first asks for
the venue's newest candle, and nothing from its open time on is fetched. This holds on the emulator
too, whose market data runs on the data's clock, not the wall clock. On Bybit a candle is also held
back until `SETTLE_MS` after its close by the venue's clock, for trades that reach it late.

Pages: the range still missing is cut into windows of `page_limit` candle slots and each window is
one request (`start` = its first slot's open time, `end` = the window's last millisecond, `limit` =
its slots). Bybit answers the newest `limit` candles in [start, end], newest first, so the answer
holds the whole window; and a window is the same whichever run asks for it. A window with fewer
candles than slots is simply Bybit's data (before the listing, a halt): it is not asked for again.

Resuming: every window's answer is committed as it comes, as one file
`fetching/<SYMBOL>/<tf>/<first>-<end>.npz` (written to a temporary name, then renamed over, so a
crash leaves it whole or absent), and a run first gathers what is there. An interruption (Ctrl-C, a
network failure, a crash) loses at most the window in flight; the same command run again asks only
for the windows not on disk, then writes the series in one step (`cache.write_entry`) and deletes
the pages. The pages record the endpoint they came from (`source.json`): pages from another
endpoint are discarded, never mixed in. One lock file per symbol and timeframe keeps two fetches
from writing the same pages.

Every failure a user can cause or meet (a bad symbol, a bad range, Bybit's refusals, no answer) is a
`FetchError`: one line, naming what was kept.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import attrs
import numpy as np

from playdeck.dsl.vocabulary import TIMEFRAMES, symbol_problem, tf_minutes, tf_ms
from playdeck.runtime.bybit.client import BybitRest
from playdeck.runtime.bybit.errors import BybitFailure, classify
from playdeck.runtime.data import cache
from playdeck.runtime.data.bars import Bars
from playdeck.runtime.data.csv_import import format_ts, range_problem
from playdeck.runtime.data.csv_import import parse_date as data_date

__all__ = ["PAGE_LIMIT", "FetchError", "FetchProgress", "FetchResult", "bybit_interval", "fetch_klines",
           "parse_date"]

PAGE_LIMIT = 1000  # the most klines Bybit answers one request with
SETTLE_MS = 5_000  # a candle closed less than this long ago (venue clock) is left for the next run
PAGES = "fetching"  # the cache's folder of pages fetched and not yet written as a series
SOURCE_FILE = "source.json"
SOURCE_KIND = "bybit"  # `source.kind` in a fetched series' meta.json
_PAGE = re.compile(r"(\d+)-(\d+)\.npz")


class FetchError(Exception):
    """A fetch that cannot go on (bad options, Bybit's refusal, no answer): said in one line, exit 2."""


@attrs.frozen
class FetchProgress:
    """After each committed page: `page` of `pages` asked for in this run, `bars` fetched so far."""

    page: int
    pages: int
    bars: int


@attrs.frozen
class FetchResult:
    """What a fetch did. `entry` holds `n_bars` bars `first_ts` .. `last_ts` (open times, ms).

    `fetched`: bars fetched from the venue in this run, in `pages` requests (the first request, for
    the newest candle, not counted). `kept`: bars of the series that earlier runs had fetched.
    `replaced`: what the entry held before when this fetch replaced it (its span and source).
    `forming`: the open time of the venue's newest candle when the range reached it (not stored).
    `missing`: candle slots between the first and last bar that Bybit has no candle for.
    `unchanged`: the cache already held exactly this range from this endpoint; nothing was written.
    """

    symbol: str
    tf: str
    endpoint: str
    entry: Path
    n_bars: int
    first_ts: int
    last_ts: int
    fetched: int
    pages: int
    kept: int
    replaced: str | None = None
    forming: int | None = None
    missing: int = 0
    unchanged: bool = False


def bybit_interval(tf: str) -> str:
    """Bybit's kline `interval` for a timeframe: minutes up to 12h, `D` for a day."""
    minutes = tf_minutes(tf)
    return "D" if minutes == 1440 else str(minutes)


def parse_date(text: str, option: str) -> int:
    """A date or date-time (UTC when no zone is given) as epoch ms; FetchError naming `option`."""
    try:
        return data_date(text)
    except ValueError as exc:
        raise FetchError(f"{option}: {exc}") from None


def check_endpoint(url: str) -> str:
    """`url` when it can be a REST endpoint (http or https, with a host); FetchError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise FetchError(f"--endpoint {url!r} is not an http(s) address such as https://api.bybit.com "
                         "or http://127.0.0.1:8765")
    return url


# --------------------------------------------------------------------------- the fetch


async def fetch_klines(symbol: str, tf: str, start_ms: int, end_ms: int | None = None, *,
                       endpoint: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                       rest: BybitRest | None = None, page_limit: int = PAGE_LIMIT,
                       progress: Callable[[FetchProgress], None] | None = None) -> FetchResult:
    """Cache Bybit's closed `symbol` `tf` candles opening in [start_ms, end_ms) (to the newest closed
    one when `end_ms` is None), fetching only what earlier runs have not (see the module docstring).

    `endpoint` (without `rest`): Bybit mainnet when None. `rest`: a client to use instead (its
    endpoint is the source recorded). `progress` is called after every page is committed; whatever
    it raises ends the fetch with that page kept.
    """
    problem = symbol_problem(symbol)
    if problem is not None:
        raise FetchError(f"symbol {problem}")
    if tf not in TIMEFRAMES:
        raise FetchError(f"--tf: unknown timeframe {tf!r}; expected one of {', '.join(TIMEFRAMES)}")
    if not 1 <= page_limit <= PAGE_LIMIT:
        raise ValueError(f"page_limit must be 1 .. {PAGE_LIMIT}, was {page_limit}")
    problem = None if end_ms is None else range_problem(start_ms, end_ms)
    if problem is not None:
        raise FetchError(problem)
    step = tf_ms(tf)
    lo = _ceil(start_ms, step)  # the first slot opening at or after --from
    hi = None if end_ms is None else _ceil(end_ms, step)  # bars open before it
    if end_ms is not None and hi is not None and lo >= hi:
        raise FetchError(f"no {tf} bar opens from {format_ts(start_ms)} to before {format_ts(end_ms)}")
    entry = cache.bars_dir(symbol, tf, cache_dir)  # a blank PLAYDECK_CACHE is said before any request
    if rest is None:
        rest = BybitRest(key=None, secret=None, endpoint=None if endpoint is None else check_endpoint(endpoint))
    venue = str(rest.session.endpoint)
    interval = bybit_interval(tf)

    with _Pages.opened(_pages_folder(symbol, tf, cache_dir), venue, symbol, tf) as pages:
        earlier = pages.load()  # (first slot, end, open times, values) of each page an earlier run fetched
        previous = _previous(entry, venue)
        covered = [(a, b) for a, b, _, _ in earlier] + ([previous.covered] if previous.covered is not None else [])
        forming: int | None = None
        if hi is None or _missing(lo, hi, covered):
            newest = await _newest(rest, symbol, tf, interval, venue)
            if newest is None:
                raise FetchError(f"{venue} has no {symbol} {tf} klines")
            # the slots opening before `settled` closed SETTLE_MS ago or more, by the venue's clock
            settled = _floor(rest.clock.now_ms() - SETTLE_MS, step)
            closed_to = min(newest, settled)
            if hi is None or hi > closed_to:
                forming = newest if hi is None or hi > newest else None
                hi = closed_to
            if lo >= hi:
                raise FetchError(f"{venue} has no closed {symbol} {tf} candle from {format_ts(start_ms)} on: its newest "
                                 f"opened at {format_ts(newest)} and is still forming")
        windows = [w for a, b in _missing(lo, hi, covered) for w in _windows(a, b, step * page_limit)]
        parts = [(ts, values) for _, _, ts, values in earlier] + previous.parts
        fetched = 0
        for k, (a, b) in enumerate(windows, 1):
            rows = await _ask(rest, symbol, tf, interval, a, b, page_limit, venue, k, len(windows),
                              len(earlier) + k - 1)
            ts, values = _parse(rows, a, b, step, venue)
            pages.commit(a, b, ts, values)
            parts.append((ts, values))
            fetched += len(ts)
            if progress is not None:
                progress(FetchProgress(k, len(windows), fetched))

        # The series: the range, grown by the one an earlier fetch from here covered when they overlap or meet.
        first, last = lo, hi
        extends = previous.covered is not None and previous.covered[0] <= hi and previous.covered[1] >= lo
        if extends and previous.covered is not None:
            first, last = min(lo, previous.covered[0]), max(hi, previous.covered[1])
        ts, values = _assemble(parts, first, last)
        kept = len(ts) - fetched
        if len(ts) == 0:
            pages.clear()
            raise FetchError(f"{venue} has no {symbol} {tf} klines from {format_ts(lo)} to before {format_ts(hi)}")
        unchanged = not windows and not earlier and previous.covered == (first, last)
        if not unchanged:
            bars = Bars(symbol, tf, ts, *values.T)
            cache.write_entry(entry, bars, {"kind": SOURCE_KIND, "endpoint": venue, "interval": interval,
                                            "from": first, "to": last}, cache_dir)
        pages.clear()  # after the series is written: a crash in between leaves pages the next run reuses
    missing = (int(ts[-1]) - int(ts[0])) // step + 1 - len(ts)
    return FetchResult(symbol, tf, venue, entry, len(ts), int(ts[0]), int(ts[-1]), fetched, len(windows), kept,
                       replaced=None if extends else previous.span, forming=forming, missing=missing,
                       unchanged=unchanged)


def _ceil(ms: int, step: int) -> int:
    return -(-ms // step) * step


def _floor(ms: int, step: int) -> int:
    return ms // step * step


def _missing(lo: int, hi: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[lo, hi) less the `covered` intervals, as ordered half-open intervals."""
    gaps: list[tuple[int, int]] = []
    at = lo
    for a, b in sorted(covered):
        if b <= at or a >= hi:
            continue
        if a > at:
            gaps.append((at, a))
        at = max(at, b)
        if at >= hi:
            break
    if at < hi:
        gaps.append((at, hi))
    return gaps


def _windows(a: int, b: int, width: int) -> list[tuple[int, int]]:
    return [(w, min(b, w + width)) for w in range(a, b, width)]


async def _newest(rest: BybitRest, symbol: str, tf: str, interval: str, venue: str) -> int | None:
    """The open time of the venue's newest candle (None when it has none)."""
    try:
        rows = await rest.klines(symbol, interval, limit=1)
    except Exception as exc:  # noqa: BLE001 (classify re-raises what is no failure of the venue)
        raise _failure(exc, symbol, tf, venue, "") from None
    try:
        return int(rows[-1][0]) if rows else None
    except (IndexError, TypeError, ValueError):
        raise FetchError(f"{venue} answered the newest {symbol} {tf} kline with {rows[-1]!r}, not a kline") from None


async def _ask(rest: BybitRest, symbol: str, tf: str, interval: str, a: int, b: int, limit: int, venue: str,
               k: int, n: int, kept: int) -> list[list[str]]:
    """The klines of the window [a, b), oldest first; FetchError saying what is kept (`kept` pages)
    on failure. `end` is the window's last millisecond: its last candle is inside whether Bybit
    reads `end` as inclusive or not."""
    try:
        return await rest.klines(symbol, interval, start=a, end=b - 1, limit=limit)
    except Exception as exc:  # noqa: BLE001
        where = (f" at page {k} of {n}; {kept} page{'s' * (kept != 1)} fetched so far are kept: run the same "
                 "command again to fetch the rest")
        raise _failure(exc, symbol, tf, venue, where) from None


def _failure(exc: Exception, symbol: str, tf: str, venue: str, where: str) -> FetchError:
    failure: BybitFailure = classify(exc)
    if failure.network:
        return FetchError(f"no answer from {venue} ({_reason(failure.message)}){where}")
    if failure.http is not None:
        # pybit's text says only "not 200", except for a 403: an IP ban, which it explains
        said = f": {failure.message}" if failure.http == 403 else ""
        return FetchError(f"{venue} answered HTTP {failure.http}{said}{where}")
    return FetchError(f"{venue} refused {symbol} {tf} klines: {failure.message} (retCode {failure.code}){where}")


def _reason(message: str) -> str:
    """The useful end of a requests error ("Connection refused"), not its pool and object reprs."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", message)
    if found is not None:
        return found.group(1).strip()
    if "timed out" in message.lower() or "timeout" in message.lower():
        return "timed out"
    return message.split(":", 1)[0]  # the exception's name


def _parse(rows: list[list[str]], a: int, b: int, step: int, venue: str) -> tuple[np.ndarray, np.ndarray]:
    """Open times and (open, high, low, close, volume) of Bybit's rows inside [a, b), oldest first."""
    try:
        ts = np.array([int(r[0]) for r in rows], dtype=np.int64)
        values = np.array([[float(x) for x in r[1:6]] for r in rows], dtype=np.float64).reshape(len(rows), 5)
    except (IndexError, TypeError, ValueError):
        raise FetchError(f"{venue} sent a kline that is not [startTime, open, high, low, close, volume, turnover] "
                         f"in the page from {format_ts(a)}") from None
    if not np.isfinite(values).all():
        raise FetchError(f"{venue} sent a kline with a value that is not a number in the page from {format_ts(a)}")
    inside = (ts >= a) & (ts < b)  # the request asked for no other: anything else is not stored
    ts, values = ts[inside], values[inside]
    off = ts % step != 0
    if off.any():
        raise FetchError(f"{venue} sent a kline opening at {format_ts(int(ts[off][0]))}, off the "
                         f"{step // 60_000}-minute grid")
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], values[order]
    keep = np.concatenate(([True], ts[1:] != ts[:-1])) if len(ts) else np.ones(0, dtype=bool)
    return ts[keep], values[keep]


def _assemble(parts: list[tuple[np.ndarray, np.ndarray]], lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The bars of every part opening in [lo, hi), in time order, one per open time."""
    ts = np.concatenate([p[0] for p in parts] + [np.zeros(0, dtype=np.int64)])
    values = np.concatenate([p[1] for p in parts] + [np.zeros((0, 5))])
    inside = (ts >= lo) & (ts < hi)
    ts, values = ts[inside], values[inside]
    ts, first = np.unique(ts, return_index=True)  # sorted; parts never overlap, but a crash may leave a page twice
    return ts, values[first]


# --------------------------------------------------------------------------- the series already cached


@attrs.frozen
class _Previous:
    """The cached series before this fetch: what of it can be kept, and its span for the summary."""

    covered: tuple[int, int] | None = None  # the slots an earlier fetch from this endpoint asked for
    parts: list[tuple[np.ndarray, np.ndarray]] = attrs.Factory(list)
    span: str | None = None  # e.g. "1440 bars 2025-01-01T00:00:00Z .. 2025-01-01T23:59:00Z (imported from x.csv)"


def _previous(entry: Path, venue: str) -> _Previous:
    try:
        found = cache.read_entry(entry)
    except cache.CacheError:
        return _Previous(span="damaged series")  # replaced whole
    if found is None:
        return _Previous()
    bars, source = found.bars, found.meta.get("source") or {}
    origin = (f"fetched from {source.get('endpoint')}" if source.get("kind") == SOURCE_KIND else
              f"imported from {source['file']}" if source.get("kind") == "csv" and "file" in source else "imported")
    span = (f"{len(bars)} bars {format_ts(int(bars.ts_open[0]))} .. {format_ts(int(bars.ts_open[-1]))} ({origin})"
            if len(bars) else f"empty series ({origin})")
    covered = (source.get("from"), source.get("to"))
    if (source.get("kind") != SOURCE_KIND or source.get("endpoint") != venue
            or not all(type(x) is int for x in covered) or bars.funding_rate is not None):
        return _Previous(span=span)
    values = np.column_stack([np.asarray(bars.column(c)) for c in ("open", "high", "low", "close", "volume")])
    return _Previous((covered[0], covered[1]), [(np.array(bars.ts_open, dtype=np.int64), values)], span)


# --------------------------------------------------------------------------- the pages on disk


def _pages_folder(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    root = cache.default_cache_dir() if cache_dir is None else Path(cache_dir)
    return root / PAGES / symbol / tf  # symbol and tf were checked: no name reaches outside the cache


def _lock(folder: Path, symbol: str, tf: str) -> int:
    """An open descriptor holding `folder/.lock` exclusively; FetchError when another fetch holds it.

    A fetch that ends with no page left deletes the lock file and the folder: one that opened the
    file just before then holds a lock on a file no longer there, so after locking, the name must
    still lead to the file locked, else it starts again.
    """
    path = folder / cache.LOCK_FILE
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue  # the folder was removed between the two: make it again
        except OSError as exc:
            raise cache.CacheError(f"cannot write to the cache folder {folder.parent.parent.parent}: "
                                   f"{cache.folder_problem(folder, exc)}; point --cache-dir or PLAYDECK_CACHE "
                                   "at a folder you can write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FetchError(f"another `playdeck data fetch` of {symbol} {tf} is writing to {folder}; "
                             "wait for it to end") from None
        try:
            held, named = os.fstat(fd), os.stat(path)
            if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _page_files(folder: Path) -> Iterator[tuple[int, int, Path]]:
    try:
        listing = list(folder.iterdir())
    except FileNotFoundError:
        return
    for path in listing:
        m = _PAGE.fullmatch(path.name)
        if m is not None and int(m.group(1)) < int(m.group(2)):
            yield int(m.group(1)), int(m.group(2)), path


class _Pages:
    """The pages of one symbol and timeframe fetched and not yet written as a series (see the module
    docstring). Used only while holding the folder's lock (`opened`)."""

    def __init__(self, folder: Path, venue: str) -> None:
        self.folder = folder
        self.venue = venue

    @classmethod
    @contextmanager
    def opened(cls, folder: Path, venue: str, symbol: str, tf: str) -> Iterator[_Pages]:
        """The pages of `venue` in `folder`, locked against another fetch; the folder is removed
        afterwards when no page is left in it."""
        fd = _lock(folder, symbol, tf)
        try:
            pages = cls(folder, venue)
            pages._start()
            yield pages
            if not pages.names():
                pages._remove()
        except BaseException:
            if not any(True for _ in _page_files(folder)):
                cls(folder, venue)._remove()
            raise
        finally:
            os.close(fd)  # after the lock file is unlinked, if it is: see _lock

    def _start(self) -> None:
        """Keep the pages of this endpoint only, and no temporary file a crash left."""
        for path in self.folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
        try:
            source = json.loads((self.folder / SOURCE_FILE).read_text())
        except (OSError, ValueError):
            source = None
        if not isinstance(source, dict) or source.get("endpoint") != self.venue:
            self.clear()

    def _remove(self) -> None:
        """Delete the source note and the lock file, then the folders left empty (the lock is held)."""
        for name in (SOURCE_FILE, cache.LOCK_FILE):
            (self.folder / name).unlink(missing_ok=True)
        for folder in (self.folder, self.folder.parent, self.folder.parent.parent):
            try:
                folder.rmdir()
            except OSError:  # not empty: another symbol's or timeframe's pages
                return

    def names(self) -> list[tuple[int, int, Path]]:
        """Every page on disk as (first slot, end, path)."""
        return sorted(_page_files(self.folder))

    def load(self) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
        """Every page on disk with its bars; a page that cannot be read is deleted (so fetched again)."""
        pages = []
        for a, b, path in self.names():
            try:
                with np.load(path, allow_pickle=False) as z:
                    ts, values = np.asarray(z["ts"], dtype=np.int64), np.asarray(z["ohlcv"], dtype=np.float64)
                if ts.ndim != 1 or values.shape != (len(ts), 5) or ((ts < a) | (ts >= b)).any():
                    raise ValueError(path.name)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                path.unlink(missing_ok=True)
                continue
            pages.append((a, b, ts, values))
        return pages

    def commit(self, a: int, b: int, ts: np.ndarray, values: np.ndarray) -> None:
        """Store the page [a, b) whole or not at all."""
        if not (self.folder / SOURCE_FILE).exists():
            self._write(SOURCE_FILE, (json.dumps({"endpoint": self.venue}) + "\n").encode())
        buf = io.BytesIO()
        np.savez(buf, ts=ts, ohlcv=values)
        self._write(f"{a}-{b}.npz", buf.getvalue())

    def _write(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".page-", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # on disk before the name says it is there
            os.replace(tmp, self.folder / name)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise cache.CacheError(f"cannot write {self.folder / name}: {exc.strerror or exc}") from None

    def clear(self) -> None:
        """Delete every page and the source note (the lock file stays)."""
        for path in self.folder.iterdir():
            if path.name != cache.LOCK_FILE:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

