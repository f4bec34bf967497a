"""The IntentProcessor: what a block asked for -> orders, the same way for every backend.

It sizes an order intent (`sizing.order_request`: qty, usdt, % equity, risk, % of position,
rounded to the step and tick, checked), hands the request to the `Executor` (which applies the
same-tag rule and keeps the TradingState), and records every refused intent with its
`RefusalCode` in the TradingState (rejections.csv, the report's counts).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from playdeck.runtime.execution.executor import Executor
from playdeck.runtime.execution.orders import Instrument, OrderRequest, OrderResult, Refusal, RefusalCode
from playdeck.runtime.execution.trading_state import RefusedIntent
from playdeck.runtime.strategy.intents import ORDER_KINDS, Intent
from playdeck.runtime.strategy.sizing import order_request, protection_value

__all__ = ["IntentProcessor", "refusal_counts"]


class IntentProcessor:
    def __init__(self, executor: Executor, instrument: Instrument, *, id_prefix: str = "pd") -> None:
        self.executor = executor
        self.state = executor.state
        self.instrument = instrument
        # Client ids become Bybit's orderLinkId: at most 36 of [A-Za-z0-9_-]. A 16-character prefix
        # leaves room for "-{bar}-{seq}" up to ten-digit bars and eight-digit counts.
        self.id_prefix = re.sub(r"[^A-Za-z0-9_-]", "", id_prefix)[:16] or "pd"
        self._seq = 0

    @property
    def rejections(self) -> list[RefusedIntent]:
        return self.state.refusals

    # ---- public ------------------------------------------------------------------------------
    async def process(self, intent: Intent, state: Any) -> OrderResult | None:
        """Handle one intent given the `StateView` of its bar. Refusals are recorded, not raised."""
        if intent.kind not in ORDER_KINDS:
            return await self.command(intent, state)
        order = self.order_for(intent, state)
        if order is None:
            return None
        return await self.send(order, intent)

    def order_for(self, intent: Intent, state: Any) -> OrderRequest | None:
        """Size, round and validate an order intent: the request to send, or None when it is refused
        (the refusal is recorded). Synchronous, so the common refusal (a size below min_qty on every
        signal of a spent account) costs no coroutine."""
        order = order_request(intent, state, self.instrument, self._client_id)
        if order.__class__ is Refusal:
            self.refuse(intent, order)  # type: ignore[arg-type]
            return None
        return order  # type: ignore[return-value]

    async def send(self, order: OrderRequest, intent: Intent) -> OrderResult:
        """Send a request made by `order_for` (the executor applies the same-tag rule)."""
        result = await self.executor.submit(order)
        if not result.accepted:
            self.refuse(intent, result.refusal)
        return result

    async def command(self, it: Intent, st: Any) -> OrderResult | None:
        """`cancel` and the protection kinds: no order is built."""
        executor = self.executor
        if it.kind == "cancel":
            if it.tag is None:
                await executor.cancel_all()
            else:
                await executor.cancel_tag(it.tag)
            return None
        if st.flat:
            self.refuse(it, Refusal(RefusalCode.NO_POSITION, f"{it.kind} needs an open position"))
            return None
        value = protection_value(it, st, self.instrument)
        if value.__class__ is Refusal:
            self.refuse(it, value)  # type: ignore[arg-type]
            return None
        result = await executor.set_protection(it.kind, value, percent=it.percent and it.kind == "trail")  # type: ignore[arg-type]
        if not result.accepted:
            self.refuse(it, result.refusal)
        return result

    def refuse(self, intent: Intent, refusal: Refusal | None) -> None:
        if refusal is None:
            refusal = Refusal(RefusalCode.BAD_REQUEST, "rejected by the backend")
        self.state.refuse(intent.bar, intent.kind, intent.tag, refusal.text, intent.where, refusal.code)

    def rejections_by_reason(self) -> Counter:
        """Refused intents counted by refusal code, named by the code's label."""
        return refusal_counts(self.state.refusals)

    def _client_id(self, bar: int) -> str:
        self._seq += 1
        return f"{self.id_prefix}-{bar}-{self._seq}"


def refusal_counts(refusals: list[RefusedIntent]) -> Counter:
    """Refused intents counted by their code's label (the text's numbers vary, the code does not)."""
    return Counter(r.code.label if r.code is not None else r.reason for r in refusals)
