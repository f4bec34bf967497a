"""Where a backtest's bars come from, decided in one place.

- `--data FILE`: a CSV file, parsed once and then remembered in the cache by its content, so the
  next run on the unchanged file maps the arrays (np.load, mmap) instead of parsing it again;
- `--data synthetic`: the bundled synthetic BTCUSDT set, whatever is imported;
- no `--data`: the bars imported for the Play's symbol (the finest cached timeframe that builds the
  exec bars); with nothing imported, BTCUSDT falls back to the bundled set. Imported bars that
  cannot build the exec bars are an error, never a quiet fall-back: the user imported them to be
  used.

A remembered file's key is its size, its modification time and a hash of its first and last
64 KiB, with the options that change what it imports to (`--data-tf`, `--gaps`) and the importer's
version. So an edit that keeps the size, the time (to the file system's precision) and both ends
goes unnoticed; any other edit, a touch or a copy is read again.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import attrs

from playdeck.dsl.vocabulary import TIMEFRAMES, is_multiple
from playdeck.runtime.data import cache
from playdeck.runtime.data.bars import Bars
from playdeck.runtime.data.csv_import import IMPORT_VERSION, import_csv
from playdeck.runtime.data.synthetic import DEFAULT_SYMBOL

SYNTHETIC = "synthetic"  # the --data value that names the bundled set (a file so named is ./synthetic)
BLOCK = 64 * 1024  # bytes hashed at each end of a --data file


class SourceError(Exception):
    """Data options that do not fit together, or no data for the Play: said in one line, exit 2."""


@attrs.frozen(eq=False)
class LoadedBars:
    """The bars a backtest runs on, with what its report says about them.

    `filled_gaps`: flat bars `--gaps fill` made up. `cached`: for a --data file, True when its bars
    were mapped from the cache, False when the file was parsed; None for data that is no file.
    `label`: the report's name for the data.
    """

    bars: Bars
    filled_gaps: int = 0
    cached: bool | None = None
    label: str = "market data"


def load_bars(symbol: str, data: str | None, data_tf: str | None, cache_dir: str | None = None,
              exec_tf: str = "1m", gaps: str | None = None) -> LoadedBars:
    """The bars to run a Play on `symbol` with exec timeframe `exec_tf` (see the module docstring)."""
    if data is None or data == SYNTHETIC:
        for option, given in (("--data-tf", data_tf), ("--gaps", gaps)):
            if given is not None:
                raise SourceError(f"{option} is about a --data file; give it with --data" if data is None else
                                  f"{option} is about a --data file, not the bundled synthetic set")
    if data == SYNTHETIC:
        if symbol != DEFAULT_SYMBOL:
            raise SourceError(f"--data synthetic is the bundled {DEFAULT_SYMBOL} set, and the Play trades {symbol}; "
                              f"give --data FILE or import {symbol} bars")
        return LoadedBars(cache.default_bars(cache_dir), label="synthetic")
    if data is None:
        return _imported(symbol, cache_dir, exec_tf)
    return _from_file(Path(data), symbol, data_tf, gaps or "error", cache_dir)


def builders(exec_tf: str) -> list[str]:
    """The timeframes whose bars can be resampled into `exec_tf` bars, finest first."""
    return [tf for tf in TIMEFRAMES if is_multiple(exec_tf, tf)]


def _imported(symbol: str, cache_dir: str | None, exec_tf: str) -> LoadedBars:
    cached = [tf for tf in TIMEFRAMES if cache.exists(symbol, tf, cache_dir)]
    wanted = builders(exec_tf)
    usable = [tf for tf in cached if tf in wanted]
    if usable:
        # Gone between the two looks (`data remove` meanwhile): load says so, nothing else is used.
        return LoadedBars(cache.load(symbol, usable[0], cache_dir))
    if cached:
        wanted_text = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} or {wanted[-1]}"
        other = (", give --data FILE, or give --data synthetic for the bundled set" if symbol == DEFAULT_SYMBOL
                 else " or give --data")
        raise SourceError(f"{symbol} is cached at {', '.join(cached)}, which cannot build the Play's exec "
                          f"timeframe {exec_tf}; import {wanted_text} bars{other}")
    if symbol != DEFAULT_SYMBOL:
        raise SourceError(f"no data for {symbol}: the bundled data is {DEFAULT_SYMBOL}; give --data FILE "
                          "or run playdeck data import")
    return LoadedBars(cache.default_bars(cache_dir), label="synthetic")


@attrs.frozen
class Fingerprint:
    """What identifies a --data file's content and import options (see the module docstring)."""

    key: str
    size: int
    mtime_ns: int


