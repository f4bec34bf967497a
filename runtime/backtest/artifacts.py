"""The files of a backtest (`--out`): fills, orders, trades, rejections and equity as CSV, fills and
equity as Parquet, report.json and equity.svg.

The inputs are plain values: the run's `Fill`s, order rows (dicts with the orders.csv columns, made
from the simulator's records by `order_rows`, the one place that reads them), `Trade`s,
`Rejection`s and the equity array. Each CSV column is formatted at once by `numtext`/`csvtext`
(numbers as `numtext.num` gives them), in chunks of rows, so a million-bar equity.csv costs no
Python step per bar and its text never sits in memory whole.
"""
from __future__ import annotations

import json
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from playdeck.runtime.backtest.csvtext import CRLF, header, join_rows, text_column
from playdeck.runtime.backtest.numtext import fixed_column, int_column, iso_column, num_column

if TYPE_CHECKING:
    from playdeck.runtime.backtest.report import Trade
    from playdeck.runtime.execution.orders import Fill
    from playdeck.runtime.strategy.intents import Rejection

FILLS_COLUMNS = ("bar", "ts", "order_id", "tag", "side", "qty", "price", "fee", "liquidity")
# the columns of the issue first, in its order; role and reject/cancel reason after them
ORDER_COLUMNS = ("order_id", "tag", "type", "side", "qty", "price", "trigger", "created_bar", "final_status",
                 "status_path", "role", "reason")
TRADES_COLUMNS = ("trade", "side", "entry_bar", "entry_ts", "exit_bar", "exit_ts", "qty", "entry_price",
                  "exit_price", "pnl", "fees")
REJECTIONS_COLUMNS = ("bar", "ts", "kind", "tag", "reason", "where")
EQUITY_COLUMNS = ("bar", "ts", "equity")
CHUNK = 1 << 15  # rows formatted at once: the text matrices stay in the CPU caches (and out of RSS)


def order_rows(orders: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The orders.csv rows of the simulator's order records (qty, price and trigger as numbers, None
    where an order has none). The writers take these rows, not the records, so the records can change
    shape without touching them."""
    rows = []
    for rec in orders.values():
        o = rec.order
        rows.append({"order_id": o.order_id, "tag": o.tag or "", "type": o.type.value, "side": o.side.value,
                     "qty": o.qty, "price": o.price, "trigger": o.trigger, "created_bar": o.created_bar,
                     "final_status": rec.path.current.value, "status_path": rec.path.venue(),
                     "role": o.role.value, "reason": rec.reason})
    return rows


def write_artifacts(out: Path, ts_open: np.ndarray, start: int, fills: Sequence[Fill],
                    orders: Sequence[Mapping[str, Any]], trades: Sequence[Trade], equity: np.ndarray,
                    report: dict[str, Any], *, rejections: Sequence[Rejection] = ()) -> None:
    """Every file of a run into `out`. `ts_open` is the open time of every exec bar of the data (the
    files' `bar` indexes it), `start` the bar of `equity[0]`."""
    out.mkdir(parents=True, exist_ok=True)
    ts_open = np.asarray(ts_open, dtype=np.int64)
    write_rejections(out / "rejections.csv", ts_open, rejections)
    write_fills_csv(out / "fills.csv", fills)
    write_orders_csv(out / "orders.csv", orders)
    write_trades_csv(out / "trades.csv", ts_open, trades)
    write_equity_csv(out / "equity.csv", ts_open, start, equity)
    write_fills_parquet(out / "fills.parquet", fills)
    write_equity_parquet(out / "equity.parquet", ts_open, start, equity)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "equity.svg").write_text(equity_svg(equity, report))


def _write_csv(path: Path, names: Sequence[str], n: int, chunk: Callable[[int, int], list[np.ndarray]],
               newline: bytes = CRLF) -> None:
    """Header, then the rows [lo, hi) of `chunk(lo, hi)` (its text matrices), CHUNK rows at a time."""
    with open(path, "wb") as fh:
        fh.write(header(names, newline))
        for lo in range(0, n, CHUNK):
            fh.write(join_rows(chunk(lo, min(lo + CHUNK, n)), newline))


