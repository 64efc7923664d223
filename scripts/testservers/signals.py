"""Signals: running the test command in the foreground, and cleanup that Ctrl-C or SIGTERM cannot cut short."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from types import FrameType

from .common import STOP_GRACE_S, Terminated, exit_status, say


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def install_terminate_handlers() -> None:
    """Make SIGTERM/SIGHUP raise, so cleanup code in ``finally`` runs.

    (SIGINT already raises KeyboardInterrupt.)
    """
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Keep Ctrl-C/SIGTERM from cutting cleanup short (it is bounded anyway)."""

    def note(signum: int, _frame: FrameType | None) -> None:
        say(f"{signal.Signals(signum).name} received; still stopping the servers, please wait")

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, note) for s in handled}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _terminal_sent_sigint() -> bool:
    """True if we run in the terminal's foreground process group.

    Then a Ctrl-C already went to the command too (same group), and
    forwarding it would deliver it twice.
    """
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def run_command(cmd: Sequence[str], env: dict[str, str]) -> int:
    """Run the command in the foreground and return its exit status.

    While it runs, SIGTERM/SIGHUP (and a SIGINT not coming from the
    terminal) are passed on to it, so it can finish its own cleanup before we
    stop the servers; a second signal kills it.  The handlers are in place
    before the command starts, so no signal can slip in between and leave
    the command running on its own.
    """
    proc: subprocess.Popen[bytes] | None = None
    pending: list[int] = []  # signals that came while starting the command
    received = 0

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if proc is None:
            pending.append(signum)
        elif received > 1:
            say(f"{signal.Signals(signum).name} again; killing the command")
            proc.kill()
        elif signum != signal.SIGINT or not _terminal_sent_sigint():
            proc.send_signal(signum)

    # A signal ignored by whoever started us (e.g. SIGINT for a background
    # job of a non-interactive shell) stays ignored, as the command inherits.
    handled = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, forward) for s in handled}
    try:
        try:
            proc = subprocess.Popen(list(cmd), env=env)
        except OSError as exc:
            say(f"cannot run {cmd[0]!r}: {exc.strerror}")
            return 127 if isinstance(exc, FileNotFoundError) else 126
        for signum in pending:  # it may have missed them; better twice than never
            proc.send_signal(signum)
        return exit_status(proc.wait())
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc is not None and proc.poll() is None:  # leaving on an exception
            proc.terminate()
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
