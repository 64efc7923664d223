"""A circuit breaker: after a failure, stop calling a dependency for a short cool-down.

With Redis down or hanging, every request would otherwise wait for its timeout; with the breaker
open, requests take their fallback at once (spool the event, serve a non-personalised ad), and
one request tries Redis again when the cool-down is over.
"""

from __future__ import annotations

import time


class CircuitBreaker:
    def __init__(self, cooldown: float = 1.0) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0
        self.failures = 0

    def allow(self) -> bool:
        return time.monotonic() >= self._open_until

    def failure(self) -> None:
        self.failures += 1
        self._open_until = time.monotonic() + self.cooldown

    def success(self) -> None:
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return not self.allow()
