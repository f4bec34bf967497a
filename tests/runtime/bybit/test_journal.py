"""The journal keeps what a live session must not lose: every venue event in order (so a restart
rebuilds the same TradingState), the tables an operator queries, owner-only, committed at once."""
from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from paths import ROOT_DIR
from playdeck.compiler import compile_file
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import exec_bars, prepare, run_engine
from playdeck.runtime.bybit.journal import Journal, JournalError
from playdeck.runtime.data.synthetic import generate
from playdeck.runtime.execution.trading_state import TradingState

PLAYS = ["atr_trail", "ema_pullback", "scale_out"]  # trails, protection refusals, partial closes


@pytest.mark.parametrize("name", PLAYS)
def test_a_replayed_journal_rebuilds_the_same_trading_state(name: str, tmp_path: Path) -> None:
    plan = lower(compile_file(ROOT_DIR / "plays" / f"{name}.yml").ir)
    bars = exec_bars(generate(120_000, seed=5), plan.play.market.exec_tf)
    bt = prepare(plan, bars, keep_events=True)
    run_engine(bt)
    # what a session journals: the venue's events and its refused intents, in the order they happened
    events = bt.state.events
    assert len(events) > 20
    with Journal(tmp_path / "j.sqlite") as journal:
        for k in range(0, len(events), 37):  # as a session records them: batch by batch
            journal.record(events[k:k + 37])
    with Journal(tmp_path / "j.sqlite") as again:  # a restart: a new process opens the file
        assert again.events() == events
        state = again.replay(TradingState(bt.state.instrument, bt.state.initial_equity))
    live = bt.state
    assert (state.position, state.cash, state.fees_paid, state.realized_pnl) == \
        (live.position, live.cash, live.fees_paid, live.realized_pnl)
    assert state.fills == live.fills and state.trades == live.trades and state.refusals == live.refusals
    assert {k: (r.path, r.qty, r.price, r.trigger) for k, r in state.orders.items()} == \
        {k: (r.path, r.qty, r.price, r.trigger) for k, r in live.orders.items()}
    # the operator's tables agree with the state
    db = sqlite3.connect(tmp_path / "j.sqlite")
    statuses = dict(db.execute("SELECT order_link_id, status FROM orders"))
    assert statuses == {k: r.path[-1].value for k, r in live.orders.items()}
    assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == len(live.fills)
    assert db.execute("SELECT COUNT(*) FROM transitions").fetchone()[0] == \
        sum(len(r.path) for r in live.orders.values())  # Submitted included


def test_the_journal_is_owner_only_and_committed_when_record_returns(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    journal.set_runner("bar", 41)
    journal.record_drift("position", {"qty": 1}, {"qty": 2}, "adopted the exchange's")
    # another connection (a crash right now) sees it all
    other = Journal(path)
    assert other.runner("bar") == 41
    assert other.drift_rows() == [("position", '{"qty": 1}', '{"qty": 2}', "adopted the exchange's")]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_journal_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database " * 100)
    with pytest.raises(JournalError, match="cannot use .* as a journal"):
        Journal(bad)
