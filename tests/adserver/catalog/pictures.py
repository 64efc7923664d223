"""Pictures made up for the image tests: photos with real-world content, and hostile files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def photo(width: int = 1200, height: int = 1200, fmt: str = "JPEG", seed: int = 1, noise: float = 12.0,
          **save) -> bytes:
    """A photo-like picture: smooth colour gradients and a soft disc, under sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    channels = [127 + 100 * np.sin(x / width * 3.1 + phase[i]) * np.cos(y / height * 2.3 + phase[i])
                for i in range(3)]
    disc = ((x - width * 0.55) ** 2 + (y - height * 0.45) ** 2) < (min(width, height) * 0.3) ** 2
    pixels = np.stack(channels, -1)
    pixels[disc] = pixels[disc] * 0.4 + np.array([230, 200, 170]) * 0.6
    pixels += rng.normal(0, noise, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 88} if fmt == "JPEG" else {}) | save)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))
