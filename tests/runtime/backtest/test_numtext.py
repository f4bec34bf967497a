"""The column formatters give, value for value, the text of the scalar formats they replace: `num`
(the files' numbers), `'%.6f'` (equity), `str` (bars) and `report.iso` (times), and csv.writer's
quoting for text. The fast paths round with numpy; the near-ties, extremes, NaN and infinities go to
the scalar. These properties are what keeps the artifact files byte-identical."""
from __future__ import annotations

import csv
import io

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from playdeck.runtime.backtest.csvtext import CRLF, join_rows, text_column
from playdeck.runtime.backtest.numtext import (fixed_column, int_column, iso_column, matrix_strings, num,
                                               num_column)
from playdeck.runtime.backtest.report import iso
from playdeck.runtime.data.csv_import import MAX_EPOCH_MS


def decimal_ties(digits: int) -> st.SearchStrategy[float]:
    """Decimals with one more significant digit than the format keeps, ending in 5: halfway between
    two outputs as written, so only the exact binary value decides the rounding."""
    return st.builds(lambda k, e, sign: sign * float(f"{k * 10 + 5}e{e}"),
                     st.integers(10 ** (digits - 1), 10 ** digits - 1), st.integers(-30, 30), st.sampled_from([1, -1]))


# Prices, sizes and fees as runs make them, and every kind of float besides.
floats = st.one_of(
    st.floats(),  # any double: subnormals, +-0, NaN, +-inf, the largest
    st.floats(min_value=-1e6, max_value=1e6),
    st.floats(min_value=1e-15, max_value=1e-3),  # tiny fees
    st.floats(min_value=1e15, max_value=1e35),  # huge
    st.integers(-10 ** 17, 10 ** 17).map(float),  # whole numbers
    st.integers(-10 ** 9, 10 ** 9).map(lambda k: k / 1000),  # on a 0.001 step: 0.30000000000000004 and kin
    decimal_ties(10),
    st.integers(0, 10 ** 8).map(lambda k: (2 * k + 1) / 128),  # exact binary ties of %.6f (7812.5e-6)
)


@settings(max_examples=500)
@given(st.lists(st.one_of(st.none(), floats), max_size=40))
@example([0.00001, 100.02, 25.0, 0.30000000000000004, None, -0.0, 0.0, float("nan"), float("inf"),
          -float("inf"), 1.7976931348623157e308, 5e-324, 9999999999.5, 9999999999.7, 99999.999995, 1e22, 1e-13])
def test_num_column_is_num_of_each_value(values):
    assert matrix_strings(num_column(values)) == [num(v) for v in values]


@settings(max_examples=500)
@given(st.lists(floats, max_size=40))
@example([0.0078125, 0.0234375, -1e-9, -0.0, 2.0 ** 52 / 1e6, 4503599627.3705, 1e300, float("nan"), 10000.0])
def test_fixed_column_is_printf_of_each_value(values):
    assert matrix_strings(fixed_column(values, 6)) == ["%.6f" % v for v in values]


@given(st.lists(st.integers(-10 ** 18, 10 ** 18), max_size=40))
def test_int_column_is_str_of_each_integer(values):
    assert matrix_strings(int_column(values)) == [str(v) for v in values]


@given(st.lists(st.integers(0, MAX_EPOCH_MS - 1), max_size=40))
@example([0, 951782400000, 4102444799999, 1735689600999])  # 1970, 2000-02-29, the last ms of 2099, a ms cut off
def test_iso_column_is_iso_of_each_time(values):
    assert matrix_strings(iso_column(values)) == [iso(v) for v in values]


field = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=12)


@given(st.lists(st.tuples(field, field, field), min_size=1, max_size=20))
@example([("entry, retry", 'say "hi"', "line\r\nend"), ("", "é", " ")])
def test_text_rows_are_what_csv_writer_writes(rows):
    expected = io.StringIO(newline="")
    csv.writer(expected).writerows(rows)
    columns = [text_column([r[k] for r in rows]) for k in range(3)]
    assert join_rows(columns, CRLF).decode("utf-8") == expected.getvalue()


def test_columns_of_no_rows_join_to_nothing():
    assert join_rows([int_column([]), iso_column([]), num_column([]), text_column([])], CRLF) == b""


def test_a_column_is_the_same_cut_in_chunks_or_whole():
    # the writers format CHUNK rows at a time: each chunk's widths differ, the text must not
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.integers(-8, 12, 500), [np.nan, -0.0]])
    whole = matrix_strings(num_column(values))
    assert sum((matrix_strings(num_column(values[k:k + 37])) for k in range(0, len(values), 37)), []) == whole
