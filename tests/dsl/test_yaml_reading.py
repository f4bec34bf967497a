"""Reading a Play's YAML: numbers as YAML 1.2 reads them, and bounds on nesting and aliases that
turn a crash (RecursionError) or an alias bomb into a `file:line:col` error with a hint."""
from __future__ import annotations

import tracemalloc

import pytest

from playdeck.compiler import compile_text
from playdeck.dsl import source
from playdeck.dsl.diagnostics import PlayError
from playdeck.dsl.fmt import format_play
from playdeck.dsl.source import MAX_ALIASED_VALUES, MAX_YAML_DEPTH, parse_play_text

BLOCKS = "blocks: |\n  block main:\n    when flat:\n      close\n"


def play(account: str = "", extra: str = "", description: str = "") -> str:
    """Line 1 `play`, 2 `market`, then `description` and `account` when given, `extra` and the blocks."""
    return ("play: t\nmarket: {symbol: BTCUSDT, exec: 15m}\n" + (f"description: {description}\n" if description else "")
            + (f"account:\n  {account}\n" if account else "") + extra + BLOCKS)


def error(text: str):
    with pytest.raises(PlayError) as info:
        compile_text(text, "t.yml")
    return info.value.diagnostics[0]


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request, monkeypatch):
    """Run on both parsers: libyaml when PyYAML has it, and PyYAML's own (what a machine without
    libyaml uses, and what describes a broken file)."""
    if request.param == "pure-python":
        monkeypatch.setattr(source, "_FAST_PARSER", None)
    elif source._FAST_PARSER is None:
        pytest.skip("this PyYAML has no libyaml")
    return request.param


# ---- numbers -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "value"), [
    ("0x10", 16), ("0o17", 15), ("012", 12), ("10000", 10000), ("+5", 5), ("2.5e3", 2500), ("1e4", 10000),
    ("2.", 2), (".5", 0.5), ("0xff", 255),
])
def test_yaml_1_2_numbers_are_numbers(written: str, value: float, parser):
    assert compile_text(play(f"equity: {written}"), "t.yml").ir.account.equity == value


@pytest.mark.parametrize(("written", "message", "hint"), [
    ("1:30", "'account.equity' must be a number, not 1:30: a value with ':' in it is not a number",
     "write the number itself (YAML 1.1 would read 1:30 as 90, in base 60); quote a value with ':' where you mean text"),
    ("1:02:03.5", "'account.equity' must be a number, not 1:02:03.5: a value with ':' in it is not a number",
     "write the number itself (YAML 1.1 would read 1:02:03.5 as 3723.5, in base 60); quote a value with ':' where "
     "you mean text"),
    ("1_000", "'account.equity' must be a number, not the text '1_000'",
     "write it as a plain decimal number: 1000 (a Play reads YAML 1.2, where 1_000 is text; YAML 1.1 read it as 1000)"),
    ("0b101", "'account.equity' must be a number, not the text '0b101'",
     "write it as a plain decimal number: 5 (a Play reads YAML 1.2, where 0b101 is text; YAML 1.1 read it as 5)"),
    ("'1:30'", "'account.equity' must be a number, not the text '1:30'",
     "write it as a plain decimal number: 90 (a Play reads YAML 1.2, where 1:30 is text; YAML 1.1 read it as 90)"),
    ("'12'", "'account.equity' must be a number, not the text '12'",
     "remove the quotes: a quoted value is text; write 12 (without the key it is 10000)"),
])
def test_yaml_1_1_numbers_are_text_and_the_error_says_what_to_write(written: str, message: str, hint: str, parser):
    d = error(play(f"equity: {written}"))
    assert (d.code, str(d.span), d.message, d.hint) == ("type", "4:11", message, hint)


@pytest.mark.parametrize("written", ["1" + "0" * 5000, "-" + "0" * 5000 + "7" * 5000, "0x" + "f" * 5000])
def test_an_integer_of_thousands_of_digits_is_not_finite_not_a_crash(written: str):
    d = error(play(f"equity: {written}"))
    assert (d.code, str(d.span)) == ("value", "4:11")
    assert d.message == f"'account.equity' is {written[:20]}...; it must be a finite number"


@pytest.mark.parametrize(("written", "message"), [
    ("1_" + "0" * 400, "'account.equity' must be a number, not the text '1_000000000000000000...'"),
    ("0b1" + "0" * 1100, "'account.equity' must be a number, not the text '0b100000000000000000...'"),
    ("1" + ":00" * 300, "'account.equity' must be a number, not 1:00:00:00:00:00:00:...: a value with ':' in it is "
     "not a number"),
])
def test_a_yaml_1_1_number_past_any_float_is_text_with_a_short_message_not_a_crash(written: str, message: str):
    # YAML 1.1 reads each as an integer too large for a float; the hint cannot offer its value
    d = error(play(f"equity: {written}"))
    assert (d.code, str(d.span), d.message) == ("type", "4:11", message)
    assert "plain decimal number" not in d.hint


def test_text_that_looks_like_deep_yaml_in_a_number_setting_is_only_text():
    d = error(play("equity: '" + "[" * 5000 + "'"))
    assert (d.code, str(d.span), d.message) == ("type", "4:11", "'account.equity' must be a number, not the text "
                                                "'[[[[[[[[[[[[[[[[[[[[...'")


