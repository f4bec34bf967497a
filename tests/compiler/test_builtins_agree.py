"""The compiler's signature of each built-in (arguments, implicit columns, fields, warm-up) is the one
registry; the runtime binds an implementation to each by name. These check that every implementation
takes the arguments its signature gives it and has its first values where the signature says."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from playdeck.compiler.builtins import INDICATORS
from playdeck.runtime.data import indicators
from playdeck.runtime.data.indicators import IMPLEMENTATIONS, bind
from playdeck.runtime.data.synthetic import generate

PARAMS = {"sma": (7,), "ema": (9,), "wma": (5,), "rma": (14,), "rsi": (14,), "atr": (14,), "stdev": (20,),
          "highest": (10,), "lowest": (10,), "roc": (12,), "macd": (12, 26, 9), "bbands": (20, 2.0),
          "vwap": (30,), "vwap_session": (), "pivot_high": (3, 2), "pivot_low": (3, 2)}


def test_every_signature_is_bound_to_the_function_of_its_name_and_has_params_here():
    assert set(INDICATORS) == set(IMPLEMENTATIONS) == set(PARAMS)
    for name in INDICATORS:
        assert IMPLEMENTATIONS[name] is getattr(indicators, name)


def test_a_signature_without_an_implementation_stops_the_import_naming_it():
    sigs = dict(INDICATORS, zigzag=INDICATORS["sma"], kama=INDICATORS["ema"])
    with pytest.raises(ImportError, match="built-in indicators kama, zigzag have a signature in compiler/builtins.py"):
        bind(sigs, vars(indicators))
    with pytest.raises(ImportError, match="built-in indicator sma has a signature"):
        bind(INDICATORS, {k: v for k, v in vars(indicators).items() if k != "sma"})
    with pytest.raises(ImportError, match="sma"):
        bind(INDICATORS, dict(vars(indicators), sma=None))  # a name that is not a function is none


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_the_implementation_takes_the_arguments_of_its_signature(name: str):
    # fn(*implicit_columns, *series_args, *params): the first parameters are named after the columns
    sig = INDICATORS[name]
    params = list(inspect.signature(IMPLEMENTATIONS[name]).parameters)
    assert len(params) == len(sig.implicit) + sig.series_args + len(sig.params) == sig.arity + len(sig.implicit)
    assert tuple(params[:len(sig.implicit)]) == sig.implicit


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_signature_fields_and_warmup_agree_with_the_implementation(name: str):
    sig, fn = INDICATORS[name], IMPLEMENTATIONS[name]
    params = PARAMS[name]
    bars = generate(2_000, seed=4)
    cols = [bars.column(c) for c in sig.implicit] + [bars.close] * sig.series_args
    out = fn(*cols, *params)
    assert (tuple(out) if isinstance(out, dict) else ()) == sig.fields  # the outputs are the fields, in order
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
    sig, fn = INDICATORS[name], IMPLEMENTATIONS[name]
    params = PARAMS[name]
    out = fn(generate(2_000, seed=4).close, *params)
    for field in sig.fields:
        assert int(np.flatnonzero(~np.isnan(out[field]))[0]) == sig.first_value(params, field), field


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_every_builtin_on_a_prefix_is_bit_for_bit_the_prefix_of_the_full_series(name: str):
    # no lookahead even in the last digit, for lengths around the blocks of the recurrences
    sig, fn = INDICATORS[name], IMPLEMENTATIONS[name]
    bars = generate(1_500, seed=9)

    def on(n: int) -> list[np.ndarray]:
        cols = [bars.column(c)[:n] for c in sig.implicit] + [bars.close[:n]] * sig.series_args
        out = fn(*cols, *PARAMS[name])
        return list(out.values()) if isinstance(out, dict) else [out]

    full = on(1_500)
    for k in (60, 128, 129, 700):
        for got, want in zip(on(k), full):
            np.testing.assert_array_equal(got, want[:k])
