"""Broken Plays: each row is a small Play file and where its first error must be reported.

Every row pins the diagnostic's code and `line:col` in the Play file (errors inside `blocks: |` or a
feature's value point into the file, not into the embedded text), the text the caret sits on, and
the whole rendered message as a golden (tests/__snapshots__/test_bad_inputs.ambr). The end of the
file runs the `playdeck` command line on a few of them.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

from playdeck.compiler import compile_file, compile_text
from playdeck.dsl.diagnostics import SHOWN_WIDTH, PlayError
from playdeck.dsl.fmt import format_play

# Lines 1-10 of every blocks case; the blocks text starts on line 11, indented by two spaces.
HEAD = """\
play: bad
market:
  symbol: BTCUSDT
  exec: 15m
  timeframes: {htf: 4h}
features:
  fast: ema(close, 21)
  slow: ema(close, 55)
  atr: atr(14)
blocks: |
"""


def blocks(text: str) -> str:
    """A Play whose blocks are `text`; its first line is line 11 of the file."""
    return HEAD + textwrap.indent(textwrap.dedent(text).lstrip("\n"), "  ")


def play(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


BLOCKS_OK = """\
blocks: |
  block main:
    when flat:
      close
"""


def settings(text: str) -> str:
    """A Play with the given settings and features, and blocks that are fine."""
    return play(text) + BLOCKS_OK


@attrs.frozen
class Case:
    id: str
    text: str
    code: str
    where: str  # line:col of the first diagnostic, in the Play file
    at: str  # the file's text starts with this at `where` ("" for the end of a line)


CASES = [
    # ---- syntax of the block language -------------------------------------------------------
    Case("missing_colon_after_when", blocks("""
        block main:
          when flat
            close
        """), "syntax", "12:14", ""),
    Case("unknown_action_word", blocks("""
        block main:
          when flat:
            buy qty 1
        """), "syntax", "13:7", "buy"),
    Case("missing_side", blocks("""
        block main:
          when flat:
            market qty 1
        """), "syntax", "13:14", "qty"),
    Case("missing_size", blocks("""
        block main:
          when flat:
            market buy as first
        """), "syntax", "13:18", "as"),
    Case("unknown_option", blocks("""
        block main:
          when flat:
            limit buy qty 1 at close gtc
        """), "syntax", "13:32", "gtc"),
    Case("unbalanced_paren", blocks("""
        block main:
          when flat and (close > fast:
            close
        """), "syntax", "12:32", ":"),
    Case("expire_without_bars", blocks("""
        block main:
          when flat:
            limit buy qty 1 at close expire 3
        """), "syntax", "13:40", ""),
    Case("stray_character", blocks("""
        block main:
          when close > fast $ 2:
            close
        """), "syntax", "12:23", "$"),
    Case("case_not_indented_under_block", blocks("""
        block main:
        when flat:
          close
        """), "syntax", "11:14", ""),
    Case("inconsistent_dedent", blocks("""
        block main:
          when flat:
              close
            close
        """), "indent", "14:7", "close"),
    Case("action_where_a_case_belongs", blocks("""
        block main:
          close
        """), "syntax", "12:5", "close"),
    # ---- YAML --------------------------------------------------------------------------------
    Case("broken_yaml_flow", play("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m
        blocks: |
          block main:
            when flat:
              close
        """), "yaml", "3:7", ":"),
    Case("tab_indentation", play("""
        play: bad
        market:
          symbol: BTCUSDT
        \texec: 15m
        """) + BLOCKS_OK, "yaml", "4:1", "\t"),
    Case("duplicate_key", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 15m
          exec: 1h
        """), "yaml", "5:3", "exec"),
    Case("blocks_quoted_not_literal", play("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        blocks: "block main:\\n  when flat:\\n    close\\n"
        """), "type", "3:9", '"block'),
    Case("blocks_folded_not_literal", play("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        blocks: >
          block main:
            when flat:
              close
        """), "type", "3:9", ">"),
    Case("empty_file", "# nothing here\n", "yaml", "1:1", "# nothing"),
    Case("play_name_is_a_list", settings("""
        play: [a]
        market: {symbol: BTCUSDT, exec: 15m}
        """), "type", "1:7", "[a]"),
    Case("exec_is_a_list", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: [15m]}
        """), "type", "2:33", "[15m]"),
    Case("timeframe_alias_is_a_mapping", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m, timeframes: {htf: {tf: 4h}}}
        """), "type", "2:56", "{tf: 4h}"),
    Case("unknown_yaml_tag", settings("""
        play: !custom bad
        market: {symbol: BTCUSDT, exec: 15m}
        """), "yaml", "1:7", "!custom"),
    Case("yaml_tag_that_cannot_make_its_value", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        account: {equity: !!int lots}
        """), "yaml", "3:19", "!!int"),
    Case("integer_too_large_for_a_float", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        account: {equity: 1""" + "0" * 320 + """}
        """), "value", "3:19", "1000"),
    Case("an_empty_document", "---\n", "yaml", "1:1", "---"),
    Case("thousands_of_parentheses", blocks("""
        block main:
          when """ + "(" * 5000 + "flat" + ")" * 5000 + """:
            close
        """), "depth", "12:210", "("),
    Case("blocks_with_an_indentation_number_and_deeper_lines", play("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        blocks: |4
                block main:
                  when flat and close > zz:
                    close
        """), "name", "5:33", "zz"),
    Case("number_too_large_for_a_float", blocks("""
        block main:
          when close > 1e400:
            close
        """), "value", "12:18", "1e400"),
    Case("indicator_parameter_too_large", blocks("""
        block main:
          when close > bbands(close, 20, 1e999).upper:
            close
        """), "value", "12:36", "1e999"),
    # ---- settings ----------------------------------------------------------------------------
    Case("unknown_key_in_account", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 15m
        account:
          equity: 5000
          levrage: 3
          slippage_bps: 2
        """), "unknown-key", "7:3", "levrage"),
    Case("unknown_top_level_key", settings("""
        play: bad
        strategy: trend
        market: {symbol: BTCUSDT, exec: 15m}
        """), "unknown-key", "2:1", "strategy"),
    Case("missing_market_exec", settings("""
        play: bad
        description: no exec timeframe
        market:
          symbol: BTCUSDT
        """), "missing-key", "3:1", "market"),
    Case("leverage_not_a_number", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        account:
          leverage: lots
        """), "type", "4:13", "lots"),
    Case("leverage_out_of_range", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        account:
          leverage: 500
        """), "value", "4:13", "500"),
    Case("exec_not_a_timeframe", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 7m
        """), "timeframe", "4:9", "7m"),
    Case("timeframe_not_a_multiple_of_exec", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 4h
          timeframes: {daily: 1d, htf: 6h}
        """), "timeframe", "5:32", "6h"),
    Case("unknown_intrabar_mode", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        account:
          intrabar: best_case
        """), "value", "4:13", "best_case"),
    Case("magnifier_not_finer_than_exec", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        account:
          intrabar: 1h
        """), "value", "4:13", "1h"),
    Case("magnifier_not_a_divisor_of_exec", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 5m}
        account:
          intrabar: 3m
        """), "value", "4:13", "3m"),
    Case("funding_not_a_percentage", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        account:
          funding: lots
        """), "type", "4:12", "lots"),
    Case("mmr_too_large", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        account:
          mmr: 80%
        """), "value", "4:8", "80%"),
    Case("symbol_not_a_usdt_perpetual", settings("""
        play: bad
        market: {symbol: BTC-PERP, exec: 15m}
        """), "value", "2:18", "BTC-PERP"),
    Case("play_name_not_an_identifier", settings("""
        play: EMA Cross
        market: {symbol: BTCUSDT, exec: 15m}
        """), "value", "1:7", "EMA Cross"),
    # ---- features ----------------------------------------------------------------------------
    Case("feature_name_not_an_identifier", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          fast-ema: ema(close, 9)
        """), "name", "4:3", "fast-ema"),
    Case("unknown_timeframe_in_feature", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m, timeframes: {htf: 4h}}
        features:
          trend: ema(close, 200) @ daily
        """), "timeframe", "4:28", "daily"),
    Case("feature_timeframe_below_exec", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          quick: ema(close, 9) @ 5m
        """), "timeframe", "4:26", "5m"),
    Case("feature_uses_feature_of_other_timeframe", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m, timeframes: {htf: 4h}}
        features:
          fast: ema(close, 9)
          smooth: sma(fast, 3) @ htf
        """), "timeframe", "5:15", "fast"),
    Case("feature_cycle", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          a: ema(b, 9)
          b: sma(a, 3)
        """), "cycle", "4:3", "a"),
    Case("state_word_in_feature", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          sized: ema(close, 9) * position.size
        """), "state", "4:26", "position.size"),
    Case("syntax_error_in_quoted_feature", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          fast: "ema(close 9)"
        """), "syntax", "4:20", "9"),
    Case("indicator_length_not_written_out", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          n: sma(close, 10)
          smooth: ema(close, n)
        """), "type", "5:22", "n"),
    Case("macd_fast_not_shorter_than_slow", settings("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          m: macd(close, 26, 12, 9)
        """), "value", "4:6", "macd("),
    # ---- names and types ---------------------------------------------------------------------
    Case("unknown_name_did_you_mean", blocks("""
        block main:
          when flat and clsoe > fast:
            close
        """), "name", "12:19", "clsoe"),
    Case("unknown_function", blocks("""
        block main:
          when flat and hma(close, 9) > fast:
            close
        """), "name", "12:19", "hma("),
    Case("wrong_arity", blocks("""
        block main:
          when flat and ema(close) > fast:
            close
        """), "arity", "12:19", "ema("),
    Case("function_used_as_a_name", blocks("""
        block main:
          when flat and rsi > 70:
            close
        """), "name", "12:19", "rsi"),
    Case("multi_output_without_field", play("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          m: macd(close, 12, 26, 9)
        blocks: |
          block main:
            when long and m < 0:
              close
        """), "field", "7:19", "m <"),
    Case("and_on_numbers", blocks("""
        block main:
          when fast and 1:
            close
        """), "type", "12:10", "fast"),
    Case("condition_not_bool", blocks("""
        block main:
          when fast - slow:
            close
        """), "type", "12:10", "fast - slow"),
    Case("crosses_with_a_bool", blocks("""
        block main:
          when flat crosses_above slow:
            close
        """), "type", "12:10", "flat"),
    Case("crosses_with_trading_state", blocks("""
        block main:
          when long and close crosses_below position.entry:
            close
        """), "type", "12:39", "position.entry"),
    Case("trail_distance_zero", blocks("""
        block main:
          when flat:
            market buy qty 1
              trail 0
        """), "value", "14:15", "0"),
    Case("crosses_between_two_constants", blocks("""
        block main:
          when 30 crosses_above 20:
            close
        """), "type", "12:10", "30 crosses_above 20"),
    Case("price_is_a_bool", blocks("""
        block main:
          when flat:
            limit buy qty 1 at close > fast
        """), "type", "13:26", "close > fast"),
    Case("negative_offset_is_lookahead", blocks("""
        block main:
          when flat and close[-1] > close:
            close
        """), "lookahead", "12:19", "close[-1]"),
    Case("unknown_position_field", blocks("""
        block main:
          when long and position.pnl > 0:
            close
        """), "field", "12:19", "position.pnl"),
    # ---- actions -----------------------------------------------------------------------------
    Case("stop_loss_under_close", blocks("""
        block main:
          when long:
            close
              stop_loss low
        """), "attached", "14:9", "stop_loss"),
    Case("market_under_limit", blocks("""
        block main:
          when flat:
            limit buy qty 1 at close - atr
              market buy qty 1
        """), "attached", "14:9", "market"),
    Case("fill_outside_an_entry", blocks("""
        block main:
          when long:
            stop_loss fill - 2 * atr
        """), "fill", "13:17", "fill"),
    Case("fill_in_a_condition", blocks("""
        block main:
          when long and close > fill:
            close
        """), "fill", "12:27", "fill"),
    Case("risk_without_stop_loss", blocks("""
        block main:
          when flat:
            market buy risk 1%
              take_profit fill + atr
        """), "risk", "13:18", "risk 1%"),
    Case("duplicate_tag", blocks("""
        block main:
          when flat and fast > slow:
            limit buy qty 1 at close - atr as entry
          when flat and fast < slow:
            limit sell qty 1 at close + atr as entry
        """), "tag", "15:39", "as entry"),
    Case("cancel_unknown_tag", blocks("""
        block main:
          when flat:
            limit buy qty 1 at close - atr as entry
          when long:
            cancel entyr
        """), "tag", "15:7", "cancel entyr"),
    Case("case_after_otherwise", blocks("""
        block main:
          when long:
            close
          otherwise:
            cancel all
          when short:
            close
        """), "unreachable", "16:5", "when short"),
    Case("percent_of_position_on_an_entry", blocks("""
        block main:
          when flat:
            market buy 50% of position
        """), "size", "13:18", "50% of position"),
    Case("partial_close_over_100_percent", blocks("""
        block main:
          when long:
            partial_close 150%
        """), "value", "13:21", "150%"),
    Case("zero_percent_equity", blocks("""
        block main:
          when flat:
            market buy 0% equity
        """), "value", "13:18", "0%"),
    Case("negative_qty", blocks("""
        block main:
          when flat:
            market sell qty -0.5
        """), "value", "13:23", "-0.5"),
    Case("post_only_on_a_market_order", blocks("""
        block main:
          when flat:
            market buy qty 1 post_only
        """), "option", "13:24", "post_only"),
    Case("limit_without_at", blocks("""
        block main:
          when flat:
            limit buy qty 1 expire 3 bars
        """), "option", "13:7", "limit buy"),
    Case("expire_zero_bars", blocks("""
        block main:
          when flat:
            limit buy qty 1 at close expire 0 bars
        """), "value", "13:32", "expire 0 bars"),
    Case("two_time_in_force_options", blocks("""
        block main:
          when flat:
            limit buy qty 1 at close post_only ioc
        """), "option", "13:42", "ioc"),
    Case("duplicate_block_name", blocks("""
        block main:
          when flat:
            close
        block main:
          when long:
            close
        """), "block", "14:9", "main"),
    # ---- found in the language review ----------------------------------------------------------
    Case("empty_otherwise_at_the_end", blocks("""
        block main:
          when long:
            close
          otherwise:
        """), "syntax", "14:15", ""),
    Case("empty_when_before_the_next_yaml_key", blocks("""
        block main:
          when long:
        """) + "account: {equity: 100}\n", "syntax", "12:15", ""),
    Case("empty_when_in_the_middle", blocks("""
        block main:
          when long:
          when flat:
            close
        """), "syntax", "12:15", ""),
    Case("tab_in_blocks_indentation", HEAD + "  block main:\n    when flat:\n    \tclose\n", "indent", "13:5", "\t"),
    Case("tab_after_spaces_in_attached_line", blocks("""
        block main:
          when flat:
            market buy qty 1
        """) + "      \tstop_loss close - 100\n", "indent", "14:7", "\t"),
    Case("nan_equity", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 15m
        account:
          equity: .nan
        """), "value", "6:11", ".nan"),
    Case("infinite_tick", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 15m
        account:
          instrument: {tick: .inf}
        """), "value", "6:22", ".inf"),
    Case("leverage_in_quotes", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 15m
        account:
          leverage: '3'
        """), "type", "6:13", "'3'"),
    Case("play_without_a_name", settings("""
        play:
        market:
          symbol: BTCUSDT
          exec: 15m
        """), "value", "1:1", "play"),
    Case("negative_limit_price", blocks("""
        block main:
          when flat:
            limit buy qty 1 at -5
        """), "value", "13:26", "-5"),
    Case("negated_constant_take_profit", blocks("""
        block main:
          when long:
            take_profit -(1)
        """), "value", "13:19", "-(1)"),
    Case("constant_arithmetic_trail", blocks("""
        block main:
          when long:
            trail 1 - 3
        """), "value", "13:13", "1 - 3"),
    Case("negative_indicator_length", blocks("""
        block main:
          when close > ema(close, -3):
            close
        """), "value", "12:29", "-3"),
    Case("offset_with_an_exponent", blocks("""
        block main:
          when close[1e2] > 0:
            close
        """), "offset", "12:10", "close[1e2]"),
    Case("keyword_as_block_name", blocks("""
        block when:
          when flat:
            close
        """), "block", "11:9", "when"),
    Case("typo_of_a_feature_suggests_the_feature", blocks("""
        block main:
          when fsat > slow:
            close
        """), "name", "12:10", "fsat"),
    Case("cancel_typo_of_all", blocks("""
        block main:
          when flat:
            cancel al
        """), "tag", "13:7", "cancel al"),
    Case("upper_case_keyword", blocks("""
        block main:
          when flat AND long:
            close
        """), "syntax", "12:15", "AND"),
    Case("cancel_without_target", blocks("""
        block main:
          when flat:
            cancel
        """), "syntax", "13:13", ""),
    Case("number_without_leading_digit", blocks("""
        block main:
          when flat:
            market buy qty .5 * atr
        """), "syntax", "13:22", "."),
    Case("risk_without_percent", blocks("""
        block main:
          when flat:
            limit buy risk 1 at close
              stop_loss fill - atr
        """), "syntax", "13:22", "1"),
    Case("no_break_space", blocks("""
        block main:
          when flat:
            market buy qty\u00a01
        """), "syntax", "13:21", "\u00a0"),
    Case("feature_over_two_lines", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 15m
        features:
          fast: ema(close, 21) +
            sma(clsoe, 3)
        """), "syntax", "6:3", "fast"),
    Case("escape_in_a_quoted_feature", settings("""
        play: bad
        market:
          symbol: BTCUSDT
          exec: 15m
        features:
          fast: "ema(\\tclose, 3) + clsoe"
        """), "name", "6:28", "clsoe"),
    Case("blocks_line_indented_less_than_the_first", play("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        blocks: |
            block a:
              when flat:
                close
          block b:
            when flat:
              close
        """), "yaml", "7:3", "block b"),
    # ---- percent protection (PLAY-LANGUAGE.md 7.1) ------------------------------------------------
    Case("percent_subtracted_from_the_fill", blocks("""
        block main:
          when flat:
            market buy qty 1
              stop_loss fill - 2%
        """), "percent", "14:19", "fill - 2%"),
    Case("percent_added_to_the_position_entry", blocks("""
        block main:
          when long:
            take_profit position.entry + 3%
        """), "percent", "13:19", "position.entry + 3%"),
    Case("percent_subtracted_from_a_limit_price", blocks("""
        block main:
          when flat:
            limit buy qty 1 at close - 1%
        """), "percent", "13:26", "close - 1%"),
    Case("percent_stop_loss_of_100", blocks("""
        block main:
          when long:
            stop_loss 100%
        """), "value", "13:17", "100%"),
    Case("percent_trail_of_0", blocks("""
        block main:
          when flat:
            market sell qty 1
              trail 0%
        """), "value", "14:15", "0%"),
    # ---- habits of Pine, Python and JavaScript ------------------------------------------------------
    Case("single_equals_in_a_condition", blocks("""
        block main:
          when close = open:
            close
        """), "syntax", "12:16", "= open"),
    Case("pine_comment_at_the_end_of_a_line", blocks("""
        block main:
          when flat:
            market buy qty 1 // the first entry
        """), "syntax", "13:24", "// the first"),
    Case("pine_comment_on_its_own_line", blocks("""
        block main:
          // entries
          when flat:
            market buy qty 1
        """), "syntax", "12:5", "// entries"),
    Case("camel_case_stop_loss", blocks("""
        block main:
          when flat:
            market buy qty 1
              stopLoss fill - atr
        """), "syntax", "14:9", "stopLoss"),
    Case("camel_case_take_profit", blocks("""
        block main:
          when long:
            takeProfit close + atr
        """), "syntax", "13:7", "takeProfit"),
    Case("stop_loss_without_its_underscore", blocks("""
        block main:
          when long:
            stoploss close - atr
        """), "syntax", "13:7", "stoploss"),
    Case("capitalised_stop_loss", blocks("""
        block main:
          when long:
            StopLoss close - atr
        """), "syntax", "13:7", "StopLoss"),
    Case("pine_ta_namespace", blocks("""
        block main:
          when ta.rsi(close, 14) > 70:
            close
        """), "syntax", "12:10", "ta.rsi(close, 14)"),
    Case("unclosed_quote", play("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        features:
          fast: "ema(close, 9)
        blocks: |
          block main:
            when flat:
              close
        """), "yaml", "4:9", '"ema'),
]


