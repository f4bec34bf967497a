"""Faults on demand, and the control API that drives an emulator (not Bybit's: `/_emulator/...`, on
the same port, answered to loopback clients only).

`Faults` is sans-I/O: counters the server consults per request and per push. The control routes
(README, "The Bybit emulator", lists them) call the same methods the in-process API has.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

if TYPE_CHECKING:
    from playdeck.runtime.bybit.emulator.server import Emulator

__all__ = ["FAULT_ERRORS", "Faults", "control_routes"]

# What "answer the next N requests with ..." can answer: three retCodes and a gateway failure.
FAULT_ERRORS = (10006, 10002, 10016, 502)


@attrs.define
class Faults:
    """What the server is told to get wrong next. Counters count down as they are used."""

    error_code: int | None = None
    error_count: int = 0
    delay_ms: int = 0
    lose_replies: int = 0
    drop_private: int = 0
    drop_topic: str | None = None  # only pushes of this topic family are dropped (None: any)
    skew_ms: int = 0

    def fail_next(self, code: int, count: int = 1) -> None:
        if code not in FAULT_ERRORS:
            raise ValueError(f"code must be one of {', '.join(map(str, FAULT_ERRORS))}, was {code}")
        if count < 0:
            raise ValueError("count must be >= 0")
        self.error_code, self.error_count = code, count

    def take_error(self) -> int | None:
        """The error to answer this request with, if one is due."""
        if self.error_count > 0 and self.error_code is not None:
            self.error_count -= 1
            return self.error_code
        return None

    def take_lost_reply(self) -> bool:
        if self.lose_replies > 0:
            self.lose_replies -= 1
            return True
        return False

    def take_drop(self, topic: str) -> bool:
        """Whether this private push (of `topic`: order, execution, position, wallet) is dropped."""
        if self.drop_private > 0 and (self.drop_topic is None or self.drop_topic == topic):
            self.drop_private -= 1
            return True
        return False

    def clear(self) -> None:
        """Every fault off (the clock skew too)."""
        self.error_code, self.error_count = None, 0
        self.delay_ms = self.lose_replies = self.drop_private = self.skew_ms = 0
        self.drop_topic = None


def _loopback(request: web.Request) -> bool:
    return request.remote in ("127.0.0.1", "::1")


def control_routes(emu: Emulator) -> list[web.RouteDef]:
    """The `/_emulator/` routes for `emu`."""

    async def body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = json.loads(await request.text() or "{}")
        except ValueError:
            raise web.HTTPBadRequest(text=json.dumps({"error": "the body is not JSON"}),
                                     content_type="application/json") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be a JSON object"}),
                                     content_type="application/json")
        return data

    def answer(extra: dict[str, Any] | None = None) -> web.Response:
        return web.json_response({"ok": True, "state": emu.state(), **(extra or {})})

    def guarded(handler):  # noqa: ANN001, ANN202
        async def run(request: web.Request) -> web.StreamResponse:
            if not _loopback(request):
                return web.json_response({"error": "the control API answers loopback clients only"}, status=403)
            try:
                return await handler(request, await body(request))
            except (ValueError, TypeError, KeyError) as e:
                return web.json_response({"error": str(e)}, status=400)
        return run

    def number(data: dict[str, Any], name: str, default: int | None = None) -> int:
        value = data.get(name, default)
        if value is None:
            raise KeyError(f"{name} is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, was {value!r}")
        return value

    async def state(request: web.Request, data: dict[str, Any]) -> web.Response:
        return answer()

    async def advance(request: web.Request, data: dict[str, Any]) -> web.Response:
        n = number(data, "bars", 1)
        if n < 0:
            raise ValueError("bars must be >= 0")
        moved = await emu.advance(n)
        return answer({"advanced": moved})

    async def step(request: web.Request, data: dict[str, Any]) -> web.Response:
        return answer({"step": await emu.step()})

    async def pause(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.pause()
        return answer()

    async def resume(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.resume()
        return answer()

    async def close_stream(request: web.Request, data: dict[str, Any]) -> web.Response:
        stream = data.get("stream")
        if stream not in ("public", "private"):
            raise ValueError("stream must be public or private")
        closed = await emu.close_streams(stream)
        return answer({"closed": closed})

    async def drop_private(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.drop_private(number(data, "count"), data.get("topic"))
        return answer()

    async def delay(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.delay_replies(number(data, "ms"))
        return answer()

    async def error(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.fail_next(number(data, "code"), number(data, "count", 1))
        return answer()

    async def lose_reply(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.lose_replies(number(data, "count", 1))
        return answer()

    async def split_fill(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.split_next_fill(number(data, "parts"), data.get("symbol"))
        return answer()

    async def skew(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.skew_clock(number(data, "ms"))
        return answer()

    async def restart(request: web.Request, data: dict[str, Any]) -> web.Response:
        # Answered first: the restart drops this very connection too.
        emu.schedule_restart()
        return answer()

    async def clear(request: web.Request, data: dict[str, Any]) -> web.Response:
        emu.faults.clear()
        return answer()

    return [
        web.get("/_emulator/state", guarded(state)),
        web.post("/_emulator/advance", guarded(advance)),
        web.post("/_emulator/step", guarded(step)),
        web.post("/_emulator/pause", guarded(pause)),
        web.post("/_emulator/resume", guarded(resume)),
        web.post("/_emulator/fault/close-stream", guarded(close_stream)),
        web.post("/_emulator/fault/drop-private", guarded(drop_private)),
        web.post("/_emulator/fault/delay", guarded(delay)),
        web.post("/_emulator/fault/error", guarded(error)),
        web.post("/_emulator/fault/lose-reply", guarded(lose_reply)),
        web.post("/_emulator/fault/split-fill", guarded(split_fill)),
        web.post("/_emulator/fault/skew", guarded(skew)),
        web.post("/_emulator/fault/restart", guarded(restart)),
        web.post("/_emulator/fault/clear", guarded(clear)),
    ]
