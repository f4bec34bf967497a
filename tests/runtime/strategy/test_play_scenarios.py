"""Whole-pipeline scenarios: a Play's text, a few hand-made bars, and the fills written out by hand.

These run compile -> lower -> engine -> IntentProcessor -> SimBackend -> SimExchange, so each row
checks a rule of PLAY-LANGUAGE.md sections 5 and 6 the way a trader writes it.
"""
from __future__ import annotations

import asyncio
import textwrap

import numpy as np
import pytest

from playdeck.compiler import compile_text
from playdeck.compiler.lower import lower
from playdeck.runtime.backtest.run import prepare
from playdeck.runtime.data.bars import Bars
from playdeck.runtime.execution.trading_state import RefusedIntent as Rejection

HEAD = """\
play: scenario
market: {symbol: BTCUSDT, exec: 1m}
account:
  equity: 10000
  leverage: 10
  fees: {maker: 0.0002, taker: 0.0005}
  slippage_bps: 0
  intrabar: %s
  instrument: {tick: 0.1, qty_step: 0.001, min_qty: 0.001}
blocks: |
"""


def path_text(rec) -> str:
    """An order's status path as the console shows it: without the leading Submitted."""
    return ">".join(s.value for s in rec.path[1:]) or rec.path[0].value


def run(blocks: str, ohlc: list[tuple[float, float, float, float]], intrabar: str = "worst_case",
        head: str = HEAD):
    text = head % intrabar + textwrap.indent(textwrap.dedent(blocks).strip("\n") + "\n", "  ")
    plan = lower(compile_text(text).ir)
    a = np.array(ohlc, dtype=float)
    bars = Bars("BTCUSDT", "1m", np.arange(len(a)) * 60_000, a[:, 0], a[:, 1], a[:, 2], a[:, 3], np.ones(len(a)))
    bt = prepare(plan, bars, keep_events=True)
    result = asyncio.run(bt.engine.run())
    fills = [(f.bar, f.side.value, f.qty, round(f.price, 6), round(f.fee, 6), f.liquidity) for f in result.fills]
    return bt, result, fills


def test_limit_entry_with_attached_stop_and_target_from_the_fill_price():
    # bar 0 close 100: limit buy 1 at 98; bar 1 dips to 97.5 -> fills at 98 (maker);
    # stop at fill - 3 = 95, target fill + 4 = 102; bar 2 reaches 102.5 -> target fills at 102 (maker)
    bt, _, fills = run("""
        block entry:
          when flat and close == 100:
            limit buy qty 1 at close - 2 as dip
              stop_loss fill - 3
              take_profit fill + 4
        """, [(100, 100.5, 99.5, 100), (99.8, 100, 97.5, 99), (99, 102.5, 98.5, 102), (102, 103, 101, 102)])
    assert fills == [(1, "buy", 1.0, 98.0, 0.0196, "maker"), (2, "sell", 1.0, 102.0, 0.0204, "maker")]
    stop = [rec for rec in bt.state.orders.values() if rec.role.value == "stop_loss"][0]
    assert stop.trigger == 95.0 and stop.path[-1].value == "Deactivated"


def test_expire_n_bars_cancels_at_the_close_of_bar_i_plus_n():
    bt, result, fills = run("""
        block entry:
          when flat and close == 100:
            limit buy qty 1 at 90 expire 2 bars as dip
        """, [(100, 101, 99, 100), (100, 101, 99, 100.5), (100, 101, 95, 100.2), (100, 101, 89, 100.1)])
    assert fills == []  # bar 3 would have reached 90, but the order expired at the close of bar 2
    (rec,) = bt.state.orders.values()
    assert path_text(rec) == "New>Expired"
    expired = [e for e in result.events if e.new.value == "Expired"]
    assert [e.bar for e in expired] == [2]


