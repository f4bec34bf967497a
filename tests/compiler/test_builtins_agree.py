"""The compiler's view of each built-in (arity, fields, warm-up) matches the runtime's numbers."""
from __future__ import annotations

import numpy as np
import pytest

from playdeck.compiler.builtins import INDICATORS
from playdeck.runtime.data.indicators import BUILTINS
from playdeck.runtime.data.synthetic import generate

PARAMS = {"sma": (7,), "ema": (9,), "wma": (5,), "rma": (14,), "rsi": (14,), "atr": (14,), "stdev": (20,),
          "highest": (10,), "lowest": (10,), "roc": (12,), "macd": (12, 26, 9), "bbands": (20, 2.0),
          "vwap": (30,), "vwap_session": (), "pivot_high": (3, 2), "pivot_low": (3, 2)}


def test_every_compiler_builtin_has_a_runtime_implementation_and_vice_versa():
    assert set(INDICATORS) == set(BUILTINS) == set(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_signature_and_warmup_agree(name: str):
    sig, spec = INDICATORS[name], BUILTINS[name]
    assert sig.implicit == tuple(spec.implicit)
    assert sig.fields == tuple(spec.fields)
    assert sig.series_args == sum(1 for k in spec.inputs if k == "series")
    params = PARAMS[name]
    bars = generate(2_000, seed=4)
    cols = [bars.column(c) for c in sig.implicit] + [bars.close] * sig.series_args
    out = spec.fn(*cols, *params)
    arrays = list(out.values()) if isinstance(out, dict) else [out]
    # the compiler's warm-up is when *every* output has a value (the readiness gate's view)
    first = max(int(np.flatnonzero(~np.isnan(a))[0]) for a in arrays)
    if name.startswith("pivot"):
        assert first >= sig.warmup(*params)  # a pivot needs one to exist; the warm-up is the earliest
    else:
        assert first == sig.warmup(*params)


@pytest.mark.parametrize("name", sorted(n for n in PARAMS if INDICATORS[n].fields))
def test_each_output_of_a_multi_output_builtin_starts_where_the_compiler_says(name: str):
    # `macd(...).macd` trades from the line's first value, not from the signal line's
    sig, spec = INDICATORS[name], BUILTINS[name]
    params = PARAMS[name]
    out = spec.fn(generate(2_000, seed=4).close, *params)
    for field in sig.fields:
        assert int(np.flatnonzero(~np.isnan(out[field]))[0]) == sig.first_value(params, field), field


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_every_builtin_on_a_prefix_is_bit_for_bit_the_prefix_of_the_full_series(name: str):
    # no lookahead even in the last digit, for lengths around the blocks of the recurrences
    sig, spec = INDICATORS[name], BUILTINS[name]
    bars = generate(1_500, seed=9)

    def on(n: int) -> list[np.ndarray]:
        cols = [bars.column(c)[:n] for c in sig.implicit] + [bars.close[:n]] * sig.series_args
        out = spec.fn(*cols, *PARAMS[name])
        return list(out.values()) if isinstance(out, dict) else [out]

    full = on(1_500)
    for k in (60, 128, 129, 700):
        for got, want in zip(on(k), full):
            np.testing.assert_array_equal(got, want[:k])
