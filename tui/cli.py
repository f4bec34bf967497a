"""The `playdeck` command line.

Every user error (a broken Play, bad data, bad options) prints one clear message and exits 2;
nothing the user can cause ends in a traceback.

Each command imports what it uses when it runs (start-up imports argparse and the vocabulary only):
`--help` needs no compiler, `compile` no numpy, `backtest` no data cache it does not read. The
error types `main` tells apart are looked up among the modules the command has loaded.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from playdeck.dsl.vocabulary import TIMEFRAMES, symbol_problem

EXIT_USER = 2
# The user-error types of the layers below, by the module that defines each: an error of a module
# the command never imported cannot have been raised, so `main` needs none of them imported first.
PLAY_ERROR = ("playdeck.dsl.diagnostics", "PlayError")
USER_ERRORS = (("playdeck.runtime.data.csv_import", "DataError"), ("playdeck.runtime.backtest.run", "BacktestError"),
               ("playdeck.runtime.data.cache", "CacheError"), ("playdeck.runtime.data.sources", "SourceError"),
               ("playdeck.runtime.bybit.history", "FetchError"),
               ("playdeck.runtime.bybit.runner", "LiveError"), ("playdeck.runtime.bybit.journal", "JournalError"),
               ("playdeck.runtime.bybit.live_bars", "BarGap"),
               ("playdeck.runtime.bybit.stream", "StreamError"), ("playdeck.runtime.bybit.errors", "BybitFailure"))


class UserError(Exception):
    """A problem with the user's input that is not a Play error: bad options, missing data."""


def cmd_compile(args: argparse.Namespace) -> int:
    from playdeck.compiler import compile_file
    from playdeck.compiler.lower import lower, plan_text
    from playdeck.compiler.printer import ir_json, ir_text
    from playdeck.dsl.fmt import format_play

    compiled = compile_file(args.play)
    if args.stage == "parse":
        sys.stdout.write(format_play(compiled.source, list(compiled.features), compiled.blocks))
    elif args.stage == "lower":
        sys.stdout.write(plan_text(lower(compiled.ir)))
    else:
        sys.stdout.write(ir_json(compiled.ir) if args.format == "json" else ir_text(compiled.ir))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from playdeck.compiler import compile_file
    from playdeck.dsl.diagnostics import PlayError

    worst = 0
    for path in args.plays:
        try:
            compiled = compile_file(path)
        except PlayError as e:
            print(e.first_line())
            worst = EXIT_USER
        else:
            nb, nj = len(compiled.ir.blocks), len(compiled.ir.jobs)
            print(f"{path}: ok ({compiled.ir.name}: {nb} block{'s' * (nb != 1)}, "
                  f"{nj} feature job{'s' * (nj != 1)})")
    return worst


def cmd_fmt(args: argparse.Namespace) -> int:
    from playdeck.compiler import compile_file
    from playdeck.dsl.fmt import format_play

    compiled = compile_file(args.play)
    text = format_play(compiled.source, list(compiled.features), compiled.blocks)
    if args.write:
        if text != compiled.source.text:
            Path(args.play).write_text(text, encoding="utf-8")
            print(f"{args.play}: formatted")
        else:
            print(f"{args.play}: already canonical")
    else:
        sys.stdout.write(text)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from playdeck.runtime.backtest.run import format_report, run_backtest  # noqa: I001

    check_timeframe("--data-tf", args.data_tf)
    if args.out is not None and not args.out.strip():
        # Said before the data is read (and a --data file remembered in the cache): a wrong option
        # costs no time and writes nothing. run_backtest says the same to other callers.
        raise UserError("--out is empty; give a folder, or omit --out for runs/<play>-<time>/")
    # By default the bar is drawn on a terminal only: redrawn with '\r', it would fill a log with frames.
    shown = sys.stderr.isatty() if args.progress is None else args.progress
    report = run_backtest(args.play, data=args.data, data_tf=args.data_tf, gaps=args.gaps, start=args.start,
                          end=args.end, out=args.out, progress=_progress_bar() if shown else None)
    if shown:
        print(file=sys.stderr)
    print(format_report(report))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    check_timeframe("--data-tf", args.data_tf)
    speed = parse_speed(args.speed)
    if args.backend == "sim":
        for flag, value in (("--endpoint", args.endpoint), ("--journal", args.journal), ("--out", args.out)):
            if value is not None:
                raise UserError(f"{flag} is for a venue (--backend emulator, demo or live); the simulator's "
                                "replay has no journal or run folder")
        if args.i_understand_live:
            raise UserError("--i-understand-live is for --backend live")
        driver = _replay_driver(args, speed)
    else:
        driver = _venue_driver(args, speed)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Without a terminal the app would only write escape codes into a pipe or a file.
        raise UserError("the console needs a terminal (stdin and stdout); `playdeck backtest` runs a Play "
                        "without a screen, `playdeck run` trades one")
    from playdeck.tui.app import ConsoleApp  # textual is imported here, by this command only

    ConsoleApp(driver).run()
    error = getattr(driver, "error", None)
    if driver.session is None:
        print(f"error: {driver.plan.play.name} did not start: {error or 'stopped before it connected'}",
              file=sys.stderr)
        return 1
    if error is not None:
        print(f"error: the run stopped: {type(error).__name__}: {error}", file=sys.stderr)
    s = driver.session.snapshot()
    print(f"{driver.plan.play.name}: stopped at bar {s.bar} of {driver.bar_count()} ({s.mode.value}); equity "
          f"{s.equity:,.2f}, {len(s.working)} order{'s' * (len(s.working) != 1)} working")
    journal = getattr(driver, "journal_path", None)
    if journal is not None:
        report = getattr(driver, "report", None)
        if report is not None and report.get("out"):
            print(f"run folder  {report['out']}")
        print(f"journal     {journal}")
    return 0


