"""Card texts with the noise real marketplace cards have: shouting, ad phrases,
mixed Russian and English, typos."""

from __future__ import annotations

import numpy as np

from visearch.synth.vocab import (
    AD_PHRASES,
    BRANDS,
    CATEGORIES,
    COLOURS,
    DESCRIPTION_SENTENCES_EN,
    DESCRIPTION_SENTENCES_RU,
    EMOTIONAL,
    MATERIALS,
    PATTERNS,
)

__all__ = ["card_texts", "typo", "modification_text"]

LANGS = ("ru", "en", "mixed")


def typo(word: str, rng: np.random.Generator) -> str:
    """One keyboard-style slip: a swap, a drop or a doubled letter."""
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 2))
    kind = rng.integers(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _noisy(words: list[str], rng: np.random.Generator, rate: float) -> list[str]:
    return [typo(w, rng) if rng.random() < rate else w for w in words]


def card_texts(
    category: int, colour: int, pattern: int, material: int, brand: int, rng: np.random.Generator
) -> tuple[str, str, str]:
    """Title, description and language of one product card."""
    lang = LANGS[int(rng.choice(3, p=[0.55, 0.2, 0.25]))]
    cat, col, pat, mat = CATEGORIES[category], COLOURS[colour], PATTERNS[pattern], MATERIALS[material]
    ru = lang == "ru" or (lang == "mixed" and rng.random() < 0.5)
    words = [cat.ru if ru else cat.name.replace("_", " ")]
    words.append(col[1] if (ru if lang != "mixed" else rng.random() < 0.5) else col[0])
    if pat[0] != "solid":
        words.append(pat[1] if ru else pat[2])
    words.append(mat[1] if (ru if lang != "mixed" else rng.random() < 0.5) else mat[0])
    words.append(BRANDS[brand])
    words = _noisy(words, rng, 0.08)
    if rng.random() < 0.45:
        words.insert(0 if rng.random() < 0.5 else len(words), str(rng.choice(EMOTIONAL)))
    if rng.random() < 0.35:
        words.append(str(rng.choice(AD_PHRASES)))
    title = " ".join(words)
    if rng.random() < 0.2:
        title = title.upper()

    sentences = DESCRIPTION_SENTENCES_RU if ru else DESCRIPTION_SENTENCES_EN
    n = int(rng.integers(2, len(sentences) + 1))
    picked = [sentences[i] for i in sorted(rng.choice(len(sentences), n, replace=False))]
    fill = {
        "cat": cat.ru if ru else cat.name.replace("_", " "),
        "mat": mat[1] if ru else mat[0],
        "col": col[1] if ru else col[0],
        "brand": BRANDS[brand],
    }
    desc = " ".join(_noisy(" ".join(s.format(**fill) for s in picked).split(" "), rng, 0.03))
    if lang == "mixed":
        desc += " " + str(rng.choice(AD_PHRASES))
    return title, desc, lang


def modification_text(change: str, value: int, rng: np.random.Generator) -> tuple[str, str]:
    """A shopper's refinement ("same but red", "такой же, но в полоску") and its language."""
    ru = rng.random() < 0.6
    if change == "colour":
        word = COLOURS[value][1] if ru else COLOURS[value][0]
    else:
        word = PATTERNS[value][1] if ru else PATTERNS[value][2]
    if ru:
        template = str(rng.choice(["такой же, но {}", "то же самое, только {}", "хочу {}", "а есть {}?"]))
    else:
        template = str(rng.choice(["same but {}", "the same in {}", "{} please", "do you have it {}?"]))
    return template.format(word), "ru" if ru else "en"
