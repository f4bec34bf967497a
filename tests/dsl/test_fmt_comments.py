"""`playdeck fmt` keeps every comment, in the YAML and in the blocks, and stays idempotent."""
from __future__ import annotations

import re

from playdeck.compiler import compile_text
from playdeck.dsl.fmt import format_play

# The example of PLAY-LANGUAGE.md section 1, comments and all.
SPEC_EXAMPLE = """\
play: ema_pullback                 # identifier: [a-z][a-z0-9_]*
description: Buy pullbacks in an uptrend.
market:
  symbol: BTCUSDT                  # Bybit linear perpetual
  exec: 15m                        # execution timeframe: 1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d
  timeframes: {mtf: 1h, htf: 4h}   # optional; each a whole multiple of exec
account:
  equity: 10000                    # USDT
  leverage: 3
  fees: {maker: 0.0002, taker: 0.00055}
  slippage_bps: 2                  # applied to market and stop fills, against the trader
  intrabar: worst_case             # or ohlc_path (see 5.4)
  instrument: {tick: 0.1, qty_step: 0.001, min_qty: 0.001}
features:
  fast: ema(close, 21)
  slow: ema(close, 55)
  atr: atr(14)
  trend: ema(close, 200) @ htf     # computed on htf bars, visible only after each htf bar closes
blocks: |
  block entries:
    when flat and fast crosses_above slow and close > trend:
      limit buy risk 1% at close - 0.5 * atr expire 3 bars as entry
        stop_loss fill - 2 * atr
        take_profit fill + 3 * atr
    when long and fast crosses_below slow:
      close
  block manage:
    when long and position.r >= 1.5 and not position.reduced:
      partial_close 50%
      stop_loss position.entry
    when long and position.layers < 3 and close > position.entry + atr:
      scale buy 50% of position
"""

MANY = """\
# A commented Play
play: commented   # its name
account:
  fees:
    maker: 0.0002   # rebate
    taker: 0.00055
market:
  exec: 15m            # execution timeframe
  symbol: BTCUSDT
blocks: |
  # entries first
  block a:
    # go long on strength
    when close > open:  # up bar
      market buy qty 0.01   # small
        stop_loss fill - 100  # attached
  # the end
"""


def fmt(text: str) -> str:
    c = compile_text(text, "p.yml")
    return format_play(c.source, list(c.features), c.blocks)


def comments(text: str) -> list[str]:
    return re.findall(r"#[^\n]*", text)


def test_the_spec_example_keeps_its_comments_and_its_ir():
    out = fmt(SPEC_EXAMPLE)
    assert [c.strip() for c in comments(out)] == [c.strip() for c in comments(SPEC_EXAMPLE)]
    assert compile_text(out).ir == compile_text(SPEC_EXAMPLE).ir
    assert fmt(out) == out


def test_comments_follow_their_lines_when_keys_move():
    out = fmt(MANY)
    assert sorted(c.strip() for c in comments(out)) == sorted(c.strip() for c in comments(MANY))
    lines = out.splitlines()
    assert lines[0] == "# A commented Play"
    assert "  exec: 15m  # execution timeframe" in lines
    assert "  fees: {maker: 0.0002, taker: 0.00055}  # rebate" in lines  # a nested key's comment
    assert "    # go long on strength" in lines
    assert "    when close > open:  # up bar" in lines
    assert "  # the end" == lines[-1]  # still inside the blocks text
    assert fmt(out) == out
    assert compile_text(out).ir == compile_text(MANY).ir


SMALL = """\
play: a
description: it's always in the market  # kept
market: {symbol: BTCUSDT, exec: 15m}
blocks: |
  block b:
    when flat:
      close
"""


def test_an_apostrophe_in_a_plain_value_does_not_hide_its_comment():
    assert "description: it's always in the market  # kept" in fmt(SMALL).splitlines()


def test_a_comment_after_the_blocks_text_stays_outside_it_and_fmt_is_idempotent():
    once = fmt(SMALL + "...\n# tail\n")  # `...` ends the document; the canonical form drops it
    assert once.splitlines()[-1] == "# tail"
    assert fmt(once) == once
