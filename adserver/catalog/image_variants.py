"""Turning a fetched product picture into the small variants ad slots show (Pillow).

Nothing about the bytes is trusted: not the Content-Type, not the file name. The bytes are opened
with the decoders of the four web formats only (JPEG, PNG, WebP, GIF: no EPS, PSD or other plugin
gets to parse advertiser data), verified, and refused before decoding when they declare more
pixels than :data:`MAX_PIXELS` (Pillow's own decompression-bomb guard, ``Image.MAX_IMAGE_PIXELS``,
is raised as an error too). Every variant is re-encoded from pixels, so no metadata, colour
profile or trailing payload of the original reaches a browser.

Variants fit square boxes of :data:`BOXES` pixels (aspect ratio kept, never enlarged), each as WebP
and as a JPEG fallback. The boxes cover the slot image sizes of :mod:`adserver.serving.formats`
(40 to 124 px, generic sizes up to 320) at 1x and 2x with little to spare.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass
from zlib import error as ZlibError  # noqa: N812 - zlib's name for it

from PIL import Image, ImageOps, UnidentifiedImageError

from tracker.errors import AdServerError

BOXES = (40, 64, 80, 128, 160, 256, 320, 640)
FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
MAX_PIXELS = 4096 * 4096  # 16.8 megapixels: larger than any product photo a feed needs, 64 MB decoded as RGBA
WEBP_QUALITY, JPEG_QUALITY = 72, 78
HASH_CHARS = 32  # hex digits of SHA-256 kept: 128 bits
CONTENT_TYPES = {"webp": "image/webp", "jpg": "image/jpeg"}
BACKGROUND = (255, 255, 255)  # what transparent pixels become in the JPEG fallback (units show images on white)


class ImageError(AdServerError):
    """The bytes are not a picture we use: ``not_image``, ``decompression_bomb``, ``too_many_pixels``,
    ``bad_image`` (a known format that does not decode)."""

    code = "bad_image"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code)


@dataclass(frozen=True)
class Encoded:
    """One encoded variant: its bytes and their digest (the URL's name)."""

    hash: str
    ext: str  # "webp" or "jpg"
    width: int
    height: int
    data: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.ext]


@dataclass(frozen=True)
class Variant:
    """The picture fitted in a ``box`` px square: ``w`` x ``h`` pixels, as WebP and JPEG (hashes)."""

    box: int
    w: int
    h: int
    webp: str
    jpeg: str

    def as_dict(self) -> dict:
        return {"box": self.box, "w": self.w, "h": self.h, "webp": self.webp, "jpeg": self.jpeg}

    @classmethod
    def from_dict(cls, value: dict) -> Variant:
        return cls(int(value["box"]), int(value["w"]), int(value["h"]), str(value["webp"]), str(value["jpeg"]))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=FORMATS)


def decode(data: bytes, largest: int = BOXES[-1]) -> Image.Image:
    """The picture in ``data``, upright, in RGB or RGBA; :class:`ImageError` if it is not one we use.

    A JPEG is decoded at a reduced scale when it is much larger than ``largest`` (the decoder's
    own 1/2, 1/4, 1/8 steps): most of a big photo's pixels would be thrown away by the resize anyway.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            probe = _open(data)
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise ImageError("too_many_pixels", f"{width}x{height} pixels, more than {MAX_PIXELS:,}")
            probe.verify()
            image = _open(data)
            if image.format == "JPEG":
                image.draft("RGB", (largest, largest))
            image.load()
            image = ImageOps.exif_transpose(image)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError("decompression_bomb", f"declares too many pixels to decode: {exc}") from None
        except UnidentifiedImageError:
            raise ImageError("not_image", "not a JPEG, PNG, WebP or GIF picture") from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, ZlibError, IndexError, TypeError) as exc:
            raise ImageError("bad_image", f"the picture does not decode: {str(exc)[:200]}") from None
    if image.width < 1 or image.height < 1:
        raise ImageError("bad_image", "the picture is empty")
    transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    return image.convert("RGBA" if transparent else "RGB")


def _fit(width: int, height: int, box: int) -> tuple[int, int]:
    scale = min(1.0, box / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _encode(image: Image.Image, ext: str) -> Encoded:
    out = io.BytesIO()
    if ext == "webp":
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=2)  # 3x faster than 4, 2 % larger
    else:
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size, BACKGROUND)
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=image.width > 200)
    data = out.getvalue()
    return Encoded(digest(data), ext, image.width, image.height, data)


def make_variants(image: Image.Image, boxes: tuple[int, ...] = BOXES) -> tuple[list[Variant], list[Encoded]]:
    """The variants of ``image`` for every box (smallest box first) and their distinct encoded files.

    Boxes larger than the picture get the picture at its own size (one file for all of them). Each
    size is resized from the next larger one, with a Lanczos filter.
    """
    variants: list[Variant] = []
    files: dict[str, Encoded] = {}
    source = image
    done: dict[tuple[int, int], tuple[str, str]] = {}
    for box in sorted(boxes, reverse=True):
        size = _fit(image.width, image.height, box)
        if size not in done:
            if source.size != size:
                source = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            webp, jpeg = _encode(source, "webp"), _encode(source, "jpg")
            files[webp.hash], files[jpeg.hash] = webp, jpeg
            done[size] = (webp.hash, jpeg.hash)
        variants.append(Variant(box, size[0], size[1], *done[size]))
    return sorted(variants, key=lambda v: v.box), list(files.values())


def variants_of(data: bytes) -> tuple[list[Variant], list[Encoded]]:
    """Decode ``data`` and make its variants (see :func:`decode`, :func:`make_variants`)."""
    return make_variants(decode(data))
