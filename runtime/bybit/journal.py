"""The journal: an SQLite file (WAL) holding what a live session must not lose in a crash.

Every event a venue reported (order status changes, fills, funding, late refusals), and every intent
the session refused before sending it, is appended in order to `events` before the next request
goes out; replaying them into a fresh `TradingState`
rebuilds the session's picture exactly (the state is changed only by events). Beside that log the
journal keeps tables an operator can query: `orders` (each order's latest values and status),
`transitions` (every status change), `fills`, `funding`, `intents` (what the blocks asked for),
`drift` (what reconciliation found different from the exchange, and what it did) and `runner` (the
bar the runner has acted on). The README lists the columns.

The file is created readable and writable by its owner only: it names the account's orders.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from playdeck.runtime.execution.order_state import Ev
from playdeck.runtime.execution.orders import (
    CashFlow,
    Fill,
    OrderEvent,
    OrderRequest,
    OrderRole,
    OrderStatus,
    RefusalCode,
    Refused,
    Side,
)
from playdeck.runtime.execution.trading_state import RefusedIntent, TradingState

__all__ = ["Journal", "JournalError", "decode_event", "encode_event"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, recorded_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_link_id TEXT PRIMARY KEY, order_id TEXT, side TEXT, type TEXT, qty REAL, price REAL, trigger_price REAL,
    time_in_force TEXT, reduce_only INTEGER, role TEXT, tag TEXT, created_bar INTEGER, status TEXT,
    filled_qty REAL, avg_price REAL, reason TEXT, updated_at INTEGER);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY, order_link_id TEXT NOT NULL, order_id TEXT, old TEXT, new TEXT NOT NULL,
    event TEXT, bar INTEGER, reason TEXT, code INTEGER, recorded_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY, exec_id TEXT UNIQUE, order_link_id TEXT, order_id TEXT, bar INTEGER, ts INTEGER,
    side TEXT, qty REAL, price REAL, fee REAL, liquidity TEXT, role TEXT, realized_pnl REAL, detail_ts INTEGER);
CREATE TABLE IF NOT EXISTS funding (
    seq INTEGER PRIMARY KEY, bar INTEGER, ts INTEGER, kind TEXT, rate REAL, qty REAL, price REAL, amount REAL);
CREATE TABLE IF NOT EXISTS intents (
    seq INTEGER PRIMARY KEY, bar INTEGER, kind TEXT, side TEXT, size_kind TEXT, size_value REAL, price REAL,
    trigger_price REAL, tag TEXT, source TEXT, recorded_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drift (
    seq INTEGER PRIMARY KEY, recorded_at INTEGER NOT NULL, what TEXT NOT NULL, local TEXT, exchange TEXT,
    action TEXT);
CREATE TABLE IF NOT EXISTS runner (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JournalError(Exception):
    """The journal file cannot be used (not a journal, another version, unwritable): one line, exit 2."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Journal:
    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], int] | None = None) -> None:
        """`clock`: epoch ms for `recorded_at` (a live run gives the venue's; default the local clock)."""
        self.path = Path(path)
        self.clock = clock or _now_ms
        try:
            if not self.path.exists():
                # Created owner-only before SQLite touches it (its WAL and shm files follow the mode).
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the next request
            self._db.executescript(_SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise JournalError(f"cannot use {self.path} as a journal: {exc}") from None
        if found is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif found[0] != str(SCHEMA_VERSION):
            raise JournalError(f"{self.path} is a journal of schema {found[0]}, this playdeck writes {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def record(self, events: Iterable[Any]) -> None:
        """Append a venue's events (in the order they happened) and update the tables, in one
        transaction: committed when this returns."""
        now = self.clock()
        db = self._db
        db.execute("BEGIN")
        try:
            for e in events:
                kind, payload = encode_event(e)
                db.execute("INSERT INTO events (kind, payload, recorded_at) VALUES (?, ?, ?)",
                           (kind, json.dumps(payload, separators=(",", ":")), now))
                if kind == "order":
                    self._order_event(e, now)
                elif kind == "fill":
                    # a venue's execId is the key (a repeated execution is one fill); the simulator's
                    # fills have none, so their order and place stand for it
                    exec_id = e.exec_id or f"{e.order_id}@{e.bar}:{e.qty}:{e.price}"
                    db.execute("INSERT OR IGNORE INTO fills (exec_id, order_link_id, order_id, bar, ts, side, qty, price,"
                               " fee, liquidity, role, realized_pnl, detail_ts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               (exec_id, e.client_id, e.order_id, e.bar, e.ts, e.side.value, e.qty,
                                e.price, e.fee, e.liquidity, e.role.value if e.role else None, e.realized_pnl,
                                e.detail_ts))
                    db.execute("UPDATE orders SET filled_qty = COALESCE(filled_qty, 0) + ?, avg_price = ?,"
                               " updated_at = ? WHERE order_link_id = ?", (e.qty, e.price, now, e.client_id))
                elif kind == "cash":
                    db.execute("INSERT INTO funding (bar, ts, kind, rate, qty, price, amount) VALUES (?,?,?,?,?,?,?)",
                               (e.bar, e.ts, e.kind, e.rate, e.qty, e.price, e.amount))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _order_event(self, e: OrderEvent, now: int) -> None:
        db = self._db
        db.execute("INSERT INTO transitions (order_link_id, order_id, old, new, event, bar, reason, code, recorded_at)"
                   " VALUES (?,?,?,?,?,?,?,?,?)",
                   (e.client_id, e.order_id, None if e.old is None else e.old.value, e.new.value,
                    None if e.ev is None else e.ev.value, e.bar, e.reason, None if e.code is None else e.code.bybit,
                    now))
        v = e.values
        if v is not None:
            db.execute("INSERT INTO orders (order_link_id, order_id, side, type, qty, price, trigger_price,"
                       " time_in_force, reduce_only, role, tag, created_bar, status, reason, updated_at)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(order_link_id) DO UPDATE SET"
                       " qty = excluded.qty, price = excluded.price, trigger_price = excluded.trigger_price,"
                       " status = excluded.status, reason = excluded.reason, updated_at = excluded.updated_at,"
                       " order_id = COALESCE(NULLIF(orders.order_id, ''), excluded.order_id)",
                       (e.client_id, e.order_id, v.side.value, v.type.value, v.qty, v.price, v.trigger, v.tif.value,
                        int(v.reduce_only), v.role.value, v.tag, v.created_bar, e.new.value, e.reason, now))
        else:
            # a live venue's order id comes with its answer, after the Submitted row was written
            db.execute("UPDATE orders SET status = ?, reason = ?, updated_at = ?,"
                       " order_id = COALESCE(NULLIF(order_id, ''), ?) WHERE order_link_id = ?",
                       (e.new.value, e.reason, now, e.order_id or None, e.client_id))

    def record_intent(self, intent: Any) -> None:
        """What a block asked for (an `Intent`), before it is sized and sent."""
        self._db.execute("INSERT INTO intents (bar, kind, side, size_kind, size_value, price, trigger_price, tag,"
                         " source, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (intent.bar, intent.kind, None if intent.side is None else intent.side.value,
                          intent.size_kind, _finite_or_none(intent.size_value), intent.price, intent.trigger,
                          intent.tag, intent.where, self.clock()))

    def record_drift(self, what: str, local: Any, exchange: Any, action: str) -> None:
        """A difference reconciliation found between the journal's picture and the exchange's."""
        self._db.execute("INSERT INTO drift (recorded_at, what, local, exchange, action) VALUES (?,?,?,?,?)",
                         (self.clock(), what, json.dumps(local, default=str), json.dumps(exchange, default=str),
                          action))

    def set_runner(self, key: str, value: Any) -> None:
        """Where the runner is (e.g. `bar`: the last bar it acted on)."""
        self._db.execute("INSERT INTO runner VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         (key, json.dumps(value)))

    # ------------------------------------------------------------------ reading
    def runner(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM runner WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def events(self) -> list[Any]:
        """Every journaled event, oldest first, as the venue reported it."""
        return [decode_event(kind, json.loads(payload))
                for kind, payload in self._db.execute("SELECT kind, payload FROM events ORDER BY seq")]

    def replay(self, state: TradingState) -> TradingState:
        """Apply every journaled event to `state` (a fresh one): the session's picture before the crash."""
        state.apply_all(self.events())
        return state

    def session_start_ms(self) -> int:
        """When the session began, on the venue's clock: the venue's own time in its first answer to
        the session (the runner keeps it as `started_ms`); every execution of the session is later.
        A journal without it: its first row less a minute (our estimate of the venue's clock is off
        by up to half a round trip, tens of ms on a loaded machine)."""
        started = self.runner("started_ms")
        return int(started) if started is not None else self.first_recorded_ms() - 60_000

    def first_recorded_ms(self) -> int:
        """When the first event was written (the session's start), or now for an empty journal."""
        row = self._db.execute("SELECT MIN(recorded_at) FROM events").fetchone()
        return int(row[0]) if row and row[0] is not None else self.clock()

    def exec_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT exec_id FROM fills")}

    def drift_rows(self) -> list[tuple[str, str, str, str]]:
        return list(self._db.execute("SELECT what, local, exchange, action FROM drift ORDER BY seq"))


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or v != v else v


# ------------------------------------------------------------------ events as JSON
def encode_event(e: Any) -> tuple[str, dict[str, Any]]:
    """(kind, JSON-able dict) of a venue event, which `decode_event` turns back into the same value."""
    if isinstance(e, OrderEvent):
        return "order", {"order_id": e.order_id, "old": None if e.old is None else e.old.value, "new": e.new.value,
                         "bar": e.bar, "reason": e.reason, "client_id": e.client_id,
                         "ev": None if e.ev is None else e.ev.value,
                         "values": None if e.values is None else e.values.to_json(),
                         "code": None if e.code is None else e.code.name}
    if isinstance(e, Fill):
        d = e._asdict()
        d.update(side=e.side.value, role=None if e.role is None else e.role.value)
        return "fill", d
    if isinstance(e, CashFlow):
        return "cash", e._asdict()
    if isinstance(e, Refused):
        d = e._asdict()
        d["code"] = None if e.code is None else e.code.name
        return "refused", d
    if isinstance(e, RefusedIntent):
        d = e._asdict()
        d["code"] = None if e.code is None else e.code.name
        return "refused_intent", d
    raise TypeError(f"not a venue event: {e!r}")


def decode_event(kind: str, d: dict[str, Any]) -> Any:
    if kind == "order":
        return OrderEvent(d["order_id"], None if d["old"] is None else OrderStatus(d["old"]), OrderStatus(d["new"]),
                          d["bar"], d["reason"], d["client_id"], None if d["ev"] is None else Ev(d["ev"]),
                          None if d["values"] is None else OrderRequest.from_json(d["values"]),
                          None if d["code"] is None else RefusalCode[d["code"]])
    if kind == "fill":
        d = dict(d)
        d["side"] = Side(d["side"])
        d["role"] = None if d["role"] is None else OrderRole(d["role"])
        return Fill(**d)
    if kind == "cash":
        return CashFlow(**d)
    if kind in ("refused", "refused_intent"):
        d = dict(d)
        d["code"] = None if d["code"] is None else RefusalCode[d["code"]]
        return Refused(**d) if kind == "refused" else RefusedIntent(**d)
    raise JournalError(f"unknown event kind {kind!r} in the journal")
