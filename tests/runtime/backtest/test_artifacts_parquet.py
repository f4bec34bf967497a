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
    # bb_reversion has fills with and without tags; ema_cross a long run of flips; atr_trail with the
    # bar magnifier on the 5m bars names the detail bar of every fill
    magnified = tmp_path_factory.mktemp("plays") / "atr_trail.yml"
    magnified.write_text((ROOT_DIR / "plays" / "atr_trail.yml").read_text()
                         .replace("  slippage_bps: 2\n", "  slippage_bps: 2\n  intrabar: 5m\n"))
    plays = {"bb_reversion": ROOT_DIR / "plays" / "bb_reversion.yml", "ema_cross": ROOT_DIR / "plays" / "ema_cross.yml",
             "atr_trail_5m": magnified}
    for name, play in plays.items():
        folder = tmp_path_factory.mktemp("runs") / name
        assert main(["backtest", str(play), "--data", str(data), "--out", str(folder), "--no-progress"]) == 0
        out[name] = folder
    return out


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def iso_text(ts) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("play", ["bb_reversion", "ema_cross", "atr_trail_5m"])
def test_fills_parquet_is_fills_csv_typed(play: str, runs):
    table = pq.read_table(runs[play] / "fills.parquet")
    assert table.schema == pa.schema([
        ("bar", pa.int64()), ("ts", pa.timestamp("ms", tz="UTC")), ("order_id", pa.string()), ("tag", WORDS),
        ("side", WORDS), ("qty", pa.float64()), ("price", pa.float64()), ("fee", pa.float64()),
        ("liquidity", WORDS), ("detail_ts", pa.timestamp("ms", tz="UTC"))])
    rows = csv_rows(runs[play] / "fills.csv")
    got = table.to_pylist()
    assert len(got) == len(rows) > 10
    for p, c in zip(got, rows):
        assert [str(p["bar"]), iso_text(p["ts"]), p["order_id"], p["tag"] or "", p["side"], num(p["qty"]),
                num(p["price"]), num(p["fee"]), p["liquidity"],
                "" if p["detail_ts"] is None else iso_text(p["detail_ts"])] == list(c.values())
    details = table.column("detail_ts")
    if play == "atr_trail_5m":
        # each fill's 5m detail bar lies inside its 1h exec bar
        assert details.null_count == 0
        pairs = list(zip(details.to_pylist(), table.column("ts").to_pylist()))
        assert all(0 <= (d - t).total_seconds() < 3600 for d, t in pairs)
        assert any(d != t for d, t in pairs)
    else:
        assert details.null_count == len(rows)  # no magnifier: null, '' in fills.csv
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
