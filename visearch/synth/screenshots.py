"""Screenshot-style queries: the pages shoppers actually send.

Most shoppers do not photograph the product. They screenshot another shop's or a social
app's page (status bar, price, buttons, a second product peeking in), photograph a
screen, or share a story over a photograph. Each layout here draws such a page around a
product sprite and returns the ground truth :func:`~visearch.synth.scenes.shopper_photo`
returns: one :class:`SceneObject` per product (its whole box inside the image, the share
of it in view, a readable article), a peeking product included under its own id.

Layouts: ``page`` (a shop's product card), ``story`` (a social post over a photograph)
and ``screen`` (either of them photographed off a screen). Images are portrait with the
long side ``size``, the side of shopper photos, so a detector sees similar scales.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from visearch.synth.render import Sprite, font
from visearch.synth.scenes import (
    SceneObject,
    Warped,
    apply_homography,
    background_crop,
    encode_jpeg,
    homography,
    label_readable,
    warp_sprite,
)

__all__ = ["Listing", "LAYOUTS", "screenshot"]

LAYOUTS = ("page", "story", "screen")
LAYOUT_P = (0.45, 0.3, 0.25)
SCREEN_OF_PAGE_P = 0.6  # a photographed screen shows a shop page, else a story
PHONE_ASPECT = (0.45, 0.5625)  # width / height of a phone screen: 9:20 to 9:16
CAMERA_ASPECT = 0.75  # a portrait 3:4 phone photo of a screen
RU_P = 0.7  # share of pages in Russian
PEEK_P = 0.55  # share of shop pages where a second product peeks in
PEEK_BESIDE_P = 0.4  # ... from the right (a carousel) rather than from below
PEEK_IN_VIEW = (0.3, 0.75)  # share of the peeking card left in view
STICKY_BUTTONS_P = 0.5  # buy buttons in a bar pinned to the bottom, over the content
PRODUCT_FILL = (0.72, 0.95)  # the product's share of its picture area
SCREENSHOT_QUALITY = (55, 96)  # JPEG quality of a shared screenshot (high excluded)
SCREEN_PHOTO_QUALITY = (35, 91)
SCREEN_FIRST_QUALITY = (60, 91)  # the camera's own JPEG before a messenger re-compresses it
OCCLUDING_ALPHA = 128  # overlay pixels at least this opaque hide what is under them
MIN_FONT_PX = 6
GLYPH_PROBE_PX = 16
NO_GLYPH = "\uffff"  # a noncharacter: every font draws its "missing glyph" box for it
NBSP = "\u00a0"
# layout rows of a shop page, in hundredths of the screen height
ROWS = {"status": 4.0, "app": 6.5, "dots": 3.0, "price": 6.5, "title": 3.0, "rating": 4.0, "button": 7.0,
        "gap": 1.5, "section": 5.0, "sticky": 9.5, "peek_min": 12.0, "text": 2.6, "small": 2.2}

SHOPS = ("Витрина", "МаркетПлюс", "Goodsy", "ShopLine", "Лавка", "DealHub", "Мода+", "Базар")
BUY = {"ru": ("В корзину", "Купить", "Купить сейчас", "Оформить"), "en": ("Add to cart", "Buy now", "Add to bag")}
SIMILAR = {"ru": ("Похожие товары", "С этим товаром покупают", "Вам может понравиться"),
           "en": ("You may also like", "Similar items", "Customers also bought")}
CAPTIONS = {"ru": ("Где купить?", "Нашла идеальный вариант!", "Кто знает магазин?", "Хочу такое ♥", "Ссылка в профиле",
                   "Мой новый фаворит", "Подскажите, где найти"),
            "en": ("Need this!", "Look of the day", "Where to buy?", "Obsessed ♥", "Link in bio", "New favourite")}
STICKERS = ("SALE", "-30%", "-50%", "NEW", "ХИТ", "♥", "★", "TOP", "WOW")
HANDLES = ("masha_style", "shop.daily", "nahodki", "kate.looks", "best_finds", "moda_ru", "anna.k", "deals4you")
SEND = {"ru": "Отправить сообщение", "en": "Send message"}
ACCENTS = ((152, 26, 178), (203, 17, 171), (255, 100, 0), (0, 95, 249), (0, 160, 80), (230, 30, 60), (25, 25, 25))
GOLD = (255, 176, 0)
Colour = tuple[int, ...]


@dataclass(frozen=True)
class Listing:
    """What a page shows of one product: its sprite and its card."""

    product_id: str
    category: int
    sprite: Sprite
    article: str | None
    title: str
    price: float
    rating: float
    reviews: int
    description: str = ""


@dataclass
class _Placed:
    listing: Listing
    full: np.ndarray  # (H, W) bool: the product's pixels inside the canvas, hidden or not
    total: int  # all its pixels, those cut off by the canvas edge included
    quad: np.ndarray | None  # printed label corners in canvas pixels
    angle: float


class _Page:
    """A canvas being drawn and, per product on it, which of its pixels stay in view."""

    def __init__(self, canvas: Image.Image) -> None:
        self.canvas = canvas.convert("RGB")
        self.owner = np.full((canvas.height, canvas.width), -1, np.int32)
        self.items: list[_Placed] = []

    def place(self, listing: Listing, warped: Warped, x: int, y: int, angle: float, shadow: bool = True) -> None:
        """Paste a product at (x, y); parts past the canvas edge are cut off, as on a scrolled page."""
        obj = warped.image
        if shadow:
            soft = Image.new("RGBA", obj.size, (0, 0, 0, 0))
            soft.putalpha(obj.getchannel("A").point(lambda v: v * 0.25).filter(ImageFilter.GaussianBlur(3)))
            self.canvas.paste(soft, (x + 3, y + 4), soft)
        self.canvas.paste(obj, (x, y), obj)
        alpha = np.asarray(obj.getchannel("A")) > 127
        height, width = self.owner.shape
        full = np.zeros((height, width), bool)
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + obj.width), min(height, y + obj.height)
        if x1 > x0 and y1 > y0:
            full[y0:y1, x0:x1] = alpha[y0 - y : y1 - y, x0 - x : x1 - x]
        self.owner[full] = len(self.items)
        quad = None if warped.label_quad is None else warped.label_quad + np.array([x, y], float)
        self.items.append(_Placed(listing, full, int(alpha.sum()), quad, angle))

    def cover(self, layer: Image.Image) -> None:
        """Composite an RGBA overlay (bars, captions, stickers); its opaque pixels hide products."""
        self.canvas = Image.alpha_composite(self.canvas.convert("RGBA"), layer).convert("RGB")
        self.owner[np.asarray(layer.getchannel("A")) >= OCCLUDING_ALPHA] = -1

    def visible(self, idx: int) -> float:
        return round(float((self.owner == idx).sum() / max(1, self.items[idx].total)), 4)

    def objects(self, blur: float, quality: int) -> list[SceneObject]:
        """Ground truth of the page as drawn (no warp)."""
        out = []
        for idx, item in enumerate(self.items):
            box = _box(item.full)
            if box is not None and self.visible(idx) > 0:  # a product wholly under a bar is not in the picture
                readable = _readable(item, self.owner == idx, item.quad, item.angle, blur, quality)
                out.append(_object(item.listing, box, self.visible(idx), readable))
        return out


def _object(listing: Listing, box: tuple[int, int, int, int], visible: float, readable: bool) -> SceneObject:
    return SceneObject(listing.product_id, listing.category, box, visible, readable, listing.article if readable else None)


def _readable(item: _Placed, mine: np.ndarray, quad: np.ndarray | None, angle: float, blur: float, quality: int) -> bool:
    return quad is not None and item.listing.article is not None and label_readable(quad, mine, angle, blur, quality)


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if not len(cols):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# --- drawing helpers ----------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _regular(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, the regular weight of :func:`font`: body text of a page."""
    import matplotlib

    return ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf", size)