def test_risk_sizing_from_the_attached_stop_distance():
    # 1% of 10000 = 100 USDT risk; entry reference 100 (the limit price), stop 100 - 4 -> qty 25
    bt, _, fills = run("""
        block entry:
          when flat and close == 100:
            limit buy risk 1% at close
              stop_loss fill - 4
        """, [(100, 100, 100, 100), (100, 100.5, 99, 100.2)])
    assert fills[0][:4] == (1, "buy", 25.0, 100.0)


def test_stop_loss_before_take_profit_in_one_bar_under_worst_case_and_path_order_under_ohlc_path():
    blocks = """
        block entry:
          when flat and close == 100:
            market buy qty 1
              stop_loss fill - 2
              take_profit fill + 2
        """
    # bar 1: opens 100 (entry), range 97..102.5 reaches both; the open is nearer the high
    bars = [(100, 100, 100, 100), (100, 102.5, 97, 101), (101, 101, 101, 101)]
    _, _, worst = run(blocks, bars, "worst_case")
    assert [f[3] for f in worst] == [100.0, 98.0]  # the stop: worst case for a long
    _, _, path = run(blocks, bars, "ohlc_path")
    assert [f[3] for f in path] == [100.0, 102.0]  # open -> high (nearer) -> the target first


def test_same_tag_still_pending_is_replaced_and_the_old_price_never_fills():
    bt, _, fills = run("""
        block entry:
          when flat:
            limit buy qty 1 at close - 5 as dip
        """, [(100, 100, 100, 100), (100, 100, 99, 99), (99, 99, 93.5, 94), (94, 94, 88, 90)])
    # bar 0 sends dip at 95; bar 1 re-prices it to 94; bar 2's low 93.5 reaches 94 -> fills there
    assert fills == [(2, "buy", 1.0, 94.0, 0.0188, "maker")]
    assert len(bt.state.orders) == 1


def test_scale_layers_partial_close_and_position_state_words():
    bt, _, fills = run("""
        block manage:
          when long and position.layers < 2:
            scale buy 100% of position
          when long and position.layers == 2 and not position.reduced:
            partial_close 50%
          when long and position.reduced and position.bars >= 4:
            close at close
        block entry:
          when flat and close == 100:
            market buy qty 2
        """, [(100, 100, 100, 100), (100, 101, 99, 100), (102, 103, 101, 102), (104, 105, 103, 104),
              (104, 105, 103, 104), (106, 107, 105, 106), (106, 107, 105, 106)])
    assert [(f[0], f[1], f[2], f[3]) for f in fills] == [
        (1, "buy", 2.0, 100.0),   # entry at bar 1's open
        (2, "buy", 2.0, 102.0),   # scale 100% of 2 at bar 2's open -> 4, avg 101
        (3, "sell", 2.0, 104.0),  # partial_close 50% of 4
        (5, "sell", 2.0, 106.0),  # bars is 4 at bar 4's close: close at close, a limit at 104; bar 5 opens 106
    ]
    assert bt.state.qty == 0.0


def test_a_resting_close_closes_the_whole_position_including_a_later_layer():
    # bar 0: market buy 1 -> fills at bar 1's open 100. At bar 1's close: close at 110 rests, and a
    # scale limit at 95 rests. Bar 2 dips to 94: the scale fills (position 2). Bar 3 reaches 111:
    # the close fills the whole 2, not the 1 it was sent for, and the position is flat.
    bt, _, fills = run("""
        block entry:
          when flat and close == 100:
            market buy qty 1
        block manage:
          when long and position.bars == 1:
            close at 110
            scale buy qty 1 at 95
        """, [(100, 100, 100, 100), (100, 101, 99, 100), (99, 99.5, 94, 96), (100, 111, 99, 105),
              (105, 106, 104, 105)])
    assert fills == [(1, "buy", 1.0, 100.0, 0.05, "taker"), (2, "buy", 1.0, 95.0, 0.019, "maker"),
                     (3, "sell", 2.0, 110.0, 0.044, "maker")]
    assert bt.state.qty == 0.0
    close = [rec for rec in bt.state.orders.values() if rec.role.value == "close"][0]
    assert close.qty == 1.0 and path_text(close) == "New>Filled"  # the order as sent, filled whole


