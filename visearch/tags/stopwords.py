"""Words and phrases that are never product tags: marketing, emotion, card boilerplate, grammar.

Sellers pad titles and descriptions with praise ("хит продаж", "best"), delivery and
price promises ("бесплатная доставка", "sale"), stock text every card repeats ("как на
фото", "see the size chart") and, in n-grams, bare grammar words ("в", "for"). None of
them says what the product is, so the cleaning removes them before anything else.

This is a general list for Russian and English marketplaces, written by hand; it
knows nothing of any one catalog. Entries are matched after normalisation (lowercase,
NFKC, "ё" → "е", punctuation gone), as whole words or whole phrases inside a tag.
"""

from __future__ import annotations

__all__ = ["MARKETING", "EMOTIONAL", "BOILERPLATE", "FUNCTION_WORDS", "STOP_PHRASES"]

#: ad phrases: price, delivery, stock, guarantees
MARKETING: tuple[str, ...] = (
    # Russian
    "скидка", "скидки", "скидку", "скидкой", "распродажа", "акция", "акции", "по акции", "выгодно", "выгодная цена",
    "низкая цена", "лучшая цена", "цена", "дешево", "недорого", "дисконт", "промокод", "кэшбэк", "кешбэк",
    "бесплатная доставка", "быстрая доставка", "доставка", "доставка по всей россии", "по всей россии",
    "доставка бесплатно", "бесплатно", "в наличии", "есть в наличии", "наличие", "под заказ", "оригинал",
    "оригинальный", "100 оригинал", "гарантия", "гарантия качества", "с гарантией", "качество", "качество люкс",
    "люкс", "премиум", "премиум качество", "подарок", "в подарок", "подарок для", "для подарка", "на подарок",
    "подойдет для подарка", "подарочный", "новинка", "новинки", "новая коллекция", "коллекция", "тренд", "тренды",
    "тренд сезона", "хит", "хит продаж", "хиты", "бестселлер", "топ продаж", "хит сезона", "выбор покупателей",
    "рекомендуем", "официальный", "магазин", "продавец", "мы", "заказ", "заказать", "купить", "успей", "успейте",
    "спешите", "ограниченная серия", "лимитированная", "для всех", "для всей семьи", "проверено временем",
    "качество проверено временем", "отзывы", "рейтинг", "артикул", "арт", "опт", "оптом", "размер", "размеры",
    "таблица размеров", "размеры смотрите в таблице", "смотрите", "в таблице", "таблице", "фото", "как на фото",
    "реальное фото", "цвет как на фото",
    # English
    "sale", "on sale", "discount", "discounts", "deal", "deals", "hot deal", "best price", "low price", "price",
    "cheap", "bargain", "promo", "coupon", "cashback", "free shipping", "fast shipping", "shipping", "free delivery",
    "fast delivery", "delivery", "in stock", "stock", "original", "genuine", "authentic", "warranty", "guarantee",
    "guaranteed", "quality", "high quality", "premium", "premium quality", "luxury", "gift", "gift idea",
    "perfect gift", "as a gift", "perfect as a gift", "new", "new arrival", "new arrivals", "new collection",
    "collection", "trend", "trending", "bestseller", "best seller", "best selling", "hot", "hot sale", "top seller",
    "customer choice", "official", "store", "shop", "seller", "order", "order now", "buy", "buy now",
    "limited", "limited edition", "size", "sizes", "size chart", "see the size chart", "chart", "photo",
    "as in the photo", "in the photo", "real photo", "quality you can trust", "you can trust", "trust",
)

#: emotional words and praise
EMOTIONAL: tuple[str, ...] = (
    # Russian
    "супер", "суперцена", "топ", "вау", "класс", "классный", "классная", "крутой", "крутая", "отличный", "отличная",
    "отличное", "лучший", "лучшая", "лучшее", "лучший выбор", "лучший подарок", "идеальный", "идеальная",
    "идеально", "шикарный", "шикарная", "потрясающий", "потрясающая", "невероятный", "восторг", "обалденный",
    "модный", "модная", "модное", "стильный", "стильная", "стильное", "стильно", "красивый", "красивая",
    "красивое", "милый", "милая", "любимый", "must have", "маст хэв", "маст хев", "бомба", "огонь", "эксклюзив",
    "эксклюзивный", "уникальный", "уникальная", "удобный", "удобная", "практичный", "практичная",
    "универсальный", "универсальная", "надежный", "надежная",
    # English
    "super", "wow", "top", "best", "best choice", "the best", "great", "amazing", "awesome", "perfect", "excellent",
    "fantastic", "gorgeous", "beautiful", "cute", "lovely", "cool", "nice", "stylish", "fashion", "fashionable",
    "trendy", "must have", "must-have", "hit", "favourite", "favorite", "exclusive", "unique", "ultimate",
    "incredible", "stunning", "elegant", "comfortable", "practical", "universal", "reliable",
    # what is left of emoticons once punctuation is gone
    "xd", "lol", "omg",
)

#: words every card repeats that name no property of the product
BOILERPLATE: tuple[str, ...] = (
    "на каждый день", "каждый день", "каждый", "день", "на все случаи жизни", "подойдет", "подойдет для",
    "материал", "состав", "цвет", "оттенок", "бренд", "производитель", "страна", "модель", "товар", "изделие",
    "описание", "характеристики", "уход", "комплектация", "в комплекте",
    "for every day", "every day", "everyday", "every", "day", "material", "materials", "colour", "color",
    "brand", "manufacturer", "model", "item", "product", "description", "features", "care", "package", "see",
)

#: grammar words: never a tag alone, and trimmed from the edges of n-grams
FUNCTION_WORDS: tuple[str, ...] = (
    # Russian
    "в", "во", "на", "с", "со", "к", "ко", "по", "о", "об", "от", "до", "из", "за", "для", "без", "под", "над",
    "при", "про", "через", "у", "и", "а", "но", "или", "да", "же", "ли", "не", "ни", "как", "так", "это", "этот",
    "эта", "все", "всё", "всей", "весь", "вся", "тот", "та", "то", "ваш", "ваша", "ваше", "ваши", "наш", "наша",
    "вы", "вас", "вам", "я", "он", "она", "оно", "они", "его", "ее", "их", "свой", "своя", "очень", "еще", "уже",
    "только", "также", "тоже", "можно", "есть", "будет", "быть", "который", "которая",
    # English
    "a", "an", "the", "and", "or", "but", "of", "for", "in", "on", "at", "to", "from", "by", "with", "without",
    "as", "is", "are", "be", "it", "its", "this", "that", "these", "those", "you", "your", "we", "our", "my",
    "can", "will", "all", "any", "very", "so", "too", "also", "just", "more", "most", "per", "into", "up",
)

#: every stop entry (normalise before matching; the cleaning does)
STOP_PHRASES: tuple[str, ...] = MARKETING + EMOTIONAL + BOILERPLATE + FUNCTION_WORDS + ("!!!", "!!", "???")