def first_error(text: str) -> PlayError:
    with pytest.raises(PlayError) as info:
        compile_text(text, "bad.yml")
    return info.value


def test_the_table_is_big_and_ids_are_unique():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_reported_at_its_place(case: Case, snapshot):
    err = first_error(case.text)
    d = err.diagnostics[0]
    assert d.code == case.code
    assert f"{d.span.line}:{d.span.col}" == case.where
    line = case.text.splitlines()[d.span.line - 1]
    assert line[d.span.col - 1:].startswith(case.at), (line, case.at)
    if case.at == "":
        assert d.span.col == len(line) + 1  # just past the end of the line
    assert err.render() == snapshot


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rendering_has_location_source_line_and_caret(case: Case):
    err = first_error(case.text)
    d = err.diagnostics[0]
    lines = err.render().splitlines()
    assert lines[0].startswith(f"bad.yml:{d.span.line}:{d.span.col}: error[{d.code}]: ")
    gutter, source = lines[1].split(" | ", 1)
    assert gutter.strip() == str(d.span.line)
    full = case.text.splitlines()[d.span.line - 1].expandtabs(1)
    caret = lines[2].split(" | ", 1)[1].index("^")
    if len(full) <= SHOWN_WIDTH:
        assert source == full
        assert caret == d.span.col - 1
    else:  # a window of the line around the caret, marked where it is cut
        shown = source.removeprefix("... ").removesuffix(" ...")
        assert len(shown) == SHOWN_WIDTH and shown in full and source != shown
        assert source[caret] == full[d.span.col - 1]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_error_comes_with_a_hint(case: Case):
    err = first_error(case.text)
    assert all(d.hint for d in err.diagnostics), err.diagnostics
    assert "\nhint: " in err.render()


