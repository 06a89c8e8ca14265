"""Render one product as an RGBA sprite: silhouette, colour, pattern, material, trim,
brand mark and, for some products, a printed article label.

Everything that makes two products of one category and colour differ (proportions,
pattern scale and angle, trim, brand mark and where it sits) lives in
:class:`ProductLook`, so a product looks the same in every photo of it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from visearch.synth.shapes import silhouette
from visearch.synth.vocab import BRANDS, CATEGORIES, COLOURS, EMBLEMS, MATERIALS, PATTERNS

__all__ = ["ProductLook", "Sprite", "render_product", "font"]


@dataclass(frozen=True)
class ProductLook:
    """What a camera sees of a product; every field is an index or a number."""

    category: int
    colour: int
    pattern: int
    pattern_colour: int
    material: int
    brand: int
    trim_colour: int
    trim_width: float  # share of sprite side
    pattern_scale: float  # share of sprite side
    pattern_angle: float  # degrees
    w: float
    h: float
    k: float
    mark_u: float  # preferred brand-mark place, unit square
    mark_v: float
    mark_scale: float
    texture_seed: int
    label_text: str | None = None


@dataclass
class Sprite:
    """A rendered product: RGBA pixels and the label's box in sprite pixels."""

    rgba: np.ndarray  # (S, S, 4) uint8
    label_box: tuple[int, int, int, int] | None