def _fill_columns(fills: Sequence[Fill]) -> dict[str, list[Any]]:
    get = attrgetter("bar", "ts", "order_id", "tag", "side", "qty", "price", "fee", "liquidity")
    cols = list(zip(*map(get, fills))) or [()] * 9
    out = dict(zip(FILLS_COLUMNS, map(list, cols)))
    out["tag"] = [t or "" for t in out["tag"]]
    out["side"] = [s.value for s in out["side"]]
    return out


def write_fills_csv(path: Path, fills: Sequence[Fill]) -> None:
    c = _fill_columns(fills)
    _write_csv(path, FILLS_COLUMNS, len(fills), lambda lo, hi: [
        int_column(c["bar"][lo:hi]), iso_column(c["ts"][lo:hi]), text_column(c["order_id"][lo:hi]),
        text_column(c["tag"][lo:hi]), text_column(c["side"][lo:hi]), num_column(c["qty"][lo:hi]),
        num_column(c["price"][lo:hi]), num_column(c["fee"][lo:hi]), text_column(c["liquidity"][lo:hi])])


def write_orders_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    c = {name: [r[name] for r in rows] for name in ORDER_COLUMNS}
    numbers = {"qty", "price", "trigger"}

    def chunk(lo: int, hi: int) -> list[np.ndarray]:
        return [num_column(c[k][lo:hi]) if k in numbers else int_column(c[k][lo:hi]) if k == "created_bar"
                else text_column([_text(v) for v in c[k][lo:hi]]) for k in ORDER_COLUMNS]

    _write_csv(path, ORDER_COLUMNS, len(rows), chunk)


def _text(v: Any) -> str:
    return "" if v is None else str(v)  # as csv.writer writes a field


def write_trades_csv(path: Path, ts_open: np.ndarray, trades: Sequence[Trade]) -> None:
    get = attrgetter("side", "entry_bar", "exit_bar", "qty", "entry_price", "exit_price", "pnl", "fees")
    side, entry_bar, exit_bar, qty, entry_price, exit_price, pnl, fees = \
        (list(col) for col in (list(zip(*map(get, trades))) or [()] * 8))
    entry_bar_a = np.asarray(entry_bar, dtype=np.int64)
    exit_bar_a = np.asarray(exit_bar, dtype=np.int64)
    _write_csv(path, TRADES_COLUMNS, len(trades), lambda lo, hi: [
        int_column(np.arange(lo + 1, hi + 1)), text_column(side[lo:hi]),
        int_column(entry_bar_a[lo:hi]), iso_column(ts_open[entry_bar_a[lo:hi]]),
        int_column(exit_bar_a[lo:hi]), iso_column(ts_open[exit_bar_a[lo:hi]]),
        num_column(qty[lo:hi]), num_column(entry_price[lo:hi]), num_column(exit_price[lo:hi]),
        num_column(pnl[lo:hi]), num_column(fees[lo:hi])])


def write_equity_csv(path: Path, ts_open: np.ndarray, start: int, equity: np.ndarray) -> None:
    """bar,ts,equity for every bar of the run, equity with six decimals (`%.6f`), lines ending in LF."""
    equity = np.asarray(equity, dtype=np.float64)
    _write_csv(path, EQUITY_COLUMNS, len(equity), lambda lo, hi: [
        int_column(np.arange(start + lo, start + hi)), iso_column(ts_open[start + lo:start + hi]),
        fixed_column(equity[lo:hi], 6)], newline=b"\n")


def write_rejections(path: Path, ts_open: np.ndarray, rejections: Sequence[Rejection]) -> None:
    """One row per refused intent (by sizing and checks, by the exchange when sent, or its attached
    protection refused at the fill); written even when empty so tools can rely on the file."""
    bar, kind, tag, reason, where = (list(col) for col in (list(zip(*rejections)) or [()] * 5))
    bar_a = np.asarray(bar, dtype=np.int64)
    tag = [t or "" for t in tag]
    _write_csv(path, REJECTIONS_COLUMNS, len(rejections), lambda lo, hi: [
        int_column(bar_a[lo:hi]), iso_column(ts_open[bar_a[lo:hi]]), text_column(kind[lo:hi]),
        text_column(tag[lo:hi]), text_column(reason[lo:hi]), text_column(where[lo:hi])])