def test_a_same_tag_replacement_brings_its_own_expiry():
    # Sent at bar 0 with expire 3 (would end at the close of bar 3); re-sent at bar 2 (close 100.2),
    # which makes it end at the close of bar 5, so bar 4's dip to 94 fills it at 95.
    bt, result, fills = run("""
        block entry:
          when flat and (close == 100 or close == 100.2):
            limit buy qty 1 at 95 expire 3 bars as dip
        """, [(100, 100.5, 99.5, 100), (100, 100.5, 99.5, 100.5), (100, 100.5, 99.5, 100.2),
              (100, 100.5, 99.5, 100.1), (100, 100.5, 94, 96), (96, 97, 95.5, 96)])
    assert fills == [(4, "buy", 1.0, 95.0, 0.019, "maker")]
    assert [path_text(rec) for rec in bt.state.orders.values()] == ["New>Filled"]
    assert not [e for e in result.events if e.new.value == "Expired"]


def test_a_same_tag_replacement_brings_its_own_attached_stop():
    # risk 1% = 100 USDT. Bar 0 (range 2): qty 100/2 = 50, stop fill - 2. Re-sent at bar 1 (range 5):
    # qty 100/5 = 20 and the stop must be fill - 5 = 90, so the risk at the stop is still 100.
    bt, _, fills = run("""
        block entry:
          when flat and close >= 100:
            limit buy risk 1% at 95 as dip
              stop_loss fill - (high - low)
        """, [(100, 101, 99, 100), (100, 102.5, 97.5, 100), (99, 99.5, 94.5, 96), (96, 96.5, 95.5, 96)])
    assert fills == [(2, "buy", 20.0, 95.0, 0.38, "maker")]
    assert bt.state.protection["stop_loss"].trigger == 90.0


def test_a_triggered_stop_limit_given_a_new_trigger_is_cancelled_and_sent_again():
    # Bar 0 sends trigger 102 limit 102.5. Bar 1 opens at 104, over the limit: it triggers and rests
    # as a limit at 102.5. Its re-send (trigger 106 limit 106.5) cannot amend a trigger that is
    # spent, so the old order is cancelled and a new conditional sent; bar 2's re-send amends that one.
    bt, _, fills = run("""
        block entry:
          when flat:
            stop buy qty 1 at high + 1 limit high + 1.5 as brk
        """, [(100, 101, 99, 100), (104, 105, 103.5, 104), (104, 104.5, 103.5, 104), (104, 104.2, 103.8, 104)])
    assert fills == []
    assert bt.processor.rejections == []
    paths = [path_text(rec) for rec in bt.state.orders.values()]
    assert paths == ["Untriggered>Triggered>New>PendingCancel>Cancelled",
                     "Untriggered>PendingAmend>Untriggered>PendingAmend>Untriggered"]
    brk = bt.state.pending_by_tag.get("brk")
    assert (brk.trigger, brk.price) == (105.2, 105.7)


@pytest.mark.parametrize(("level", "closed"), [(0.5, True), (0.55, False), (0.9, False)])
def test_position_r_divides_by_the_initial_risk(level: float, closed: bool):
    # 2 @ 100, stop 90: the initial risk is |100 - 90| x 2 = 20 USDT. At 110 after half is closed the
    # upnl is 10 on qty 1, so r = 10 / 20 = 0.5: a close at r >= 0.5 fires at bar 2, one at 0.55 never
    # (r over the current qty, 10 / 10 = 1.0, would fire both)
    bt, _, fills = run(f"""
        block entry:
          when flat and close == 100:
            market buy qty 2
              stop_loss fill - 10
        block manage:
          when long and not position.reduced:
            partial_close 50%
          when long and position.r >= {level}:
            close
        """, [(100, 100, 100, 100), (100, 100.5, 99.5, 100), (110, 110.5, 109.5, 110),
              (110, 110.5, 109.5, 110), (110, 110.5, 109.5, 110)])
    want = [(1, "buy", 2.0), (2, "sell", 1.0)] + ([(3, "sell", 1.0)] if closed else [])
    assert [(bar, side, qty) for bar, side, qty, *_ in fills] == want
    assert bt.state.qty == (0.0 if closed else 1.0)


