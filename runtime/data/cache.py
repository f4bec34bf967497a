"""Local bar cache: imported series, the generated synthetic set, and remembered `--data` files.

Layout, under the cache folder:

    market/<SYMBOL>/<tf>      bars imported with `playdeck data import`
    synthetic/<SYMBOL>/<tf>   the bundled dataset, generated on first use
    files/<key>               a `--data` file's bars, by its content (see runtime/data/sources.py)

Each of these entries is a symbolic link to a *version* folder beside it (`.<tf>@<random>`) that
holds one `.npy` file per column and `meta.json` (a series with funding rates has one more column,
`funding_rate.npy`, and `"funding_rate": true` in its meta; one without, and every entry an earlier
playdeck wrote, has neither). A version is written whole before anything
points at it and never changed afterwards. Replacing an entry writes a new version, then renames a
new link over the old one (rename is atomic on Linux: a reader finds the old link or the new one,
never none), then deletes the version it replaced.

Readers and writers meet at one `.lock` file per folder of entries (flock). A writer holds it
exclusively only to swap the link and learn what it replaced; a reader holds it shared while it
resolves the link and opens every file of that version. So a reader never sees half an entry, nor
columns of two imports, nor no entry while one is replaced; and a version is deleted only after
no reader can still be about to open it (an opened, memory-mapped file stays readable after it is
deleted). An entry written by an older playdeck (a plain folder, no link) is read as it is, and
moved aside under the exclusive lock when replaced, which readers, holding the shared lock, never
see half done.

Columns are loaded with `np.load(mmap_mode="r")`: a year of minutes opens instantly and is paged
in on use, and the arrays are read-only, which suits data nothing may modify.

The cache folder is `$PLAYDECK_CACHE`, else `~/.cache/playdeck`; every function also takes it
explicitly (tests pass a temporary folder). Symbols and timeframes are checked before they become
path parts, so no name can reach outside the cache folder. A cache folder that cannot be written,
and an entry that cannot be read back, are `CacheError`s: user-facing, one line each.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import attrs
import numpy as np

from playdeck.dsl.vocabulary import is_symbol
from playdeck.runtime.data import synthetic
from playdeck.runtime.data.bars import COLUMNS, FUNDING_RATE, TIMEFRAMES, Bars

META_FILE = "meta.json"
LOCK_FILE = ".lock"
CACHE_FORMAT = 1
FILES = "files"  # the folder of remembered --data files
_KEY = re.compile(r"[0-9a-f]{16,64}")


class CacheError(Exception):
    """The cache folder cannot be used, or a cached entry is damaged: said in one line, exit 2."""


@attrs.frozen(eq=False)
class Entry:
    """One cached series as read: its bars (memory-mapped) and its metadata, from one version."""

    bars: Bars
    meta: dict[str, Any]


def folder_problem(path: Path, exc: OSError) -> str:
    """Why `path` could not be made a folder, naming the file in the way when there is one."""
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
    return exc.strerror or str(exc)


def default_cache_dir() -> Path:
    """`$PLAYDECK_CACHE` if set and non-empty, else `~/.cache/playdeck`.

    CacheError when it is only blanks: a folder named ' ' is never what was meant.
    """
    env = os.environ.get("PLAYDECK_CACHE")
    if env and not env.strip():
        raise CacheError(f"PLAYDECK_CACHE is {env!r}, only blanks; set it to a folder, "
                         "or unset it for ~/.cache/playdeck")
    return Path(env) if env else Path.home() / ".cache" / "playdeck"


def _root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return default_cache_dir() if cache_dir is None else Path(cache_dir)


def bars_dir(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> Path:
    """The entry of one cached series (ValueError for a symbol or timeframe unfit for a path)."""
    # Callers validate user input with a friendly message; this guard keeps `../x` or "" from ever
    # naming a folder outside (or at the top of) the cache.
    if not is_symbol(symbol):
        raise ValueError(f"symbol {symbol!r} is not a Bybit USDT perpetual")
    if tf not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {tf!r}")
    return _root(cache_dir) / ("synthetic" if synthetic else "market") / symbol / tf


def file_entry(key: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The entry of a remembered --data file under its content key (lower-case hex)."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"a file key is 16 to 64 lower-case hex digits, not {key!r}")
    return _root(cache_dir) / FILES / key


# --------------------------------------------------------------------------- locking and versions


@contextmanager
def _locked(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold `folder/.lock`, exclusively (a writer, which has made the folder) or shared (a reader).

    A reader creates nothing where there is no folder (nothing is cached there, so nothing can be
    replaced under it), and reads unlocked when the lock file cannot be opened (a read-only cache
    folder, which no writer can change either).
    """
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if exclusive:
            raise
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            yield
            return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _reader(folder: Path):
    """The shared lock of `folder` when it exists; nothing to hold otherwise."""
    return _locked(folder, exclusive=False) if folder.is_dir() else _nothing()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _version(entry: Path) -> Path | None:
    """The version folder `entry` points at (the entry itself when it is an older playdeck's plain
    folder), or None when there is no entry. A link to a deleted version is returned as it is: the
    entry is damaged, not absent."""
    try:
        target = os.readlink(entry)
    except (FileNotFoundError, NotADirectoryError):  # nothing there, or a file where a folder would be
        return None
    except OSError:  # not a link: an older playdeck's folder (or a file in the way: damaged)
        return entry
    return entry.parent / target


