"""The pyarrow fast path of CSV import: it takes the plain files, declines everything else, and a
file imports to the same bars, or fails with the same problems, whichever path reads it."""

from __future__ import annotations

import codecs
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paths import ROOT_DIR
from playdeck.runtime.data import csv_import
from playdeck.runtime.data.csv_import import DataError, import_csv

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MIN = 60_000
HEADER = "timestamp,open,high,low,close,volume"
BYBIT = "startTime,openPrice,highPrice,lowPrice,closePrice,volume,turnover"


def rows(n: int, width: int = 6, step: int = MIN) -> list[str]:
    out = []
    for k in range(n):
        o = 100 + k % 7 * 0.5
        row = f"{T0 + k * step},{o},{o + 1.25},{o - 0.75},{o + 0.25},{k % 5 * 1.5}"
        out.append(row + (f",{k * 3.5}" if width == 7 else ""))
    return out


def outcome(path: Path, tf: str | None = "1m", gaps: str = "error"):
    """What importing gives, comparable byte for byte: the columns and flags, or the error."""
    try:
        result = import_csv(path, "BTCUSDT", tf, gaps)
    except DataError as exc:
        return ("error", [(p.row, p.message) for p in exc.problems], str(exc))
    bars = result.bars
    return ("bars", bars.tf, result.filled_gaps, result.reversed,
            [(bars.column(name).dtype.str, bars.column(name).tobytes())
             for name in ("ts_open", "open", "high", "low", "close", "volume")])


def slow_outcome(path: Path, monkeypatch, **kw):
    with monkeypatch.context() as m:
        m.setattr(csv_import, "_parse_arrow", lambda data, where: None)
        return outcome(path, **kw)


def taken(path: Path) -> bool:
    return csv_import._parse_arrow(path.read_bytes().removeprefix(codecs.BOM_UTF8), path) is not None


_PLAIN_FILES = {
    "generic": HEADER + "\n" + "\n".join(rows(300)) + "\n",
    "bybit export, newest first": BYBIT + "\n" + "\n".join(reversed(rows(300, width=7))) + "\n",
    "headerless api rows": "\n".join(rows(300, width=7)),
    "crlf and trailing blank lines": HEADER + "\r\n" + "\r\n".join(rows(300)) + "\r\n\r\n\n",
    "byte order mark": "\ufeff" + HEADER + "\n" + "\n".join(rows(300)) + "\n",
    "columns in another order": "volume,timestamp,close,low,high,open\n" + "\n".join(
        ",".join(r.split(",")[i] for i in (5, 0, 4, 3, 2, 1)) for r in rows(300)) + "\n",
    "float timestamps and exponents": HEADER + "\n" + "\n".join(
        f"{T0 + k * MIN}.0,1e2,1.01E+2,9.9e1,+100,.5" for k in range(300)) + "\n",
    "bad values the shared checks report": HEADER + "\n" + "\n".join(
        [*rows(100), f"{T0 + 100 * MIN},100,99,101,100,-1", *rows(300)[101:]]) + "\n",
    "a gap, a duplicate and a step back": HEADER + "\n" + "\n".join(
        [r for k, r in enumerate(rows(300)) if k not in (40, 41)] + rows(300)[10:12]) + "\n",
}


@pytest.mark.parametrize("name", list(_PLAIN_FILES))
def test_plain_files_take_the_fast_path_and_import_as_the_slow_path_does(tmp_path, monkeypatch, name):
    path = tmp_path / "bars.csv"
    path.write_bytes(_PLAIN_FILES[name].encode())
    assert taken(path)
    for tf, gaps in ((None, "error"), ("1m", "error"), ("1m", "fill")):
        assert outcome(path, tf=tf, gaps=gaps) == slow_outcome(path, monkeypatch, tf=tf, gaps=gaps)


def test_the_fast_path_gives_the_values_written(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "\n" + "\n".join(rows(50)) + "\n")
    bars = import_csv(path, "BTCUSDT", "1m").bars
    assert bars.ts_open.tolist() == [T0 + k * MIN for k in range(50)]
    assert bars.open.tolist() == [100 + k % 7 * 0.5 for k in range(50)]
    assert bars.volume.tolist() == [k % 5 * 1.5 for k in range(50)]