def test_position_r_keeps_the_initial_risk_after_a_scale():
    # 1 @ 100 with stop 95 risks 5; a scale of 1 at 110 does not change that: at 115 the upnl is
    # 15 + 5 = 20, r = 20 / 5 = 4 (>= 3.9 fires; over the current qty it would be 2)
    bt, _, fills = run("""
        block entry:
          when flat and close == 100:
            market buy qty 1
              stop_loss fill - 5
        block manage:
          when long and position.layers == 1 and close == 110:
            scale buy qty 1
          when long and position.r >= 3.9:
            close
        """, [(100, 100, 100, 100), (100, 100.5, 99.5, 110), (110, 110.5, 109.5, 115),
              (115, 115.5, 114.5, 115), (115, 115.5, 114.5, 115)])
    assert [(bar, side, qty) for bar, side, qty, *_ in fills] == [(1, "buy", 1.0), (2, "buy", 1.0), (3, "sell", 2.0)]


def test_close_then_cancel_all_closes_the_position_and_cancels_only_what_was_pending():
    # a cancel acts on the orders pending when the blocks looked: the close sent at the same bar
    # close goes out and fills; the stop_loss that was working is deactivated
    bt, result, fills = run("""
        block b:
          when flat and close == 100:
            market buy qty 1 as e
              stop_loss fill - 10
          when long and close == 105:
            close
            cancel all
        """, [(100, 100, 100, 100), (100, 105, 100, 105), (105, 106, 104, 106), (106, 106, 106, 106)])
    assert fills == [(1, "buy", 1.0, 100.0, 0.05, "taker"), (2, "sell", 1.0, 105.0, 0.0525, "taker")]
    paths = {rec.role.value: path_text(rec) for rec in bt.state.orders.values()}
    assert paths == {"entry": "New>Filled", "stop_loss": "Untriggered>PendingCancel>Deactivated",
                     "close": "New>Filled"}
    assert bt.state.qty == 0.0


def test_cancel_tag_and_a_new_order_with_that_tag_in_one_bar_send_it_fresh_whatever_the_block_order():
    entry = "block entry:\n  when flat and close >= 100:\n    limit buy qty 1 at close - 6 as dip\n"
    clean = "block clean:\n  when close == 101:\n    cancel dip\n"
    for blocks in (entry + clean, clean + entry):
        # bar 0 sends dip at 94; at bar 1 the old one is cancelled and one at 95 sent, which fills
        bt, _, fills = run(blocks, [(100, 100, 100, 100), (101, 101, 101, 101), (101, 101, 94, 96)])
        assert fills == [(2, "buy", 1.0, 95.0, 0.019, "maker")], blocks
        assert [path_text(rec) for rec in bt.state.orders.values()] == ["New>PendingCancel>Cancelled", "New>Filled"]


# a coarse instrument, where rounding to the tick moves prices by whole points
COARSE = HEAD.replace("instrument: {tick: 0.1, qty_step: 0.001, min_qty: 0.001}",
                      "instrument: {tick: 5, qty_step: 0.01, min_qty: 0.05}")
RISK_ENTRY = """
    block a:
      when flat and close == 100:
        limit buy risk 1% at 95 as e
          stop_loss fill - DISTANCE
    """


