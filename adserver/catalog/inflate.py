"""Gzip-compressed feeds, inflated under a cap so a small bomb cannot fill the memory.

Stores often publish ``feed.xml.gz``; any feed format may come compressed, and is recognised by the
gzip magic bytes rather than by a name or a content type. Inflation stops as soon as the output would
pass the cap: a gzip bomb (a few kilobytes standing for gigabytes) is refused after at most
``limit`` bytes were produced, never inflated whole.
"""

from __future__ import annotations

import zlib

from tracker.errors import FeedError

GZIP_MAGIC = b"\x1f\x8b"
# The uncompressed size allowed: the same as the largest feed body taken over HTTP.
MAX_INFLATED_BYTES = 50 * 1024 * 1024
_CHUNK = 64 * 1024


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """``data`` uncompressed if it is gzip (several members are joined), else as it is.

    Raises :class:`FeedError` for a corrupt or truncated stream, or one that inflates past ``limit``.
    """
    if not is_gzip(data):
        return data
    out = bytearray()
    pending = memoryview(data)
    while pending:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while pending and not inflater.eof:
                chunk, pending = pending[:_CHUNK], pending[_CHUNK:]
                while chunk:
                    out += inflater.decompress(chunk, limit + 1 - len(out))
                    if len(out) > limit:
                        raise FeedError(f"compressed feed inflates to more than {_size(limit)}; refused, "
                                        "nothing imported", "feed_too_large")
                    chunk = inflater.unconsumed_tail
                    if inflater.eof:
                        break
            if not inflater.eof:
                raise FeedError("compressed feed is truncated (the gzip stream ends early); nothing imported")
        except zlib.error as exc:
            raise FeedError(f"compressed feed is corrupt ({exc}); nothing imported") from None
        pending = memoryview(inflater.unused_data + bytes(pending))
        if pending and not is_gzip(pending):
            break  # padding after the last member (some tools add zeros), as gzip itself ignores it
    return bytes(out)


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MB" if count >= 1024 * 1024 else f"{count} bytes"
