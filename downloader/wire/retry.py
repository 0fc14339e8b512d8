"""How long to wait before trying again: one backoff policy for the object store and the API.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): uniform in
``[0, min(max_delay, base * 2**(attempt-1))]``, but never less than the server's
``Retry-After``, itself capped so that a server cannot park a connection for hours. Pure:
the random source is injected.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.5
    max_delay: float = 20.0
    retry_after_cap: float = math.inf  # the longest Retry-After honoured

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_delay, self.base * (2.0 ** min(attempt - 1, 60)))
        wait: float = cap * rng()
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.retry_after_cap))
        return wait