def test_risk_sizing_measures_the_distance_to_the_stop_as_it_will_be_placed_on_the_tick():
    # entry 95; the stop fill - 3 = 92 is placed at 90 (tick 5): 1% of 10000 over 5 = 20, not 100 / 3
    _, _, fills = run(RISK_ENTRY.replace("DISTANCE", "3"), [(100, 101, 99, 100), (100, 100, 94, 96), (96, 97, 89, 90)], head=COARSE)
    assert [f[:4] for f in fills] == [(1, "buy", 20.0, 95.0), (2, "sell", 20.0, 90.0)]


def test_risk_sizing_refuses_a_stop_that_rounds_onto_the_entry():
    bt, _, fills = run(RISK_ENTRY.replace("DISTANCE", "2"), [(100, 101, 99, 100), (100, 100, 94, 96)], head=COARSE)
    assert fills == []
    assert [r.reason for r in bt.processor.rejections] == [
        "risk sizing: the stop_loss (95) is no distance from the entry (95)"]


def test_an_entry_that_only_reduces_the_other_side_brings_no_protection_and_is_not_filled_into_a_position():
    bt, result, fills = run("""
        block a:
          when flat and close == 100:
            market buy qty 2
          when long and close == 101 and not x.filled:
            market sell qty 1 as x
              stop_loss fill + 3
        """, [(100, 100, 100, 100), (101, 101, 101, 101), (101, 101, 101, 101), (101, 101, 101, 101)])
    # the sell at bar 2 reduces the long to 1; its stop (for a short) is not put on the long, and
    # x.filled stays false, so the case sends it again at bar 2's close and it closes the long at bar 3
    assert [(f[0], f[1], f[2]) for f in fills] == [(1, "buy", 2.0), (2, "sell", 1.0), (3, "sell", 1.0)]
    assert not any(rec.role.value == "stop_loss" for rec in bt.state.orders.values())


def test_a_price_that_rounds_to_zero_on_the_tick_is_refused_not_divided_by():
    bt, _, fills = run("""
        block a:
          when flat:
            limit buy usdt 100 at close * 0.1
        """, [(0.4, 0.4, 0.4, 0.4), (0.4, 0.4, 0.4, 0.4)])
    assert fills == []
    assert {r.reason for r in bt.processor.rejections} == {"limit price 0.04 rounds to 0 at tick 0.1"}


def test_attached_protection_refused_at_the_fill_is_reported_with_the_refused_intents():
    bt, _, fills = run("""
        block a:
          when flat and close == 100:
            market buy qty 1
              stop_loss fill - 200
        """, [(100, 100, 100, 100), (100, 101, 99, 100), (100, 101, 99, 100)])
    assert [f[:3] for f in fills] == [(1, "buy", 1.0)]
    # the stop line is line 14 of the Play (HEAD is 11 lines, the blocks text starts on line 12)
    assert [r[:5] for r in bt.processor.rejections] == [
        Rejection(1, "stop_loss", None, "non-positive price -100.0", ":14:9")[:5]]
    assert [path_text(rec) for rec in bt.state.orders.values()] == ["New>Filled", "Rejected"]


def test_close_takes_a_position_left_below_min_qty_by_a_partial_close():
    # min_qty 1, step 0.1: in 1.5 at 100; partial_close qty 1 leaves 0.5, less than min_qty; `close`
    # still closes it (Bybit closes a whole position with qty "0", reduceOnly and closeOnTrigger),
    # while an entry of 0.5 is refused
    head = HEAD.replace("{tick: 0.1, qty_step: 0.001, min_qty: 0.001}", "{tick: 0.1, qty_step: 0.1, min_qty: 1}")
    bt, _, fills = run("""
        block a:
          when close == 100:
            market buy qty 1.5
          when close == 101:
            partial_close qty 1
          when close == 102:
            close
            market buy qty 0.5
        """, [(100, 100, 100, 100), (101, 101, 101, 101), (102, 102, 102, 102), (103, 103, 103, 103)],
        head=head)
    assert fills == [(1, "buy", 1.5, 101.0, 0.07575, "taker"), (2, "sell", 1.0, 102.0, 0.051, "taker"),
                     (3, "sell", 0.5, 103.0, 0.02575, "taker")]
    assert bt.state.qty == 0.0
    assert [r.reason for r in bt.processor.rejections] == ["qty 0.5 below min_qty 1"]


