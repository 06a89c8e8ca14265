"""Article reading: extraction rules on their own, then the real PP-OCR models on real
WB-Synth photos."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from visearch.config import VisionSettings
from visearch.errors import InvalidArgumentError
from visearch.synth.render import font
from visearch.vision.ocr import ArticleReader, RapidOcrEngine, TextLine, extract_articles, make_ocr_engine


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Арт. 12345678", ["12345678"]),
        ("Art.2499248", ["2499248"]),
        ("артикул 987654", ["987654"]),
        ("apTMKyn297999", ["297999"]),  # Cyrillic prefix read as Latin look-alikes
        ("SKU 4O8l553", ["4081553"]),  # O/0 and l/1 confusions
        ("Арт. 12 345 67", ["1234567"]),  # spaced digit groups
        ("ApT.3036230718 Apr.7600286556", ["3036230718", "7600286556"]),
        ("12345", []),  # too short
        ("012345678", []),  # leading zero is not an article
        ("12345678901", []),  # too long
        ("lOl hello", []),
        ("", []),
    ],
)
def test_extract_articles(text, expected):
    assert extract_articles(text) == expected


def test_configurable_pattern():
    assert extract_articles("ref 1234", r"\d{4}") == ["1234"]


class _FixedEngine:
    def __init__(self, lines):
        self.lines = lines

    def read(self, image):
        return self.lines


def test_reader_links_lines_to_objects_and_filters_unknown_articles():
    lines = [TextLine("Арт. 1234567", 0.99, (10, 10, 60, 20)), TextLine("SKU 7654321", 0.98, (110, 110, 160, 120)),
             TextLine("999999999", 0.97, (10, 100, 50, 110))]
    reader = ArticleReader(_FixedEngine(lines), catalog={"1234567": "p1", "7654321": "p2"})
    result = reader.read(Image.new("RGB", (200, 200)), objects=[(0, 0, 100, 100), (100, 100, 200, 200), (0, 0, 200, 200)])
    assert [(h.article, h.product_id, h.object_index) for h in result.hits] == [("1234567", "p1", 0), ("7654321", "p2", 1)]


def test_unknown_backend():
    with pytest.raises(InvalidArgumentError, match="rapidocr or paddleocr"):
        make_ocr_engine("tesseract", VisionSettings())


@pytest.fixture(scope="module")
def engine():
    return RapidOcrEngine()


def test_reads_a_rendered_article(engine):
    img = Image.new("RGB", (320, 120), (255, 255, 255))
    ImageDraw.Draw(img).text((20, 40), "Арт. 58213477", fill=(0, 0, 0), font=font(28))
    assert ArticleReader(engine).read(img).hits[0].article == "58213477"


def test_reads_readable_articles_in_shopper_photos(engine, tiny_synth):
    scenes = pq.read_table(tiny_synth / "scenes.parquet").to_pydict()
    products = pq.read_table(tiny_synth / "products.parquet").to_pydict()
    reader = ArticleReader(engine, catalog=dict(zip(products["article"], products["product_id"], strict=True)))
    readable = [i for i, v in enumerate(scenes["article_visible"]) if v][:4]
    assert readable
    found = 0
    for i in readable:
        with Image.open(tiny_synth / scenes["image"][i]) as img:
            hits = reader.read(img.convert("RGB")).hits
        found += scenes["article"][i] in {h.article for h in hits}
        assert all(h.product_id is not None for h in hits)
    assert found >= len(readable) - 1
