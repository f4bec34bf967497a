"""fills.parquet and equity.parquet hold what fills.csv and equity.csv hold, typed: read back, each
value formatted as the CSV formats it gives the CSV's text, row for row."""
from __future__ import annotations

from paths import ROOT_DIR

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fixed_bars import write_fixed_csv
from playdeck.runtime.backtest.numtext import num
from playdeck.tui.cli import main

WORDS = pa.dictionary(pa.int32(), pa.string())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    data = write_fixed_csv(tmp_path_factory.mktemp("fixed") / "bars_5m.csv")
    out = {}
    # bb_reversion has fills with and without tags; ema_cross a long run of flips
    for play in ("bb_reversion", "ema_cross"):
        folder = tmp_path_factory.mktemp("runs") / play
        assert main(["backtest", str(ROOT_DIR / "plays" / f"{play}.yml"), "--data", str(data), "--out", str(folder),
                     "--no-progress"]) == 0
        out[play] = folder
    return out


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def iso_text(ts) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("play", ["bb_reversion", "ema_cross"])
def test_fills_parquet_is_fills_csv_typed(play: str, runs):
    table = pq.read_table(runs[play] / "fills.parquet")
    assert table.schema == pa.schema([
        ("bar", pa.int64()), ("ts", pa.timestamp("ms", tz="UTC")), ("order_id", pa.string()), ("tag", WORDS),
        ("side", WORDS), ("qty", pa.float64()), ("price", pa.float64()), ("fee", pa.float64()),
        ("liquidity", WORDS)])
    rows = csv_rows(runs[play] / "fills.csv")
    got = table.to_pylist()
    assert len(got) == len(rows) > 10
    for p, c in zip(got, rows):
        assert [str(p["bar"]), iso_text(p["ts"]), p["order_id"], p["tag"] or "", p["side"], num(p["qty"]),
                num(p["price"]), num(p["fee"]), p["liquidity"]] == list(c.values())
    if play == "bb_reversion":
        tags = table.column("tag").to_pylist()
        assert None in tags and any(tags)  # a fill without a tag is a null, not ""


@pytest.mark.parametrize("play", ["bb_reversion", "ema_cross"])
def test_equity_parquet_is_equity_csv_typed(play: str, runs):
    table = pq.read_table(runs[play] / "equity.parquet")
    assert table.schema == pa.schema([("bar", pa.int64()), ("ts", pa.timestamp("ms", tz="UTC")),
                                      ("equity", pa.float64())])
    rows = csv_rows(runs[play] / "equity.csv")
    got = table.to_pydict()
    assert len(got["bar"]) == len(rows) > 1000
    assert [str(b) for b in got["bar"]] == [r["bar"] for r in rows]
    assert [iso_text(t) for t in got["ts"]] == [r["ts"] for r in rows]
    assert ["%.6f" % e for e in got["equity"]] == [r["equity"] for r in rows]
