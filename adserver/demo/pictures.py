"""The demo's product pictures as resized variants, made from its own files rather than fetched.

The demo stores' pictures are SVG files in the static folder (:mod:`adserver.demo.shop`), drawn
with a few shapes: rectangles, circles, ellipses, paths and text. Variants are made from pixels,
so this draws those shapes with Pillow (at twice the size, then reduced, for smooth edges) and
hands the PNG to the same resizing as a store's photo. Reading the files directly keeps
``make run`` offline and needs no loopback fetching (``ADSERVER_FETCH_ALLOW_LOOPBACK`` stays off).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageColor, ImageDraw, ImageFont

from adserver.catalog.image_store import OK, ProductImage
from adserver.catalog.image_variants import ImageError, variants_of
from adserver.demo.shop import STATIC_ROOT

SIZE, SCALE = 400, 2
_ELEMENT = re.compile(r"<(rect|circle|ellipse|path|text)\b([^>]*?)/?>(?:([^<]*)</text>)?")
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')
_TOKEN = re.compile(r"[A-Za-z]|-?(?:\d+\.?\d*|\.\d+)")


def _paint(attrs: dict[str, str], name: str) -> tuple[int, int, int, int] | None:
    value = attrs.get(name, "#000" if name == "fill" else "none")
    if value == "none":
        return None
    r, g, b = ImageColor.getrgb(value)[:3]
    opacity = float(attrs.get(f"{name}-opacity", attrs.get("opacity", "1")))
    return r, g, b, round(255 * opacity)


def _num(attrs: dict[str, str], name: str) -> float:
    return float(attrs.get(name, "0")) * SCALE


def _path_points(d: str) -> list[list[tuple[float, float]]]:
    """The path's subpaths as polylines (curves sampled; arcs as straight segments to their end)."""
    tokens = _TOKEN.findall(d)
    paths: list[list[tuple[float, float]]] = []
    x = y = 0.0
    i, command = 0, ""
    counts = {"M": 2, "L": 2, "H": 1, "V": 1, "Q": 4, "C": 6, "A": 7, "Z": 0}

    def take(n: int) -> list[float]:
        nonlocal i
        values = [float(t) for t in tokens[i:i + n]]
        i += n
        return values

    while i < len(tokens):
        if tokens[i].isalpha():
            command = tokens[i]
            i += 1
        upper, relative = command.upper(), command.islower()
        if upper == "Z":
            if paths and paths[-1]:
                paths[-1].append(paths[-1][0])
                x, y = paths[-1][0]
            continue
        values = take(counts[upper])
        if len(values) < counts[upper]:
            break
        ox, oy = (x, y) if relative else (0.0, 0.0)
        if upper == "M":
            x, y = ox + values[0], oy + values[1]
            paths.append([(x, y)])
            command = "l" if relative else "L"
            continue
        if not paths:
            paths.append([(x, y)])
        if upper == "L":
            x, y = ox + values[0], oy + values[1]
            paths[-1].append((x, y))
        elif upper == "H":
            x = (x if relative else 0.0) + values[0]
            paths[-1].append((x, y))
        elif upper == "V":
            y = (y if relative else 0.0) + values[0]
            paths[-1].append((x, y))
        elif upper in ("Q", "C"):
            points = [(x, y)] + [(ox + values[k], oy + values[k + 1]) for k in range(0, len(values), 2)]
            for step in range(1, 13):
                t = step / 12
                layer = points
                while len(layer) > 1:  # de Casteljau
                    layer = [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t) for a, b in zip(layer, layer[1:])]
                paths[-1].append(layer[0])
            x, y = points[-1]
        elif upper == "A":
            x, y = ox + values[5], oy + values[6]
            paths[-1].append((x, y))
    return [[(px * SCALE, py * SCALE) for px, py in path] for path in paths]


def rasterize(svg: str) -> bytes:
    """A PNG of one of the demo's SVG pictures (their 400 x 400 box; no transforms, gradients or filters)."""
    canvas = Image.new("RGBA", (SIZE * SCALE, SIZE * SCALE), (255, 255, 255, 255))
    for tag, raw, text in _ELEMENT.findall(svg):
        attrs = dict(_ATTRIBUTE.findall(raw))
        fill, stroke = _paint(attrs, "fill"), _paint(attrs, "stroke")
        width = max(1, round(_num(attrs, "stroke-width") or SCALE))
        layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        if tag == "rect":
            x, y = _num(attrs, "x"), _num(attrs, "y")
            box = (x, y, x + _num(attrs, "width"), y + _num(attrs, "height"))
            draw.rounded_rectangle(box, radius=_num(attrs, "rx"), fill=fill, outline=stroke,
                                   width=width if stroke else 0)
        elif tag in ("circle", "ellipse"):
            cx, cy = _num(attrs, "cx"), _num(attrs, "cy")
            rx = _num(attrs, "r") if tag == "circle" else _num(attrs, "rx")
            ry = _num(attrs, "r") if tag == "circle" else _num(attrs, "ry")
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=stroke, width=width if stroke else 0)
        elif tag == "path":
            for points in _path_points(attrs.get("d", "")):
                if fill and len(points) > 2:
                    draw.polygon(points, fill=fill)
                if stroke and len(points) > 1:
                    draw.line(points, fill=stroke, width=width, joint="curve")
        elif tag == "text" and fill:
            font = ImageFont.load_default(size=max(1.0, _num(attrs, "font-size") or 16 * SCALE))
            anchor = {"middle": "ms", "end": "rs"}.get(attrs.get("text-anchor", ""), "ls")
            draw.text((_num(attrs, "x"), _num(attrs, "y")), text.strip(), fill=fill, font=font, anchor=anchor)
        canvas.alpha_composite(layer)
    out = io.BytesIO()
    canvas.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(out, "PNG")
    return out.getvalue()


def local_file(url: str, static: Path = STATIC_ROOT) -> Path | None:
    """The demo picture a ``.../static/<path>.svg`` URL names, if it is a file inside the static folder."""
    path = urlsplit(url).path
    if not path.startswith("/static/") or not path.endswith(".svg"):
        return None
    root = static.resolve()
    candidate = (root / path.removeprefix("/static/")).resolve()
    return candidate if candidate.is_relative_to(root) and candidate.is_file() else None


def demo_image(url: str, domains: tuple[str, ...] = (), allow_loopback: bool = False,
               previous: ProductImage | None = None) -> ProductImage:
    """The variants of a demo picture, read from the static folder (``resize_images``'s ``process``)."""
    path = local_file(url)
    if path is None:
        return ProductImage(url, "not_found", "not one of the demo's pictures")
    try:
        variants, files = variants_of(rasterize(path.read_text(encoding="utf-8")))
    except (ImageError, ValueError) as exc:
        return ProductImage(url, getattr(exc, "code", "bad_image"), str(exc))
    return ProductImage(url, OK, "", tuple(variants), files=tuple(files))


__all__ = ["demo_image", "local_file", "rasterize"]