def _font(unit: float, rows: float, bold: bool = False) -> ImageFont.FreeTypeFont:
    px = max(MIN_FONT_PX, round(unit * rows))
    return font(px) if bold else _regular(px)


def _ellipsis(text: str, fnt: ImageFont.FreeTypeFont, width: float) -> str:
    while text and fnt.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


@functools.lru_cache(maxsize=512)
def _has_glyph(ch: str) -> bool:
    """DejaVu draws ``ch``, not the empty box it draws for what it lacks (most emoji)."""
    probe = font(GLYPH_PROBE_PX)
    return ch.isspace() or bytes(probe.getmask(ch)) != bytes(probe.getmask(NO_GLYPH))


def _wrap(text: str, fnt: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap at plain spaces; the last line ends in an ellipsis when the text does not fit."""
    lines: list[str] = []
    line = ""
    text = "".join(ch for ch in text if _has_glyph(ch))
    for word in filter(None, text.split(" ")):
        candidate = f"{line} {word}" if line else word
        if not line or fnt.getlength(candidate) <= width:
            line = candidate
            continue
        lines.append(line)
        line = word
        if len(lines) == max_lines:
            return lines[:-1] + [_ellipsis(lines[-1], fnt, width)]
    if line:
        lines.append(line)
    if lines and fnt.getlength(lines[-1]) > width:
        lines[-1] = _ellipsis(lines[-1], fnt, width)
    return lines


def _light(rng: np.random.Generator, low: int = 236) -> Colour:
    """White or a faint tint, the backdrop of a product picture."""
    if rng.random() < 0.5:
        return (255, 255, 255)
    return tuple(int(c) for c in rng.integers(low, 256, 3))


def _money(price: float) -> str:
    return _grouped(round(price)) + NBSP + "₽"


def _grouped(n: int) -> str:
    """1234567 as "1 234 567", with no-break spaces so a wrap never splits a number."""
    return f"{n:,}".replace(",", NBSP)


def _fit(sprite: Sprite, max_w: float, max_h: float, angle: float, tilt: float, rng: np.random.Generator) -> Warped:
    """The sprite turned by ``angle``, then scaled to fill ``max_w`` x ``max_h`` with its aspect kept."""
    warped = warp_sprite(sprite, 1.0, angle, tilt, rng)
    obj = warped.image
    f = min(max_w / obj.width, max_h / obj.height)
    size = (max(1, round(obj.width * f)), max(1, round(obj.height * f)))
    quad = None if warped.label_quad is None else warped.label_quad * np.array([size[0] / obj.width, size[1] / obj.height])
    return Warped(obj.resize(size, Image.Resampling.LANCZOS), quad)


def _status_bar(d: ImageDraw.ImageDraw, width: int, h: int, ink: Colour, rng: np.random.Generator) -> None:
    """Clock on the left; signal, wi-fi and battery on the right, as phones draw them."""
    cy, line = h / 2, max(1, round(h * 0.07))
    d.text((width * 0.07, cy), f"{int(rng.integers(0, 24))}:{int(rng.integers(0, 60)):02d}", fill=ink,
           font=font(max(MIN_FONT_PX, round(h * 0.5))), anchor="lm")
    bw, bh, x1 = h * 0.9, h * 0.42, width * 0.93
    x0 = x1 - bw
    d.rounded_rectangle((x0, cy - bh / 2, x1, cy + bh / 2), radius=bh * 0.25, outline=ink, width=line)
    inset = min(2 * line, bh / 4)  # the charge level, inside the outline however small the bar
    d.rectangle((x0 + inset, cy - bh / 2 + inset, x0 + inset + (bw - 2 * inset) * rng.uniform(0.15, 1.0),
                 cy + bh / 2 - inset), fill=ink)
    d.rectangle((x1 + line, cy - bh * 0.2, x1 + 2 * line, cy + bh * 0.2), fill=ink)  # the battery's nub
    base, wx = cy + h * 0.2, x0 - h * 0.5
    for r in (0.12, 0.26, 0.4):  # wi-fi: three arcs over a point
        rr = h * r
        d.arc((wx - rr, base - rr, wx + rr, base + rr), 225, 315, fill=ink, width=line)
    step = h * 0.15
    for i in range(4):  # signal: four rising bars
        bx = wx - h * 0.55 - (4 - i) * step
        d.rectangle((bx, base - h * (0.12 + 0.09 * i), bx + step * 0.65, base), fill=ink)


def _app_bar(d: ImageDraw.ImageDraw, y: int, width: int, h: int, ink: Colour, title: str) -> None:
    """Back chevron, the shop's name, favourite and share icons, a hairline under it."""
    cy, line = y + h / 2, max(1, round(h * 0.05))
    cx = width * 0.06
    d.line([(cx + h * 0.15, cy - h * 0.2), (cx, cy), (cx + h * 0.15, cy + h * 0.2)], fill=ink, width=line * 2)
    fnt = font(max(MIN_FONT_PX, round(h * 0.34)))
    d.text((width * 0.16, cy), _ellipsis(title, fnt, width * 0.5) if fnt.getlength(title) > width * 0.5 else title,
           fill=ink, font=fnt, anchor="lm")
    icons = font(max(MIN_FONT_PX, round(h * 0.42)))
    d.text((width * 0.8, cy), "♡", fill=ink, font=icons, anchor="mm")
    d.text((width * 0.92, cy), "⋯", fill=ink, font=icons, anchor="mm")
    d.line([(0, y + h - 1), (width, y + h - 1)], fill=(225, 225, 225), width=1)


def _buttons(d: ImageDraw.ImageDraw, box: tuple[float, float, float, float], lang: str, accent: Colour, unit: float,
             rng: np.random.Generator) -> None:
    """One wide buy button or two side by side (the first outlined)."""
    x0, y0, x1, y1 = box
    labels = [str(rng.choice(BUY[lang]))]
    if rng.random() < 0.5:
        labels.insert(0, str(rng.choice([b for b in BUY[lang] if b != labels[0]])))
    fnt = _font(unit, ROWS["text"], bold=True)
    gap = unit * ROWS["gap"]
    width = (x1 - x0 - gap * (len(labels) - 1)) / len(labels)
    white = (255,) * len(accent)  # opaque on an overlay (RGBA) as on the page (RGB)
    for n, label in enumerate(labels):
        bx = x0 + n * (width + gap)
        outlined = len(labels) == 2 and n == 0
        d.rounded_rectangle((bx, y0, bx + width, y1), radius=(y1 - y0) * 0.3, fill=white if outlined else accent,
                            outline=accent, width=max(1, round(unit * 0.3)))
        text = label if fnt.getlength(label) <= width * 0.9 else _ellipsis(label, fnt, width * 0.9)
        d.text((bx + width / 2, (y0 + y1) / 2), text, fill=accent if outlined else white, font=fnt, anchor="mm")


# --- layout: a shop's product page -------------------------------------------------


@dataclass
class _Plan:
    """Where the blocks of a shop page go (pixels), decided before anything is drawn."""

    unit: float
    top: int  # below the status and app bars
    area: tuple[int, int, int, int]  # the main product's picture
    peek: str  # none | below | beside
    sticky: int  # height of the pinned button bar, 0 when buttons are inline


def _plan_page(width: int, height: int, has_peek: bool, rng: np.random.Generator) -> _Plan:
    unit = height / 100
    top = round(unit * (ROWS["status"] + ROWS["app"]))
    peek = "none"
    if has_peek and rng.random() < PEEK_P:
        peek = "beside" if rng.random() < PEEK_BESIDE_P else "below"
    sticky = round(unit * ROWS["sticky"]) if rng.random() < STICKY_BUTTONS_P else 0
    text = ROWS["price"] + 2 * ROWS["title"] + ROWS["rating"] + 2 * ROWS["gap"]
    text += 0 if sticky else ROWS["button"] + ROWS["gap"]
    text += ROWS["section"] + ROWS["peek_min"] if peek == "below" else 0
    dots = 0 if peek == "beside" else ROWS["dots"]
    area_w = width if peek != "beside" else round(width * rng.uniform(0.62, 0.72))
    room = height - top - sticky - round(unit * (text + dots))
    area_h = max(round(unit * 20), min(round(area_w * rng.uniform(1.0, 1.33)), room))
    return _Plan(unit, top, (0, top, area_w, top + area_h), peek, sticky)


def _product_page(main: Listing, peek: Listing | None, width: int, height: int, rng: np.random.Generator) -> _Page:
    """A shop's product card: status and app bars, the product large, price, title, rating, buttons."""
    lang = "ru" if rng.random() < RU_P else "en"
    accent = ACCENTS[int(rng.integers(len(ACCENTS)))]
    ink = (20, 20, 20)
    plan = _plan_page(width, height, peek is not None, rng)
    page = _Page(Image.new("RGB", (width, height), (255, 255, 255)))
    d = ImageDraw.Draw(page.canvas)
    u = plan.unit
    _status_bar(d, width, round(u * ROWS["status"]), ink, rng)
    _app_bar(d, round(u * ROWS["status"]), width, round(u * ROWS["app"]), ink, str(rng.choice(SHOPS)))
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    _picture(page, layer, main, plan.area, accent, u, rng)
    x0, _, x1, y = plan.area
    if plan.peek == "beside" and peek is not None:
        gap = round(u * ROWS["gap"])
        _card(page, peek, (x1 + gap, plan.top, x1 + gap + (x1 - x0), y), rng)
    else:
        y = _dots(d, width, y, u, rng)
    y = _card_text(d, main, width, y, lang, accent, u, rng)
    limit = height - plan.sticky
    if not plan.sticky:
        y += round(u * ROWS["gap"])
        _buttons(d, (width * 0.04, y, width * 0.96, y + u * ROWS["button"]), lang, accent, u, rng)
        y += round(u * (ROWS["button"] + ROWS["gap"]))
    if plan.peek == "below" and peek is not None:
        _peek_below(page, d, peek, width, y, limit, lang, u, rng)
    else:
        _description(d, main.description, width, y, limit, u)
    if plan.sticky:
        ld = ImageDraw.Draw(layer)
        ld.rectangle((0, limit, width, height), fill=(255, 255, 255, 255))
        ld.line([(0, limit), (width, limit)], fill=(220, 220, 220, 255), width=1)
        pad = u * ROWS["gap"]
        _buttons(ld, (width * 0.04, limit + pad, width * 0.96, height - pad), lang, accent + (255,), u, rng)
    page.cover(layer)
    return page


def _picture(page: _Page, layer: Image.Image, listing: Listing, area: tuple[int, int, int, int], accent: Colour,
             unit: float, rng: np.random.Generator) -> None:
    """The product large on a plain or faintly tinted backdrop; a favourite button and a discount badge over it."""
    x0, y0, x1, y1 = area
    ImageDraw.Draw(page.canvas).rectangle((x0, y0, x1 - 1, y1 - 1), fill=_light(rng))
    fill = rng.uniform(*PRODUCT_FILL)
    warped = _fit(listing.sprite, (x1 - x0) * fill, (y1 - y0) * fill, 0.0, 0.0, rng)
    w, h = warped.image.size
    x = x0 + (x1 - x0 - w) // 2 + int(rng.integers(-(x1 - x0 - w) // 4, (x1 - x0 - w) // 4 + 1))
    y = y0 + (y1 - y0 - h) // 2 + int(rng.integers(-(y1 - y0 - h) // 4, (y1 - y0 - h) // 4 + 1))
    page.place(listing, warped, x, y, 0.0, shadow=rng.random() < 0.5)
    d = ImageDraw.Draw(layer)
    r = unit * 2.2
    if rng.random() < 0.6:  # favourite button in the picture's corner
        cx, cy = x1 - r * 1.6, y0 + r * 1.6
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 255, 255, 230))
        d.text((cx, cy), "♡", fill=(40, 40, 40, 255), font=_font(unit, 2.6, bold=True), anchor="mm")
    if rng.random() < 0.4:  # discount badge
        text = f"-{int(rng.integers(10, 71))}%"
        fnt = _font(unit, ROWS["small"], bold=True)
        tw = fnt.getlength(text)
        bx, by = x0 + unit * 1.5, y1 - unit * 5
        d.rounded_rectangle((bx, by, bx + tw + unit * 1.6, by + unit * 3.2), radius=unit, fill=accent + (255,))
        d.text((bx + unit * 0.8, by + unit * 1.6), text, fill=(255, 255, 255, 255), font=fnt, anchor="lm")


