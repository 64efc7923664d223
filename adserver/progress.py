"""A small progress bar for CLI jobs (imports, training, evaluation), written to stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """Redraws at most ten times a second; prints a final line with the elapsed time."""

    def __init__(self, label: str, total: int | None = None, stream=None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now - self._drawn >= 0.1 and self._tty:
            self._drawn = now
            self.stream.write("\r" + self._line() + " ")
            self.stream.flush()

    def _line(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.total:
            share = min(1.0, self.done / self.total)
            bar = "#" * int(share * 30)
            return f"{self.label} [{bar:<30}] {self.done:,}/{self.total:,} {elapsed:6.1f}s"
        if self.done:
            return f"{self.label} {self.done:,} {elapsed:6.1f}s"
        return f"{self.label} {elapsed:.1f}s"

    def finish(self, note: str = "") -> float:
        elapsed = time.monotonic() - self.started
        end = "\r" if self._tty else ""
        self.stream.write(f"{end}{self._line()} done{(' - ' + note) if note else ''}\n")
        self.stream.flush()
        return elapsed