@pytest.mark.parametrize("name, row", [
    ("a space", f"{T0 + 3 * MIN}, 100,101,99,100,1"),
    ("a quote", f'{T0 + 3 * MIN},"100",101,99,100,1'),
    ("a comment sign", f"{T0 + 3 * MIN},100,101,99,100,7#00"),
    ("a comment line", "# a note"),
    ("an ISO time", "2025-01-01T00:03:00Z,100,101,99,100,1"),
    ("a blank line", ""),
    ("a bare carriage return", f"{T0 + 3 * MIN},100\r,101,99,100,1"),
    ("a full-width digit", f"{T0 + 3 * MIN},１００,101,99,100,1"),
    ("an Arabic-Indic digit", f"{T0 + 3 * MIN},100,101,99,100,٣"),
    ("an empty field", f"{T0 + 3 * MIN},,101,99,100,1"),
    ("a short row", f"{T0 + 3 * MIN},100,101,99"),
    ("a long row", f"{T0 + 3 * MIN},100,101,99,100,1,5"),
    ("nan", f"{T0 + 3 * MIN},100,101,99,nan,1"),
    ("a malformed number", f"{T0 + 3 * MIN},100,1.0.1,99,100,1"),
    ("epoch seconds", f"{(T0 + 3 * MIN) // 1000},100,101,99,100,1"),
    ("a fractional timestamp", f"{T0 + 3 * MIN}.5,100,101,99,100,1"),
])
def test_the_fast_path_declines_what_only_the_slow_path_can_report(tmp_path, monkeypatch, name, row):
    lines = rows(6)
    lines[3] = row
    path = tmp_path / "bars.csv"
    path.write_bytes((HEADER + "\n" + "\n".join(lines) + "\n").encode())
    assert not taken(path), name
    assert outcome(path) == slow_outcome(path, monkeypatch)


# Fields a file may hold: good numbers in every spelling the plain bytes allow, strings of those bytes
# that may or may not be numbers, and things only the slower parsers may judge.
_ALPHABET = "0123456789.+-eE"
_PLAIN_FIELDS = st.one_of(
    st.sampled_from(["100", "100.5", "1e2", "+100", "-0", ".5", "5.", "1E+2", "0", "99.9", "101", "1e400"]),
    st.text(_ALPHABET, min_size=0, max_size=6),
)
_OTHER_FIELDS = st.sampled_from(["nan", "inf", " 100", "１００", "٣", "1_000", '"100"', "7#00", "x", ""])


@st.composite
def csv_files(draw) -> bytes:
    """Small CSV files, about half of them plain enough for the fast path (which still has to
    agree on their odd numbers, steps back, gaps and off-grid times)."""
    plain = draw(st.booleans())
    rare = st.integers(0, 12 if plain else 3)  # how often a row gets an odd part: 0 means now
    n = draw(st.integers(1, 12))
    width = draw(st.sampled_from([6, 7]))
    header = draw(st.sampled_from([HEADER if width == 6 else HEADER + ",turnover", None]))
    order = draw(st.permutations(range(n)) if draw(st.booleans()) else st.just(list(range(n))))
    lines = [] if header is None else [header]
    for k in order:
        t = T0 + k * draw(st.sampled_from([MIN, MIN, MIN, 2 * MIN, 30_000]))
        stamp = str(t)
        if draw(rare) == 0:
            odd = [f"{t}.0", str(t // 1000), str(t) + "0"]
            stamp = draw(st.sampled_from(odd if plain else odd + ["2025-01-01T00:00:00Z", "", "#" + stamp]))
        o = draw(st.sampled_from([100, 100.5, 101]))
        values = [str(o), str(o + 1), str(o - 1), str(o), "1.5"] + (["7"] if width == 7 else [])
        if draw(rare) == 0:
            values[draw(st.integers(0, width - 2))] = draw(_PLAIN_FIELDS if plain else _OTHER_FIELDS)
        if draw(rare) == 0 and not plain:
            values = values[:-1] if draw(st.booleans()) else values + ["1"]
        lines.append(",".join([stamp, *values]))
        if draw(rare) == 0 and not plain:
            lines.append("")
    newline = draw(st.sampled_from(["\n", "\r\n"] if plain else ["\n", "\r\n", "\r"]))
    return (newline.join(lines) + draw(st.sampled_from(["", newline, newline * 2]))).encode()


@settings(max_examples=300, deadline=None)
@given(csv_files(), st.sampled_from([None, "1m"]), st.sampled_from(["error", "fill"]))
def test_any_file_imports_the_same_with_or_without_the_fast_path(data, tf, gaps):
    # tmp_path is per test, not per example: one folder for all the examples of this run
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        path.write_bytes(data)
        fast = outcome(path, tf=tf, gaps=gaps)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(csv_import, "_parse_arrow", lambda data, where: None)
            assert outcome(path, tf=tf, gaps=gaps) == fast


def test_compile_does_not_import_pyarrow():
    code = ("import sys; from playdeck.tui.cli import main; "
            f"code = main(['compile', {str(ROOT_DIR / 'plays' / 'ema_cross.yml')!r}]); "
            "print('pyarrow' in sys.modules, code, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stderr.strip() == "False 0", r.stderr