def fingerprint(path: Path, data_tf: str | None, gaps: str) -> Fingerprint | None:
    """The cache key of a --data file read with these options; None when it is no regular file
    that can be read (parsing it then gives the error that says why)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            head = f.read(BLOCK)
            tail = b""
            if st.st_size > BLOCK:
                f.seek(max(BLOCK, st.st_size - BLOCK))  # the last block, not overlapping the first
                tail = f.read(BLOCK)
    except OSError:
        return None
    digest = hashlib.sha256(f"playdeck --data import {IMPORT_VERSION}; size {st.st_size}; mtime_ns {st.st_mtime_ns}; "
                            f"tf {data_tf or 'from the file'}; gaps {gaps}\n".encode())
    digest.update(head)
    digest.update(b"\n--tail--\n")
    digest.update(tail)
    return Fingerprint(digest.hexdigest()[:32], st.st_size, st.st_mtime_ns)


def _from_file(path: Path, symbol: str, data_tf: str | None, gaps: str, cache_dir: str | None) -> LoadedBars:
    fp = fingerprint(path, data_tf, gaps)
    entry = None if fp is None else cache.file_entry(fp.key, cache_dir)
    if entry is not None:
        remembered = _remembered(entry, symbol)
        if remembered is not None:
            return remembered
    result = import_csv(path, symbol, data_tf, gaps)
    if entry is not None and fp is not None:
        source = {"kind": "data", "file": str(path.absolute()), "size": fp.size, "mtime_ns": fp.mtime_ns,
                  "data_tf": data_tf, "gaps": gaps, "import_version": IMPORT_VERSION,
                  "filled_gaps": result.filled_gaps, "reversed": result.reversed}
        cache.write_entry(entry, result.bars, source, cache_dir)
        _forget_older_copies(fp.key, source, cache_dir)
    return LoadedBars(result.bars, result.filled_gaps, cached=False)


def _forget_older_copies(key: str, source: dict[str, Any], cache_dir: str | None) -> None:
    """Remove what was remembered of the same file, read with the same options, before it changed:
    its key can never match again, and each edit of a file would otherwise leave a copy behind."""
    same = ("file", "data_tf", "gaps")
    for listed in cache.file_entries(cache_dir):
        kept = (listed.meta or {}).get("source", {})
        if listed.name != key and all(kept.get(k) == source[k] for k in same):
            cache.delete_entry(listed.entry)


def _remembered(entry: Path, symbol: str) -> LoadedBars | None:
    """The remembered bars of a --data file, for `symbol`; None when there are none, or when the
    cache's copy is damaged: the file is read again (and its copy replaced), which is the same data."""
    try:
        found = cache.read_entry(entry)
    except cache.CacheError:
        return None
    if found is None:
        return None
    filled = found.meta.get("source", {}).get("filled_gaps")
    if type(filled) is not int or filled < 0:
        return None  # not written by this playdeck: read the file again
    # A file's bars are the file's whatever symbol the Play trades: the key leaves the symbol out.
    return LoadedBars(attrs.evolve(found.bars, symbol=symbol), filled, cached=True, label="market data (cached)")