def test_every_diagnostic_is_reported_not_just_the_first():
    err = first_error(blocks("""
        block main:
          when flat and clsoe > 1:
            close
          when long:
            partial_close 150%
        """))
    assert [(d.code, str(d.span)) for d in err.diagnostics] == [("name", "12:19"), ("value", "15:21")]


def test_settings_errors_are_all_reported_in_file_order():
    err = first_error(settings("""
        play: bad
        market:
          symbol: btcusdt
          exec: 15m
        account:
          equity: 0
          leverage: lots
          fees: {maker: 0.1}
        """))
    assert [str(d.span) for d in err.diagnostics] == ["3:11", "6:11", "7:13", "8:17"]


def test_messages_name_what_was_found_and_what_was_expected():
    d = first_error(blocks("""
        block main:
          when flat:
            market buy qty 1 gtc
        """)).diagnostics[0]
    # The expected set is what the parser can really take after `qty 1`, not every token LALR
    # merged into that state (no ')', ',', ':' or '@').
    assert d.message == ("unexpected 'gtc'; expected an option ('at PRICE', 'limit PRICE', 'expire N bars', "
                         "'post_only', 'ioc', 'fok' or 'as TAG'), an operator or the end of the line")


def test_error_positions_follow_the_blocks_indentation_in_the_file():
    # The same mistake with the blocks indented by 4 in the YAML: the column moves with it.
    text = blocks("""
        block main:
          when flat
            close
        """).replace("\n  ", "\n    ")
    d = first_error(text).diagnostics[0]
    assert (d.span.line, d.span.col) == (12, 16)