def _damaged(entry: Path, exc: BaseException) -> CacheError:
    reason = f"{exc.strerror}: {Path(exc.filename).name}" if isinstance(exc, OSError) and exc.filename else exc
    if entry.parent.name == FILES:
        fix = "delete that folder (the --data file is read again)"
    else:
        fix = "re-import the data with `playdeck data import`, or delete that folder"
    return CacheError(f"the cache entry {entry} is damaged ({reason}); {fix}")


def read_entry(entry: Path) -> Entry | None:
    """The series at `entry`, all of one version; None when there is none. CacheError when it is
    damaged (unreadable metadata, a missing or truncated column, columns of different lengths)."""
    with _reader(entry.parent):
        version = _version(entry)
        if version is None:
            return None
        try:
            return _read_series(version)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # how json, np.load and Bars meet a bad file
            raise _damaged(entry, exc) from None


def write_entry(entry: Path, bars: Bars, source: dict[str, Any] | None = None,
                cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write `bars` as the entry at `entry`, replacing what is there in one step (see the module
    docstring), and return `entry`."""
    parent = entry.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        version = Path(tempfile.mkdtemp(prefix=f".{entry.name}@", dir=parent))
    except OSError as exc:
        raise CacheError(f"cannot write to the cache folder {_root(cache_dir)}: {folder_problem(parent, exc)}; "
                         "point --cache-dir or PLAYDECK_CACHE at a folder you can write") from None
    link = parent / f".{version.name[1:]}.link"  # unique as its version is
    replaced: Path | None = None
    committed = False
    try:
        _write_series(version, bars, source)  # the slow part, outside the lock
        os.symlink(version.name, link)  # relative: the cache folder may move
        with _locked(parent, exclusive=True):
            replaced = _version(entry)
            if replaced == entry:  # an older playdeck's folder: move it aside, readers are held off
                replaced = parent / f".{entry.name}@old-{version.name.rsplit('@', 1)[1]}"
                os.rename(entry, replaced)
            os.replace(link, entry)
            committed = True
    except OSError as exc:
        raise CacheError(f"cannot write {entry}: {exc.strerror or exc}") from None
    finally:
        if not committed:
            shutil.rmtree(version, ignore_errors=True)
            if os.path.lexists(link):
                os.unlink(link)
    if replaced is not None:
        # No reader can open it any more: new ones find the new link, and any that resolved the old
        # one had opened its files before the exclusive lock was granted.
        shutil.rmtree(replaced, ignore_errors=True)
    return entry


def delete_entry(entry: Path) -> bool:
    """Remove the entry at `entry` (False when there is none), as atomically as a write."""
    if not entry.parent.is_dir():
        return False
    with _locked(entry.parent, exclusive=True):
        old = _version(entry)
        if old is None:
            return False
        if old == entry:  # an older playdeck's folder
            old = entry.parent / f".{entry.name}@removed-{os.getpid()}"
            os.rename(entry, old)
        else:
            os.unlink(entry)
    shutil.rmtree(old, ignore_errors=True)
    return True


# --------------------------------------------------------------------------- series


def save(bars: Bars, cache_dir: str | os.PathLike[str] | None = None, source: dict[str, Any] | None = None) -> Path:
    """Write `bars` (replacing any cached copy) and return its entry path.

    `source` is free-form provenance stored in the metadata (e.g. the generator version and seed).
    """
    entry = bars_dir(bars.symbol, bars.tf, cache_dir, synthetic=bars.synthetic)
    return write_entry(entry, bars, source, cache_dir)


def _write_series(directory: Path, bars: Bars, source: dict[str, Any] | None) -> None:
    """The column files, then the metadata."""
    for name in COLUMNS:
        np.save(directory / f"{name}.npy", np.ascontiguousarray(bars.column(name)), allow_pickle=False)
    if bars.funding_rate is not None:
        np.save(directory / f"{FUNDING_RATE}.npy", np.ascontiguousarray(bars.funding_rate), allow_pickle=False)
    meta: dict[str, Any] = {
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
    if bars.funding_rate is not None:
        # Only when present, so a series without the column writes the meta it always did; the
        # reader takes the column's file by this key, not by whether a file happens to be there.
        meta[FUNDING_RATE] = True
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def exists(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> bool:
    """True when there is an entry for the series (which may still be damaged: `load` says so)."""
    entry = bars_dir(symbol, tf, cache_dir, synthetic=synthetic)
    with _reader(entry.parent):
        return _version(entry) is not None


def read_meta(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *,
              synthetic: bool = False) -> dict[str, Any]:
    """The metadata json of a cached series (FileNotFoundError when absent)."""
    entry = bars_dir(symbol, tf, cache_dir, synthetic=synthetic)
    with _reader(entry.parent):
        version = _version(entry)
        if version is None:
            raise FileNotFoundError(2, "No such file or directory", str(entry / META_FILE))
        return _read_meta(version)


def load(symbol: str, tf: str, cache_dir: str | os.PathLike[str] | None = None, *, synthetic: bool = False) -> Bars:
    """A cached series with memory-mapped, read-only columns.

    CacheError when the entry is absent or damaged, saying how to repair it.
    """
    entry = bars_dir(symbol, tf, cache_dir, synthetic=synthetic)
    found = read_entry(entry)
    if found is None:
        raise CacheError(f"no cached {symbol} {tf} bars at {entry} (removed while this run started?); "
                         "import them again or give --data")
    return found.bars


def _read_meta(directory: Path) -> dict[str, Any]:
    """The metadata of a version folder; ValueError saying what is wrong with it."""
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{META_FILE} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{META_FILE} holds no object")
    if meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"cache format {meta.get('format')!r}, expected {CACHE_FORMAT}")
    return meta


def _read_series(directory: Path) -> Entry:
    meta = _read_meta(directory)
    columns = {name: _load_column(directory / f"{name}.npy") for name in COLUMNS}
    if has_funding_rates(meta):  # absent in entries without the column and in older playdecks'
        columns[FUNDING_RATE] = _load_column(directory / f"{FUNDING_RATE}.npy")
    bars = Bars(
        symbol=meta["symbol"],
        tf=meta["tf"],
        synthetic=bool(meta["synthetic"]),
        partial_last=bool(meta.get("partial_last", False)),
        **columns,
    )
    return Entry(bars, meta)


def has_funding_rates(meta: dict[str, Any]) -> bool:
    """Whether a cached series' metadata says it holds a funding_rate column."""
    return meta.get(FUNDING_RATE) is True


def _load_column(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # numpy's messages for a truncated file do not name it
        raise ValueError(f"{path.name}: {exc}") from None


# --------------------------------------------------------------------------- listing


@attrs.frozen
class Listed:
    """One entry of the cache as `playdeck data list` shows it: `kind` is market, synthetic or
    file; `name` the symbol (the key for a file); `meta` None and `problem` set when damaged."""

    kind: str
    name: str
    tf: str
    entry: Path
    meta: dict[str, Any] | None
    problem: str | None = None


def entries(cache_dir: str | os.PathLike[str] | None = None) -> list[Listed]:
    """Every entry in the cache: imported series by symbol and timeframe, then the synthetic set,
    then remembered --data files by file name."""
    root = _root(cache_dir)
    found: list[Listed] = []
    for kind, folder in (("market", "market"), ("synthetic", "synthetic")):
        symbols = sorted(p for p in (root / folder).glob("*") if is_symbol(p.name) and p.is_dir())
        for symbol_dir in symbols:
            for tf in TIMEFRAMES:
                entry = symbol_dir / tf
                if os.path.lexists(entry):
                    found.append(_listed(kind, symbol_dir.name, tf, entry))
    return found + sorted(file_entries(cache_dir), key=lambda e: ((e.meta or {}).get("source", {}).get("file", ""), e.tf))


def file_entries(cache_dir: str | os.PathLike[str] | None = None) -> list[Listed]:
    """The remembered --data files, by key."""
    root = _root(cache_dir)
    return [_listed("file", p.name, "", p) for p in sorted((root / FILES).glob("*")) if _KEY.fullmatch(p.name)]


def _listed(kind: str, name: str, tf: str, entry: Path) -> Listed:
    try:
        with _reader(entry.parent):
            version = _version(entry)
            meta = _read_meta(version) if version is not None else None
        if meta is None:
            raise FileNotFoundError(2, "No such file or directory", str(entry / META_FILE))
        return Listed(kind, name, str(meta.get("tf", tf)), entry, meta)
    except (OSError, ValueError) as exc:
        return Listed(kind, name, tf, entry, None, str(_damaged(entry, exc)))


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
    promise identical random streams across releases, and when the cached copy is damaged.
    """
    symbol, tf = synthetic.DEFAULT_SYMBOL, "1m"
    wanted = default_source()
    entry = bars_dir(symbol, tf, cache_dir, synthetic=True)
    try:
        found = read_entry(entry)
    except CacheError:
        found = None  # damaged: regenerate below
    if found is not None and found.meta.get("source") == wanted:
        return found.bars
    bars = synthetic.generate(wanted["n_bars"], seed=wanted["seed"], start_ms=wanted["start_ms"], symbol=symbol)
    write_entry(entry, bars, wanted, cache_dir)
    return load(symbol, tf, cache_dir, synthetic=True)
