"""The words and attributes WB-Synth draws products from.

Category order is the class order of the detector's labels, so only append.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Category",
    "CATEGORIES",
    "COLOURS",
    "PATTERNS",
    "MATERIALS",
    "BRANDS",
    "EMBLEMS",
    "LABEL_PREFIXES",
]


@dataclass(frozen=True)
class Category:
    name: str
    ru: str
    base_price: float  # roubles, median of the category


CATEGORIES: tuple[Category, ...] = (
    Category("tshirt", "футболка", 1200),
    Category("hoodie", "худи", 3500),
    Category("dress", "платье", 4200),
    Category("trousers", "брюки", 3000),
    Category("skirt", "юбка", 2500),
    Category("sneaker", "кроссовки", 5500),
    Category("boot", "ботинки", 7000),
    Category("handbag", "сумка", 4500),
    Category("backpack", "рюкзак", 3800),
    Category("cap", "кепка", 900),
    Category("mug", "кружка", 600),
    Category("bottle", "бутылка", 800),
    Category("vase", "ваза", 1500),
    Category("lamp", "лампа", 2700),
    Category("chair", "стул", 5200),
    Category("clock", "часы настенные", 1900),
    Category("phone_case", "чехол для телефона", 700),
    Category("watch", "наручные часы", 6500),
    Category("glasses", "очки", 2100),
    Category("umbrella", "зонт", 1600),
    Category("teapot", "чайник заварочный", 1400),
    Category("headphones", "наушники", 4900),
    Category("book", "блокнот", 500),
    Category("sofa", "диван", 32000),
)

# name, Russian (feminine-neutral stem is enough for noisy titles), RGB
COLOURS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("red", "красный", (200, 30, 35)),
    ("orange", "оранжевый", (240, 120, 20)),
    ("yellow", "жёлтый", (240, 205, 40)),
    ("green", "зелёный", (40, 150, 60)),
    ("teal", "бирюзовый", (20, 150, 150)),
    ("blue", "синий", (40, 90, 210)),
    ("navy", "тёмно-синий", (25, 35, 90)),
    ("purple", "фиолетовый", (120, 50, 160)),
    ("pink", "розовый", (240, 130, 180)),
    ("brown", "коричневый", (120, 75, 40)),
    ("black", "чёрный", (25, 25, 28)),
    ("white", "белый", (235, 235, 230)),
    ("grey", "серый", (128, 128, 128)),
)

PATTERNS: tuple[tuple[str, str, str], ...] = (
    # name, Russian, English phrase used in titles and refinement texts
    ("solid", "однотонный", "plain"),
    ("stripes", "в полоску", "striped"),
    ("dots", "в горошек", "polka dot"),
    ("checks", "в клетку", "checked"),
    ("zigzag", "с зигзагом", "zigzag"),
    ("print", "с принтом", "printed"),
)

MATERIALS: tuple[tuple[str, str], ...] = (
    ("cotton", "хлопок"),
    ("denim", "деним"),
    ("leather", "кожа"),
    ("plastic", "пластик"),
    ("metal", "металл"),
    ("wool", "шерсть"),
    ("ceramic", "керамика"),
)

BRANDS: tuple[str, ...] = (
    "Nordika", "Ursa", "Volna", "Kedr", "Mira", "Sever", "Altai", "Zarya",
    "Lumo", "Taiga", "Orion", "Belka", "Rasa", "Vesna", "Kama", "Dvina",
)

EMBLEMS: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "hexagon")

LABEL_PREFIXES: tuple[str, ...] = ("Арт.", "Art.", "артикул", "SKU", "")

EMOTIONAL: tuple[str, ...] = (
    "СУПЕР", "ХИТ ПРОДАЖ", "Лучший выбор", "must have", "🔥", "top", "НОВИНКА", "WOW", "❤", "стильный",
)

AD_PHRASES: tuple[str, ...] = (
    "бесплатная доставка", "скидка", "best price", "оригинал", "подарок", "в наличии",
    "free shipping", "sale", "качество люкс", "гарантия",
)

DESCRIPTION_SENTENCES_RU: tuple[str, ...] = (
    "Отличный {cat} на каждый день.",
    "Материал: {mat}.",
    "Цвет {col}, как на фото.",
    "Подойдёт для подарка.",
    "Размеры смотрите в таблице.",
    "Бренд {brand} — качество проверено временем.",
    "Быстрая доставка по всей России.",
)

DESCRIPTION_SENTENCES_EN: tuple[str, ...] = (
    "Great {cat} for every day.",
    "Material: {mat}.",
    "Colour {col} as in the photo.",
    "Perfect as a gift.",
    "See the size chart.",
    "{brand} quality you can trust.",
)
