"""The read endpoints on the venue, sans-I/O: market data (time, klines, instruments, tickers) and the
account's orders, executions, positions and wallet. Each takes the request's fields and `now_ms`
and returns Bybit's `result`, or raises `BybitError`.

Paging: `nextPageCursor` is an offset into the sorted list, as a string ("" on the last page); a
cursor that is not one is 10001. Time windows follow Bybit: history and executions default to the
last 7 days on the API clock and refuse a window longer than 7 days.
"""

from __future__ import annotations

from typing import Any

from playdeck.runtime.bybit.emulator.errors import BybitError, param_error
from playdeck.runtime.bybit.emulator.market import candles, interval_ms, kline_row, ticker_item
from playdeck.runtime.bybit.emulator.params import as_int, require_linear, text
from playdeck.runtime.bybit.emulator.records import VenueOrder
from playdeck.runtime.bybit.emulator.trading import books_for
from playdeck.runtime.bybit.emulator.venue import Venue
from playdeck.runtime.bybit.emulator.wire import instrument_item, order_item, position_item

__all__ = ["executions", "instruments", "klines", "open_orders", "order_history", "positions", "server_time",
           "tickers", "wallet_balance"]

WEEK_MS = 7 * 86_400_000
DAY_MS = 86_400_000


def server_time(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {"timeSecond": str(now_ms // 1000), "timeNano": str(now_ms * 1_000_000)}


def klines(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """Newest first, never a bar after the current one; the newest `limit` bars opened in [start, end]."""
    require_linear(p, default=True)
    book = v.book(text(p, "symbol", required=True))
    interval = text(p, "interval", required=True)
    assert interval is not None
    ims = interval_ms(interval, v.data_ms)
    start = as_int(p, "start", None, low=0)
    end = as_int(p, "end", None, low=0)
    limit = as_int(p, "limit", 200, low=1, high=1000)
    assert limit is not None
    rows = candles(book.bars, v.bar, ims, start=start, end=end, limit=limit)
    return {"category": "linear", "symbol": book.symbol, "list": [kline_row(c, book.fmt) for c in reversed(rows)]}


def instruments(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_linear(p)
    symbol = text(p, "symbol")
    status = text(p, "status")
    books = list(v.books.values()) if symbol is None else [b for b in v.books.values() if b.symbol == symbol]
    if status not in (None, "Trading"):
        books = []
    launch = v.ts(0)
    return {"category": "linear", "list": [instrument_item(b.spec, launch) for b in books], "nextPageCursor": ""}


def tickers(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    require_linear(p)
    symbol = text(p, "symbol")
    books = list(v.books.values()) if symbol is None else [v.book(symbol)]
    items = []
    for b in books:
        instant, rate = v.next_funding(b)
        items.append(ticker_item(b.bars, v.bar, b.fmt, rate, instant))
    return {"category": "linear", "list": items}


def _page(items: list[Any], p: dict[str, Any], default: int, high: int) -> tuple[list[Any], str]:
    limit = as_int(p, "limit", default, low=1, high=high)
    assert limit is not None
    cursor = text(p, "cursor")
    start = 0
    if cursor is not None:
        if not cursor.isdigit():
            raise param_error("cursor")
        start = int(cursor)
    page = items[start:start + limit]
    nxt = start + limit
    return page, str(nxt) if nxt < len(items) else ""


def _newest_first(orders: list[VenueOrder]) -> list[VenueOrder]:
    # creation order is the tie-break of equal times
    return sorted(orders, key=lambda o: (o.created_ms, o.seq), reverse=True)


def _order_filter(p: dict[str, Any]) -> str | None:
    flt = text(p, "orderFilter")
    if flt not in (None, "Order", "StopOrder"):
        raise param_error("orderFilter")
    return flt


def _by_ids(v: Venue, books: list, p: dict[str, Any]) -> list[VenueOrder] | None:
    """The one order named by orderId / orderLinkId (any status), or None when none is named."""
    order_id, link_id = text(p, "orderId"), text(p, "orderLinkId")
    if order_id is None and link_id is None:
        return None
    found = []
    for book in books:
        o = v.find_order(book, order_id, link_id)
        if o is not None and (link_id is None or o.link_id == link_id):
            found.append(o)
    return found


def _kind_ok(o: VenueOrder, flt: str | None) -> bool:
    return flt is None or (flt == "StopOrder") == o.is_conditional


def open_orders(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """Open orders (openOnly=0, the default), or up to 500 recent closed ones (openOnly=1); an order
    named by orderId / orderLinkId is listed whatever its status."""
    require_linear(p)
    books = books_for(v, p)
    flt = _order_filter(p)
    open_only = as_int(p, "openOnly", 0, low=0, high=2)
    named = _by_ids(v, books, p)
    if named is not None:
        chosen = named
    else:
        everything = _newest_first(list(v.iter_orders(books)))
        if open_only == 0:
            chosen = [o for o in everything if o.is_open]
        else:
            chosen = [o for o in everything if not o.is_open][:500]
    chosen = [o for o in chosen if _kind_ok(o, flt)]
    page, cursor = _page(chosen, p, 20, 50)
    fmts = {b.symbol: b.fmt for b in books}
    return {"category": "linear", "list": [order_item(o, fmts[o.symbol]) for o in page], "nextPageCursor": cursor}


def _window(p: dict[str, Any], now_ms: int) -> tuple[int, int]:
    start = as_int(p, "startTime", None, low=0)
    end = as_int(p, "endTime", None, low=0)
    if start is None and end is None:
        return now_ms - WEEK_MS, now_ms
    if start is None:
        assert end is not None
        return end - WEEK_MS, end
    if end is None:
        return start, start + WEEK_MS
    if end < start:
        raise BybitError(10001, "params error: endTime is before startTime")
    if end - start > WEEK_MS:
        raise BybitError(10001, "params error: the time range between startTime and endTime cannot exceed 7 days")
    return start, end


def order_history(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """Every order created in the window (default: the last 7 days), newest first; Cancelled, Rejected
    and Deactivated orders with no fill only for 24 h, as on Bybit."""
    require_linear(p)
    books = books_for(v, p)
    flt = _order_filter(p)
    status = text(p, "orderStatus")
    lo, hi = _window(p, now_ms)
    named = _by_ids(v, books, p)
    pool = named if named is not None else _newest_first(list(v.iter_orders(books)))
    chosen = []
    for o in pool:
        if not lo <= o.created_ms <= hi or not _kind_ok(o, flt):
            continue
        if status is not None and o.status != status:
            continue
        if o.status in ("Cancelled", "Rejected", "Deactivated") and o.cum_qty == 0 and now_ms - o.updated_ms > DAY_MS:
            continue
        chosen.append(o)
    page, cursor = _page(chosen, p, 20, 50)
    fmts = {b.symbol: b.fmt for b in books}
    return {"category": "linear", "list": [order_item(o, fmts[o.symbol]) for o in page], "nextPageCursor": cursor}


def executions(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """Executions newest first (ties: the later seq first), trades, liquidations and funding."""
    require_linear(p)
    symbol = text(p, "symbol")
    books = list(v.books.values()) if symbol is None else [v.book(symbol)]
    order_id, link_id = text(p, "orderId"), text(p, "orderLinkId")
    exec_type = text(p, "execType")
    lo, hi = _window(p, now_ms)
    chosen = []
    for book in books:
        for item, t in zip(book.executions, book.exec_times):
            if not lo <= t <= hi:
                continue
            if order_id is not None and item["orderId"] != order_id:
                continue
            if link_id is not None and item["orderLinkId"] != link_id:
                continue
            if exec_type is not None and item["execType"] != exec_type:
                continue
            chosen.append((t, item["seq"], item))
    chosen.sort(key=lambda x: (x[0], x[1]), reverse=True)
    page, cursor = _page([item for _, _, item in chosen], p, 50, 100)
    return {"category": "linear", "list": page, "nextPageCursor": cursor}


def positions(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """With `symbol`, its row even when flat; with `settleCoin`, the open positions only."""
    require_linear(p)
    symbol = text(p, "symbol")
    if symbol is not None:
        views = [(b, v.position_view(b)) for b in [v.book(symbol)]]
    else:
        settle = text(p, "settleCoin")
        if settle is None:
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        books = list(v.books.values()) if settle == "USDT" else []
        views = [(b, view) for b in books if (view := v.position_view(b)).qty != 0.0]
    page, cursor = _page(views, p, 20, 200)
    return {"category": "linear", "list": [position_item(view, b.fmt) for b, view in page], "nextPageCursor": cursor}


def wallet_balance(v: Venue, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
    account = text(p, "accountType", required=True)
    if account != "UNIFIED":
        raise BybitError(10001, "params error: accountType only support UNIFIED")
    item = v.wallet()
    coins = text(p, "coin")
    if coins is not None and "USDT" not in coins.split(","):
        item["coin"] = []
    return {"list": [item]}
