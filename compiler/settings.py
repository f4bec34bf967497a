"""Check the YAML settings of a Play: known keys, required keys, value types and ranges.

Each problem names the key and points at its line. Defaults are applied here, once.
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Any

import attrs

from playdeck.dsl.diagnostics import Diagnostic, shorten
from playdeck.dsl.source import PlaySource, YEntry, YValue, reads_as_number, yaml_1_1_number
from playdeck.dsl.vocabulary import INTRABAR_MODELS, TIMEFRAMES, is_multiple, is_symbol, tf_minutes

from .ir import Account, Market

IDENT = re.compile(r"^[a-z][a-z0-9_]*$")

ROOT_KEYS = {"play": True, "description": False, "market": True, "account": False, "features": False,
             "blocks": True}
MARKET_KEYS = {"symbol": True, "exec": True, "timeframes": False}
ACCOUNT_KEYS = {"equity": False, "leverage": False, "fees": False, "slippage_bps": False,
                "intrabar": False, "instrument": False, "mmr": False, "funding": False}
FEE_KEYS = {"maker": False, "taker": False}
INSTRUMENT_KEYS = {"tick": False, "qty_step": False, "min_qty": False}
DEFAULTS = {"equity": 10000.0, "leverage": 1.0, "maker": 0.0002, "taker": 0.00055, "slippage_bps": 0.0,
            "intrabar": "worst_case", "tick": 0.1, "qty_step": 0.001, "min_qty": 0.001,
            # Bybit's first risk-limit tier for BTCUSDT, and its baseline funding rate per 8 hours (7.3, 7.4)
            "mmr": 0.005, "funding": 0.0001}


class SettingsCheck:
    def __init__(self, src: PlaySource):
        self.src = src
        self.diags: list[Diagnostic] = []

    def error(self, code: str, message: str, span, hint: str = "") -> None:
        self.diags.append(Diagnostic(code, message, span, hint))

    def keys(self, where: str, m: YValue, allowed: dict[str, bool], owner: YEntry | None = None) -> dict[str, YEntry]:
        """Report unknown and missing keys of mapping `m` (named `where`); return its entries.

        A missing key is reported at the key that owns the mapping (`market:`), not at whichever
        key happens to come first inside it."""
        entries: dict[str, YEntry] = m.value
        for key, e in entries.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(allowed)
                self.error("unknown-key", f"unknown key '{where}{key}'", e.key_span, hint)
        for key, required in allowed.items():
            if required and key not in entries:
                self.error("missing-key", f"missing required key '{where}{key}'",
                           owner.key_span if owner is not None else m.span,
                           f"add '{key}:' to {where.rstrip('.') or 'the top level'}")
        return entries

    def mapping(self, e: YEntry, name: str, empty_ok: bool = False) -> YValue | None:
        if empty_ok and e.value.value is None:  # `account:` with nothing under it: every default
            return attrs.evolve(e.value, value={})
        if not e.value.is_map:
            self.error("type", f"'{name}' must be a mapping of keys, not {_kind(e.value.value)}", e.value.span,
                       "write its keys indented on the lines below it, or as {key: value, ...}")
            return None
        return e.value

    def number(self, entries: dict[str, YEntry], key: str, name: str, *, low: float, high: float,
               low_open: bool = False) -> float:
        if key not in entries:
            return DEFAULTS[key]
        e = entries[key]
        v = e.value.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            old = yaml_1_1_number(v) if isinstance(v, str) and e.value.style is None and ":" in v else None
            if old is not None:
                self.error("type", f"'{name}' must be a number, not {shorten(v)}: a value with ':' in it is not "
                           "a number", e.value.span, f"write the number itself (YAML 1.1 would read "
                           f"{shorten(v)} as {_plain(old)}, in base 60); quote a value with ':' where you mean text")
            else:
                self.error("type", f"'{name}' must be a number, not {_kind(v)}", e.value.span,
                           _number_hint(v, DEFAULTS[key], e.value.style))
            return DEFAULTS[key]
        try:
            v = float(v)
        except OverflowError:  # an integer of hundreds of digits
            v = math.inf
        if not math.isfinite(v):
            raw = e.value.raw or str(v)
            shown = raw if len(raw) <= 24 else raw[:20] + "..."
            self.error("value", f"'{name}' is {shown}; it must be a finite number", e.value.span,
                       f"write a number between {low:g} and {high:g}; without the key it is {DEFAULTS[key]:g}")
            return DEFAULTS[key]
        if not ((low < v if low_open else low <= v) and v <= high):
            lo = f"more than {low:g}" if low_open else f"at least {low:g}"
            self.error("value", f"'{name}' is {v:g}; it must be {lo} and at most {high:g}", e.value.span,
                       f"without the key it is {DEFAULTS[key]:g}")
        return v

    def rate(self, entries: dict[str, YEntry], key: str, name: str, *, low: float, high: float) -> float:
        """A rate written as a number (0.0001) or a percentage ('0.01%', which YAML reads as text)."""
        e = entries.get(key)
        if e is not None and isinstance(e.value.value, str):
            text = e.value.value.strip()
            number = text[:-1].strip() if text.endswith("%") else None
            try:
                v = float(number) / 100.0 if number and number.isascii() else math.nan
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                self.error("type", f"'{name}' must be a number or a percentage, not {text!r}", e.value.span,
                           f"write e.g. {DEFAULTS[key] * 100:g}% or {DEFAULTS[key]:g}")
                return DEFAULTS[key]
            if not low <= v <= high:
                self.error("value", f"'{name}' is {text}; it must be between {low * 100:g}% and {high * 100:g}%",
                           e.value.span, f"without the key it is {DEFAULTS[key] * 100:g}%")
            return v
        return self.number(entries, key, name, low=low, high=high)

    def string(self, entries: dict[str, YEntry], key: str, name: str) -> str | None:
        e = entries.get(key)
        if e is None or e.value.value is None and key == "description":  # `description:` left empty
            return None
        if not isinstance(e.value.value, str):
            self.error("type", f"'{name}' must be text, not {_kind(e.value.value)}", e.value.span,
                       "put it in quotes to make it text")
            return None
        return e.value.value

    def timeframe(self, e: YEntry, name: str) -> str | None:
        v = e.value.value
        if not isinstance(v, str):
            self.error("type", f"'{name}' must be a timeframe, not {_kind(v)}", e.value.span,
                       "timeframes are " + " ".join(TIMEFRAMES))
            return None
        if v not in TIMEFRAMES:
            self.error("timeframe", f"'{name}' is {shorten(v)!r}, not a timeframe", e.value.span,
                       "timeframes are " + " ".join(TIMEFRAMES))
            return None
        return v


def _number_hint(v: Any, default: float, style: str | None = None) -> str:
    if isinstance(v, str) and style in ("'", '"') and reads_as_number(v.strip()):
        return f"remove the quotes: a quoted value is text; write {v.strip()} (without the key it is {default:g})"
    old = yaml_1_1_number(v.strip()) if isinstance(v, str) else None
    if old is not None and math.isfinite(old):  # 1_000, 0b101: numbers in YAML 1.1, text in YAML 1.2
        return (f"write it as a plain decimal number: {_plain(old)} (a Play reads YAML 1.2, where "
                f"{shorten(v.strip())} is text; YAML 1.1 read it as {_plain(old)})")
    return f"write a number; without the key it is {default:g}"


def _plain(v: float) -> str:
    """A number as a person writes it: 1000, 3723.5, 1e+20."""
    return str(v) if isinstance(v, int) and abs(v) < 10**15 else f"{float(v):g}"


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return f"the number {shorten(str(v))}"
    if isinstance(v, str):
        return f"the text {shorten(v)!r}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return "nothing" if v is None else type(v).__name__


def check_settings(src: PlaySource) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Returns name, description, market, account, and the raw features/blocks entries."""
    c = SettingsCheck(src)
    root = c.keys("", src.root, ROOT_KEYS)
    out: dict[str, Any] = {"name": "", "description": "", "market": None, "account": None,
                           "features": None, "blocks": None}

    if "play" in root:
        name = root["play"].value.value
        if name is None:
            c.error("value", "'play' needs a name", root["play"].key_span,
                    "e.g. play: ema_pullback (lower case letters, digits and '_', starting with a letter)")
        elif isinstance(name, bool) and IDENT.fullmatch(root["play"].value.raw or ""):
            out["name"] = root["play"].value.raw  # `play: on` names the Play 'on' (YAML 1.1 reads a bool)
        elif not isinstance(name, str):
            c.error("type", f"'play' must be a name, not {_kind(name)}", root["play"].value.span,
                    "e.g. play: ema_pullback (lower case letters, digits and '_', starting with a letter)")
        elif not IDENT.fullmatch(name):
            c.error("value", f"'play' is {shorten(name)!r}; a Play's name is lower case letters, digits and '_', "
                    "starting with a letter", root["play"].value.span, "e.g. play: ema_pullback")
        else:
            out["name"] = name
    desc = c.string(root, "description", "description")
    out["description"] = desc or ""

    market_entries: dict[str, YEntry] = {}
    if "market" in root and (m := c.mapping(root["market"], "market")) is not None:
        market_entries = c.keys("market.", m, MARKET_KEYS, root["market"])
    symbol = c.string(market_entries, "symbol", "market.symbol")
    if symbol is not None and not is_symbol(symbol):
        c.error("value", f"'market.symbol' is {shorten(symbol)!r}, not a Bybit USDT perpetual", market_entries["symbol"].value.span,
                "write the symbol in capitals ending in USDT, e.g. BTCUSDT")
    exec_tf = c.timeframe(market_entries["exec"], "market.exec") if "exec" in market_entries else None
    tfs: list[tuple[str, str]] = []
    if "timeframes" in market_entries and (t := c.mapping(market_entries["timeframes"], "market.timeframes", empty_ok=True)):
        for alias, e in t.value.items():
            if not IDENT.fullmatch(alias) or alias in TIMEFRAMES:
                c.error("value", f"timeframe name '{alias}' must be a lower-case name such as htf", e.key_span,
                        "name each higher timeframe, e.g. timeframes: {htf: 4h}, and write 'ema(close, 50) @ htf'")
                continue
            tf = c.timeframe(e, f"market.timeframes.{alias}")
            if tf is None or exec_tf is None:
                continue
            if not is_multiple(tf, exec_tf):
                c.error("timeframe", f"timeframe '{alias}' is {tf}, which is not a whole multiple of the "
                        f"exec timeframe {exec_tf}", e.value.span,
                        "higher timeframes are built from exec bars, so each must be a multiple of exec")
                continue
            tfs.append((alias, tf))
    if symbol is not None and exec_tf is not None:
        out["market"] = Market(symbol, exec_tf, tuple(tfs))

    acc: dict[str, YEntry] = {}
    if "account" in root and (a := c.mapping(root["account"], "account", empty_ok=True)) is not None:
        acc = c.keys("account.", a, ACCOUNT_KEYS, root["account"])
    fees: dict[str, YEntry] = {}
    if "fees" in acc and (f := c.mapping(acc["fees"], "account.fees", empty_ok=True)) is not None:
        fees = c.keys("account.fees.", f, FEE_KEYS, acc["fees"])
    inst: dict[str, YEntry] = {}
    if "instrument" in acc and (i := c.mapping(acc["instrument"], "account.instrument", empty_ok=True)) is not None:
        inst = c.keys("account.instrument.", i, INSTRUMENT_KEYS, acc["instrument"])
    intrabar = c.string(acc, "intrabar", "account.intrabar") or DEFAULTS["intrabar"]
    if intrabar in TIMEFRAMES:
        # the bar magnifier (7.5): a finer timeframe that divides exec
        if exec_tf is not None and (tf_minutes(intrabar) >= tf_minutes(exec_tf) or not is_multiple(exec_tf, intrabar)):
            finer = [tf for tf in TIMEFRAMES if tf_minutes(tf) < tf_minutes(exec_tf) and is_multiple(exec_tf, tf)]
            c.error("value", f"'account.intrabar' is {intrabar}, which is not finer than exec {exec_tf} and a "
                    f"divisor of it", acc["intrabar"].value.span,
                    f"for the bar magnifier choose {_either(finer)}" if finer else
                    f"{exec_tf} has no finer timeframe: choose worst_case or ohlc_path")
    elif intrabar not in INTRABAR_MODELS:
        c.error("value", f"'account.intrabar' is {shorten(intrabar)!r}, not worst_case, ohlc_path or a timeframe",
                acc["intrabar"].value.span, "choose worst_case (stop-loss before take-profit), ohlc_path, or a "
                "finer timeframe such as 1m for the bar magnifier")
    out["account"] = Account(
        equity=c.number(acc, "equity", "account.equity", low=0, high=1e12, low_open=True),
        leverage=c.number(acc, "leverage", "account.leverage", low=1, high=100),
        maker_fee=c.number(fees, "maker", "account.fees.maker", low=-0.01, high=0.01),
        taker_fee=c.number(fees, "taker", "account.fees.taker", low=0, high=0.01),
        slippage_bps=c.number(acc, "slippage_bps", "account.slippage_bps", low=0, high=1000),
        intrabar=intrabar,
        tick=c.number(inst, "tick", "account.instrument.tick", low=0, high=1e6, low_open=True),
        qty_step=c.number(inst, "qty_step", "account.instrument.qty_step", low=0, high=1e6, low_open=True),
        min_qty=c.number(inst, "min_qty", "account.instrument.min_qty", low=0, high=1e9, low_open=True),
        mmr=c.rate(acc, "mmr", "account.mmr", low=0, high=0.5),
        funding=c.rate(acc, "funding", "account.funding", low=-0.05, high=0.05),
    )

    if "features" in root:
        fe = root["features"].value
        if fe.value is None:
            pass
        elif not fe.is_map:
            c.error("type", f"'features' must be a mapping of name: expression, not {_kind(fe.value)}", fe.span,
                    "write each feature on its own indented line, e.g. '  fast: ema(close, 21)'")
        else:
            out["features"] = fe
    if "blocks" in root:
        b = root["blocks"].value
        if not isinstance(b.value, str) or not b.value.strip():
            c.error("type", "'blocks' must be the block text", b.span,
                    "write 'blocks: |' and the blocks indented on the lines below")
        elif b.style not in ("|",):
            c.error("type", "'blocks' must be a literal block", b.span,
                    "write 'blocks: |' and the blocks indented on the lines below, so lines stay lines")
        else:
            out["blocks"] = b
    return out, c.diags


def _either(words: list[str]) -> str:
    """'1m', '1m or 3m', '1m, 3m or 5m'."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
