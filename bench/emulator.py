"""Benchmark: the Bybit emulator as a client meets it, over loopback.

Starts `playdeck emulator` as its own process (as an exchange is: the client's threads and the
server's do not share an interpreter), with Bybit's rate limits off (with them on, creates stop at
Bybit's 10 a second and the figure would be the limit's), and measures through pybit's `HTTP`:

- order-create round trips per second: N limit orders far from the market, one after another,
  each timed from the call to pybit's answer (a cancel-all every 400 orders keeps the book under
  Bybit's 500, outside the timing), and the median and p99 round trip;
- private-stream latency: from the moment pybit is called to the moment the `order` message of that
  order is read from `/v5/private` by a `websockets` client in another thread; median and p99.

Usage: python bench/emulator.py [--orders N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pybit.unified_trading import HTTP
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
KEY, SECRET = "emulator-key", "emulator-secret"


def write_bars(path: Path, n: int = 2000) -> None:
    t0 = 1_735_689_600_000
    rows = [f"{t0 + k * 60_000},{60000 + k % 50:.1f},{60010 + k % 50:.1f},{59990 + k % 50:.1f},{60005 + k % 50:.1f},5"
            for k in range(n)]
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bars.csv"
        write_bars(csv)
        env = dict(os.environ, PLAYDECK_CACHE=str(Path(tmp) / "cache"))
        proc = subprocess.Popen([sys.executable, "-m", "playdeck.tui.cli", "emulator", "--port", "0", "--data",
                                 str(csv), "--no-rate-limits", "--equity", "1000000000"],
                                stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split()[-1]
            run(url, args.orders)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def run(url: str, n: int) -> None:
    session = HTTP(api_key=KEY, api_secret=SECRET, max_retries=1)
    session.endpoint = url
    session.client.trust_env = False
    session.retry_codes = {-1}
    arrived: dict[str, float] = {}
    ready = threading.Event()
    done = threading.Event()
    ws_url = url.replace("http://", "ws://") + "/v5/private"

    def listen() -> None:
        from playdeck.runtime.bybit.emulator.auth import sign

        with connect(ws_url, proxy=None, ping_interval=None) as ws:
            expires = int(time.time() * 1000) + 60_000
            ws.send(json.dumps({"op": "auth", "args": [KEY, expires, sign(SECRET, f"GET/realtime{expires}")]}))
            ws.recv()
            ws.send(json.dumps({"op": "subscribe", "args": ["order"]}))
            ws.recv()
            ready.set()
            while not done.is_set():
                try:
                    text = ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                now = time.perf_counter()
                msg = json.loads(text)
                for item in msg.get("data", []):
                    if item.get("orderStatus") == "New":
                        arrived.setdefault(item["orderLinkId"], now)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    sent: dict[str, float] = {}
    trips: list[float] = []
    for k in range(n):
        if k and k % 400 == 0:
            session.cancel_all_orders(category="linear", symbol="BTCUSDT")
        link = f"b{k}"
        t = time.perf_counter()
        sent[link] = t
        session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.001",
                            price="50000", orderLinkId=link)
        trips.append(time.perf_counter() - t)
    deadline = time.time() + 10
    while len(arrived) < n and time.time() < deadline:
        time.sleep(0.01)
    done.set()
    listener.join(timeout=5)
    latencies = [arrived[k] - sent[k] for k in sent if k in arrived]
    total = sum(trips)
    print(f"emulator over loopback, pybit HTTP, {n} order creates (rate limits off)")
    print(f"  create round trips: {n / total:,.0f}/s   median {statistics.median(trips) * 1e3:.2f} ms   "
          f"p99 {percentile(trips, 0.99) * 1e3:.2f} ms")
    print(f"  create -> private `order` message ({len(latencies)} of {n} seen): "
          f"median {statistics.median(latencies) * 1e3:.2f} ms   p99 {percentile(latencies, 0.99) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
