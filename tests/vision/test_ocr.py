"""Article reading: extraction rules on their own, then the real PP-OCR models on real
WB-Synth photos."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from visearch.config import Settings, VisionSettings
from visearch.errors import InvalidArgumentError
from visearch.synth.render import font
from visearch.vision.ocr import ArticleReader, OcrResult, RapidOcrEngine, TextLine, extract_articles, make_ocr_engine


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
    """Returns the same lines for whatever it is given, and remembers the sizes it was given."""

    def __init__(self, lines):
        self.lines = lines
        self.seen: list[tuple[int, int]] = []

    def read(self, image):
        self.seen.append(image.size)
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


def test_regions_grow_merge_and_fall_back_to_the_whole_photo():
    reader = ArticleReader(_FixedEngine([]), box_margin=0.1, whole_fraction=0.8)
    assert reader.regions((400, 300), []) == [(0, 0, 400, 300)]  # no boxes: the whole photo
    assert reader.regions((400, 300), [(100, 100, 200, 150)]) == [(90, 95, 210, 155)]  # grown by 10% a side
    assert reader.regions((400, 300), [(0, 0, 50, 50)]) == [(0, 0, 55, 55)]  # clipped to the photo
    # overlapping boxes become one region; far ones stay apart
    assert reader.regions((400, 300), [(10, 10, 60, 60), (55, 20, 100, 70), (300, 200, 350, 250)]) == \
        [(5, 5, 105, 75), (295, 195, 355, 255)]
    assert reader.regions((400, 300), [(0, 0, 400, 300)]) == [(0, 0, 400, 300)]  # the detector's fallback object
    assert reader.regions((400, 300), [(0, 0, 380, 280)]) == [(0, 0, 400, 300)]  # covers most of it: read whole
    assert ArticleReader(_FixedEngine([]), by_boxes=False).regions((400, 300), [(100, 100, 200, 150)]) == [(0, 0, 400, 300)]


def test_engines_without_regions_read_the_cut_out_regions():
    engine = _FixedEngine([TextLine("Арт. 1234567", 0.9, (5, 5, 40, 15))])
    result = ArticleReader(engine, box_margin=0.0).read(Image.new("RGB", (400, 300)), [(100, 100, 200, 150)])
    assert engine.seen == [(100, 50)]  # only the object was handed to the engine
    assert result.lines[0].box == (105, 105, 140, 115)  # back in photo pixels
    assert result.hits[0].object_index == 0


def test_read_batch_needs_one_box_list_per_image():
    with pytest.raises(InvalidArgumentError, match="one list of boxes per image"):
        ArticleReader(_FixedEngine([])).read_batch([Image.new("RGB", (10, 10))], [])


def test_from_settings():
    settings = Settings(vision=VisionSettings(ocr_det_side=416, ocr_by_boxes=False, ocr_box_margin=0.2, ocr_min_aspect=3.0,
                                              ocr_max_lines=4, ocr_threads=1, article_pattern=r"\d{6}"))
    reader = ArticleReader.from_settings(settings, {"123456": "p1"})
    assert isinstance(reader.engine, RapidOcrEngine)
    assert (reader.engine.det_side, reader.engine.min_aspect, reader.engine.max_lines) == (416, 3.0, 4)
    assert (reader.by_boxes, reader.box_margin, reader.pattern.pattern, reader.catalog) == (False, 0.2, r"\d{6}", {"123456": "p1"})


@pytest.fixture(scope="module")
def engine():
    return RapidOcrEngine()


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int = 20) -> None:
    draw.text(xy, text, fill=(0, 0, 0), font=font(size))


def test_reads_a_rendered_article(engine):
    img = Image.new("RGB", (320, 120), (255, 255, 255))
    _label(ImageDraw.Draw(img), (20, 40), "Арт. 58213477", 28)
    assert ArticleReader(engine).read(img).hits[0].article == "58213477"


def test_lines_outside_every_object_are_not_read(engine):
    img = Image.new("RGB", (640, 320), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 60, 300, 260), fill=(235, 225, 200))  # the one product
    _label(draw, (40, 150), "Арт. 58213477")
    _label(draw, (370, 150), "Арт. 77124583")  # on the background, next to no object
    by_boxes = ArticleReader(engine).read(img, [(20, 60, 300, 260)])
    assert [(h.article, h.object_index) for h in by_boxes.hits] == [("58213477", 0)]
    assert all(ln.box[0] < 300 for ln in by_boxes.lines)
    whole = ArticleReader(engine, by_boxes=False).read(img, [(20, 60, 300, 260)])
    assert [(h.article, h.object_index) for h in whole.hits] == [("58213477", 0), ("77124583", None)]
    assert {h.article for h in ArticleReader(engine).read(img).hits} == {"58213477", "77124583"}  # no boxes: whole photo


class _RecSpy:
    def __init__(self, rec):
        self.rec, self.strips = rec, []

    def __call__(self, strips, *args):
        self.strips += strips
        return self.rec(strips, *args)


def test_no_text_no_recognition_and_short_lines_skipped(engine, monkeypatch):
    spy = _RecSpy(engine._rec)
    monkeypatch.setattr(engine, "_rec", spy)
    assert ArticleReader(engine).read(Image.new("RGB", (384, 384), (200, 210, 220)), [(50, 50, 300, 300)]).lines == []
    assert spy.strips == []  # nothing detected: recognition never ran
    img = Image.new("RGB", (384, 200), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    _label(draw, (30, 30), "Арт. 58213477")
    _label(draw, (30, 120), "7", 40)  # a one-character line cannot be an article
    assert [h.article for h in ArticleReader(engine).read(img).hits] == ["58213477"]
    assert spy.strips and all(s.shape[1] >= engine.min_aspect * s.shape[0] for s in spy.strips)


def _shopper_photos(tiny_synth, n_readable: int = 4, n_other: int = 2):
    scenes = pq.read_table(tiny_synth / "scenes.parquet").to_pydict()
    by_image: dict[str, list[int]] = {}
    for i, path in enumerate(scenes["image"]):
        by_image.setdefault(path, []).append(i)
    readable = [p for p, rows in by_image.items() if any(scenes["article_visible"][i] for i in rows)][:n_readable]
    other = [p for p, rows in by_image.items() if not any(scenes["article_visible"][i] for i in rows)][:n_other]
    photos = []
    for path in readable + other:
        rows = by_image[path]
        with Image.open(tiny_synth / path) as img:
            photos.append((img.convert("RGB"), [tuple(float(scenes[k][i]) for k in ("x1", "y1", "x2", "y2")) for i in rows],
                           {scenes["article"][i] for i in rows if scenes["article_visible"][i]}))
    return photos


@pytest.fixture(scope="module")
def catalog(tiny_synth):
    products = pq.read_table(tiny_synth / "products.parquet").to_pydict()
    return dict(zip(products["article"], products["product_id"], strict=True))


def test_read_batch_equals_read(engine, tiny_synth, catalog):
    photos = _shopper_photos(tiny_synth)
    reader = ArticleReader(engine, catalog)
    batch = reader.read_batch([p for p, _, _ in photos], [b for _, b, _ in photos])
    assert len(batch) == len(photos) and all(isinstance(r, OcrResult) for r in batch)
    assert batch == [reader.read(p, b) for p, b, _ in photos]
    assert any(r.hits for r in batch)


@pytest.mark.parametrize("by_boxes", [True, False])
def test_reads_readable_articles_in_shopper_photos(engine, tiny_synth, catalog, by_boxes):
    photos = _shopper_photos(tiny_synth, n_other=0)
    assert photos
    results = ArticleReader(engine, catalog, by_boxes=by_boxes).read_batch([p for p, _, _ in photos], [b for _, b, _ in photos])
    found = 0
    for (_, _, articles), result in zip(photos, results, strict=True):
        found += articles <= {h.article for h in result.hits}
        assert all(h.product_id is not None for h in result.hits)
        assert all(h.object_index is not None for h in result.hits if h.article in articles)
    assert found >= len(photos) - 1


def test_detection_scale_follows_the_photo_size(engine, tiny_synth, catalog):
    """A phone-size upload of the same scene is detected at the same scale and still read."""
    photos = _shopper_photos(tiny_synth, n_other=0)[:2]
    reader = ArticleReader(engine, catalog)
    for photo, boxes, articles in photos:
        big = photo.resize((photo.width * 3, photo.height * 3), Image.Resampling.BICUBIC)
        small = {h.article for h in reader.read(photo, boxes).hits}
        large = {h.article for h in reader.read(big, [tuple(3 * c for c in b) for b in boxes]).hits}
        assert engine.scale(big.size) == pytest.approx(engine.scale(photo.size) / 3)
        assert small & articles <= large
