"""Contact sheet of a WB-Synth set: products with their cards, shopper photos and
screenshot-style queries with their boxes and readable articles drawn, so a person can
see what the data is."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from visearch.synth.catalog import Product
from visearch.synth.dataset import scene_kinds
from visearch.synth.render import font
from visearch.synth.vocab import CATEGORIES

__all__ = ["write_preview", "draw_boxes", "screenshot_sheet"]

_TILE = 192
SHOW_VISIBLE_BELOW = 0.995  # captions name the visible share of products partly hidden or cut off
_COLS = 8
_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230))


def draw_boxes(img: Image.Image, boxes: list[tuple[tuple[int, int, int, int], str]]) -> Image.Image:
    """Draw labelled boxes (pixels of ``img``) on a copy of ``img``."""
    img = img.convert("RGB").copy()
    d = ImageDraw.Draw(img)
    f = font(max(10, img.width // 28))
    for n, (box, text) in enumerate(boxes):
        colour = _PALETTE[n % len(_PALETTE)]
        d.rectangle(box, outline=colour, width=max(2, img.width // 160))
        tb = d.textbbox((box[0] + 2, box[1] + 1), text, font=f)
        d.rectangle((tb[0] - 1, tb[1] - 1, tb[2] + 1, tb[3] + 1), fill=colour)
        d.text((box[0] + 2, box[1] + 1), text, fill=(0, 0, 0), font=f)
    return img


def _photos(scene_rows: dict[str, list], kind: str) -> dict[str, list[int]]:
    """Rows of each photo of ``kind``, in table order."""
    objects: dict[str, list[int]] = defaultdict(list)
    for i, (sid, k) in enumerate(zip(scene_rows["scene_id"], scene_kinds(scene_rows), strict=True)):
        if k == kind:
            objects[sid].append(i)
    return dict(objects)


def _boxed(root: Path, scene_rows: dict[str, list], idx: list[int]) -> Image.Image:
    """One photo with each object's box, category, readable article and (when cut or hidden) visible share."""
    with Image.open(root / scene_rows["image"][idx[0]]) as photo:
        boxes = []
        for i in idx:
            text = CATEGORIES[scene_rows["category_id"][i]].name
            if scene_rows["article_visible"][i]:
                text += f" · {scene_rows['article'][i]}"
            if scene_rows["visible"][i] < SHOW_VISIBLE_BELOW:
                text += f" · {scene_rows['visible'][i]:.0%}"
            boxes.append((tuple(scene_rows[k][i] for k in ("x1", "y1", "x2", "y2")), text))
        return draw_boxes(photo, boxes)


def _fit(img: Image.Image, width: int, height: int) -> Image.Image:
    f = min(width / img.width, height / img.height)
    return img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))))


def screenshot_sheet(root: Path, scene_rows: dict[str, list], n: int = 12, cols: int = 6) -> Image.Image:
    """The first ``n`` screenshot-style queries with their boxes, ``cols`` to a row (portrait tiles)."""
    shots = list(_photos(scene_rows, "screenshot").items())[:n]
    width, height, title = _TILE, 2 * _TILE, 30
    rows = max(1, -(-len(shots) // cols))
    sheet = Image.new("RGB", (cols * width, title + rows * height), (255, 255, 255))
    ImageDraw.Draw(sheet).text((6, 6), "WB-Synth screenshot-style queries (shop pages, stories, photos of a screen): "
                               "true boxes, readable articles, visible share", fill=(0, 0, 0), font=font(12))
    for k, (_, idx) in enumerate(shots):
        tile = _fit(_boxed(root, scene_rows, idx), width - 4, height - 4)
        sheet.paste(tile, ((k % cols) * width + (width - tile.width) // 2, title + (k // cols) * height + (height - tile.height) // 2))
    return sheet


def write_preview(root: Path, products: list[Product], scene_rows: dict[str, list], rows: int = 2) -> Path:
    """Write ``root/preview.png``: ``rows`` rows of products, ``rows`` of shopper photos, one of screenshots."""
    picked = products[: rows * _COLS]
    objects = _photos(scene_rows, "shopper")
    scenes = list(objects)[: rows * _COLS // 2]
    shots = screenshot_sheet(root, scene_rows, _COLS, _COLS) if _photos(scene_rows, "screenshot") else None
    caption = 34
    extra = 0 if shots is None else shots.height
    sheet = Image.new("RGB", (_COLS * _TILE, rows * (_TILE + caption) + rows * 2 * _TILE + 30 + extra), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    small = font(11)
    d.text((6, 6), "WB-Synth: synthetic products (seller photo, article, category), shopper photos and screenshots "
           "(boxes, readable articles)", fill=(0, 0, 0), font=font(14))
    y0 = 30
    for n, p in enumerate(picked):
        x, y = (n % _COLS) * _TILE, y0 + (n // _COLS) * (_TILE + caption)
        with Image.open(root / p.gallery[0]) as g:
            sheet.paste(g.convert("RGB").resize((_TILE, _TILE)), (x, y))
        d.text((x + 4, y + _TILE + 2), f"{p.category} · {p.colour} · {p.brand}", fill=(0, 0, 0), font=small)
        d.text((x + 4, y + _TILE + 17), f"арт. {p.article}" + (" (label)" if p.has_label else ""), fill=(90, 90, 90), font=small)
    y0 += rows * (_TILE + caption)
    big = 2 * _TILE
    for n, sid in enumerate(scenes):
        tile = _boxed(root, scene_rows, objects[sid]).resize((big, big))
        sheet.paste(tile, ((n % (_COLS // 2)) * big, y0 + (n // (_COLS // 2)) * big))
    if shots is not None:
        sheet.paste(shots, (0, y0 + rows * big))
    path = root / "preview.png"
    sheet.save(path, format="PNG", optimize=False)
    return path
