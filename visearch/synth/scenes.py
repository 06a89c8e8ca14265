"""Photos of products: clean seller gallery shots and shopper photos in a scene.

A shopper photo puts 1 to 4 products over a real photograph (``skimage.data``) with
scale, rotation, perspective, shadow, occlusion, lighting, blur, noise and JPEG
artefacts, and returns the ground truth: one box per product (the whole product,
inside the image) and whether its printed article stays readable.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from visearch.synth.render import Sprite

__all__ = [
    "SceneObject", "Warped", "BACKGROUNDS", "warp_sprite", "gallery_photo", "shopper_photo", "encode_jpeg",
    "background_crop", "label_readable", "homography", "apply_homography",
]

# the photographs of skimage.data that ship inside the wheel (no download)
BACKGROUNDS: tuple[str, ...] = (
    "astronaut", "brick", "camera", "cat", "chelsea", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "rocket", "retina", "colorwheel", "clock",
)

# a printed article counts as readable when its sticker is at least this tall in the photo
MIN_LABEL_PX = 15.0
MAX_LABEL_TILT = 20.0  # degrees
MAX_READABLE_BLUR = 1.0  # gaussian sigma
MIN_READABLE_QUALITY = 50  # JPEG quality


@dataclass
class Warped:
    """A sprite after scale, rotation and perspective, cropped to its pixels."""

    image: Image.Image  # RGBA
    label_quad: np.ndarray | None  # (4, 2) corners in this image's pixels


@dataclass
class SceneObject:
    product_id: str
    category: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2/y2 exclusive
    visible: float  # share of the product's pixels not hidden by others or occluders
    article_visible: bool
    article: str | None


@functools.cache
def _background(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 matrix mapping the four ``src`` points onto ``dst``."""
    a = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    h = np.linalg.solve(np.array(a, float), dst.reshape(-1).astype(float))
    return np.append(h, 1.0).reshape(3, 3)


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Where ``h`` sends the (N, 2) points ``pts``."""
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:3]


def warp_sprite(sprite: Sprite, scale: float, angle: float, tilt: float, rng: np.random.Generator) -> Warped:
    """Scale, rotate by ``angle`` degrees and skew the corners by up to ``tilt`` of the side."""
    rgba = Image.fromarray(sprite.rgba, "RGBA")
    s = rgba.width
    src = np.array([[0, 0], [s, 0], [s, s], [0, s]], float)
    t = np.deg2rad(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    dst = ((src - s / 2) * scale) @ rot.T + rng.uniform(-tilt, tilt, (4, 2)) * s * scale
    dst -= dst.min(axis=0)
    fwd = homography(src, dst)
    back = np.linalg.inv(fwd)
    back /= back[2, 2]
    w, h = (int(np.ceil(v)) + 1 for v in dst.max(axis=0))
    out = rgba.transform((w, h), Image.Transform.PERSPECTIVE, tuple(back.reshape(-1)[:8]), Image.Resampling.BILINEAR)
    bbox = out.getchannel("A").point(lambda v: 255 if v > 127 else 0).getbbox()
    if bbox is None:  # degenerate warp: fall back to the unwarped sprite
        return Warped(rgba, None if sprite.label_box is None else _box_quad(sprite.label_box))
    out = out.crop(bbox)
    quad = None
    if sprite.label_box is not None:
        quad = apply_homography(fwd, _box_quad(sprite.label_box)) - np.array(bbox[:2], float)
    return Warped(out, quad)


def _box_quad(box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """JPEG bytes without metadata, so the same pixels give the same file."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality), optimize=False, progressive=False)
    return buf.getvalue()