def _replay_driver(args: argparse.Namespace, speed: float) -> Any:
    from playdeck.tui.replay import Replay, load_replay

    # The Play and its data first: their mistakes are the ones worth a message.
    plan, bt, bars = load_replay(args.play, data=args.data, data_tf=args.data_tf, gaps=args.gaps)
    return Replay(plan, bt, bars, speed=speed)


def _venue_driver(args: argparse.Namespace, speed: float) -> Any:
    from playdeck.compiler import compile_file
    from playdeck.compiler.lower import lower
    from playdeck.runtime.bybit.runner import RunConfig, check_config, emulator_bars
    from playdeck.tui.venue_run import VenueRun

    if args.data_tf is not None or args.gaps is not None:
        raise UserError("--data-tf and --gaps are for the simulator's replay; the emulator reads --data as "
                        "`playdeck run` does")
    if args.data is not None and (args.backend != "emulator" or args.endpoint is not None):
        raise UserError("--data is for the in-process emulator (--backend emulator without --endpoint); a "
                        "running venue has its own bars")
    if args.out is not None and not args.out.strip():
        raise UserError("--out is empty; give a folder, or omit --out for runs/<play>-<time>/")
    cfg = RunConfig(args.play, backend=args.backend, data=args.data, endpoint=args.endpoint, journal=args.journal,
                    out=args.out, key=os.environ.get("PLAYDECK_BYBIT_KEY") or None,
                    secret=os.environ.get("PLAYDECK_BYBIT_SECRET") or None, i_understand_live=args.i_understand_live)
    check_config(cfg)
    plan = lower(compile_file(args.play).ir)
    # The in-process emulator's data is read here: its mistakes are said before any screen.
    bars = emulator_bars(cfg, plan) if cfg.backend == "emulator" and cfg.endpoint is None else None
    return VenueRun(cfg, plan, speed=speed, bars=bars)


def parse_speed(text: str) -> float:
    """`--speed`: bars a second, a positive number, or `max` (as fast as it goes)."""
    if text.strip().lower() == "max":
        return math.inf
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not (0 < speed < math.inf):
        raise UserError(f"--speed {text!r}: give bars a second (a number above 0, e.g. 4) or 'max'")
    return speed


def progress_text(done: int, total: int, width: int = 30) -> str:
    """One frame of the progress bar, e.g. `[######........................]  20.0%`, kept within 0..100%."""
    fraction = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(width * fraction)
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:5.1f}%"


def _progress_bar():
    def show(i: int, n: int) -> None:
        print(f"\r{progress_text(i, n)}", end="", file=sys.stderr, flush=True)
    return show


def check_symbol(symbol: str, what: str = "--symbol") -> None:
    """UserError unless `symbol` is a Bybit symbol; a lower-case one is refused with its capitals as
    the hint, since a Play's `market.symbol` is capitals and would never find it."""
    problem = symbol_problem(symbol)
    if problem is not None:
        raise UserError(f"{what} {problem}")


