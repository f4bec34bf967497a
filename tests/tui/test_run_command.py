"""`playdeck run` from the command line (`main(argv)` in-process): a run on the in-process emulator
prints a line per intent, order change and fill and then the report; what cannot start is one
`error:` line with exit 2 and never a traceback or a secret."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator_kit import start, walk_bars
from paths import ROOT_DIR
from playdeck.tui.cli import main

EMA_CROSS = ROOT_DIR / "plays" / "ema_cross.yml"


def small_data(tmp_path: Path) -> Path:
    from parity_kit import write_exec_csv

    return write_exec_csv(str(EMA_CROSS), tmp_path / "bars.csv", 60)


def test_a_run_on_the_in_process_emulator(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAYDECK_BYBIT_KEY", raising=False)
    monkeypatch.delenv("PLAYDECK_BYBIT_SECRET", raising=False)
    out = tmp_path / "out"
    assert main(["run", str(EMA_CROSS), "--data", str(small_data(tmp_path)), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "intent market" in text and "Submitted -> New" in text and " fill " in text
    assert "playdeck run (emulator): ema_cross" in text
    assert f"journal     {out / 'journal.sqlite'}" in text
    report = json.loads((out / "report.json").read_text())
    assert report["backend"] == "emulator" and report["metrics"]["fills"] > 0
    for name in ("fills.csv", "orders.csv", "trades.csv", "equity.csv", "report.json"):
        assert (out / name).exists()


def test_live_refuses_without_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYDECK_BYBIT_KEY", "k")
    monkeypatch.setenv("PLAYDECK_BYBIT_SECRET", "s")
    assert main(["run", str(EMA_CROSS), "--backend", "live", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --backend live trades real money: add --i-understand-live")
    assert "Traceback" not in err


def test_demo_needs_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAYDECK_BYBIT_KEY", raising=False)
    monkeypatch.delenv("PLAYDECK_BYBIT_SECRET", raising=False)
    assert main(["run", str(EMA_CROSS), "--backend", "demo", "--out", str(tmp_path)]) == 2
    assert "set PLAYDECK_BYBIT_KEY and PLAYDECK_BYBIT_SECRET" in capsys.readouterr().err


def test_a_key_the_venue_does_not_know_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "wrong-secret-5b7e0c1d"
    monkeypatch.setenv("PLAYDECK_BYBIT_KEY", "a-demo-key-on-the-wrong-host")
    monkeypatch.setenv("PLAYDECK_BYBIT_SECRET", secret)
    bg = start(walk_bars(1200, seed=3), start_bar=1100)
    try:
        code = main(["run", str(EMA_CROSS), "--backend", "emulator", "--endpoint", bg.url, "--out", str(tmp_path)])
    finally:
        bg.stop()
    captured = capsys.readouterr()
    assert code == 2
    assert "10003" in captured.err and "a key works only on the host it was made for" in captured.err
    assert "Traceback" not in captured.err
    assert secret not in captured.err + captured.out
