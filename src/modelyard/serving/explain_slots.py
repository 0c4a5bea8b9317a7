"""Where a served model's explanations run: one at a time per model, a bounded queue, a deadline.

Both the explain routes (explain_routes.py) and a predict request that asks for heatmaps
(``?heatmap=saliency``, ranking.py) explain through the app's one ``ExplainSlots``, so
together they never run more than one explanation per model at once (integrated gradients on a
batch already uses every core), at most ``MAX_WAITING`` wait (then 503 + Retry-After), and
the work runs in a worker thread (``asyncio.to_thread``) so the event loop keeps answering
predictions. Integrated gradients costs instances x steps forward and backward passes: the
product is capped by the server's ``--max-explain-cost``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import numpy as np

from modelyard.errors import QueueFullError, RequestTimeoutError, SpecError

__all__ = ["ExplainSlots", "MAX_WAITING", "check_cost"]

MAX_WAITING = 8


class _Slot:
    """One served model's explainer (created on first use), its lock, its waiting count and
    a running estimate of one explanation's seconds (for Retry-After)."""

    def __init__(self, predictor: Any, data_access: Any = None) -> None:
        self.predictor = predictor
        self.data_access = data_access  # the server's data rule for the background sample (None: open)
        self.lock = asyncio.Lock()
        self.waiting = 0
        self.seconds = 1.0  # until one has been timed
        self._explainer: Any = None

    def explain(self, raw: np.ndarray, options: dict[str, Any], timeout_s: float) -> Any:
        if self._explainer is None:
            from modelyard.explaining import Explainer

            self._explainer = Explainer(self.predictor)
        from modelyard.data.access import confined

        start = time.monotonic()
        try:
            with confined(self.data_access):
                return self._explainer.explain(raw, **options, timeout_s=timeout_s)
        finally:
            self.seconds = 0.7 * self.seconds + 0.3 * (time.monotonic() - start)

    def retry_after(self) -> int:
        """Seconds until the queue ahead of a new request has likely drained."""
        return max(1, math.ceil((self.waiting + 1) * self.seconds))


def check_cost(rows: int, options: dict[str, Any], budget: int) -> None:
    """Integrated gradients runs instances x steps forward and backward passes: cap their product."""
    if options["method"] not in ("integrated_gradients", "ig"):
        return
    cost = rows * options["steps"]
    if cost > budget:
        raise SpecError(
            f"Invalid value for `steps`: expected instances x steps at most {budget} on this server "
            f"(--max-explain-cost), received {rows} x {options['steps']} = {cost}; lower steps or send fewer instances",
            field="steps",
        )


class ExplainSlots:
    """The app's explanation slots, one per served ``name:version`` (``app.state.explain_slots``)."""

    def __init__(self, app: Any) -> None:
        self._app = app  # its state carries the config and the data rule (set after the app is built)
        self._slots: dict[str, _Slot] = {}

    async def explain(self, served: Any, raw: np.ndarray, options: dict[str, Any], deadline: float) -> Any:
        """The Explanation of ``raw`` for ``served`` with ``options`` (ExplainOptions fields), by ``deadline``
        (time.monotonic()): a 422 when integrated gradients costs more than --max-explain-cost, then a 503 when the
        queue is full and a 504 when the deadline passes while waiting."""
        state = self._app.state
        check_cost(len(raw), options, state.config.max_explain_cost)
        slot = self._slots.setdefault(served.ref, _Slot(served.predictor, getattr(state, "data_access", None)))
        if slot.waiting >= MAX_WAITING:
            raise QueueFullError(
                f"Model {served.ref} has {slot.waiting} explanations waiting: expected at most {MAX_WAITING}; retry shortly",
                retry_after=slot.retry_after(),
            )
        slot.waiting += 1
        try:
            try:
                await asyncio.wait_for(slot.lock.acquire(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise RequestTimeoutError(
                    f"Explanation of {served.ref} waited {state.config.timeout_s:g} s for the explanations ahead of it "
                    "(the request timeout); retry later"
                ) from None
            try:
                return await asyncio.to_thread(slot.explain, raw, options, max(0.0, deadline - time.monotonic()))
            finally:
                slot.lock.release()
        finally:
            slot.waiting -= 1
