"""Waiting in tests for something another thread, process or server does: a condition polled until a deadline.

Tests wait on conditions, never on fixed sleeps: a fixed sleep is either too short on a loaded machine
or longer than needed everywhere else. Every wait here has a deadline, so a condition that never comes
fails the test (``wait_for``) or hands the last answer to the test's own assertion (``poll``), which can
then say what was left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = 0.05  # seconds between checks: short against the waits' deadlines, long against a check's cost


def poll(check: Callable[[], T], seconds: float, tolerate: tuple[type[Exception], ...] = (),
         interval: float = INTERVAL) -> T | None:
    """Call ``check()`` until it returns something true or ``seconds`` have passed; return its last answer
    (None if it last raised). An error of a ``tolerate`` kind counts as "not yet" (a node restarting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
        except tolerate:
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def wait_for(check: Callable[[], T], seconds: float, what: str | Callable[[], str],
             tolerate: tuple[type[Exception], ...] = (), interval: float = INTERVAL) -> T:
    """``poll`` that fails the test, naming ``what``, unless ``check()`` turns true within ``seconds``;
    returns that true answer. ``what`` may be a function, called only on failure (a server log's tail)."""
    result = poll(check, seconds, tolerate, interval)
    if not result:
        raise AssertionError(f"not within {seconds} s: {what() if callable(what) else what}")
    return result
