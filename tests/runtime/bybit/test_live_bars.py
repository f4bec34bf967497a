"""LiveBars: a live run's bars grow one closed bar at a time and read as `Bars` without copies."""
from __future__ import annotations

import numpy as np
import pytest

from playdeck.runtime.bybit.live_bars import BarGap, LiveBars

T0, STEP = 1_735_689_600_000, 900_000


def test_bars_grow_past_their_room_and_keep_every_value() -> None:
    lb = LiveBars("BTCUSDT", "15m", capacity=2)
    for k in range(9):
        assert lb.add(T0 + k * STEP, 100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k, 3.0) == k
    b = lb.bars()
    assert len(b) == 9 and b.tf == "15m"
    assert np.array_equal(b.ts_open, T0 + np.arange(9) * STEP)
    assert b.close.tolist() == [100.5 + k for k in range(9)] and lb.row(4) == (T0 + 4 * STEP, 104.0, 105.0, 103.0, 104.5)


def test_a_bar_held_already_is_its_index_and_a_skipped_slot_is_a_gap() -> None:
    lb = LiveBars("BTCUSDT", "15m")
    for k in range(3):
        lb.add(T0 + k * STEP, 1.0, 2.0, 0.5, 1.5, 1.0)
    assert lb.add(T0 + STEP, 9.0, 9.0, 9.0, 9.0, 9.0) == 1  # the stream said it again: nothing changes
    assert lb.bars().close[1] == 1.5
    assert lb.add(T0 - STEP, 1.0, 1.0, 1.0, 1.0, 1.0) == -1
    with pytest.raises(BarGap, match="a gap in the venue's klines"):
        lb.add(T0 + 5 * STEP, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_a_view_handed_out_keeps_its_bars_as_more_arrive() -> None:
    lb = LiveBars("BTCUSDT", "15m", capacity=2)
    lb.add(T0, 1.0, 2.0, 0.5, 1.5, 1.0)
    first = lb.bars()
    for k in range(1, 6):
        lb.add(T0 + k * STEP, 5.0, 6.0, 4.0, 5.5, 1.0)
    assert len(first) == 1 and first.close.tolist() == [1.5]
