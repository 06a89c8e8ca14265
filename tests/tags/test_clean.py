"""Tag vocabulary and cleaning: aliases learned from a catalog, Russian/English/mixed surfaces to one
canonical tag, typos, ad words, duplicates, rare tags, the report's counts, and the whole thing on
WB-Synth cards from their titles and descriptions alone."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from visearch.config import TagSettings
from visearch.tags import (
    ExtractorTagger,
    ProductCard,
    Tag,
    TagVocabulary,
    attribute_recovery,
    clean_tags,
    damerau_levenshtein,
    normalise,
)

# a hand-made catalog: each value in Russian and English; titles Russian, English or mixed, with ad words
CATEGORIES = {"mug": "кружка", "clock": "часы настенные", "watch": "наручные часы", "phone_case": "чехол для телефона"}
COLOURS = {"red": "красный", "blue": "синий", "navy": "тёмно-синий"}
PATTERNS = {"stripes": ("в полоску", "striped"), "dots": ("в горошек", "polka dot")}
MATERIALS = {"ceramic": "керамика", "cotton": "хлопок"}
BRANDS = ("Nordika", "Volna")
ADS = ("", "ХИТ ПРОДАЖ", "free shipping", "🔥", "скидка")


def _catalog() -> list[dict]:
    rows = []
    combos = itertools.product(CATEGORIES, COLOURS, PATTERNS, MATERIALS, BRANDS)
    for i, (cat, col, pat, mat, brand) in enumerate(combos):
        lang = ("ru", "en", "mixed")[i % 3]
        ru = [CATEGORIES[cat], COLOURS[col], PATTERNS[pat][0], MATERIALS[mat], brand]
        en = [cat.replace("_", " "), col, PATTERNS[pat][1], mat, brand]
        words = ru if lang == "ru" else en if lang == "en" else [ru[0], en[1], ru[2], en[3], brand]
        title = " ".join([*words, ADS[i % len(ADS)]]).strip()
        rows.append({"product_id": f"p{i:03d}", "title": title, "description": "", "category": cat, "colour": col,
                     "pattern": pat, "material": mat, "brand": brand})
    return rows


@pytest.fixture(scope="module")
def vocab() -> TagVocabulary:
    return TagVocabulary.from_catalog(_catalog())


SETTINGS = TagSettings(min_count=3, fuzzy_max_edits=2)


def _texts(tags: list[Tag]) -> set[tuple[str, str]]:
    return {(t.facet, t.text) for t in tags}


def test_normalise():
    assert normalise("🔥 ХИТ ПРОДАЖ!!!  Тёмно-синий,  чехол_для") == "хит продаж темно-синий чехол для"
    assert normalise("ＲＥＤ") == "red"  # NFKC: full-width letters
    assert normalise("тёмно--синий") == "темно-синий"
    assert normalise("!!! ❤ ...") == ""


def test_vocabulary_learns_aliases_from_the_catalog(vocab):
    assert Tag("phone case", "category") in vocab.tags  # column value "phone_case", normalised
    assert {t.facet for t in vocab.tags} == {"category", "colour", "pattern", "material", "brand"}
    assert vocab.lookup("красный") == Tag("red", "colour")
    assert vocab.lookup("Тёмно-синий") == Tag("navy", "colour")
    assert vocab.lookup("синий") == Tag("blue", "colour")  # "тёмно-синий" is one word, not "синий"
    assert vocab.lookup("в полоску") == Tag("stripes", "pattern")
    assert vocab.lookup("polka dot") == Tag("dots", "pattern")
    assert vocab.lookup("часы настенные") == Tag("clock", "category")
    assert vocab.lookup("наручные часы") == Tag("watch", "category")
    assert vocab.lookup("часы") is None  # half clocks, half watches: no alias
    assert vocab.lookup("чехол для телефона") == Tag("phone case", "category")
    assert vocab.lookup("для") is None  # a grammar word is never an alias, however it is distributed
    assert vocab.lookup("красная") == Tag("red", "colour")  # inflection, by stem
    assert vocab.lookup("NORDIKA") == Tag("nordika", "brand")
    assert vocab.lookup("скидка") is None and vocab.lookup("") is None


def test_vocabulary_save_load_keeps_cyrillic_readable(vocab, tmp_path):
    path = vocab.save(tmp_path / "v.json")
    text = path.read_text(encoding="utf-8")
    assert "красный" in text and "\\u04" not in text
    again = TagVocabulary.load(path)
    assert again.tags == vocab.tags
    assert again.lookup("в полоску") == Tag("stripes", "pattern")
    assert json.loads(text)["aliases"]["красный"]["share"] == 1.0


def test_russian_english_and_mixed_resolve_to_the_same_tags(vocab):
    raw = [
        ["кружка", "красный", "в полоску", "керамика", "Nordika"],
        ["mug", "red", "striped", "ceramic", "NORDIKA"],
        ["Кружка RED", "В ПОЛОСКУ", "ceramic", "nordika"],
        ["кружка красный в полоску керамика Nordika"],  # one long surface, read alias by alias
    ]
    tags, report = clean_tags(raw, vocab, SETTINGS)
    want = {("category", "mug"), ("colour", "red"), ("pattern", "stripes"), ("material", "ceramic"),
            ("brand", "nordika")}
    assert [_texts(t) for t in tags] == [want] * 4
    assert report.steps["aliases"].counts["translated"] > 0


def test_typos_are_fixed_against_the_vocabulary(vocab):
    raw = [["керамкиа", "кружкаа", "hlopok", "krasnyj", "ceramc", "crd"]]
    tags, report = clean_tags(raw, vocab, SETTINGS)
    got = _texts(tags[0])
    assert ("material", "ceramic") in got  # 8 letters, a swap
    assert ("category", "mug") in got  # 7 letters, one extra
    assert ("material", "ceramic") in got and ("material", "cotton") not in got  # "hlopok" is too far
    assert report.steps["typos"].counts["fixed"] >= 3  # керамкиа, кружкаа, ceramc
    # three letters are never corrected
    assert ("colour", "red") not in got
    # the allowed edits follow the word's length
    tags, _ = clean_tags([["керамкиаа"]], vocab, TagSettings(fuzzy_max_edits=1))
    assert tags == [[]]
    tags, _ = clean_tags([["керамкиаа"]], vocab, TagSettings(fuzzy_max_edits=2))
    assert _texts(tags[0]) == {("material", "ceramic")}


def test_damerau_levenshtein():
    assert damerau_levenshtein("стул", "сутл") == 1  # a swap is one edit
    assert damerau_levenshtein("kitten", "sitting") == 3
    assert damerau_levenshtein("", "abc") == 3
    assert damerau_levenshtein("abcdef", "uvwxyz", max_dist=2) == 3  # capped


def test_ad_phrases_and_emotional_words_are_dropped(vocab):
    raw = [["СУПЕР", "хит продаж", "free shipping", "!!!", "🔥", "кружка скидка", "best price", "WOW", "топ",
            "бесплатная доставка", "must have"]]
    tags, report = clean_tags(raw, vocab, SETTINGS)
    assert _texts(tags[0]) == {("category", "mug")}
    assert report.steps["normalise"].counts["emptied"] == 2  # "!!!", "🔥"
    assert report.steps["stopwords"].counts["dropped"] == 8
    assert report.steps["stopwords"].counts["trimmed"] == 1  # "кружка скидка" -> "кружка"


def test_duplicates_and_synonyms_merge(vocab):
    tags, report = clean_tags([["red", "красный", "Red", "RED!!!", "кружка", "mug"]], vocab, SETTINGS)
    assert tags[0] == [Tag("mug", "category"), Tag("red", "colour")]  # facet order, each once
    assert report.steps["merge"].counts["duplicates"] == 4
    assert report.steps["merge"].counts["synonyms"] == 2


def test_report_counts(vocab):
    raw = [
        ["Красный", "red", "СУПЕР", "🔥", "керамкиа", "винтаж"],
        ["винтаж", "синий"],
        ["Винтаж", "однократно"],
    ]
    tags, report = clean_tags(raw, vocab, SETTINGS)
    d = report.to_dict()
    assert (d["products"], d["raw_tags"]) == (3, 10)
    steps = {k: v["counts"] for k, v in d["steps"].items()}
    assert steps["normalise"] == {"changed": 3, "emptied": 1}  # Красный, СУПЕР, Винтаж; 🔥
    assert steps["stopwords"] == {"dropped": 1}
    assert steps["typos"]["fixed"] == 1
    assert steps["aliases"]["resolved"] == 4 and steps["aliases"]["unresolved"] == 4
    assert steps["merge"] == {"duplicates": 1, "synonyms": 1}
    assert steps["rare"]["kept"] == 3 and steps["rare"]["dropped"] == 1
    assert [_texts(t) for t in tags] == [
        {("colour", "red"), ("material", "ceramic"), ("other", "винтаж")},
        {("colour", "blue"), ("other", "винтаж")},
        {("other", "винтаж")},
    ]
    assert d["tags"] == 6 and d["facets"]["other"] == 3
    assert len(d["steps"]["typos"]["examples"]) <= 5
    text = report.summary()
    assert "3 products" in text and "typos" in text and "винтаж" in text


def test_examples_stay_few(vocab):
    raw = [[f"слово{i}" for i in range(40)] + ["СУПЕР"] * 40]
    _, report = clean_tags(raw, vocab, SETTINGS)
    assert all(len(s.examples) <= 5 for s in report.steps.values())


def test_empty_input(vocab):
    tags, report = clean_tags([], vocab, SETTINGS)
    assert tags == [] and report.products == 0 and report.to_dict()["tags_per_product"] == 0.0
    assert "0 products" in report.summary()
    tags, report = clean_tags([[], [""], ["   "]], vocab, SETTINGS)
    assert tags == [[], [], []] and report.products_without_tags == 3
    empty = TagVocabulary([])
    tags, _ = clean_tags([["red"], ["red"], ["red"]], empty, SETTINGS)
    assert tags == [[Tag("red", "other")]] * 3
    assert TagVocabulary.from_catalog([]).tags == ()


def _synth_rows(n: int, seed: int) -> list[dict]:
    """WB-Synth cards without their photos (the generator's sampling only: fast)."""
    from visearch.synth.catalog import sample_products

    products = sample_products(n, np.random.default_rng(seed), label_fraction=0.4, variant_fraction=0.35,
                               split_fractions=(0.7, 0.15, 0.15), gallery_per_product=1)
    return [{"product_id": p.product_id, "title": p.title, "description": p.description, "category": p.category,
             "colour": p.colour, "pattern": p.pattern, "material": p.material, "brand": p.brand} for p in products]


def test_wb_synth_text_alone_recovers_the_attributes():
    """The vocabulary learned on one WB-Synth catalog; another catalog's cards tagged from their titles and
    descriptions only: nearly every attribute value comes back. The pattern "solid" is never written in a
    title, so only the other patterns are expected."""
    vocab = TagVocabulary.from_catalog(_synth_rows(1500, seed=1))
    rows = _synth_rows(600, seed=2)
    cards = [ProductCard.from_row(r, attributes=False) for r in rows]
    raw = ExtractorTagger().generate(cards)
    tags, report = clean_tags(raw, vocab, TagSettings())
    rec = attribute_recovery(rows, tags)
    for facet in ("category", "colour", "material", "brand"):
        assert rec[facet] >= 0.95, rec
    patterned = [(r, t) for r, t in zip(rows, tags, strict=True) if r["pattern"] != "solid"]
    assert attribute_recovery([r for r, _ in patterned], [t for _, t in patterned], ["pattern"])["pattern"] >= 0.95
    # ad words and boilerplate do not survive as "other" tags
    other = {t.text for ts in tags for t in ts if t.facet == "other"}
    assert not other & {"скидка", "free", "shipping", "sale", "хит", "доставка", "фото", "photo", "best"}, other
    assert report.facets["other"] < 0.1 * report.tags
    # with the attribute columns as well, everything is there
    full = ExtractorTagger().generate([ProductCard.from_row(r) for r in rows])
    tags, _ = clean_tags(full, vocab, TagSettings())
    assert attribute_recovery(rows, tags)["all"] >= 0.99
