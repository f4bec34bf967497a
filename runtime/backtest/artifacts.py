"""The files of a backtest (`--out`): fills, orders, trades, rejections, funding and equity as CSV,
fills and equity as Parquet (`parquet`), report.json and equity.svg.

The inputs are plain values: the run's `Fill`s, `OrderRow`s (the orders.csv columns, made from the
simulator's records by `order_rows`, the one place that reads them), `Trade`s (the `end` row of a
position still open included), `Rejection`s, funding `CashFlow`s and the equity array. Each CSV
column is formatted at once by `numtext`/`csvtext` (numbers as `numtext.num` gives them), in chunks
of rows, so a million-bar equity.csv costs no Python step per bar and its text never sits in memory whole.
"""
from __future__ import annotations

import json
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Sequence

import attrs
import numpy as np

from playdeck.runtime.backtest.csvtext import CRLF, header, join_rows, text_column
from playdeck.runtime.backtest.numtext import fixed_column, int_column, iso_column, num_column
from playdeck.runtime.backtest.parquet import write_equity_parquet, write_fills_parquet

if TYPE_CHECKING:
    from playdeck.runtime.backtest.report import Trade
    from playdeck.runtime.execution.orders import CashFlow, Fill
    from playdeck.runtime.strategy.intents import Rejection

FILLS_COLUMNS = ("bar", "ts", "order_id", "tag", "side", "qty", "price", "fee", "liquidity", "detail_ts")
TRADES_COLUMNS = ("trade", "side", "entry_bar", "entry_ts", "exit_bar", "exit_ts", "qty", "entry_price",
                  "exit_price", "pnl", "fees", "exit_reason", "return_pct")
FUNDING_COLUMNS = ("ts", "rate", "qty", "price", "amount")
REJECTIONS_COLUMNS = ("bar", "ts", "kind", "tag", "reason", "where")
EQUITY_COLUMNS = ("bar", "ts", "equity")
CHUNK = 1 << 15  # rows formatted at once: the text matrices stay in the CPU caches (and out of RSS)


# orders.csv: the columns of the issue first, in its order; role and reject/cancel reason after them
class OrderRow(NamedTuple):
    """One line of orders.csv, as plain values: what the writer needs of an order, whatever the
    simulator's records look like (a tuple: 77,000 of them cost a third of the memory of dicts)."""

    order_id: str
    tag: str
    type: str
    side: str
    qty: float
    price: float | None
    trigger: float | None
    created_bar: int
    final_status: str
    status_path: str  # Bybit's statuses, e.g. New>Filled
    role: str
    reason: str | None


def order_rows(orders: Mapping[str, Any]) -> list[OrderRow]:
    """The orders.csv rows of a TradingState's order records (None where an order has no price or
    trigger). The one place that reads the records: the writers take these rows."""
    rows = []
    venue: dict[tuple, str] = {}  # the path's text depends on its statuses alone, and most orders share one
    for rec in orders.values():
        statuses = tuple(rec.path)
        path = venue.get(statuses)
        if path is None:
            path = venue[statuses] = rec.venue_path()
        # `_value_` is what `.value` returns, without the enum property's call (4 per order)
        rows.append(OrderRow(rec.order_id, rec.tag or "", rec.type._value_, rec.side._value_, rec.qty, rec.price,
                             rec.trigger, rec.request.created_bar, statuses[-1]._value_, path, rec.role._value_,
                             rec.reason))
    return rows


ORDER_COLUMNS = OrderRow._fields


def write_artifacts(out: Path, ts_open: np.ndarray, start: int, fills: Sequence[Fill],
                    orders: Sequence[OrderRow], trades: Sequence[Trade], equity: np.ndarray,
                    report: dict[str, Any], *, rejections: Sequence[Rejection] = (),
                    funding: Sequence[CashFlow] = ()) -> None:
    """Every file of a run into `out`. `ts_open` is the open time of every exec bar of the data (the
    files' `bar` indexes it), `start` the bar of `equity[0]`."""
    out.mkdir(parents=True, exist_ok=True)
    ts_open = np.asarray(ts_open, dtype=np.int64)
    write_rejections(out / "rejections.csv", ts_open, rejections)
    fill_cols = fill_columns(fills)
    write_fills_csv(out / "fills.csv", fill_cols)
    write_orders_csv(out / "orders.csv", orders)
    write_trades_csv(out / "trades.csv", ts_open, trades)
    write_funding_csv(out / "funding.csv", funding)
    write_equity_csv(out / "equity.csv", ts_open, start, equity)
    write_fills_parquet(out / "fills.parquet", fill_cols)
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


