"""Partitions of the event stream, and the Redis hash tag each one gives its visitors' keys.

Like Kafka's partitions, ``ADSERVER_STREAM_PARTITIONS`` (N) splits the event stream so several
writers drain it side by side, and a Redis Cluster spreads it over its primaries. A hit goes to the
partition of its visitor: ``zlib.crc32(uid as UTF-8) % N``, stable across processes, versions and
machines (a hit without a visitor goes to any partition). Every key a hit's one script writes
(the partition's stream entry, its share of the counters, the visitor's profile) carries the
partition's hash tag, so the script runs on the one primary that owns that tag's slot.

Key names (``<key>`` is ``ADSERVER_STREAM_KEY``, ``adserver:events`` by default):

==================  =============================  ======================================
                    N = 1                          N > 1, partition ``p``
==================  =============================  ======================================
hash tag ``T``      what Redis hashes of ``<key>``  ``<key>:<p>``
                    (the whole key without braces)
stream              ``<key>``                      ``{<key>:<p>}``
counters            ``adserver:metrics:{T}``       ``adserver:metrics:{T}``
visitor profile     ``p:{T}:<uid>:...``             ``p:{T}:<uid>:...``
==================  =============================  ======================================

With N = 1 the stream keeps its name, so entries accepted before an upgrade are still drained.
With N > 1 the stream key must hold no braces (its own hash tag would put every partition on one
slot). A primary holds the partitions whose slots it owns: take N a multiple of the primaries
(several partitions each) so that adding a primary can move whole partitions to it.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass


def hash_tag(key: str) -> str:
    """The part of ``key`` that Redis Cluster hashes to find its slot (the first non-empty ``{...}``, or all)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


@dataclass(frozen=True)
class Partitions:
    """The stream key and partition count a deployment runs with, and the names derived from them."""

    stream_key: str
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("a stream has at least one partition")
        if self.count > 1 and ("{" in self.stream_key or "}" in self.stream_key):
            raise ValueError("a partitioned stream's key must not contain braces (each partition adds its own tag)")
        if "}" in hash_tag(self.stream_key):
            raise ValueError("the stream key's hash tag must not contain '}'")

    def of(self, uid: str | None) -> int:
        """The partition of a visitor (any partition for a hit without one)."""
        if self.count == 1:
            return 0
        if not uid:
            return random.randrange(self.count)
        return zlib.crc32(uid.encode("utf-8", "surrogatepass")) % self.count

    def tag(self, partition: int) -> str:
        """The hash tag shared by the partition's stream, counters and visitor profiles."""
        return hash_tag(self.stream_key) if self.count == 1 else f"{self.stream_key}:{partition}"

    def stream(self, partition: int) -> str:
        """The partition's stream key."""
        return self.stream_key if self.count == 1 else "{%s}" % self.tag(partition)

    def streams(self) -> list[str]:
        return [self.stream(p) for p in range(self.count)]

    def once(self, partition: int, caller: str) -> str:
        """The calls of one process (``caller``) applied to the partition recently (``EventStream.send``)."""
        return "adserver:once:{%s}:%s" % (self.tag(partition), caller)

    def metrics(self, partition: int) -> str:
        """The partition's share of the shared counters (summed where they are read)."""
        return "adserver:metrics:{%s}" % self.tag(partition)

    def profile(self, uid: str) -> str:
        """Prefix of the visitor's profile keys (in their partition's slot)."""
        return "p:{%s}:%s" % (self.tag(self.of(uid)), uid)


def parse_range(text: str, count: int) -> list[int]:
    """Partitions named as ``3``, ``0-3`` or ``0-1,4-5``, each below ``count``; raises ``ValueError``."""
    chosen: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise ValueError(f"partitions: {text!r} is not like 0-3")
        lo, hi = int(first), int(last) if sep else int(first)
        if lo > hi or hi >= count:
            raise ValueError(f"partitions: {part.strip()!r} is outside 0-{count - 1} (ADSERVER_STREAM_PARTITIONS={count})")
        chosen.update(range(lo, hi + 1))
    return sorted(chosen)
