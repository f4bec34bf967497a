"""The compiler's front door: a Play file in, a checked `PlayIR` out (or a PlayError).

Passes, in order: read YAML with positions -> check settings -> parse features and blocks -> resolve
names and types -> collect feature jobs. Each returns diagnostics; the first pass that has any stops.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import attrs

from playdeck.dsl import syntax as s
from playdeck.dsl.diagnostics import Diagnostic, PlayError
from playdeck.dsl.limits import room_to_recurse
from playdeck.dsl.parser import ParseFailure, parse_blocks, parse_feature
from playdeck.dsl.source import PlaySource, YValue, parse_play_text, read_play

from . import ir
from .actions import check_blocks, collect_tags
from .builtins import CALLS
from .check import Checker
from .readiness import Warmups, readiness
from .settings import check_settings

# A feature is referenced by name in the blocks, so its key must lex as a NAME of the grammar.
FEATURE_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@attrs.frozen
class Compiled:
    ir: ir.PlayIR
    source: PlaySource
    features: tuple[s.FeatureDef, ...]
    blocks: tuple[s.Block, ...]


def compile_file(path: str | Path) -> Compiled:
    return compile_source(read_play(path))


def compile_text(text: str, path: str = "<play>") -> Compiled:
    return compile_source(parse_play_text(text, path))


def compile_source(src: PlaySource) -> Compiled:
    with room_to_recurse():
        return _compile(src)


def _compile(src: PlaySource) -> Compiled:
    settings, diags = check_settings(src)

    features: list[s.FeatureDef] = []
    if settings["features"] is not None:
        for key, entry in settings["features"].value.items():
            v = entry.value
            if not FEATURE_NAME.fullmatch(key):
                diags.append(Diagnostic("name", f"'{key}' cannot name a feature", entry.key_span,
                                        "a feature name is letters, digits and '_', not starting with a digit, "
                                        "e.g. fast_ema"))
                continue
            if isinstance(v.value, (dict, list)) or v.value is None:
                diags.append(Diagnostic("type", f"feature '{key}' must be an expression such as ema(close, 21)",
                                        v.span if v.value is not None else entry.key_span,
                                        "write 'name: expression' on one line"))
                continue
            lines = _lines_written(v, src.lines)
            if lines > 1:
                # YAML would fold the lines into one, and positions inside it would no longer match
                # the file; one line per feature keeps every error message pointing at the right place.
                diags.append(Diagnostic("syntax", f"feature '{key}' is written over {lines} lines; a feature is "
                                        "one expression on one line", entry.key_span,
                                        "write 'name: expression' on one line; split a long one into several "
                                        "features"))
                continue
            try:
                f = parse_feature(v.raw, key, v.where, CALLS)
            except ParseFailure as e:
                diags.append(e.diagnostic)
                continue
            features.append(attrs.evolve(f, span=entry.key_span))
    blocks: tuple[s.Block, ...] = ()
    if settings["blocks"] is not None:
        b = settings["blocks"]
        try:
            blocks = parse_blocks(b.value, b.where, CALLS)
        except ParseFailure as e:
            diags.append(e.diagnostic)
    _raise(src, diags)

    c = Checker(settings["market"])
    c.check_features(features)
    collect_tags(c, blocks)
    checked = check_blocks(c, blocks)
    _raise(src, c.diags)

    feats = tuple(c.features[f.name] for f in features)
    conditions = [case.cond for b in checked for case in b.cases if case.cond is not None]
    action_values = _block_exprs(checked)
    exprs = [f.expr for f in feats] + conditions + action_values
    jobs = collect_jobs(exprs, c.features, c.warmups)
    exec_tf = settings["market"].exec_tf
    warmup = readiness(c.features, conditions + action_values, exec_tf, c.warmups)
    play = ir.PlayIR(settings["name"], settings["description"], settings["market"], settings["account"],
                     feats, jobs, checked, tuple(c.tags), warmup)
    return Compiled(play, src, tuple(features), blocks)


def _lines_written(v: YValue, lines: Sequence[str]) -> int:
    """How many lines of the file hold a scalar's text (its blank lines not counted)."""
    first, last = v.span.line, v.span.end_line
    if v.style in ("|", ">"):
        first += 1  # the text starts under the `|` or `>`
    if v.span.end_col == 1:
        last -= 1  # a block scalar ends at the start of the line after it
    return sum(1 for i in range(first - 1, min(last, len(lines))) if lines[i].strip())


def _raise(src: PlaySource, diags: list[Diagnostic]) -> None:
    if diags:
        diags = sorted(diags, key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
        raise PlayError(src.path, src.text, diags, src.lines)


def _action_exprs(block: ir.Block):
    for case in block.cases:
        for a in case.actions:
            yield from action_exprs(a)


def action_exprs(a: ir.Action):
    """Every expression an action evaluates (sizes, prices, attached protection)."""
    if isinstance(a, ir.OrderAction):
        for x in (a.size.value, a.price, a.trigger):
            if x is not None:
                yield x
        for p in a.attached:
            yield p.value
    elif isinstance(a, (ir.PartialClose,)):
        if a.size.value is not None:
            yield a.size.value
        if a.price is not None:
            yield a.price
    elif isinstance(a, ir.Close) and a.price is not None:
        yield a.price
    elif isinstance(a, ir.Protection):
        yield a.value


def _block_exprs(blocks: tuple[ir.Block, ...]) -> list[ir.Expr]:
    return [x for b in blocks for x in _action_exprs(b)]


def collect_jobs(exprs, features: dict[str, ir.Feature], warmups: Warmups | None = None) -> tuple[ir.Job, ...]:
    """Indicator computations, deduplicated, inputs before the indicators that use them."""
    seen: dict[ir.Indicator, ir.Job] = {}
    warmups = warmups if warmups is not None else Warmups(features)

    def visit(x: ir.Expr) -> None:
        for child in ir.children(x):
            visit(child)
        if isinstance(x, ir.Indicator):
            job = x.job()
            if job not in seen:
                seen[job] = ir.Job(job, warmups.on(job, job.tf))

    for x in exprs:
        visit(x)
    return tuple(seen.values())
