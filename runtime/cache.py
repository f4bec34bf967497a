"""Local bar cache: one directory per (source, symbol, timeframe), one `.npy` file per column.

Layout: `<cache_dir>/<source>/<SYMBOL>/<tf>/{ts_open,open,high,low,close,volume}.npy` plus
`meta.json`, where source is `synthetic` for generated data and `market` for everything else, so
the bundled dataset never shadows (or is shadowed by) real BTCUSDT bars. Columns are loaded with
`np.load(mmap_mode="r")`: a year of minutes opens instantly and is paged in on use, and the
arrays are read-only, which suits data nothing may modify.

The cache directory is `$PLAYDECK_CACHE`, else `~/.cache/playdeck`; every function also takes it
explicitly (tests pass a temporary directory).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from playdeck.runtime import synthetic
from playdeck.runtime.bars import COLUMNS, Bars

META_FILE = "meta.json"
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """`$PLAYDECK_CACHE` if set and non-empty, else `~/.cache/playdeck`."""
    env = os.environ.get("PLAYDECK_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "playdeck"


def _root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return default_cache_dir() if cache_dir is None else Path(cache_dir)


def bars_dir(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> Path:
    """Directory holding one cached series."""
    return _root(cache_dir) / ("synthetic" if synthetic else "market") / symbol / tf


def save(bars: Bars, cache_dir: str | os.PathLike[str] | None = None, source: dict[str, Any] | None = None) -> Path:
    """Write `bars` (replacing any cached copy) and return its directory.

    Written into a temporary sibling directory and renamed into place, so a reader (or another
    process generating the same data) never sees half a dataset. `source` is free-form provenance
    stored in the metadata (e.g. the generator version and seed).
    """
    target = bars_dir(bars.symbol, bars.tf, cache_dir, synthetic=bars.synthetic)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{bars.tf}.", dir=target.parent))
    try:
        for name in COLUMNS:
            np.save(staging / f"{name}.npy", np.ascontiguousarray(bars.column(name)), allow_pickle=False)
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
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if target.exists():
            # Already-open memmaps keep their (unlinked) files alive, so replacing is safe.
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            # A concurrent writer won the race with an equivalent dataset; keep theirs.
            if not (target / META_FILE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def exists(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> bool:
    """True when a complete cached series is present (its metadata is written last)."""
    return (bars_dir(symbol, tf, cache_dir, synthetic=synthetic) / META_FILE).is_file()


def read_meta(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *,
              synthetic: bool = False) -> dict[str, Any]:
    """The metadata json of a cached series (FileNotFoundError when absent)."""
    return json.loads((bars_dir(symbol, tf, cache_dir, synthetic=synthetic) / META_FILE).read_text())


def load(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> Bars:
    """A cached series with memory-mapped, read-only columns (FileNotFoundError when absent)."""
    directory = bars_dir(symbol, tf, cache_dir, synthetic=synthetic)
    meta = read_meta(symbol, tf, cache_dir, synthetic=synthetic)
    if meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"{directory}: cache format {meta.get('format')!r}, expected {CACHE_FORMAT}")
    columns = {name: np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in COLUMNS}
    return Bars(
        symbol=meta["symbol"],
        tf=meta["tf"],
        synthetic=bool(meta["synthetic"]),
        partial_last=bool(meta.get("partial_last", False)),
        **columns,
    )


def default_source() -> dict[str, Any]:
    """Provenance of the bundled dataset; a cached copy with different provenance is regenerated."""
    return {
        "generator": "playdeck.runtime.synthetic",
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
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale: regenerate below
    bars = synthetic.generate(wanted["n_bars"], seed=wanted["seed"], start_ms=wanted["start_ms"], symbol=symbol)
    save(bars, cache_dir, source=wanted)
    return load(symbol, tf, cache_dir, synthetic=True)