def _columns(items: Sequence[Any], width: int, get: Callable[[Any], tuple] | None = None) -> list[tuple]:
    """The fields of each item (tuples, or what `get` takes from each), as one tuple per field."""
    return list(zip(*(items if get is None else map(get, items)))) or [()] * width


def _words(values: Sequence[Any]) -> list[str]:
    """`.value` of each enum member, looked up once per distinct member (a side is one of two)."""
    text = {v: v.value for v in set(values)}
    return list(map(text.__getitem__, values))


@attrs.frozen
class FillColumns:
    """fills.csv's columns, taken from the fills once for both the CSV and the Parquet file."""

    bar: np.ndarray
    ts: np.ndarray
    order_id: Sequence[str]
    tag: Sequence[str | None]
    side: Sequence[str]
    qty: np.ndarray
    price: np.ndarray
    fee: np.ndarray
    liquidity: Sequence[str]
    detail_ts: np.ndarray  # epoch ms of the magnifier's detail bar (int64; meaningless where not has_detail)
    has_detail: np.ndarray  # bool: the fill names a detail bar (a run with the bar magnifier)

    def __len__(self) -> int:
        return len(self.bar)


def fill_columns(fills: Sequence[Fill]) -> FillColumns:
    bar, ts, order_id, tag, side, qty, price, fee, liquidity, detail = _columns(
        fills, 10, attrgetter("bar", "ts", "order_id", "tag", "side", "qty", "price", "fee", "liquidity", "detail_ts"))
    # None (no magnifier) becomes NaN in float64, which holds epoch ms exactly (below 2**53)
    detail_f = np.array(detail, dtype=np.float64)
    has_detail = ~np.isnan(detail_f)
    return FillColumns(np.array(bar, dtype=np.int64), np.array(ts, dtype=np.int64), order_id, tag, _words(side),
                       np.array(qty, dtype=np.float64), np.array(price, dtype=np.float64),
                       np.array(fee, dtype=np.float64), liquidity,
                       np.where(has_detail, detail_f, 0.0).astype(np.int64), has_detail)


def optional_iso_column(ts_ms: np.ndarray, present: np.ndarray) -> np.ndarray:
    """`iso_column` where `present`, an empty field elsewhere (a text matrix's rows of NUL padding)."""
    if present.all():
        return iso_column(ts_ms)
    out = np.zeros((len(ts_ms), 20 if present.any() else 1), dtype=np.uint8)
    if present.any():
        out[present] = iso_column(ts_ms[present])
    return out


def write_fills_csv(path: Path, fills: Sequence[Fill] | FillColumns) -> None:
    c = fills if isinstance(fills, FillColumns) else fill_columns(fills)
    tag = [t or "" for t in c.tag]
    _write_csv(path, FILLS_COLUMNS, len(c), lambda lo, hi: [
        int_column(c.bar[lo:hi]), iso_column(c.ts[lo:hi]), text_column(c.order_id[lo:hi]), text_column(tag[lo:hi]),
        text_column(c.side[lo:hi]), num_column(c.qty[lo:hi]), num_column(c.price[lo:hi]), num_column(c.fee[lo:hi]),
        text_column(c.liquidity[lo:hi]), optional_iso_column(c.detail_ts[lo:hi], c.has_detail[lo:hi])])


def write_orders_csv(path: Path, rows: Sequence[OrderRow]) -> None:
    c = dict(zip(ORDER_COLUMNS, _columns(rows, len(ORDER_COLUMNS))))
    numbers = {k: np.array(c[k], dtype=np.float64) for k in ("qty", "price", "trigger")}  # None: NaN, written ''
    created_bar = np.array(c["created_bar"], dtype=np.int64)
    text = {k: _as_text(c[k]) for k in ORDER_COLUMNS if k not in numbers and k != "created_bar"}

    def chunk(lo: int, hi: int) -> list[np.ndarray]:
        return [num_column(numbers[k][lo:hi]) if k in numbers else int_column(created_bar[lo:hi])
                if k == "created_bar" else text_column(text[k][lo:hi]) for k in ORDER_COLUMNS]

    _write_csv(path, ORDER_COLUMNS, len(rows), chunk)