def check_cache_dir(cache_dir: str | None) -> None:
    """UserError for a --cache-dir that is empty or only blanks (a folder named ' ' is never meant)."""
    if cache_dir is not None and not cache_dir.strip():
        raise UserError("--cache-dir is empty; give a folder, or omit it for $PLAYDECK_CACHE or ~/.cache/playdeck")


def check_timeframe(option: str, tf: str | None) -> None:
    """UserError naming `option` unless `tf` is None or a timeframe of the language."""
    if tf is not None and tf not in TIMEFRAMES:
        raise UserError(f"{option}: unknown timeframe {tf!r}; expected one of {', '.join(TIMEFRAMES)}")


def cmd_data_import(args: argparse.Namespace) -> int:
    import numpy as np

    from playdeck.runtime.data import cache
    from playdeck.runtime.data.csv_import import import_csv

    check_symbol(args.symbol)
    check_timeframe("--tf", args.tf)
    check_cache_dir(args.cache_dir)
    result = import_csv(args.file, args.symbol, args.tf, gaps=args.gaps)
    replaced = _cached_summary(args.symbol, result.bars.tf, args.cache_dir)
    path = cache.save(result.bars, args.cache_dir, source={"kind": "csv", "file": str(Path(args.file).absolute())})
    notes = []
    if replaced:
        notes.append(f"replaced the cached {replaced}")  # one series per symbol and timeframe: say so
    if result.filled_gaps:
        notes.append(f"{result.filled_gaps} missing bar{'s' if result.filled_gaps != 1 else ''} filled flat")
    if result.reversed:
        notes.append("file was newest-first and was reversed")
    rates = result.bars.funding_rate
    if rates is not None:  # said only for a file with the column, so other imports print what they did
        known = int(np.count_nonzero(~np.isnan(rates)))
        notes.append(f"funding rates on {known} of {len(rates)} bars")
    print(f"imported {len(result.bars)} {result.bars.tf} bars of {args.symbol} into {path}"
          + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


def _cached_summary(symbol: str, tf: str, cache_dir: str | None) -> str:
    """What the cache holds for `symbol` `tf` before an import replaces it ('' for nothing)."""
    from playdeck.runtime.data import cache

    if not cache.exists(symbol, tf, cache_dir):
        return ""
    try:
        return _span(cache.read_meta(symbol, tf, cache_dir))
    except (OSError, ValueError, KeyError, TypeError):
        return "series"  # a damaged entry is replaced all the same


def _span(meta: dict) -> str:
    """`N bars FIRST .. LAST` of a cached series' metadata (KeyError or TypeError when it lacks them)."""
    from playdeck.runtime.data.csv_import import format_ts

    return f"{int(meta['n_bars'])} bars {format_ts(int(meta['first_ts']))} .. {format_ts(int(meta['last_ts']))}"


def cmd_data_list(args: argparse.Namespace) -> int:
    from playdeck.runtime.data import cache
    from playdeck.runtime.data.csv_import import format_ts

    check_cache_dir(args.cache_dir)
    listed = cache.entries(args.cache_dir)
    if not listed:
        where = args.cache_dir if args.cache_dir is not None else cache.default_cache_dir()
        print(f"nothing cached in {where}")
        return 0
    lines = []
    for e in listed:
        symbol = e.name if e.kind != "file" else "-"  # a --data file serves a Play of any symbol
        try:
            meta = e.meta or {}
            span = (f"{format_ts(int(meta['first_ts']))} .. {format_ts(int(meta['last_ts']))}  "
                    f"{int(meta['n_bars'])} rows")
        except (KeyError, TypeError, ValueError):
            lines.append((symbol, e.tf, e.problem or f"the cache entry {e.entry} is damaged ({cache.META_FILE} "
                                                     "lacks the bars' span)"))
            continue
        rates = "  with funding rates" if cache.has_funding_rates(meta) else ""
        lines.append((symbol, e.tf, f"{span}  {_source_text(e)}{rates}"))
    width = max(len(symbol) for symbol, _, _ in lines)
    for symbol, tf, rest in lines:
        print(f"{symbol:<{width}}  {tf:<3}  {rest}")
    return 0


def _source_text(e: Any) -> str:
    """Where a listed series came from: the file it was imported from, the generator, a --data file."""
    source = (e.meta or {}).get("source") or {}
    if e.kind == "synthetic":
        return "synthetic (bundled)"
    if e.kind == "file":
        return f"--data {source.get('file', '?')} (remembered)"
    if source.get("kind") == "csv":
        return f"imported from {source.get('file', '?')}"
    if source.get("kind") == "bybit":
        return f"fetched from {source.get('endpoint', '?')}"
    return "imported"


def cmd_data_fetch(args: argparse.Namespace) -> int:
    import asyncio

    from playdeck.runtime.bybit.history import FetchProgress, fetch_klines, parse_date
    from playdeck.runtime.data.csv_import import format_ts

    check_symbol(args.symbol, "symbol")
    check_timeframe("--tf", args.tf)
    check_cache_dir(args.cache_dir)
    start = parse_date(args.start, "--from")
    end = None if args.end is None else parse_date(args.end, "--to")
    shown = sys.stderr.isatty() if args.progress is None else args.progress
    drawn: list[FetchProgress] = []

    def show(p: FetchProgress) -> None:
        drawn.append(p)
        print(f"\r{progress_text(p.page, p.pages)}  page {p.page}/{p.pages}, {p.bars} bars", end="",
              file=sys.stderr, flush=True)

    try:
        r = asyncio.run(fetch_klines(args.symbol, args.tf, start, end, endpoint=args.endpoint,
                                     cache_dir=args.cache_dir, progress=show if shown else None))
    except KeyboardInterrupt:
        r = None
    finally:
        if drawn:
            print(file=sys.stderr)  # end the progress line, whatever ended the fetch
    if r is None:
        print("interrupted: the pages fetched so far are kept in the cache; run the same command again to "
              "fetch the rest", file=sys.stderr)
        return 130
    span = f"{r.n_bars} bars {format_ts(r.first_ts)} .. {format_ts(r.last_ts)}"
    if r.unchanged:
        print(f"{r.entry} already holds {span} of {r.symbol} {r.tf} from {r.endpoint}; nothing to fetch")
        return 0
    notes = []
    if r.kept:
        notes.append(f"{r.kept} bars were fetched before")  # a resumed or extended fetch: said, not asked for
    if r.replaced is not None:
        notes.append(f"replaced the cached {r.replaced}")
    if r.forming is not None:
        notes.append(f"the newest candle, opened at {format_ts(r.forming)}, may still be forming: not stored")
    if r.missing:
        notes.append(f"no candle for {r.missing} {r.tf} slot{'s' * (r.missing != 1)} inside the range")
    print(f"fetched {r.fetched} {r.tf} bars of {r.symbol} from {r.endpoint} in {r.pages} "
          f"page{'s' * (r.pages != 1)}; {r.entry} holds {span}" + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


def cmd_data_remove(args: argparse.Namespace) -> int:
    from playdeck.runtime.data import cache

    check_symbol(args.symbol, "symbol")
    check_timeframe("--tf", args.tf)
    check_cache_dir(args.cache_dir)
    removed = []
    for tf in [args.tf] if args.tf is not None else TIMEFRAMES:
        if not cache.exists(args.symbol, tf, args.cache_dir):
            continue
        try:
            what = _span(cache.read_meta(args.symbol, tf, args.cache_dir))
        except (OSError, ValueError, KeyError, TypeError):
            what = "damaged"  # removing it is the repair
        if cache.delete_entry(cache.bars_dir(args.symbol, tf, args.cache_dir)):
            removed.append(f"removed {args.symbol} {tf} ({what})")
    if not removed:
        at = f" at {args.tf}" if args.tf is not None else ""
        cached = [tf for tf in TIMEFRAMES if cache.exists(args.symbol, tf, args.cache_dir)]
        has = f" (it is imported at {', '.join(cached)})" if cached else ""
        raise UserError(f"nothing imported for {args.symbol}{at}{has}; `playdeck data list` shows what is cached")
    print("\n".join(removed))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Trade a Play through Bybit's API: the emulator, demo or live (README, "Trading: playdeck run")."""
    import logging

    from playdeck.runtime.backtest.report import format_report
    from playdeck.runtime.bybit.runner import RunConfig, run_play

    if args.out is not None and not args.out.strip():
        raise UserError("--out is empty; give a folder, or omit --out for runs/<play>-<time>/")
    # Keys come from the environment only: never from the command line, where ps and shell
    # histories would show them.
    key = os.environ.get("PLAYDECK_BYBIT_KEY") or None
    secret = os.environ.get("PLAYDECK_BYBIT_SECRET") or None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def echo(line: str) -> None:
        print(line, flush=True)

    report = run_play(RunConfig(args.play, backend=args.backend, data=args.data, endpoint=args.endpoint,
                                journal=args.journal, out=args.out, key=key, secret=secret,
                                i_understand_live=args.i_understand_live, echo=None if args.quiet else echo))
    print(format_report(report).replace("playdeck backtest:", f"playdeck run ({args.backend}):", 1))
    print(f"journal     {report['journal']}")
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    """Serve a Bybit V5 emulator until Ctrl-C (see README, "The Bybit emulator")."""
    import asyncio
    import signal

    config = emulator_config(args)
    from playdeck.runtime.bybit.emulator import Emulator

    try:
        emu = Emulator(config)  # checks the data against the options (bars that line up, the start bar)
    except ValueError as e:
        raise UserError(str(e)) from None

    async def serve() -> None:
        await emu.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        v = emu.venue
        from playdeck.runtime.data.csv_import import format_ts

        print(f"emulator listening on {emu.url}", flush=True)
        print(f"public stream  {emu.public_url}")
        print(f"private stream {emu.private_url}")
        print(f"key {config.key}  secret {config.secret}")
        mode = (f"--speed {config.speed:g}: one bar every {1 / config.speed:g} s" if config.speed is not None
                else "--step: POST /_emulator/advance moves it")
        print(f"{', '.join(v.books)}: {v.n_bars} {v.tf} bars, at the close of bar {v.bar} "
              f"({format_ts(v.ts(v.bar))}); {mode}", flush=True)
        try:
            await stop.wait()
        finally:
            await emu.stop()
        print("emulator stopped", flush=True)

    asyncio.run(serve())
    return 0


def emulator_config(args: argparse.Namespace) -> Any:
    """The emulator's configuration from `playdeck emulator`'s options (UserError for bad ones)."""
    from playdeck.runtime.bybit.emulator import AccountSpec, EmulatorConfig, InstrumentSpec, Market, RateLimitSpec
    from playdeck.runtime.data.synthetic import DEFAULT_SYMBOL

    files = args.data or []
    symbols = args.symbol or []
    for symbol in symbols:
        check_symbol(symbol)
    if not files:
        if symbols not in ([], [DEFAULT_SYMBOL]):
            raise UserError(f"without --data the emulator replays the bundled {DEFAULT_SYMBOL} set; "
                            f"give --data FILE for {', '.join(symbols)}")
        from playdeck.runtime.data import cache

        loaded = [(DEFAULT_SYMBOL, cache.default_bars())]
    else:
        if len(files) > 1 and len(symbols) != len(files):
            raise UserError(f"{len(files)} --data files need as many --symbol options, one for each (in order)")
        from playdeck.runtime.data.csv_import import import_csv

        names = symbols or [DEFAULT_SYMBOL]
        loaded = [(symbol, import_csv(path, symbol, None).bars) for symbol, path in zip(names, files)]
    for option, value in (("--tick", args.tick), ("--qty-step", args.qty_step), ("--min-qty", args.min_qty),
                          ("--equity", args.equity), ("--leverage", args.leverage)):
        if not value > 0:
            raise UserError(f"{option} must be greater than 0, was {value:g}")
    if args.speed is not None and not args.speed > 0:
        raise UserError(f"--speed must be greater than 0 bars per second, was {args.speed:g}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0 .. 65535, was {args.port}")
    markets = tuple(Market(InstrumentSpec(symbol, tick=args.tick, qty_step=args.qty_step, min_qty=args.min_qty), bars)
                    for symbol, bars in loaded)
    account = AccountSpec(equity=args.equity, leverage=args.leverage, maker_fee=args.maker_fee,
                          taker_fee=args.taker_fee, slippage_bps=args.slippage_bps)
    try:
        return EmulatorConfig(markets, account=account, key=args.key, secret=args.secret, host=args.host,
                              port=args.port, start_bar=args.start_bar, speed=args.speed,
                              rate_limits=RateLimitSpec(enabled=args.rate_limits))
    except ValueError as e:
        raise UserError(str(e)) from None


class _Parser(argparse.ArgumentParser):
    """Option mistakes are one `error:` line like every other user error (not a usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="playdeck", description="Compile, check and backtest Plays; run them in the console.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="print a Play's typed IR")
    c.add_argument("play")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.add_argument("--stage", choices=("parse", "check", "lower"), default="check",
                   help="parse: the canonical syntax; check: the typed IR (default); lower: the execution plan")
    c.set_defaults(run=cmd_compile)

    k = sub.add_parser("check", help="check Plays, one line each")
    k.add_argument("plays", nargs="+")
    k.set_defaults(run=cmd_check)

    f = sub.add_parser("fmt", help="print a Play in canonical form")
    f.add_argument("play")
    f.add_argument("--write", action="store_true", help="rewrite the file in place")
    f.set_defaults(run=cmd_fmt)

    b = sub.add_parser("backtest", help="backtest a Play on the bundled data or a CSV")
    b.add_argument("play")
    b.add_argument("--data", help="OHLCV CSV (timestamp,open,high,low,close,volume) or Bybit kline export; "
                                   "'synthetic' for the bundled set")
    b.add_argument("--data-tf", default=None, help="timeframe of the --data bars (default: read from the timestamps)")
    b.add_argument("--gaps", choices=("error", "fill"), default=None,
                   help="missing bars in the --data file: an error (default) or filled with flat bars")
    b.add_argument("--from", dest="start", help="first bar to trade (UTC date or date-time)")
    b.add_argument("--to", dest="end", help="trade bars opening before this (UTC)")
    b.add_argument("--out", help="output folder (default runs/<play>-<time>/)")
    b.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="draw the progress bar on stderr (default: when stderr is a terminal)")
    b.set_defaults(run=cmd_backtest)

    o = sub.add_parser("console", help="run a Play in the operator console: a replay of its data on the simulator, "
                                       "or trading the emulator, Bybit demo or live")
    o.add_argument("play")
    o.add_argument("--backend", choices=("sim", "emulator", "demo", "live"), default="sim",
                   help="sim: a replay on the simulator (default); emulator: the in-process Bybit emulator in "
                        "lockstep, or a running one with --endpoint; demo, live: as for `playdeck run`")
    o.add_argument("--endpoint", help="REST URL of a running `playdeck emulator` (or another Bybit host)")
    o.add_argument("--journal", help="the SQLite journal, as for `playdeck run` (default: <out>/journal.sqlite)")
    o.add_argument("--out", help="a venue run's folder (default runs/<play>-<time>/)")
    o.add_argument("--i-understand-live", action="store_true", help="required for --backend live")
    o.add_argument("--data", help="OHLCV CSV or Bybit kline export, as for backtest; 'synthetic' for the bundled set")
    o.add_argument("--data-tf", default=None, help="timeframe of the --data bars (default: read from the timestamps)")
    o.add_argument("--gaps", choices=("error", "fill"), default=None,
                   help="missing bars in the --data file: an error (default) or filled with flat bars")
    o.add_argument("--speed", default="4", help="visible replay speed in bars a second, or 'max' (default 4; "
                                                 "+ and - change it; the warm-up always runs at full speed; "
                                                 "sim and the in-process emulator)")
    o.set_defaults(run=cmd_console)

    d = sub.add_parser("data", help="market data: import CSV or fetch Bybit klines into the local cache, list it, "
                                 "remove it")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    di = dsub.add_parser("import", help="import an OHLCV or Bybit kline CSV into the cache")
    di.add_argument("file")
    di.add_argument("--symbol", required=True)
    di.add_argument("--tf", default=None, help="timeframe of the file's bars, e.g. 1m (default: read from the timestamps)")
    di.add_argument("--gaps", choices=("error", "fill"), default="error",
                    help="missing bars: report them (default) or fill them flat")
    di.add_argument("--cache-dir", default=None)
    di.set_defaults(run=cmd_data_import)
    dl = dsub.add_parser("list", help="one line per cached series")
    dl.add_argument("--cache-dir", default=None)
    dl.set_defaults(run=cmd_data_list)
    dr = dsub.add_parser("remove", help="remove imported series of a symbol")
    dr.add_argument("symbol")
    dr.add_argument("--tf", default=None, help="only this timeframe (default: every timeframe of the symbol)")
    dr.add_argument("--cache-dir", default=None)
    dr.set_defaults(run=cmd_data_remove)
    dfe = dsub.add_parser("fetch", help="fetch Bybit's closed klines into the cache (resumable)")
    dfe.add_argument("symbol")
    dfe.add_argument("--tf", required=True, help="timeframe of the bars, e.g. 1m")
    dfe.add_argument("--from", dest="start", required=True, help="first bar (UTC date or date-time)")
    dfe.add_argument("--to", dest="end", default=None,
                     help="bars opening before this (UTC; default: up to the newest closed candle)")
    dfe.add_argument("--endpoint", default=None, help="REST address (default: Bybit mainnet, https://api.bybit.com)")
    dfe.add_argument("--cache-dir", default=None)
    dfe.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="draw the progress bar on stderr (default: when stderr is a terminal)")
    dfe.set_defaults(run=cmd_data_fetch)

    r = sub.add_parser("run", help="trade a Play on Bybit: the emulator, demo or live")
    r.add_argument("play")
    r.add_argument("--backend", choices=("emulator", "demo", "live"), default="emulator")
    r.add_argument("--data", help="bars for the in-process emulator (default: the bundled set)")
    r.add_argument("--endpoint", help="REST URL of the venue (a running `playdeck emulator`, e.g. "
                                      "http://127.0.0.1:8765); default: Bybit's host of the backend")
    r.add_argument("--journal", help="the SQLite journal (default: <out>/journal.sqlite); an existing "
                                     "one is read back and the run goes on from it")
    r.add_argument("--out", help="output folder (default runs/<play>-<time>/)")
    r.add_argument("--i-understand-live", action="store_true", help="required for --backend live")
    r.add_argument("--quiet", action="store_true", help="no line per intent, order change and fill")
    r.set_defaults(run=cmd_run)

    e = sub.add_parser("emulator", help="serve a Bybit V5 exchange on loopback, backed by the simulator")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=8765, help="0 takes a free port (default 8765)")
    e.add_argument("--data", action="append", metavar="CSV",
                   help="OHLCV CSV or Bybit kline export, one per symbol (repeat); default: the bundled BTCUSDT set")
    e.add_argument("--symbol", action="append", metavar="SYM", help="the symbol of each --data file, in order")
    pace = e.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, metavar="BARS_PER_SECOND", help="advance one bar every 1/N s")
    pace.add_argument("--step", action="store_true", help="advance only when told (the default)")
    e.add_argument("--start-bar", type=int, default=None,
                   help="start at the close of this bar (default 1000, so /kline has history)")
    e.add_argument("--key", default="emulator-key")
    e.add_argument("--secret", default="emulator-secret")
    e.add_argument("--equity", type=float, default=10_000.0, help="USDT per symbol (default 10000)")
    e.add_argument("--leverage", type=float, default=10.0, help="until set-leverage changes it (default 10)")
    e.add_argument("--maker-fee", type=float, default=0.0002)
    e.add_argument("--taker-fee", type=float, default=0.00055)
    e.add_argument("--slippage-bps", type=float, default=0.0)
    e.add_argument("--tick", type=float, default=0.1)
    e.add_argument("--qty-step", type=float, default=0.001)
    e.add_argument("--min-qty", type=float, default=0.001)
    e.add_argument("--rate-limits", action=argparse.BooleanOptionalAction, default=True,
                   help="Bybit's per-UID and per-IP limits (default on)")
    e.set_defaults(run=cmd_emulator)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        status = _user_failure(e)
        if status is not None:
            return status
        # a bug in playdeck, not the user's input
        if os.environ.get("PLAYDECK_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {e} (set PLAYDECK_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 70


def _loaded(module: str, name: str) -> type:
    """An error type of `module` if the command imported it, else a type nothing is an instance of."""
    found = sys.modules.get(module)
    return getattr(found, name) if found is not None else _NeverRaised


class _NeverRaised(Exception):
    pass


def _user_failure(e: Exception) -> int | None:
    """Say what the user got wrong and give the exit status; None when `e` is not the user's doing."""
    if isinstance(e, _loaded(*PLAY_ERROR)):
        print(e.render(), file=sys.stderr)
        return EXIT_USER
    if isinstance(e, (UserError, *(_loaded(*where) for where in USER_ERRORS))):  # bad options or data, said plainly
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER
    if isinstance(e, OSError):
        # Last resort for a file problem no layer above named more precisely: still the user's
        # file system, not a playdeck bug.
        print(f"error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""), file=sys.stderr)
        return EXIT_USER
    return None


if __name__ == "__main__":
    raise SystemExit(main())
