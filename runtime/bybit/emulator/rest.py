"""Bybit's REST API on aiohttp: routing, the envelope, signing, rate limits and faults around the
venue's sans-I/O endpoints (queries.py, trading.py).

One request goes: IP limit (403 over it) -> faults that answer instead (10006 / 10002 / 10016 /
HTTP 502) -> route (HTTP 404 for a path Bybit does not have here) -> auth for private paths ->
the UID limit (10006) -> the endpoint -> its pushes to the private streams -> a delayed or lost
reply if told -> the envelope with the three `X-Bapi-Limit*` headers. API errors are HTTP 200
with the envelope, as on Bybit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from playdeck.runtime.bybit.emulator import queries, trading
from playdeck.runtime.bybit.emulator.auth import check_rest, timestamp_msg
from playdeck.runtime.bybit.emulator.errors import MSG_RATE, MSG_SYSTEM, BybitError
from playdeck.runtime.bybit.emulator.ratelimit import Allowance
from playdeck.runtime.bybit.emulator.venue import Venue
from playdeck.runtime.bybit.emulator.wire import envelope

if TYPE_CHECKING:
    from playdeck.runtime.bybit.emulator.server import Emulator

__all__ = ["ROUTES", "rest_routes"]

Endpoint = Callable[[Venue, dict[str, Any], int], dict[str, Any]]

# (method, path) -> (endpoint, signed)
ROUTES: dict[tuple[str, str], tuple[Endpoint, bool]] = {
    ("GET", "/v5/market/time"): (queries.server_time, False),
    ("GET", "/v5/market/kline"): (queries.klines, False),
    ("GET", "/v5/market/instruments-info"): (queries.instruments, False),
    ("GET", "/v5/market/tickers"): (queries.tickers, False),
    ("POST", "/v5/order/create"): (trading.create_order, True),
    ("POST", "/v5/order/amend"): (trading.amend_order, True),
    ("POST", "/v5/order/cancel"): (trading.cancel_order, True),
    ("POST", "/v5/order/cancel-all"): (trading.cancel_all, True),
    ("GET", "/v5/order/realtime"): (queries.open_orders, True),
    ("GET", "/v5/order/history"): (queries.order_history, True),
    ("GET", "/v5/execution/list"): (queries.executions, True),
    ("GET", "/v5/position/list"): (queries.positions, True),
    ("POST", "/v5/position/trading-stop"): (trading.trading_stop, True),
    ("POST", "/v5/position/set-leverage"): (trading.set_leverage, True),
    ("GET", "/v5/account/wallet-balance"): (queries.wallet_balance, True),
}
UID = "1"  # the one account's UID: per-UID limits are kept per key's account


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status, headers=headers,
                        content_type="application/json")


def rest_routes(emu: Emulator) -> list[web.RouteDef]:
    async def handle(request: web.Request) -> web.StreamResponse:
        faults = emu.faults
        now = emu.now_ms()
        limits = emu.limits
        allowance = limits.ip(request.remote or "", now)
        if not allowance.allowed:
            return web.Response(status=403, text="access too frequent")
        headers = allowance.headers()
        path = request.path
        forced = faults.take_error()
        if forced == 502:
            return web.Response(status=502, text="Bad Gateway")
        if forced is not None:
            if forced == 10006:
                # a reset in the future (bybit-v5.md 1.4: pybit sleeps until it; a past one raises)
                headers = Allowance(False, allowance.limit, 0, now + 1000).headers()
                return _json(envelope({}, now, 10006, MSG_RATE), headers=headers)
            if forced == 10002:
                ts = request.headers.get("X-BAPI-TIMESTAMP", str(now))
                recv = request.headers.get("X-BAPI-RECV-WINDOW", "5000")
                return _json(envelope({}, now, 10002, timestamp_msg(ts, now, recv)), headers=headers)
            return _json(envelope({}, now, forced, MSG_SYSTEM), headers=headers)
        route = ROUTES.get((request.method, path))
        if route is None:
            return _json(envelope({}, now, 10017, "route not found"), status=404, headers=headers)
        endpoint, signed = route
        if request.method == "GET":
            # The raw query string, exactly as sent: it is what the client signed.
            raw = request.raw_path.partition("?")[2]
            params: dict[str, Any] = dict(request.query)
        else:
            raw = await request.text()
            try:
                params = json.loads(raw) if raw.strip() else {}
            except ValueError:
                params = None  # type: ignore[assignment]
            if not isinstance(params, dict):
                return _json(envelope({}, now, 10001, "params error: the body is not a JSON object"), headers=headers)
        try:
            if signed:
                check_rest(request.headers, raw, now, emu.config.key, emu.config.secret)
                if limits.has_uid_limit(path):
                    allowance = limits.uid(UID, path, now)
                    headers = allowance.headers()
                    if not allowance.allowed:
                        raise BybitError(10006, MSG_RATE)
            result = endpoint(emu.venue, params, now)
            body = envelope(result, now)
        except BybitError as e:
            body = envelope({}, now, e.code, e.msg)
        emu.publish_private()
        if faults.delay_ms > 0:
            await asyncio.sleep(faults.delay_ms / 1000)
        if signed and request.method == "POST" and faults.take_lost_reply():
            # The request was carried out; the reply never comes: the client times out.
            await emu.hold_lost_reply(request)
        return _json(body, headers=headers)

    return [web.route("*", "/v5/{tail:.*}", handle)]
