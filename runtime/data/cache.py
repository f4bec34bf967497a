"""Local bar cache: one directory per (source, symbol, timeframe), one `.npy` file per column.

Layout: `<cache_dir>/<source>/<SYMBOL>/<tf>/{ts_open,open,high,low,close,volume}.npy` plus
`meta.json`, where source is `synthetic` for generated data and `market` for everything else, so
the bundled dataset never shadows (or is shadowed by) real BTCUSDT bars. Columns are loaded with
`np.load(mmap_mode="r")`: a year of minutes opens instantly and is paged in on use, and the
arrays are read-only, which suits data nothing may modify.

The cache directory is `$PLAYDECK_CACHE`, else `~/.cache/playdeck`; every function also takes it
explicitly (tests pass a temporary directory). Symbols and timeframes are checked before they
become path parts, so no name can reach outside the cache directory. A cache folder that cannot be
written, and an entry that cannot be read back, are `CacheError`s: user-facing, one line each.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from playdeck.dsl.vocabulary import is_symbol
from playdeck.runtime.data import synthetic
from playdeck.runtime.data.bars import COLUMNS, TIMEFRAMES, Bars

META_FILE = "meta.json"
CACHE_FORMAT = 1


class CacheError(Exception):
    """The cache folder cannot be used, or a cached entry is damaged: said in one line, exit 2."""


def folder_problem(path: Path, exc: OSError) -> str:
    """Why `path` could not be made a folder, naming the file in the way when there is one."""
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
    return exc.strerror or str(exc)


def default_cache_dir() -> Path:
    """`$PLAYDECK_CACHE` if set and non-empty, else `~/.cache/playdeck`."""
    env = os.environ.get("PLAYDECK_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "playdeck"


def _root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return default_cache_dir() if cache_dir is None else Path(cache_dir)


def bars_dir(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> Path:
    """Directory holding one cached series (ValueError for a symbol or timeframe unfit for a path)."""
    # Callers validate user input with a friendly message; this guard keeps `../x` or "" from ever
    # naming a folder outside (or at the top of) the cache.
    if not is_symbol(symbol):
        raise ValueError(f"symbol {symbol!r} is not a Bybit USDT perpetual")
    if tf not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {tf!r}")
    return _root(cache_dir) / ("synthetic" if synthetic else "market") / symbol / tf


def save(bars: Bars, cache_dir: str | os.PathLike[str] | None = None, source: dict[str, Any] | None = None) -> Path:
    """Write `bars` (replacing any cached copy) and return its directory.

    Written into a temporary sibling directory and renamed into place, so a reader (or another
    process generating the same data) never sees half a dataset. `source` is free-form provenance
    stored in the metadata (e.g. the generator version and seed).
    """
    target = bars_dir(bars.symbol, bars.tf, cache_dir, synthetic=bars.synthetic)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{bars.tf}.", dir=target.parent))
    except OSError as exc:
        raise CacheError(f"cannot write to the cache folder {_root(cache_dir)}: {folder_problem(target.parent, exc)}; "
                         "point --cache-dir or PLAYDECK_CACHE at a folder you can write") from None
    try:
        _write_series(staging, bars, source)
        if target.exists():
            # Already-open memmaps keep their (unlinked) files alive, so replacing is safe.
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            # A concurrent writer won the race with an equivalent dataset; keep theirs.
            if not (target / META_FILE).exists():
                raise
    except OSError as exc:
        raise CacheError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_series(directory: Path, bars: Bars, source: dict[str, Any] | None) -> None:
    """The column files, then the metadata (its presence marks the series complete)."""
    for name in COLUMNS:
        np.save(directory / f"{name}.npy", np.ascontiguousarray(bars.column(name)), allow_pickle=False)
    meta = {
        "format": CACHE_FORMAT,
        "symbol": bars.symbol,
        "tf": bars.tf,
        "synthetic": bars.synthetic,
        "partial_last": bars.partial_last,
        "n_bars": len(bars),
        "first_ts": int(bars.ts_open[0]) if len(bars) else None,
        "last_ts": int(bars.ts_open[-1]) if len(bars) else None,
        "source": source or {},
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def exists(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> bool:
    """True when a complete cached series is present (its metadata is written last)."""
    return (bars_dir(symbol, tf, cache_dir, synthetic=synthetic) / META_FILE).is_file()


def read_meta(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *,
              synthetic: bool = False) -> dict[str, Any]:
    """The metadata json of a cached series (FileNotFoundError when absent)."""
    return json.loads((bars_dir(symbol, tf, cache_dir, synthetic=synthetic) / META_FILE).read_text())


def load(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> Bars:
    """A cached series with memory-mapped, read-only columns.

    CacheError when the entry is absent or damaged (unreadable metadata, a missing or truncated
    column, columns of different lengths), saying how to repair it.
    """
    directory = bars_dir(symbol, tf, cache_dir, synthetic=synthetic)
    try:
        return _read_series(directory)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # how json, np.load and Bars meet a bad file
        reason = f"{exc.strerror}: {Path(exc.filename).name}" if isinstance(exc, OSError) and exc.filename else exc
        raise CacheError(f"the cache entry {directory} is damaged ({reason}); re-import the data with "
                         f"`playdeck data import`, or delete that folder") from None


def _read_series(directory: Path) -> Bars:
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{META_FILE} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"cache format {meta.get('format')!r}, expected {CACHE_FORMAT}")
    columns = {name: _load_column(directory / f"{name}.npy") for name in COLUMNS}
    return Bars(
        symbol=meta["symbol"],
        tf=meta["tf"],
        synthetic=bool(meta["synthetic"]),
        partial_last=bool(meta.get("partial_last", False)),
        **columns,
    )


def _load_column(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # numpy's messages for a truncated file do not name it
        raise ValueError(f"{path.name}: {exc}") from None


def default_source() -> dict[str, Any]:
    """Provenance of the bundled dataset; a cached copy with different provenance is regenerated."""
    return {
        "generator": "playdeck.runtime.data.synthetic",
        "version": synthetic.GENERATOR_VERSION,
        "seed": synthetic.DEFAULT_SEED,
        "start_ms": synthetic.DEFAULT_START_MS,
        "n_bars": synthetic.DEFAULT_N_BARS,
        "numpy": np.__version__,
    }


def default_bars(cache_dir: str | os.PathLike[str] | None = None) -> Bars:
    """The bundled dataset: one year of synthetic BTCUSDT 1m bars from 2025-01-01T00:00Z.

    Generated (about half a second) and cached on first use; regenerated whenever the generator
    version, seed or numpy version recorded with the cached copy differs, since numpy does not
    promise identical random streams across releases.
    """
    symbol, tf = synthetic.DEFAULT_SYMBOL, "1m"
    wanted = default_source()
    if exists(symbol, tf, cache_dir, synthetic=True):
        try:
            if read_meta(symbol, tf, cache_dir, synthetic=True).get("source") == wanted:
                return load(symbol, tf, cache_dir, synthetic=True)
        except (OSError, ValueError, KeyError, CacheError):
            pass  # unreadable or stale: regenerate below
    bars = synthetic.generate(wanted["n_bars"], seed=wanted["seed"], start_ms=wanted["start_ms"], symbol=symbol)
    save(bars, cache_dir, source=wanted)
    return load(symbol, tf, cache_dir, synthetic=True)
