"""`playdeck emulator` as a user runs it: the first line says where it listens, pybit talks to it,
Ctrl-C stops it cleanly; bad options are one `error:` line and exit 2."""
from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from emulator_kit import T0, http
from paths import ROOT_DIR


def write_csv(path: Path, n: int = 60) -> Path:
    rows = [f"{T0 + k * 60_000},{100 + k % 7:.1f},{101 + k % 7:.1f},{99 + k % 7:.1f},{100.5 + k % 7:.1f},3"
            for k in range(n)]
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


class Served:
    """A `playdeck emulator` process and the lines it prints."""

    def __init__(self, *args: str, cache: Path) -> None:
        env = dict(os.environ, PLAYDECK_CACHE=str(cache))
        self.proc = subprocess.Popen([sys.executable, "-m", "playdeck.tui.cli", "emulator", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=ROOT_DIR)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float = 60.0) -> str:
        return self.lines.get(timeout=timeout)

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return code, "\n".join(rest)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def test_it_prints_where_it_listens_serves_pybit_and_stops_on_ctrl_c(tmp_path: Path):
    csv = write_csv(tmp_path / "bars.csv")
    served = Served("--port", "0", "--data", str(csv), "--symbol", "ETHUSDT", "--start-bar", "10",
                    "--key", "k1", "--secret", "s1", cache=tmp_path / "cache")
    try:
        first = served.line()
        m = re.fullmatch(r"emulator listening on (http://127\.0\.0\.1:(\d+))", first)
        assert m is not None, first
        url = m.group(1)
        assert served.line() == f"public stream  ws://127.0.0.1:{m.group(2)}/v5/public/linear"
        assert served.line() == f"private stream ws://127.0.0.1:{m.group(2)}/v5/private"
        assert served.line() == "key k1  secret s1"
        assert served.line().startswith("ETHUSDT: 60 1m bars, at the close of bar 10 (2025-01-01T00:10:00Z); --step")
        api = http(url, key="k1", secret="s1")
        rows = api.get_kline(category="linear", symbol="ETHUSDT", interval="1", limit=1)["result"]["list"]
        assert rows[0][0] == str(T0 + 10 * 60_000)
        assert api.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["totalEquity"] == "10000"
        code, rest = served.interrupt()
        assert code == 0 and rest.endswith("emulator stopped")
        assert served.proc.stderr is not None and served.proc.stderr.read() == ""
    finally:
        served.kill()


def test_without_data_it_replays_the_bundled_set_at_speed(tmp_path: Path):
    served = Served("--port", "0", "--speed", "50", cache=tmp_path / "cache")
    try:
        url = served.line().rsplit(" ", 1)[1]
        for _ in range(3):
            served.line()
        assert "BTCUSDT: 525600 1m bars, at the close of bar 1000" in served.line()
        api = http(url)
        import time

        deadline = time.time() + 20
        while int(api.get_kline(category="linear", symbol="BTCUSDT", interval="1", limit=1)["result"]["list"][0][0]) \
                < T0 + 1002 * 60_000:
            assert time.time() < deadline, "the bars did not move at --speed 50"
            time.sleep(0.05)
        assert served.interrupt()[0] == 0
    finally:
        served.kill()


def one_error(*args: str, cache: Path) -> str:
    r = subprocess.run([sys.executable, "-m", "playdeck.tui.cli", "emulator", *args], capture_output=True, text=True,
                       env=dict(os.environ, PLAYDECK_CACHE=str(cache)), cwd=ROOT_DIR, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_bad_options_are_one_error_line(tmp_path: Path):
    csv = write_csv(tmp_path / "bars.csv")
    cache = tmp_path / "cache"
    assert "'btcusdt' must be in capitals: BTCUSDT" in one_error("--data", str(csv), "--symbol", "btcusdt", cache=cache)
    assert "2 --data files need as many --symbol options" in one_error("--data", str(csv), "--data", str(csv),
                                                                        cache=cache)
    assert "--speed must be greater than 0" in one_error("--data", str(csv), "--speed", "0", cache=cache)
    assert "give --data FILE for ETHUSDT" in one_error("--symbol", "ETHUSDT", cache=cache)
    assert "start bar 99 is outside the data" in one_error("--data", str(csv), "--start-bar", "99", cache=cache)
    assert "not allowed with argument" in one_error("--speed", "2", "--step", cache=cache)


def test_a_port_in_use_is_a_user_error(tmp_path: Path):
    csv = write_csv(tmp_path / "bars.csv")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = one_error("--data", str(csv), "--port", str(port), cache=tmp_path / "cache")
    assert "address already in use" in line.lower() or "errno 98" in line.lower()


@pytest.mark.parametrize("argv", [["emulator", "--help"]])
def test_help_names_the_options(argv):
    r = subprocess.run([sys.executable, "-m", "playdeck.tui.cli", *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for option in ("--host", "--port", "--data", "--symbol", "--speed", "--step", "--key", "--secret", "--equity"):
        assert option in r.stdout