def write_fills_parquet(path: Path, fills: Sequence[Fill]) -> None:
    """fills.csv's columns, typed: int64 bar, timestamp[ms, UTC] ts, float64 numbers, the repeating
    words (tag, side, liquidity) dictionary-encoded, a fill without a tag a null tag."""
    import pyarrow as pa  # noqa: PLC0415 (only a run that writes files pays for pyarrow)
    import pyarrow.parquet as pq  # noqa: PLC0415

    c = _fill_columns(fills)
    table = pa.table({
        "bar": pa.array(c["bar"], pa.int64()),
        "ts": pa.array(np.asarray(c["ts"], dtype=np.int64), pa.timestamp("ms", tz="UTC")),
        "order_id": pa.array(c["order_id"], pa.string()),
        "tag": _words(pa, [t or None for t in c["tag"]]),
        "side": _words(pa, c["side"]),
        "qty": pa.array(c["qty"], pa.float64()),
        "price": pa.array(c["price"], pa.float64()),
        "fee": pa.array(c["fee"], pa.float64()),
        "liquidity": _words(pa, c["liquidity"]),
    })
    pq.write_table(table, path, **_parquet_options(dictionary=["tag", "side", "liquidity"]))


def _words(pa: Any, values: Sequence[str | None]) -> Any:
    """A dictionary<int32, string> array of a few repeating words (None: null), made here rather
    than by `dictionary_encode`, which imports pyarrow.compute (20 ms of start-up) for it."""
    codes: dict[str, int] = {}
    indices = [None if v is None else codes.setdefault(v, len(codes)) for v in values]
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(list(codes), pa.string()))


def write_equity_parquet(path: Path, ts_open: np.ndarray, start: int, equity: np.ndarray) -> None:
    """equity.csv's columns, typed: int64 bar, timestamp[ms, UTC] ts, float64 equity (unrounded)."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    n = len(equity)
    table = pa.table({
        "bar": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "ts": pa.array(np.asarray(ts_open[start:start + n], dtype=np.int64), pa.timestamp("ms", tz="UTC")),
        "equity": pa.array(np.asarray(equity, dtype=np.float64)),
    })
    pq.write_table(table, path, **_parquet_options(dictionary=[]))


def _parquet_options(dictionary: list[str]) -> dict[str, Any]:
    """zstd, and bar and ts (rising integers) as deltas: a million-bar equity.parquet is 3 MB, not 15,
    and writes faster than with the default dictionary pages of values that never repeat."""
    return {"compression": "zstd", "use_dictionary": dictionary,
            "column_encoding": {"bar": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"}}


def equity_svg(equity: np.ndarray, report: dict[str, Any], width: int = 900, height: int = 320) -> str:
    """A small self-contained SVG line chart of the equity curve (no plotting library needed)."""
    pad = 40
    if len(equity) == 0:
        equity = np.array([report["metrics"]["initial_equity"]])
    step = max(1, len(equity) // 1500)
    ys = equity[::step]
    lo, hi = float(ys.min()), float(ys.max())
    span = hi - lo or 1.0
    xs = np.linspace(pad, width - 10, len(ys)) if len(ys) > 1 else np.array([pad])
    pts = " ".join(f"{x:.1f},{height - pad - (y - lo) / span * (height - 2 * pad):.1f}" for x, y in zip(xs, ys))
    title = f"{report['play']} equity ({report['data']['label']})"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="monospace" font-size="12">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            f'<text x="{pad}" y="20">{_xml(title)}</text>\n'
            f'<text x="2" y="{pad}">{hi:.0f}</text><text x="2" y="{height - pad}">{lo:.0f}</text>\n'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.2" points="{pts}"/>\n</svg>\n')


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
