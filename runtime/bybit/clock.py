"""ClockSync: the venue's time from the local clock, so every signature and timestamp agrees with it.

Bybit refuses a request whose timestamp is not within `recv_window` before its server time, nor a
second after it (10002). The offset is measured from `/v5/market/time` (the server's ms, taken to be
the middle of the request's round trip), refreshed every few minutes (`stale`), and again after a
10002 (`expire`). Sans-I/O: the caller fetches the server time and gives the local times around the
request, read with `local_ms`.
"""
from __future__ import annotations

import time
from typing import Callable

__all__ = ["ClockSync"]


class ClockSync:
    def __init__(self, local_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 refresh_ms: int = 300_000) -> None:
        self._local = local_ms
        self.refresh_ms = refresh_ms
        self.offset_ms = 0  # server - local
        self.round_trip_ms: int | None = None
        self.measured_at: int | None = None  # local ms of the last measurement
        self.server_ms: int | None = None  # the venue's own time in its last answer: exact, and already past

    def update(self, server_ms: int, sent_ms: int, received_ms: int) -> None:
        """A measurement: the server said `server_ms` to a request sent at `sent_ms` and answered at
        `received_ms` (local ms). The server read its clock somewhere in between: the middle."""
        self.round_trip_ms = received_ms - sent_ms
        self.offset_ms = server_ms - (sent_ms + received_ms) // 2
        self.measured_at = received_ms
        self.server_ms = server_ms

    def local_ms(self) -> int:
        """The local clock this one corrects (read it around a measurement)."""
        return self._local()

    def now_ms(self) -> int:
        """The venue's time now, as best known."""
        return self._local() + self.offset_ms

    def stale(self) -> bool:
        """True when a measurement is due (never measured, or older than `refresh_ms`)."""
        return self.measured_at is None or self._local() - self.measured_at >= self.refresh_ms

    def expire(self) -> None:
        """The venue refused a timestamp (10002): the offset is wrong, so measure again before the
        next signed request. The offset is kept until then (it is still the best guess)."""
        self.measured_at = None