# ---- percent protection (7.1), from the Play's text to the fills ------------------------------------

def test_attached_percentages_are_distances_from_the_fill_and_size_a_risk_entry():
    # bar 0 closes at 100: market buy, filled at bar 1's open 100; stop 2% under it (98), target 3%
    # over it (103). risk 1% = 100 USDT over the distance 100 - 98 -> qty 50. Bar 2 reaches 103.
    bt, _, fills = run("""
        block entry:
          when flat and close == 100:
            market buy risk 1%
              stop_loss 2%
              take_profit 3%
        """, [(100, 100, 100, 100), (100, 101, 99, 100.5), (100.5, 103.5, 100, 103), (103, 103, 103, 103)])
    assert [f[:4] for f in fills] == [(1, "buy", 50.0, 100.0), (2, "sell", 50.0, 103.0)]
    stop = next(rec for rec in bt.state.orders.values() if rec.role.value == "stop_loss")
    assert stop.trigger == 98.0


def test_a_standalone_percentage_is_a_distance_from_the_position_entry_mirrored_for_a_short():
    # a short of 1 filled at bar 1's open 100; at bar 1's close 'stop_loss 2%' puts the stop 2% over
    # the entry (102), whatever the close; bar 2 rises through it
    bt, _, fills = run("""
        block entry:
          when flat and close == 100:
            market sell qty 1
        block protect:
          when short:
            stop_loss 2%
        """, [(100, 100, 100, 100), (100, 101, 99, 99.5), (99.5, 102.5, 99.5, 102), (102, 102, 102, 102)])
    assert [f[:4] for f in fills] == [(1, "sell", 1.0, 100.0), (2, "buy", 1.0, 102.0)]
    stop = next(rec for rec in bt.state.orders.values() if rec.role.value == "stop_loss")
    assert stop.trigger == 102.0


@pytest.mark.parametrize(("side", "stop", "target"), [("buy", 98.0, 103.0), ("sell", 102.0, 97.0)])
def test_readme_percent_protection_attached_is_a_distance_from_the_fill(side: str, stop: float, target: float):
    # README "Perpetuals": `stop_loss 2%` under a buy filled at 100 is 98, `take_profit 3%` 103; a sell mirrored
    bt, _, fills = run(f"""
        block entry:
          when flat and close == 99:
            market {side} qty 1
              stop_loss 2%
              take_profit 3%
        """, [(99, 99.5, 98.5, 99), (100, 100.5, 99.5, 100), (100, 100.5, 99.5, 100)])
    assert fills[0][:4] == (1, side, 1.0, 100.0)
    levels = {rec.role.value: rec.trigger if rec.trigger is not None else rec.price
              for rec in bt.state.orders.values() if rec.role.is_protection}
    assert levels == {"stop_loss": stop, "take_profit": target}


def test_readme_percent_stop_standing_alone_is_a_distance_from_the_average_entry():
    # README: a block's `stop_loss 2%` on a long averaging 101.02 sits at 101.02 x 0.98 = 98.9996, 99.0
    bt, _, fills = run("""
        block entry:
          when flat and close == 99:
            market buy qty 1
        block protect:
          when long:
            stop_loss 2%
        """, [(99, 99.5, 98.5, 99), (101.02, 101.5, 100.5, 101), (101, 101.5, 100.5, 101)])
    assert fills[0][3] == 101.02
    assert bt.state.protection["stop_loss"].trigger == 99.0