# ---- the command line, end to end ---------------------------------------------------------------

def playdeck(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "playdeck.tui.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


GOOD = play("""
    play: good
    description: a tiny Play that compiles
    market:
      symbol: BTCUSDT
      exec: 15m
    features:
      fast: ema(close, 9)
      slow: ema(close, 21)
    blocks: |
      block main:
        when flat and fast crosses_above slow:
          market buy 10% equity
        when long and fast crosses_below slow:
          close
    """)


def test_cli_compile_error_exits_2_with_location_and_caret(tmp_path: Path):
    case = next(c for c in CASES if c.id == "crosses_with_trading_state")
    (tmp_path / "bad.yml").write_text(case.text)
    r = playdeck("compile", "bad.yml", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith(f"bad.yml:{case.where}: error[type]: ")
    assert "\n 12 |     when long and close crosses_below position.entry:\n" in r.stderr
    assert "\n    | " + " " * 38 + "^" * len("position.entry") + "\n" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_cli_shows_a_pine_habit_at_its_place_with_a_caret(tmp_path: Path, capsys):
    from playdeck.tui.cli import main

    case = next(c for c in CASES if c.id == "camel_case_stop_loss")
    path = tmp_path / "bad.yml"
    path.write_text(case.text)
    assert main(["compile", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        f"{path}:{case.where}: error[syntax]: unknown word 'stopLoss'; did you mean 'stop_loss'?",
        " 14 |         stopLoss fill - atr",
        "    |         ^^^^^^^^",
        "hint: write 'stop_loss': the words of a Play are lower case, with '_' between words",
    ]

def test_cli_check_prints_one_line_per_file_and_exits_2_if_any_fails(tmp_path: Path):
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "bad.yml").write_text(next(c for c in CASES if c.id == "missing_colon_after_when").text)
    r = playdeck("check", "good.yml", "bad.yml", "missing.yml", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("good.yml: ok (good: ")
    assert lines[1].startswith("bad.yml:12:14: error[syntax]: unexpected end of the line")
    assert lines[2] == "missing.yml: error[file]: no such file"
    assert "Traceback" not in r.stdout + r.stderr

    r = playdeck("check", "good.yml", "good.yml", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.count(": ok (") == 2


def test_cli_fmt_write_rewrites_once_then_reports_canonical(tmp_path: Path):
    messy = GOOD.replace("when flat and fast crosses_above slow:", "when (flat) and ((fast crosses_above slow)):")
    messy = messy.replace("market buy 10% equity", "market   buy 10% equity")
    path = tmp_path / "good.yml"
    path.write_text(messy)
    r = playdeck("fmt", "--write", "good.yml", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, "good.yml: formatted\n")
    formatted = path.read_text()
    assert "when flat and fast crosses_above slow:" in formatted
    assert "market buy 10% equity" in formatted
    assert compile_file(path).ir == compile_text(GOOD).ir
    r = playdeck("fmt", "--write", "good.yml", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, "good.yml: already canonical\n")
    assert path.read_text() == formatted


def test_a_file_that_is_not_utf8_is_reported_at_the_byte(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_bytes(b"play: bad\ndescription: caf\xe9 au lait\nmarket: {symbol: BTCUSDT, exec: 15m}\n" + BLOCKS_OK.encode())
    with pytest.raises(PlayError) as info:
        compile_file(path)
    d = info.value.diagnostics[0]
    assert (d.code, str(d.span), d.message) == ("file", "2:17", "byte 0xe9 is not UTF-8 text")
    assert info.value.render().splitlines()[1] == " 2 | description: caf\ufffd au lait"


def test_a_play_named_like_a_yaml_boolean_keeps_its_name():
    # YAML 1.1 reads `off` as false; the spec's identifier rule says it is a name
    assert compile_text(settings("play: off\nmarket: {symbol: BTCUSDT, exec: 15m}\n")).ir.name == "off"


def test_a_lone_cr_breaks_lines_for_error_positions_as_for_yaml():
    d = first_error("play: bad\rmarket: b\x1b\n").diagnostics[0]
    assert (d.code, str(d.span)) == ("char", "2:10")


def test_yaml_aliases_are_converted_once_and_shared_not_expanded():
    # an alias is the value its anchor made, not a copy (the bound on what aliases may repeat in
    # all, which refuses a "billion laughs", is in tests/dsl/test_yaml_reading.py)
    from playdeck.dsl.source import parse_play_text

    levels = ["a: &a [x, x, x]"] + [f"{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}]"
                                     for k in range(5)]
    root = parse_play_text("\n".join(levels) + "\n").root.value
    top = root["f"].value.value
    assert top[0] is top[1] is top[2] is root["e"].value


def test_an_unclosed_parenthesis_on_the_last_line_points_at_its_end_not_past_the_file():
    err = first_error(blocks("""
        block main:
          when flat:
            market buy qty (1
        """))
    d = err.diagnostics[0]
    assert (d.code, str(d.span)) == ("syntax", "13:24")
    assert d.message.startswith("unexpected end of the text; expected")
    assert "^" in err.render()


def test_a_tagged_block_value_is_reported_at_its_start_in_one_line():
    d = first_error(play("""
        play: bad
        market: {symbol: BTCUSDT, exec: 15m}
        blocks: !!int |
          block main:
            when flat:
              close
        """)).diagnostics[0]
    assert (d.code, str(d.span), d.message) == ("yaml", "3:9", "'block main:...' is not a valid int value")


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        pytest.param(blocks("block main\n  when flat:\n    close\n"), "expected ':'", "'block NAME:', with its ':'",
                     id="block line without its colon"),
        pytest.param(blocks("block main:\n  when flat:\n    close > open\n"), "unexpected '>'",
                     "the close action; a comparison such as 'close > open' goes after 'when'",
                     id="a comparison written as an action line"),
        pytest.param(blocks("block main:\n  when ema(position.upnl, 3) > 0:\n    close\n"), "trading state",
                     "e.g. close, (high + low) / 2, a feature", id="an indicator over trading state"),
        pytest.param(blocks("block main:\n  when flat:\n    limit buy qty 1 at close as x as y\n"),
                     "'as TAG' is given twice", "give 'as TAG' once", id="two tags"),
        pytest.param(blocks("block main:\n  when long:\n    close as x\n"),
                     "'as TAG' is not an option of close", "close takes 'at PRICE'", id="a tag on close"),
    ],
)
def test_hints_name_the_mistake_made(text: str, message: str, hint: str):
    d = first_error(text).diagnostics[0]
    assert message in d.message and hint in d.hint, (d.message, d.hint)


def test_one_mistake_read_from_several_places_is_reported_once():
    err = first_error(blocks("""
        block main:
          when flat and k > 1:
            close
          when long and k > 2:
            close
        """).replace("  atr: atr(14)\n", "  atr: atr(14)\n  k: 5\n"))
    assert [d.message for d in err.diagnostics].count(
        "feature 'k' is a constant (float); a feature is a series computed from market data") == 1


def test_an_empty_file_shows_its_empty_first_line_and_a_caret():
    lines = first_error("").render().splitlines()
    assert lines[0].startswith("bad.yml:1:1: error[yaml]: the file is empty")
    assert lines[1:3] == [" 1 | ", "   | ^"]
    assert lines[3].startswith("hint: ")


def test_fmt_quotes_text_that_would_read_back_as_a_number(tmp_path: Path):
    path = tmp_path / "d.yml"
    path.write_text(settings('play: d\ndescription: "2e-4"\nmarket: {symbol: BTCUSDT, exec: 15m}\n'))
    compiled = compile_file(str(path))
    text = format_play(compiled.source, list(compiled.features), compiled.blocks)
    assert "description: '2e-4'" in text
    assert compile_text(text, "d.yml").ir == compiled.ir


def test_a_feature_starting_with_close_gets_the_chained_comparison_hint():
    err = first_error(blocks("block main:\n  when flat:\n    close\n").replace(
        "  atr: atr(14)\n", "  atr: atr(14)\n  k: close > open > high\n"))
    assert err.diagnostics[0].hint == "comparisons do not chain: write 'a < b and b < c'"


def test_fmt_keeps_a_play_named_like_a_yaml_boolean(tmp_path: Path):
    path = tmp_path / "on.yml"
    path.write_text(settings("play: on\nmarket: {symbol: BTCUSDT, exec: 15m}\n"))
    compiled = compile_file(str(path))
    text = format_play(compiled.source, list(compiled.features), compiled.blocks)
    assert text.startswith("play: on\n")
    assert compile_text(text, "on.yml").ir == compiled.ir