def gallery_photo(sprite: Sprite, view: int, size: int, rng: np.random.Generator) -> Image.Image:
    """A seller's studio shot: light backdrop; view 0 is straight, later views vary."""
    tone = rng.uniform(228, 252, 3) if view else np.full(3, 248.0)
    yy = np.linspace(0, 1, size)[:, None, None]
    backdrop = np.clip(tone - 18 * yy * rng.uniform(0, 1), 0, 255).astype(np.uint8)
    canvas = Image.fromarray(np.broadcast_to(backdrop, (size, size, 3)).copy(), "RGB")
    fill = 0.9 if view == 0 else rng.uniform(0.6, 0.98)
    angle = 0.0 if view == 0 else rng.uniform(-12, 12)
    warped = warp_sprite(sprite, 1.0, angle, 0.0 if view == 0 else 0.05, rng)
    obj = warped.image
    f = fill * size / max(obj.size)
    obj = obj.resize((max(1, round(obj.width * f)), max(1, round(obj.height * f))), Image.Resampling.LANCZOS)
    x = (size - obj.width) // 2 + (0 if view == 0 else int(rng.integers(-(size - obj.width) // 2, (size - obj.width) // 2 + 1)))
    y = (size - obj.height) // 2 + (0 if view == 0 else int(rng.integers(-(size - obj.height) // 2, (size - obj.height) // 2 + 1)))
    shadow = Image.new("RGBA", obj.size, (0, 0, 0, 0))
    shadow.putalpha(obj.getchannel("A").point(lambda v: v * 0.25).filter(ImageFilter.GaussianBlur(4)))
    canvas.paste(shadow, (x + 4, y + 5), shadow)
    canvas.paste(obj, (x, y), obj)
    return canvas


def background_crop(size: int, rng: np.random.Generator) -> Image.Image:
    """A random square crop of a real photograph, ``size`` px, sometimes mirrored."""
    src = _background(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
    h, w = src.shape[:2]
    side = int(min(h, w) * rng.uniform(0.5, 1.0))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = Image.fromarray(src[y0 : y0 + side, x0 : x0 + side]).resize((size, size), Image.Resampling.BILINEAR)
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


def _overlaps(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]], limit: float) -> bool:
    area = (box[2] - box[0]) * (box[3] - box[1])
    for o in others:
        iw = min(box[2], o[2]) - max(box[0], o[0])
        ih = min(box[3], o[3]) - max(box[1], o[1])
        if iw > 0 and ih > 0:
            inter = iw * ih
            if inter > limit * area or inter > limit * (o[2] - o[0]) * (o[3] - o[1]):
                return True
    return False


