"""The `playdeck` command line.

Every user error (a broken Play, bad data, bad options) prints one clear message and exits 2;
nothing the user can cause ends in a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from playdeck.compiler import compile_file
from playdeck.compiler.printer import ir_json, ir_text
from playdeck.dsl.diagnostics import PlayError
from playdeck.dsl.fmt import format_play

EXIT_USER = 2


class UserError(Exception):
    """A problem with the user's input that is not a Play error: bad options, missing data."""


def cmd_compile(args: argparse.Namespace) -> int:
    compiled = compile_file(args.play)
    sys.stdout.write(ir_json(compiled.ir) if args.format == "json" else ir_text(compiled.ir))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    worst = 0
    for path in args.plays:
        try:
            compiled = compile_file(path)
        except PlayError as e:
            print(e.first_line())
            worst = EXIT_USER
        else:
            print(f"{path}: ok ({compiled.ir.name}: {len(compiled.ir.blocks)} blocks, "
                  f"{len(compiled.ir.jobs)} feature jobs)")
    return worst


def cmd_fmt(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="playdeck", description="Compile, check and backtest Plays.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="print a Play's typed IR")
    c.add_argument("play")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(run=cmd_compile)

    k = sub.add_parser("check", help="check Plays, one line each")
    k.add_argument("plays", nargs="+")
    k.set_defaults(run=cmd_check)

    f = sub.add_parser("fmt", help="print a Play in canonical form")
    f.add_argument("play")
    f.add_argument("--write", action="store_true", help="rewrite the file in place")
    f.set_defaults(run=cmd_fmt)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except PlayError as e:
        print(e.render(), file=sys.stderr)
        return EXIT_USER
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in playdeck, not the user's input
        if os.environ.get("PLAYDECK_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {e} (set PLAYDECK_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 70


if __name__ == "__main__":
    raise SystemExit(main())
