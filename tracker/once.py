"""Call ids for the stream's write calls (``@ONCE`` in ``tracker.stream_scripts``): a call sent again after its
answer was lost (a dropped connection, a primary killed after it ran) writes nothing the second time."""

from __future__ import annotations

import itertools
import os
import secrets

from tracker.partitions import Partitions

# A sender's recently applied call ids (``@ONCE`` in tracker/stream_scripts.py): enough for a call sent
# again after a failover or a spool replay minutes later, at a few MB per process and partition at most.
ONCE_KEEP = 50_000
ONCE_TTL = 900  # seconds the set outlives its process's last call


class _Caller:
    """This process's name among the senders of calls, and its call counter; a forked child gets its own."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.name = secrets.token_hex(6)
        self.ids = itertools.count(1)  # next() is atomic under the GIL: threads never share an id


_CALLER = _Caller()


def new_once(partitions: Partitions, partition: int) -> tuple[str, int]:
    """A fresh id for one call to ``partition``'s slot: (the key of its sender's applied set, the id)."""
    return partitions.once(partition, _CALLER.name), next(_CALLER.ids)


def once_args(once: tuple[str, int]) -> list:
    """The ``@ONCE`` step that starts a call's ARGV."""
    return [5, "@ONCE", once[0], once[1], ONCE_KEEP, ONCE_TTL]
