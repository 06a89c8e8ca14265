"""Sample the product cards of a WB-Synth catalog.

Products come in *models*: a model fixes the category, proportions, brand, trim and
material; its variants differ in colour or pattern, which is where the (anchor,
modification text, target) triplets come from. Splits are drawn per model, so a
variant never leaks from train into test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from visearch.synth.render import ProductLook
from visearch.synth.text import card_texts
from visearch.synth.vocab import BRANDS, CATEGORIES, COLOURS, LABEL_PREFIXES, MATERIALS, PATTERNS

__all__ = ["Product", "sample_products", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclass
class Product:
    product_id: str
    model_id: str
    article: str
    split: str
    look: ProductLook
    has_label: bool
    title: str
    description: str
    lang: str
    price: float
    rating: float
    reviews_count: int
    gallery: list[str] = field(default_factory=list)

    @property
    def category(self) -> str:
        return CATEGORIES[self.look.category].name

    @property
    def colour(self) -> str:
        return COLOURS[self.look.colour][0]

    @property
    def pattern(self) -> str:
        return PATTERNS[self.look.pattern][0]

    @property
    def material(self) -> str:
        return MATERIALS[self.look.material][0]

    @property
    def brand(self) -> str:
        return BRANDS[self.look.brand]


def _articles(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` unique article numbers of 6 to 10 digits, no leading zero."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        digits = int(rng.integers(6, 11))
        a = str(int(rng.integers(10 ** (digits - 1), 10**digits)))
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out


def _model_look(rng: np.random.Generator) -> dict:
    return dict(
        category=int(rng.integers(len(CATEGORIES))),
        material=int(rng.integers(len(MATERIALS))),
        brand=int(rng.integers(len(BRANDS))),
        trim_colour=int(rng.integers(len(COLOURS))),
        trim_width=float(rng.uniform(0.006, 0.03)),
        pattern_scale=float(rng.uniform(0.04, 0.12)),
        pattern_angle=float(rng.choice([0, 15, 30, 45, 60, 90, 120, 135])),
        w=float(rng.uniform(0.78, 1.0)),
        h=float(rng.uniform(0.78, 1.0)),
        k=float(rng.uniform(0, 1)),
        mark_u=float(rng.uniform(0.25, 0.75)),
        mark_v=float(rng.uniform(0.2, 0.6)),
        mark_scale=float(rng.uniform(0.045, 0.075)),
    )


def _other(n: int, avoid: int, rng: np.random.Generator) -> int:
    return int((avoid + rng.integers(1, n)) % n)


def sample_products(
    n: int,
    rng: np.random.Generator,
    *,
    label_fraction: float,
    variant_fraction: float,
    split_fractions: tuple[float, float, float],
    gallery_per_product: int,
) -> list[Product]:
    """Draw ``n`` products; the same generator state gives the same catalog."""
    articles = _articles(n, rng)
    products: list[Product] = []
    model_no = 0
    while len(products) < n:
        base = _model_look(rng)
        split = SPLITS[int(rng.choice(3, p=split_fractions))]
        has_label = bool(rng.random() < label_fraction)
        prefix = str(rng.choice(LABEL_PREFIXES))
        # group size: 1 for a plain product, 2..4 for a model with variants
        size = 1 if rng.random() >= variant_fraction else int(rng.integers(2, 5))
        colour = int(rng.integers(len(COLOURS)))
        pattern = int(rng.integers(len(PATTERNS)))
        pattern_colour = _other(len(COLOURS), colour, rng)
        cat = CATEGORIES[base["category"]]
        model_price = cat.base_price * float(rng.lognormal(0, 0.35))
        model_id = f"m{model_no:06d}"
        model_no += 1
        first = (colour, pattern, pattern_colour)
        taken: set[tuple[int, int]] = set()
        for v in range(min(size, n - len(products))):
            # a variant differs from the model's first product in colour or in pattern, never both
            while v > 0 and (colour, pattern) in taken:
                colour, pattern, pattern_colour = first
                if rng.random() < 0.6:
                    colour = _other(len(COLOURS), colour, rng)
                    if pattern_colour == colour:
                        pattern_colour = _other(len(COLOURS), colour, rng)
                else:
                    pattern = _other(len(PATTERNS), pattern, rng)
            taken.add((colour, pattern))
            i = len(products)
            article = articles[i]
            look = ProductLook(
                colour=colour,
                pattern=pattern,
                pattern_colour=pattern_colour,
                texture_seed=int(rng.integers(2**31)),
                label_text=(f"{prefix} {article}".strip() if has_label else None),
                **base,
            )
            title, desc, lang = card_texts(look.category, colour, pattern, look.material, look.brand, rng)
            pid = f"p{i:07d}"
            products.append(
                Product(
                    product_id=pid,
                    model_id=model_id,
                    article=article,
                    split=split,
                    look=look,
                    has_label=has_label,
                    title=title,
                    description=desc,
                    lang=lang,
                    price=round(model_price * float(rng.uniform(0.9, 1.1)), 2),
                    rating=round(float(np.clip(5 - rng.gamma(1.2, 0.45), 1.0, 5.0)), 1),
                    reviews_count=int(rng.negative_binomial(1, 0.01)),
                    gallery=[f"gallery/{pid}_{g}.jpg" for g in range(gallery_per_product)],
                )
            )
    return products
