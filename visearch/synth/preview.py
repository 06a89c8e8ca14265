"""Contact sheet of a WB-Synth set: products with their cards, shopper photos with
their boxes and readable articles drawn, so a person can see what the data is."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from visearch.synth.catalog import Product
from visearch.synth.render import font
from visearch.synth.vocab import CATEGORIES

__all__ = ["write_preview", "draw_boxes"]

_TILE = 192
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


def write_preview(root: Path, products: list[Product], scene_rows: dict[str, list], rows: int = 2) -> Path:
    """Write ``root/preview.png``: ``rows`` rows of products, then ``rows`` of shopper photos."""
    picked = products[: rows * _COLS]
    objects: dict[str, list[int]] = defaultdict(list)
    for i, sid in enumerate(scene_rows["scene_id"]):
        objects[sid].append(i)
    scenes = list(objects)[: rows * _COLS // 2]
    caption = 34
    sheet = Image.new("RGB", (_COLS * _TILE, rows * (_TILE + caption) + rows * 2 * _TILE + 30), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    small = font(11)
    d.text((6, 6), "WB-Synth: synthetic products (seller photo, article, category) and shopper photos "
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
        idx = objects[sid]
        with Image.open(root / scene_rows["image"][idx[0]]) as photo:
            boxes = []
            for i in idx:
                text = CATEGORIES[scene_rows["category_id"][i]].name
                if scene_rows["article_visible"][i]:
                    text += f" · {scene_rows['article'][i]}"
                box = tuple(scene_rows[k][i] for k in ("x1", "y1", "x2", "y2"))
                boxes.append((box, text))
            tile = draw_boxes(photo, boxes).resize((big, big))
        sheet.paste(tile, ((n % (_COLS // 2)) * big, y0 + (n // (_COLS // 2)) * big))
    path = root / "preview.png"
    sheet.save(path, format="PNG", optimize=False)
    return path