def test_text_that_reads_as_a_number_stays_text_through_fmt_and_base_60_text_needs_no_quotes():
    for description, text in (("'0x10'", "0x10"), ('"0o17"', "0o17"), ("1:30", "1:30"), ("1_000", "1_000")):
        compiled = compile_text(play(description=description), "t.yml")
        assert compiled.ir.description == text
        out = format_play(compiled.source, list(compiled.features), compiled.blocks)
        assert compile_text(out, "t.yml").ir == compiled.ir, out
    out = format_play(*(lambda c: (c.source, list(c.features), c.blocks))(compile_text(play(description="'0x10'"))))
    assert "description: '0x10'" in out  # quoted: plain 0x10 would read back as 16


# ---- nesting -----------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 500, 100_000])
def test_flow_lists_nested_too_deep_are_an_error_at_the_first_bracket_too_many(depth: int, parser):
    d = error(play(extra="extra: " + "[" * depth + "]" * depth + "\n"))
    # the Play's mapping is the first level, so the 32nd bracket (column 7 + 32) opens the 33rd
    assert (d.code, str(d.span)) == ("yaml", f"3:{7 + MAX_YAML_DEPTH}")
    assert d.message == f"this value nests more than {MAX_YAML_DEPTH} levels deep"
    assert d.hint.startswith("a Play's settings nest three levels")


def test_nesting_up_to_the_limit_is_read():
    depth = MAX_YAML_DEPTH - 1  # the Play's own mapping is the first level
    root = parse_play_text("extra: " + "[" * depth + "1" + "]" * depth + "\n").root
    value = root.value["extra"].value
    for _ in range(depth - 1):
        value = value.value[0]
    assert value.value[0].value == 1


def test_block_mappings_nested_500_deep_are_an_error_at_the_key_too_deep(parser):
    nested = "".join("  " * i + f"k{i}:\n" for i in range(500)) + "  " * 500 + "v\n"
    d = error(play(extra=nested))
    assert (d.code, str(d.span), d.message) == (
        "yaml", f"{3 + MAX_YAML_DEPTH}:{2 * MAX_YAML_DEPTH + 1}",
        f"this value nests more than {MAX_YAML_DEPTH} levels deep")


# ---- aliases -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "where", "anchored"), [
    ("extra: &r [*r]\n", "3:12", 3),
    ("extra: &m {a: 1, b: [2, *m]}\n", "3:25", 3),
    ("extra: &m\n  a: 1\n  b: *m\n", "5:6", 3),
])
def test_an_alias_inside_the_value_it_names_is_an_error_at_the_alias(extra: str, where: str, anchored: int, parser):
    d = error(play(extra=extra))
    name = extra.split("&")[1][0]
    assert (d.code, str(d.span)) == ("yaml", where)
    assert d.message == f"alias '*{name}' is inside the value it names (anchored on line {anchored}), which would never end"
    assert d.hint == "write the value out instead of the alias"


def billion_laughs() -> str:
    lines = ['lol0: &lol0 "lol"']
    lines += [f"lol{k}: &lol{k} [{', '.join([f'*lol{k - 1}'] * 10)}]" for k in range(1, 10)]
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_is_refused_at_the_alias_that_passes_the_bound_without_expanding_it(parser):
    # sizes are counted, never expanded: lol3 is 1,111 values, so the 8th alias of lol4 passes 10,000
    tracemalloc.start()
    try:
        d = error(play(extra=billion_laughs()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert MAX_ALIASED_VALUES == 10_000
    repeated_before_lol4 = 10 * 1 + 10 * 11 + 10 * 111  # the aliases of lol1, lol2 and lol3
    nth = next(n for n in range(1, 11) if repeated_before_lol4 + n * 1111 > MAX_ALIASED_VALUES)
    assert nth == 8
    assert (d.code, str(d.span)) == ("yaml", f"7:{14 + (nth - 1) * 7}")
    assert d.message == "aliases repeat more than 10,000 values by here (an alias of an alias multiplies them)"
    assert d.hint == "write the values out; a Play needs few aliases, and none of aliases"
    assert peak < 5_000_000  # bytes: the bomb would be a billion strings


def test_an_alias_to_a_setting_is_the_same_value_and_reads_like_it():
    text = play().replace("market: {symbol: BTCUSDT, exec: 15m}", "market: &m {symbol: BTCUSDT, exec: 15m}")
    root = parse_play_text(text + "other: *m\n").root.value
    assert root["other"].value is root["market"].value
    assert compile_text(play(account="fees: &f {maker: 0.0001, taker: 0.0004}")).ir.account.maker_fee == 0.0001


@pytest.mark.parametrize(("extra", "where", "message"), [
    ("a: *nope\n", "3:4", "alias '*nope' names no anchor: '&nope' is not set above it"),
    ("a: &x 1\nb: &x 2\n", "4:4", "anchor '&x' is set twice (first on line 3)"),
    ("? [a, b]\n: 1\n", "3:3", "a key must be a plain word, not a list or a mapping"),
    ("---\nplay: u\n", "3:1", "a Play is one YAML document; a second one starts here"),
])
def test_alias_anchor_key_and_document_mistakes_are_errors_at_their_place(extra: str, where: str, message: str, parser):
    d = error(play(extra=extra))
    assert (d.code, str(d.span), d.message) == ("yaml", where, message)
    assert d.hint