def _as_text(values: Sequence[Any]) -> Sequence[str]:
    """Fields as csv.writer writes them: None as '', anything but text as str()."""
    if set(map(type, values)) <= {str}:  # the common case, checked without a Python step per value
        return values
    return [v if type(v) is str else "" if v is None else str(v) for v in values]


def write_trades_csv(path: Path, ts_open: np.ndarray, trades: Sequence[Trade]) -> None:
    side, entry_bar, exit_bar, reason, *numbers = _columns(
        trades, 9, attrgetter("side", "entry_bar", "exit_bar", "exit_reason", "qty", "entry_price", "exit_price",
                              "pnl", "fees"))
    entry_bar_a = np.array(entry_bar, dtype=np.int64)
    exit_bar_a = np.array(exit_bar, dtype=np.int64)
    values = [np.array(col, dtype=np.float64) for col in numbers]
    qty, entry_price, _, pnl, _ = values
    # Trade.return_pct, for the whole column at once (the same float operations, so the same digits)
    return_pct = pnl / (qty * entry_price) * 100.0
    _write_csv(path, TRADES_COLUMNS, len(trades), lambda lo, hi: [
        int_column(np.arange(lo + 1, hi + 1)), text_column(side[lo:hi]),
        int_column(entry_bar_a[lo:hi]), iso_column(ts_open[entry_bar_a[lo:hi]]),
        int_column(exit_bar_a[lo:hi]), iso_column(ts_open[exit_bar_a[lo:hi]]),
        *(num_column(v[lo:hi]) for v in values), text_column(reason[lo:hi]), num_column(return_pct[lo:hi])])


def write_funding_csv(path: Path, funding: Sequence[CashFlow]) -> None:
    """One row per funding payment (7.3): the funding instant, the rate, the signed position it was
    paid on, the price it was valued at (the open of the bar that settled it) and the amount (negative
    when paid); written even when empty (header only), like rejections.csv."""
    ts, rate, qty, price, amount = _columns(funding, 5, attrgetter("ts", "rate", "qty", "price", "amount"))
    ts_a = np.array(ts, dtype=np.int64)
    numbers = [np.array(col, dtype=np.float64) for col in (rate, qty, price, amount)]
    _write_csv(path, FUNDING_COLUMNS, len(funding), lambda lo, hi: [
        iso_column(ts_a[lo:hi]), *(num_column(v[lo:hi]) for v in numbers)])


def write_equity_csv(path: Path, ts_open: np.ndarray, start: int, equity: np.ndarray) -> None:
    """bar,ts,equity for every bar of the run, equity with six decimals (`%.6f`), lines ending in LF."""
    equity = np.asarray(equity, dtype=np.float64)
    _write_csv(path, EQUITY_COLUMNS, len(equity), lambda lo, hi: [
        int_column(np.arange(start + lo, start + hi)), iso_column(ts_open[start + lo:start + hi]),
        fixed_column(equity[lo:hi], 6)], newline=b"\n")


def write_rejections(path: Path, ts_open: np.ndarray, rejections: Sequence[Rejection]) -> None:
    """One row per refused intent (by sizing and checks, by the exchange when sent, or its attached
    protection refused at the fill); written even when empty so tools can rely on the file."""
    bar, kind, tag, reason, where = _columns(rejections, 5, lambda r: r[:5])  # the code is not a column
    bar_a = np.array(bar, dtype=np.int64)
    tag = [t or "" for t in tag]
    _write_csv(path, REJECTIONS_COLUMNS, len(rejections), lambda lo, hi: [
        int_column(bar_a[lo:hi]), iso_column(ts_open[bar_a[lo:hi]]), text_column(kind[lo:hi]),
        text_column(tag[lo:hi]), text_column(reason[lo:hi]), text_column(where[lo:hi])])


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