def _card(page: _Page, listing: Listing, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Another product's tile (grey backdrop), drawn whole even where the canvas cuts it off."""
    x0, y0, x1, y1 = box
    ImageDraw.Draw(page.canvas).rounded_rectangle((x0, y0, x1, y1), radius=max(2, (x1 - x0) // 20), fill=(244, 244, 246))
    fill = rng.uniform(*PRODUCT_FILL)
    warped = _fit(listing.sprite, (x1 - x0) * fill, (y1 - y0) * fill, 0.0, 0.0, rng)
    w, h = warped.image.size
    page.place(listing, warped, x0 + (x1 - x0 - w) // 2, y0 + (y1 - y0 - h) // 2, 0.0, shadow=False)


def _dots(d: ImageDraw.ImageDraw, width: int, y: int, unit: float, rng: np.random.Generator) -> int:
    """Carousel dots under the picture; returns the row's bottom."""
    n = int(rng.integers(2, 7))
    r, cy = unit * 0.5, y + unit * ROWS["dots"] / 2
    active = int(rng.integers(n))
    for i in range(n):
        cx = width / 2 + (i - (n - 1) / 2) * r * 3.5
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(60, 60, 60) if i == active else (200, 200, 200))
    return round(y + unit * ROWS["dots"])


def _card_text(d: ImageDraw.ImageDraw, listing: Listing, width: int, y: int, lang: str, accent: Colour, unit: float,
               rng: np.random.Generator) -> int:
    """Price (sometimes with the old one struck out), the title on two lines, stars and reviews."""
    x = width * 0.04
    y += round(unit * ROWS["gap"])
    big = _font(unit, ROWS["price"] * 0.62, bold=True)
    price = _money(listing.price)
    colour = accent if rng.random() < 0.5 else (20, 20, 20)
    d.text((x, y), price, fill=colour, font=big)
    if rng.random() < 0.5:
        old = _money(listing.price / rng.uniform(0.3, 0.9))
        small = _font(unit, ROWS["small"])
        ox, oy = x + big.getlength(price) + unit * 2, y + unit * ROWS["price"] * 0.22
        d.text((ox, oy), old, fill=(150, 150, 150), font=small)
        mid = oy + unit * ROWS["small"] * 0.6
        d.line([(ox, mid), (ox + small.getlength(old), mid)], fill=(150, 150, 150), width=1)
    y += round(unit * ROWS["price"])
    body = _font(unit, ROWS["text"])
    for line in _wrap(listing.title, body, width * 0.92, 2):
        d.text((x, y), line, fill=(30, 30, 30), font=body)
        y += round(unit * ROWS["title"])
    small = _font(unit, ROWS["small"])
    reviews = _grouped(listing.reviews)
    rating = f"{listing.rating:.1f} · {reviews} оценок" if lang == "ru" else f"{listing.rating:.1f} ({reviews} reviews)"
    d.text((x, y + unit * 0.5), "★", fill=GOLD, font=small)
    d.text((x + small.getlength("★ "), y + unit * 0.5), rating, fill=(110, 110, 110), font=small)
    return y + round(unit * ROWS["rating"])


def _description(d: ImageDraw.ImageDraw, text: str, width: int, y: int, limit: int, unit: float) -> None:
    """Grey description lines down to ``limit``, the last cut by it like a scrolled page."""
    if y >= limit:
        return
    small = _font(unit, ROWS["small"])
    step = max(1, round(unit * ROWS["title"]))
    lines = _wrap(text, small, width * 0.92, (limit - y) // step + 1)
    for line in lines:
        d.text((width * 0.04, y), line, fill=(120, 120, 120), font=small)
        y += step


def _peek_below(page: _Page, d: ImageDraw.ImageDraw, peek: Listing, width: int, y: int, limit: int, lang: str,
                unit: float, rng: np.random.Generator) -> None:
    """A "similar items" row: the other product's tile cut by the bottom (or the pinned bar), a skeleton beside it."""
    d.text((width * 0.04, y + unit), str(rng.choice(SIMILAR[lang])), fill=(20, 20, 20), font=_font(unit, ROWS["text"], bold=True))
    y += round(unit * ROWS["section"])
    gap = round(unit * ROWS["gap"])
    side = round(width * rng.uniform(0.44, 0.6))
    in_view = rng.uniform(*PEEK_IN_VIEW)
    room = limit - y
    if room >= in_view * side:
        y = round(limit - in_view * side)
    else:
        side = max(round(unit * ROWS["peek_min"]), round(room / in_view))
    x = round(width * 0.04) if rng.random() < 0.7 else width - round(width * 0.04) - side
    _card(page, peek, (x, y, x + side, y + side), rng)
    other = x + side + gap if x < width / 2 else x - gap - side
    d.rounded_rectangle((other, y, other + side, y + side), radius=max(2, side // 20), fill=(236, 236, 238))


# --- layout: a social story over a photograph ----------------------------------------


def _story(main: Listing, width: int, height: int, rng: np.random.Generator) -> _Page:
    """The product over a photograph, a progress bar and header on top, captions and stickers in the margins."""
    photo = background_crop(height, rng)
    left = int(rng.integers(0, height - width + 1))
    photo = photo.crop((left, 0, left + width, height))
    if rng.random() < 0.5:  # the product is the subject: the photo behind it goes soft and dim
        photo = photo.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 4))))
    photo = Image.fromarray((np.asarray(photo, np.float32) * rng.uniform(0.6, 1.0)).astype(np.uint8))
    page = _Page(photo)
    longest = width * rng.uniform(0.55, 0.9)
    angle = float(rng.uniform(-12, 12))
    warped = _fit(main.sprite, longest, min(longest, height * 0.6), angle, float(rng.uniform(0, 0.04)), rng)
    w, h = warped.image.size
    x = int(rng.integers(0, max(1, width - w + 1)))
    y = int(rng.integers(round(height * 0.1), max(round(height * 0.1) + 1, round(height * 0.9) - h + 1)))
    cutout = rng.random() < 0.3
    if cutout:  # a "cut-out sticker" of the product: a white rim around it
        rim = max(2, round(width * 0.012))
        halo = warped.image.getchannel("A").filter(ImageFilter.MaxFilter(2 * rim + 1))
        page.canvas.paste(Image.new("RGB", warped.image.size, (255, 255, 255)), (x, y), halo)
    page.place(main, warped, x, y, angle, shadow=not cutout)
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    lang = "ru" if rng.random() < RU_P else "en"
    unit = height / 100
    _story_header(layer, unit, rng)
    _caption(layer, main, lang, unit, rng)
    for _ in range(int(rng.integers(0, 3))):
        _sticker(layer, unit, rng)
    _message_bar(layer, lang, unit)
    page.cover(layer)
    return page


def _story_header(layer: Image.Image, unit: float, rng: np.random.Generator) -> None:
    """Segmented progress bar at the very top, then avatar, handle, age and a close cross."""
    d = ImageDraw.Draw(layer)
    width = layer.width
    n = int(rng.integers(1, 7))
    current = int(rng.integers(n))
    margin, gap, bar = width * 0.03, unit * 0.6, max(2.0, unit * 0.45)
    seg = (width - 2 * margin - gap * (n - 1)) / n
    y = unit * 1.2
    for i in range(n):
        sx = margin + i * (seg + gap)
        d.rounded_rectangle((sx, y, sx + seg, y + bar), radius=bar / 2, fill=(255, 255, 255, 110))
        done = 1.0 if i < current else (rng.uniform(0.1, 0.9) if i == current else 0.0)
        if done:
            d.rounded_rectangle((sx, y, sx + seg * done, y + bar), radius=bar / 2, fill=(255, 255, 255, 255))
    r, cy = unit * 2.2, y + unit * 4.5
    cx = margin + r
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ACCENTS[int(rng.integers(len(ACCENTS)))] + (255,), outline=(255, 255, 255, 255))
    handle = str(rng.choice(HANDLES))
    fnt = _font(unit, ROWS["small"], bold=True)
    d.text((cx, cy), handle[0].upper(), fill=(255, 255, 255, 255), font=fnt, anchor="mm")
    hours = f"{int(rng.integers(1, 24))} ч" if rng.random() < 0.6 else f"{int(rng.integers(1, 24))}h"
    d.text((cx + r * 1.6, cy), f"{handle}  {hours}", fill=(255, 255, 255, 255), font=fnt, anchor="lm",
           stroke_width=1, stroke_fill=(0, 0, 0, 90))
    d.text((width - margin - unit, cy), "×", fill=(255, 255, 255, 255), font=_font(unit, 3.5, bold=True), anchor="mm")


def _caption(layer: Image.Image, listing: Listing, lang: str, unit: float, rng: np.random.Generator) -> None:
    """One or two lines of caption, in a box or outlined, near the top or the bottom (over the product at times)."""
    width, height = layer.size
    text = str(rng.choice(CAPTIONS[lang]))
    if rng.random() < 0.4:
        text += " " + _money(listing.price)
    fnt = _font(unit, 3.0, bold=True)
    lines = _wrap(text, fnt, width * 0.8, 2)
    line_h = unit * 4.0
    box_w = max(fnt.getlength(s) for s in lines) + unit * 3
    box_h = line_h * len(lines) + unit * 1.5
    x = (width - box_w) / 2 + rng.uniform(-1, 1) * (width - box_w) / 4
    band = (0.12, 0.3) if rng.random() < 0.5 else (0.66, 0.84)
    y = height * rng.uniform(*band)
    d = ImageDraw.Draw(layer)
    style = int(rng.integers(3))
    if style == 0:
        d.rounded_rectangle((x, y, x + box_w, y + box_h), radius=unit * 1.2, fill=(255, 255, 255, 255))
    elif style == 1:
        d.rounded_rectangle((x, y, x + box_w, y + box_h), radius=unit * 1.2, fill=(0, 0, 0, 150))
    ink = (20, 20, 20, 255) if style == 0 else (255, 255, 255, 255)
    for n, line in enumerate(lines):
        d.text((x + box_w / 2, y + unit * 0.75 + line_h * (n + 0.5)), line, fill=ink, font=fnt, anchor="mm",
               stroke_width=1 if style == 2 else 0, stroke_fill=(0, 0, 0, 255))


def _sticker(layer: Image.Image, unit: float, rng: np.random.Generator) -> None:
    """A tilted badge ("SALE", "-30%", a heart) in a margin, overlapping what is there."""
    text = str(rng.choice(STICKERS))
    fnt = _font(unit, 3.2, bold=True)
    side = round(max(fnt.getlength(text) + unit * 3, unit * 7))
    img = Image.new("RGBA", (side, round(unit * 7)), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    colour = ACCENTS[int(rng.integers(len(ACCENTS)))] + (255,)
    if rng.random() < 0.5:
        d.ellipse((0, 0, img.width - 1, img.height - 1), fill=colour)
    else:
        d.rounded_rectangle((0, 0, img.width - 1, img.height - 1), radius=unit * 1.5, fill=colour)
    d.text((img.width / 2, img.height / 2), text, fill=(255, 255, 255, 255), font=fnt, anchor="mm")
    img = img.rotate(float(rng.uniform(-25, 25)), expand=True, resample=Image.Resampling.BICUBIC)
    width, height = layer.size
    x = int(rng.choice([0, max(0, width - img.width)])) + int(rng.integers(0, max(1, round(unit * 3))))
    y = int(rng.integers(round(height * 0.1), max(round(height * 0.1) + 1, round(height * 0.88) - img.height)))
    x = min(x, max(0, width - img.width))
    layer.alpha_composite(img, (x, y))


def _message_bar(layer: Image.Image, lang: str, unit: float) -> None:
    """The reply field at the bottom of a story, with a heart and a send arrow."""
    d = ImageDraw.Draw(layer)
    width, height = layer.size
    y0, y1 = height - unit * 7.5, height - unit * 2.5
    d.rounded_rectangle((width * 0.04, y0, width * 0.72, y1), radius=(y1 - y0) / 2, outline=(255, 255, 255, 220),
                        width=max(1, round(unit * 0.25)))
    d.text((width * 0.08, (y0 + y1) / 2), SEND[lang], fill=(255, 255, 255, 230), font=_font(unit, ROWS["small"]), anchor="lm")
    icons = _font(unit, 3.5, bold=True)
    d.text((width * 0.81, (y0 + y1) / 2), "♡", fill=(255, 255, 255, 255), font=icons, anchor="mm")
    d.text((width * 0.92, (y0 + y1) / 2), "➤", fill=(255, 255, 255, 255), font=icons, anchor="mm")


# --- layout: a photo of a screen -----------------------------------------------------


def _screen_quad(content: tuple[int, int], out: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Where the screen's corners land in the photo (slightly turned and in perspective), and the turn."""
    cw, ch = content
    ow, oh = out
    sh = oh * rng.uniform(0.7, 0.92)
    sw = sh * cw / ch
    if sw > 0.9 * ow:
        sw, sh = 0.9 * ow, 0.9 * ow * ch / cw
    angle = float(rng.uniform(-6, 6))
    t = np.deg2rad(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    corners = np.array([[-sw, -sh], [sw, -sh], [sw, sh], [-sw, sh]]) / 2 @ rot.T
    corners += rng.uniform(-0.05, 0.05, (4, 2)) * np.array([sw, sh])
    centre = np.array([ow, oh]) / 2 + rng.uniform(-0.5, 0.5, 2) * (np.array([ow, oh]) - np.ptp(corners, axis=0)).clip(0)
    return np.clip(corners + centre, 1, np.array([ow, oh]) - 2), angle


def _warp(img: Image.Image, back: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    return img.transform(size, Image.Transform.PERSPECTIVE, tuple(back.reshape(-1)[:8]), resample)


def _warp_mask(mask: np.ndarray, back: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(_warp(Image.fromarray(mask.astype(np.uint8) * 255), back, size, Image.Resampling.NEAREST)) > 127


def _screen_look(content: Image.Image, rng: np.random.Generator) -> Image.Image:
    """What the camera sees on the glass: scanlines of the pixel grid, the screen's colour temperature."""
    arr = np.asarray(content, np.float32)
    period = int(rng.integers(2, 5))
    arr[::period] *= 1 - rng.uniform(0.04, 0.14)
    warm = rng.uniform(-0.06, 0.06)
    arr *= np.array([1 + warm, 1.0, 1 - warm], np.float32) * rng.uniform(0.85, 1.05)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _moire_and_glare(arr: np.ndarray, screen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Beat bands of two near-Nyquist gratings (moiré) and a reflected light gradient, on the glass only."""
    h, w = screen.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f, theta = rng.uniform(0.28, 0.48), rng.uniform(0, np.pi)
    g, phi = f * rng.uniform(0.92, 1.08), theta + rng.uniform(-0.1, 0.1)
    wave = np.sin(2 * np.pi * f * (xx * np.cos(theta) + yy * np.sin(theta))) * np.sin(
        2 * np.pi * g * (xx * np.cos(phi) + yy * np.sin(phi)))
    arr = arr * (1 + rng.uniform(0.03, 0.1) * wave * screen)[..., None]
    d = rng.normal(size=2)
    d /= np.linalg.norm(d)
    ramp = ((xx - w / 2) * d[0] + (yy - h / 2) * d[1]) / max(w, h) + 0.5
    gx, gy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.15, 0.4) * max(w, h)
    spot = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * r * r))
    glare = (rng.uniform(0.05, 0.2) * ramp.clip(0, 1) + rng.uniform(0.1, 0.35) * spot) * screen
    return arr + (255 - arr) * glare[..., None]


def _screen_photo(main: Listing, peek: Listing | None, size: int, rng: np.random.Generator) -> tuple[Image.Image, list[SceneObject], int]:
    """A shop page or story photographed off a phone in a dim room: bezel, perspective, moiré, glare, blur, two JPEGs."""
    content_size = (round(size * rng.uniform(*PHONE_ASPECT)), size)
    if rng.random() < SCREEN_OF_PAGE_P:
        page = _product_page(main, peek, *content_size, rng)
    else:
        page = _story(main, *content_size, rng)
    out = (round(size * CAMERA_ASPECT), size)
    room = background_crop(size, rng).crop((0, 0, out[0], size)).filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 4))))
    room = Image.fromarray((np.asarray(room, np.float32) * rng.uniform(0.2, 0.5)).astype(np.uint8))
    quad, angle = _screen_quad(content_size, out, rng)
    centre = quad.mean(axis=0)
    bezel = centre + (quad - centre) * (1 + rng.uniform(0.03, 0.08))
    grey = int(rng.integers(10, 45))
    ImageDraw.Draw(room).polygon([tuple(p) for p in bezel], fill=(grey, grey, grey))
    cw, ch = content_size
    fwd = homography(np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], float), quad)
    back = np.linalg.inv(fwd)
    back /= back[2, 2]
    glass = _warp_mask(np.ones((ch, cw), bool), back, out)
    shown = _warp(_screen_look(page.canvas, rng), back, out, Image.Resampling.BILINEAR)
    room.paste(shown, (0, 0), Image.fromarray(glass.astype(np.uint8) * 255))
    arr = _moire_and_glare(np.asarray(room, np.float32), glass.astype(np.float32), rng)
    blur = float(rng.uniform(0.5, 1.3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))
    noisy = np.asarray(img, np.float32) + rng.standard_normal((out[1], out[0], 3)).astype(np.float32) * rng.uniform(1, 5)
    first = int(rng.integers(*SCREEN_FIRST_QUALITY))
    camera_jpeg = encode_jpeg(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), first)
    img = Image.open(io.BytesIO(camera_jpeg)).convert("RGB")
    quality = int(rng.integers(*SCREEN_PHOTO_QUALITY))
    objects = []
    for idx, item in enumerate(page.items):
        box = _box(_warp_mask(item.full, back, out))
        if box is None or page.visible(idx) == 0:
            continue
        quad_out = None if item.quad is None else apply_homography(fwd, item.quad)
        mine = _warp_mask(page.owner == idx, back, out)
        readable = _readable(item, mine, quad_out, item.angle + angle, blur, min(first, quality))
        objects.append(_object(item.listing, box, page.visible(idx), readable))
    return img, objects, quality


def screenshot(main: Listing, peek: Listing | None, size: int, rng: np.random.Generator) -> tuple[Image.Image, list[SceneObject], int, str]:
    """A screenshot-style query of ``main``; ``peek`` (another product) may peek into a shop page.

    Returns the image (portrait, height ``size``, before JPEG), its objects (``main`` first),
    the JPEG quality to save it with and the layout drawn (one of :data:`LAYOUTS`).
    """
    layout = LAYOUTS[int(rng.choice(len(LAYOUTS), p=LAYOUT_P))]
    if layout == "screen":
        img, objects, quality = _screen_photo(main, peek, size, rng)
        return img, objects, quality, layout
    width = round(size * rng.uniform(*PHONE_ASPECT))
    page = _product_page(main, peek, width, size, rng) if layout == "page" else _story(main, width, size, rng)
    quality = int(rng.integers(*SCREENSHOT_QUALITY))
    return page.canvas, page.objects(0.0, quality), quality, layout
