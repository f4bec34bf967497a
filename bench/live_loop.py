"""Benchmark: the live loop of `playdeck run`, against the in-process emulator over loopback.

A Play that sends an order on every bar (it flips a position: a close and a new entry at market)
runs in lockstep through the whole path a live run takes: the bar's `confirm:true` kline read from
the public stream (websockets), the backend applying the bar's private pushes, the engine evaluating
the blocks on the grown feeds, the IntentProcessor, the journal's commit, pybit's REST create in a
worker thread, the emulator's answer. Measured:

- from the moment a bar's `confirm:true` message is read to the acknowledgement of the first order
  sent at that bar's close (pybit's create returned): median and p99 (target: p99 under 5 ms);
- intents per second through the whole path (every intent of the run over the run's wall time,
  warm-up excluded).

Bybit's rate limits are off on both sides (with them, creates stop at 10 a second and the figure
would be the limit's). The emulator shares the runner's event loop, so its own work is in the
figures too. Usage: python bench/live_loop.py [--bars N]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PLAY = """\
play: flip_every_bar
description: flips between long and short at market on every closed bar (a bench of the live loop).
market:
  symbol: BTCUSDT
  exec: 15m
account:
  equity: 100000
  leverage: 5
  fees: {maker: 0.0002, taker: 0.00055}
  slippage_bps: 2
features:
  fast: ema(close, 2)
blocks: |
  block flip:
    when long and fast > 0:
      close
      market sell qty 0.01
    when short and fast > 0:
      close
      market buy qty 0.01
    when flat and fast > 0:
      market buy qty 0.01
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(play: Path, data: Path, out: Path) -> dict[str, float]:
    from playdeck.compiler import compile_file
    from playdeck.compiler.lower import lower
    from playdeck.runtime.bybit.runner import RunConfig, emulator_for, live_run

    plan = lower(compile_file(str(play)).ir)
    cfg = RunConfig(str(play), backend="emulator", data=str(data), out=str(out), rate_limits=False,
                    echo=lambda line: None)
    emu = await emulator_for(cfg, plan)
    latencies: list[float] = []
    intents = 0
    try:
        async with live_run(cfg, plan, emu) as run:
            submit = run.backend.submit_order
            timed: set[int] = set()

            async def timed_submit(order):  # noqa: ANN001, ANN202
                result = await submit(order)
                ts, read_at = run.public.last_confirm
                bar = run.backend.bar
                if bar not in timed and run.bars.ts and ts == run.bars.ts[bar]:
                    timed.add(bar)  # the first order of the bar: from its confirm to this ack
                    latencies.append((time.perf_counter() - read_at) * 1000)
                return result

            run.backend.submit_order = timed_submit  # type: ignore[method-assign]
            await run.warm_bars()
            before = len(run.state.orders)
            t0 = time.perf_counter()
            while not (await run.step_once())["end"]:
                pass
            wall = time.perf_counter() - t0
            intents = len(run.state.orders) - before
            n_bars = len(run.bars)
    finally:
        await emu.stop()
    return {"bars": n_bars, "orders_timed": len(latencies), "median_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99), "intents_per_s": intents / wall, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=600)
    args = parser.parse_args()
    from parity_kit import write_exec_csv

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        play = folder / "flip_every_bar.yml"
        play.write_text(PLAY)
        data = write_exec_csv(str(ROOT / "plays" / "ema_cross.yml"), folder / "bars.csv", args.bars)
        figures = asyncio.run(measure(play, data, folder / "out"))
    print(f"live loop (in-process emulator, loopback, rate limits off): {figures['bars']} bars, "
          f"{figures['orders_timed']} bars with orders timed")
    print(f"  confirm:true -> order acknowledged: median {figures['median_ms']:.2f} ms, "
          f"p99 {figures['p99_ms']:.2f} ms (target p99 < 5 ms)")
    print(f"  intents through the whole path: {figures['intents_per_s']:.0f} per second "
          f"({figures['wall_s']:.1f} s of trading)")
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
