"""Each command imports only what it uses: the console, the exchange client and the live transport
(textual, pybit, websockets, aiohttp, tenacity) and pandas are no part of a backtest, the compiler
needs no numpy, and `--help` needs nothing but argparse. Checked in a fresh interpreter per command,
by the packages in `sys.modules` after `main` returns."""
from __future__ import annotations

from csv_kit import walk_csv
from paths import ROOT_DIR

import json
import subprocess
import sys
from pathlib import Path

import pytest

PLAY = ROOT_DIR / "plays" / "ema_cross.yml"
# pandas (installed with the bench extra, and on many machines) is also what pyarrow's pa.array and
# pa.table import when it is there: the Parquet writer must not go through them.
NEVER = {"textual", "pybit", "websockets", "aiohttp", "tenacity", "pandas"}
# Runs `main(argv)` and prints the third-party packages (and playdeck rooms) then imported.
PROBE = """
import json, sys
from playdeck.tui.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as e:  # --help
    code = e.code
# (names starting with _ are the interpreter's and the installer's hooks: __main__, _distutils_hack, ...)
names = {m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)
print(json.dumps({"code": code, "packages": sorted(n for n in names if not n.startswith("_")),
                  "playdeck": sorted(m for m in sys.modules if m.startswith("playdeck"))}))
"""


def imported(*argv: str, cwd: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(argv))], capture_output=True, text=True,
                       cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    """3000 one-minute bars: 200 exec bars for the 15m ema_cross Play."""
    return walk_csv(tmp_path_factory.mktemp("data") / "tiny.csv", 3000, seed=3, price=60_000.0)


def test_backtest_imports_no_console_exchange_client_or_pandas(tiny_csv: Path, tmp_path: Path):
    got = imported("backtest", str(PLAY), "--data", str(tiny_csv), "--out", str(tmp_path / "run"), "--no-progress",
                   cwd=tmp_path)
    assert got["code"] == 0
    assert (tmp_path / "run" / "fills.parquet").is_file()
    assert NEVER.isdisjoint(got["packages"]), got["packages"]
    assert {"numpy", "pyarrow"} <= set(got["packages"])  # it computes, and wrote the parquet files


def test_a_backtest_that_fails_before_writing_imports_no_pyarrow(tiny_csv: Path, tmp_path: Path):
    afile = tmp_path / "afile"
    afile.write_text("")
    got = imported("backtest", str(PLAY), "--data", str(tiny_csv), "--out", str(afile), cwd=tmp_path)
    assert got["code"] == 2
    assert "pyarrow" not in got["packages"] and NEVER.isdisjoint(got["packages"])


def test_compile_imports_no_numpy(tmp_path: Path):
    got = imported("compile", str(PLAY), cwd=tmp_path)
    assert got["code"] == 0
    assert {"numpy", "pyarrow", *NEVER}.isdisjoint(got["packages"]), got["packages"]
    assert not any(m.startswith("playdeck.runtime") for m in got["playdeck"])


def test_help_imports_no_compiler(tmp_path: Path):
    got = imported("--help", cwd=tmp_path)
    assert got["code"] == 0
    assert got["packages"] == ["playdeck"]
    assert got["playdeck"] == ["playdeck", "playdeck.dsl", "playdeck.dsl.vocabulary", "playdeck.tui", "playdeck.tui.cli"]