@functools.lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (ships with matplotlib): covers Latin and Cyrillic on every machine."""
    import matplotlib

    path = f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans-Bold.ttf"
    return ImageFont.truetype(path, size)


def _draw_mask(look: ProductLook, size: int) -> tuple[Image.Image, list[tuple[list, float]]]:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    details: list[tuple[list, float]] = []
    s = size
    for prim in silhouette(CATEGORIES[look.category].name, look.w, look.h, look.k):
        fill = 255
        if prim[0] == "cut":
            prim, fill = prim[1], 0
        kind = prim[0]
        if kind == "poly":
            draw.polygon([(x * s, y * s) for x, y in prim[1]], fill=fill)
        elif kind == "ellipse":
            draw.ellipse([c * s for c in prim[1]], fill=fill)
        elif kind == "rrect":
            draw.rounded_rectangle([c * s for c in prim[1]], radius=prim[2] * s, fill=fill)
        elif kind == "stroke":
            pts = [(x * s, y * s) for x, y in prim[1]]
            width = max(2, round(prim[2] * s))
            draw.line(pts, fill=fill, width=width, joint="curve")
            for x, y in (pts[0], pts[-1]):
                draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=fill)
        elif kind == "detail":
            details.append(([(x * s, y * s) for x, y in prim[1]], prim[2] * s))
    return mask, details


def _pattern(look: ProductLook, size: int, rng: np.random.Generator) -> np.ndarray:
    """Share of the pattern colour at each pixel, in [0, 1]."""
    name = PATTERNS[look.pattern][0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    a = np.deg2rad(look.pattern_angle)
    u = xx * np.cos(a) + yy * np.sin(a)
    v = -xx * np.sin(a) + yy * np.cos(a)
    p = max(4.0, look.pattern_scale * size)
    fu, fv = (u / p) % 1.0, (v / p) % 1.0
    if name == "solid":
        return np.zeros((size, size), np.float32)
    if name == "stripes":
        return (fu < 0.45).astype(np.float32)
    if name == "dots":
        return (((fu - 0.5) ** 2 + (fv - 0.5) ** 2) < 0.09).astype(np.float32)
    if name == "checks":
        return 0.5 * ((fu < 0.5).astype(np.float32) + (fv < 0.5).astype(np.float32))
    if name == "zigzag":
        tri = np.abs(((u / p) % 2.0) - 1.0)
        return ((((v / p) + tri) % 1.0) < 0.4).astype(np.float32)
    # "print": small scattered stars and discs, fixed per product
    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    n = int((size / p) ** 2 * 0.6)
    for _ in range(n):
        cx, cy = rng.uniform(0, size, 2)
        r = p * rng.uniform(0.15, 0.3)
        if rng.random() < 0.5:
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        else:
            d.regular_polygon((cx, cy, r * 1.3), n_sides=5, rotation=float(rng.uniform(0, 72)), fill=255)
    return np.asarray(img, np.float32) / 255.0


def _material(look: ProductLook, size: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative shading of the material, around 1."""
    name = MATERIALS[look.material][0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    light = 1.08 - 0.16 * (xx + yy) / 2  # light from the top left
    grain = {"cotton": (0.04, 2), "denim": (0.05, 1), "leather": (0.08, 3), "plastic": (0.015, 8),
             "metal": (0.03, 16), "wool": (0.12, 4), "ceramic": (0.01, 8)}[name]
    noise = rng.standard_normal((size // grain[1] + 1, size // grain[1] + 1)).astype(np.float32)
    noise = np.kron(noise, np.ones((grain[1], grain[1]), np.float32))[:size, :size]
    shade = light + grain[0] * noise
    if name == "denim":
        shade += 0.06 * np.sin((xx + yy) * size * 2 * np.pi / 3)
    if name in ("plastic", "ceramic", "leather"):
        shade += 0.35 * np.exp(-(((xx - 0.35) / 0.12) ** 2 + ((yy - 0.3) / 0.08) ** 2))
    if name == "metal":
        shade += 0.25 * np.exp(-(((xx - 0.6) / 0.06) ** 2)) - 0.1 * yy
    return shade


def _place(dist: np.ndarray, radius: float, u: float, v: float) -> tuple[int, int] | None:
    """Pixel inside the silhouette, ``radius`` from its edge, nearest to (u, v)."""
    size = dist.shape[0]
    ys, xs = np.nonzero(dist >= radius)
    if len(xs) == 0:
        return None
    i = int(np.argmin((xs - u * size) ** 2 + (ys - v * size) ** 2))
    return int(xs[i]), int(ys[i])


def _draw_mark(draw: ImageDraw.ImageDraw, look: ProductLook, cx: int, cy: int, r: float) -> None:
    emblem = EMBLEMS[look.brand % len(EMBLEMS)]
    colour = COLOURS[(look.brand * 5 + 3) % len(COLOURS)][2]
    if colour == COLOURS[look.colour][2]:
        colour = COLOURS[(look.colour + 6) % len(COLOURS)][2]
    ink = (255, 255, 255) if sum(colour) < 380 else (20, 20, 20)
    box = (cx - r, cy - r, cx + r, cy + r)
    if emblem == "circle":
        draw.ellipse(box, fill=colour, outline=ink, width=2)
    elif emblem == "square":
        draw.rectangle(box, fill=colour, outline=ink, width=2)
    else:
        sides, rot = {"triangle": (3, 0), "diamond": (4, 45), "star": (5, 0), "hexagon": (6, 0)}[emblem]
        draw.regular_polygon((cx, cy, r * 1.15), n_sides=sides, rotation=rot, fill=colour, outline=ink)
    draw.text((cx, cy), BRANDS[look.brand][0], fill=ink, font=font(max(8, int(r * 1.1))), anchor="mm")


def render_product(look: ProductLook, size: int = 256) -> Sprite:
    """Draw ``look`` on a transparent ``size`` x ``size`` canvas."""
    rng = np.random.default_rng(look.texture_seed)
    mask_img, details = _draw_mask(look, size)
    mask = np.asarray(mask_img) > 127

    base = np.array(COLOURS[look.colour][2], np.float32)
    second = np.array(COLOURS[look.pattern_colour][2], np.float32)
    share = _pattern(look, size, rng)[..., None]
    rgb = base * (1 - share) + second * share
    rgb = rgb * _material(look, size, rng)[..., None]

    trim_px = max(1, round(look.trim_width * size))
    inner = ndimage.binary_erosion(mask, iterations=trim_px)
    rgb[mask & ~inner] = COLOURS[look.trim_colour][2]
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)

    alpha = mask.astype(np.uint8) * 255
    img = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    draw = ImageDraw.Draw(img)
    for pts, width in details:
        draw.line(pts, fill=COLOURS[look.trim_colour][2] + (255,), width=max(2, round(width)))

    dist = ndimage.distance_transform_edt(mask)
    mark_r = look.mark_scale * size
    spot = _place(dist, mark_r + 2, look.mark_u, look.mark_v)
    if spot is not None:
        _draw_mark(draw, look, spot[0], spot[1], mark_r)
        yy, xx = np.ogrid[0:size, 0:size]
        dist = np.where((xx - spot[0]) ** 2 + (yy - spot[1]) ** 2 < (2.2 * mark_r) ** 2, 0, dist)

    label_box = None
    if look.label_text:
        label_box = _draw_label(img, dist, look.label_text, size)
    return Sprite(np.asarray(img), label_box)


def _draw_label(img: Image.Image, dist: np.ndarray, text: str, size: int) -> tuple[int, int, int, int]:
    """A white sticker with the article, centred where the silhouette is widest."""
    f = font(max(10, round(size * 0.068)))
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=f)
    pad = max(3, round(size * 0.015))
    tw, th = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    # weight the lower half: stickers sit below brand marks on most products
    rows = np.linspace(0.8, 1.2, size)[:, None]
    cy, cx = np.unravel_index(int(np.argmax(dist * rows)), dist.shape)
    lx = int(np.clip(cx - tw // 2, 1, size - tw - 1))
    ly = int(np.clip(cy - th // 2, 1, size - th - 1))
    draw.rectangle((lx, ly, lx + tw, ly + th), fill=(250, 250, 250, 255), outline=(40, 40, 40, 255), width=1)
    draw.text((lx + pad - x0, ly + pad - y0), text, fill=(10, 10, 10, 255), font=f)
    return lx, ly, lx + tw, ly + th