def _occluder(canvas: Image.Image, owner: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Cover part of ``box`` from one side: a hand, a cup, another thing in the way."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    share = rng.uniform(0.15, 0.4)
    side = int(rng.integers(4))
    if side == 0:
        rect = (x1 - 4, y1 - 4, x1 + share * bw, y2 + 4)
    elif side == 1:
        rect = (x2 - share * bw, y1 - 4, x2 + 4, y2 + 4)
    elif side == 2:
        rect = (x1 - 4, y1 - 4, x2 + 4, y1 + share * bh)
    else:
        rect = (x1 - 4, y2 - share * bh, x2 + 4, y2 + 4)
    mask = Image.new("L", canvas.size, 0)
    d = ImageDraw.Draw(mask)
    skin = tuple(int(c) for c in rng.uniform([170, 120, 95], [235, 185, 160]))
    colour = skin if rng.random() < 0.5 else tuple(int(c) for c in rng.integers(0, 256, 3))
    if rng.random() < 0.5:
        d.ellipse(rect, fill=255)
    else:
        d.rounded_rectangle(rect, radius=8, fill=255)
    canvas.paste(Image.new("RGB", canvas.size, colour), (0, 0), mask)
    owner[np.asarray(mask) > 127] = -1


def shopper_photo(
    items: list[tuple[str, int, Sprite, str | None]],
    size: int,
    rng: np.random.Generator,
) -> tuple[Image.Image, list[SceneObject], int]:
    """Compose a shopper photo of ``items`` (product id, category, sprite, article).

    Returns the photo (before JPEG), its objects and the JPEG quality to save it with.
    Products that find no place without heavy overlap are left out of the photo.
    """
    canvas = background_crop(size, rng)
    owner = np.full((size, size), -1, np.int32)
    placed: list[tuple[int, tuple[int, int, int, int], np.ndarray, np.ndarray | None, float]] = []
    shrink = 1.0 / (1.0 + 0.3 * (len(items) - 1))
    for idx, (_, _, sprite, _) in enumerate(items):
        longest = size * rng.uniform(0.38, 0.85) * shrink
        angle = rng.uniform(-8, 8) if rng.random() < 0.5 else rng.uniform(-30, 30)
        tilt = rng.uniform(0, 0.08)
        warped = warp_sprite(sprite, longest / sprite.rgba.shape[0], angle, tilt, rng)
        while max(warped.image.size) >= size:  # rotation grew it past the frame: shrink
            longest *= 0.75
            warped = warp_sprite(sprite, longest / sprite.rgba.shape[0], angle, tilt, rng)
        obj = warped.image
        for _ in range(30):
            x, y = int(rng.integers(0, size - obj.width + 1)), int(rng.integers(0, size - obj.height + 1))
            box = (x, y, x + obj.width, y + obj.height)
            if not _overlaps(box, [p[1] for p in placed], 0.25):
                break
        else:
            continue
        alpha = np.asarray(obj.getchannel("A")) > 127
        shadow = Image.new("RGBA", obj.size, (0, 0, 0, 0))
        shadow.putalpha(obj.getchannel("A").point(lambda v: v * 0.35).filter(ImageFilter.GaussianBlur(3)))
        canvas.paste(shadow, (x + 3, y + 4), shadow)
        canvas.paste(obj, (x, y), obj)
        owner[y : y + obj.height, x : x + obj.width][alpha] = idx
        full = np.zeros((size, size), bool)
        full[y : y + obj.height, x : x + obj.width] = alpha
        quad = None if warped.label_quad is None else warped.label_quad + np.array([x, y], float)
        placed.append((idx, box, full, quad, angle))

    if placed and rng.random() < 0.3:
        _occluder(canvas, owner, placed[int(rng.integers(len(placed)))][1], rng)

    # photometry: exposure, contrast, colour cast, blur, sensor noise
    arr = np.asarray(canvas, np.float32)
    arr = (arr - 128) * rng.uniform(0.75, 1.2) + 128 * rng.uniform(0.7, 1.25)
    arr *= rng.uniform(0.9, 1.1, 3)
    blur = float(rng.uniform(0.3, 1.6)) if rng.random() < 0.35 else 0.0
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    noise = rng.uniform(0, 8)
    arr = np.asarray(img, np.float32) + rng.standard_normal((size, size, 3)).astype(np.float32) * noise
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    quality = int(rng.integers(35, 93))

    objects = []
    for idx, box, full, quad, angle in placed:
        pid, cat, _, article = items[idx]
        mine = owner == idx
        visible = float(mine.sum() / max(1, full.sum()))
        readable = False
        if quad is not None and article is not None:
            readable = label_readable(quad, mine, angle, blur, quality)
        objects.append(SceneObject(pid, cat, box, round(visible, 4), readable, article if readable else None))
    return img, objects, quality


def label_readable(quad: np.ndarray, mine: np.ndarray, angle: float, blur: float, quality: int) -> bool:
    """The sticker is big, upright, sharp and wholly in view."""
    height = min(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))
    if height < MIN_LABEL_PX or abs(angle) > MAX_LABEL_TILT or blur > MAX_READABLE_BLUR or quality < MIN_READABLE_QUALITY:
        return False
    rows, cols = mine.shape  # screenshots are not square
    lx0, ly0 = np.floor(quad.min(axis=0)).astype(int)
    lx1, ly1 = np.ceil(quad.max(axis=0)).astype(int)
    if lx0 < 0 or ly0 < 0 or lx1 > cols or ly1 > rows:
        return False
    mask = Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in quad], fill=255)
    sticker = np.asarray(mask) > 127
    return bool(mine[sticker].mean() > 0.99)
