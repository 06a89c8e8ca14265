"""The catalog module: WB-Synth products into cards, clear errors for bad catalogs, safe image paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from visearch.catalog import (
    CARD_FIELDS,
    PRODUCT_SCHEMA,
    PRODUCTS_FILE,
    Product,
    article_index,
    catalog_path,
    image_path,
    read_catalog,
)
from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.index.sources import Catalog

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


def write(path: Path, rows: dict, schema: pa.Schema | None = None) -> Path:
    pq.write_table(pa.table(rows, schema=schema), path)
    return path


# ---------------------------------------------------------------- WB-Synth round trip
def test_wb_synth_catalog_into_cards_and_back(tiny_synth: Path) -> None:
    assert catalog_path(tiny_synth) == tiny_synth / PRODUCTS_FILE
    assert catalog_path(tiny_synth / PRODUCTS_FILE) == tiny_synth / PRODUCTS_FILE
    table = read_catalog(tiny_synth)
    assert table.schema.remove_metadata() == PRODUCT_SCHEMA  # the generator writes the module's schema
    assert read_catalog(tiny_synth / PRODUCTS_FILE).equals(table)

    rows = table.to_pylist()
    cards = [Product.from_row(r) for r in rows]
    assert len(cards) == 30 and len({c.product_id for c in cards}) == 30
    for row, card in zip(rows, cards, strict=True):
        payload = card.to_payload()
        assert tuple(payload) == CARD_FIELDS
        assert payload == {k: row[k] for k in CARD_FIELDS}  # every card field straight from the row
        assert Product.from_row(json.loads(json.dumps(payload))) == card  # JSON-ready and lossless
        assert card.image_uris and all(image_path(tiny_synth, u).is_file() for u in card.image_uris)
    assert isinstance(cards[0].price, float) and isinstance(cards[0].reviews_count, int)
    assert isinstance(cards[0].image_uris, tuple)


def test_columns_and_articles(tiny_synth: Path) -> None:
    table = read_catalog(tiny_synth, columns=["product_id", "image_uris"])
    assert table.column_names == ["product_id", "image_uris"]
    full = pq.read_table(tiny_synth / PRODUCTS_FILE).to_pydict()
    assert article_index(tiny_synth) == dict(zip(full["article"], full["product_id"], strict=True))
    # the index reads the same catalog (a data set folder stands for its products.parquet)
    assert len(Catalog(tiny_synth)) == len(Catalog(tiny_synth / PRODUCTS_FILE)) == 30


def test_cyrillic_titles_survive(tiny_synth: Path, tmp_path: Path) -> None:
    russian = [c for c in map(Product.from_row, read_catalog(tiny_synth).to_pylist()) if CYRILLIC.search(c.title)]
    assert russian, "tiny WB-Synth has Russian cards"
    title = "Платье льняное в горошек, ёлочный узор"
    path = write(tmp_path / "c.parquet", {"product_id": ["p1"], "title": [title], "description": ["Мягкая ткань"]})
    card = Product.from_row(read_catalog(path).to_pylist()[0])
    assert card.title == title and card.description == "Мягкая ткань"
    text = json.dumps(card.to_payload(), ensure_ascii=False)
    assert title in text and Product.from_row(json.loads(text)) == card


def test_cards_from_other_catalogs_and_payloads(tmp_path: Path) -> None:
    card = Product.from_row({"product_id": "a", "article": 12345678, "price": 10, "extra": "ignored"})
    assert card.article == "12345678" and card.price == 10.0 and isinstance(card.price, float)
    assert card.title is None and card.image_uris == ()
    assert card.to_payload()["image_uris"] == []
    for bad in ({}, {"product_id": ""}, {"product_id": 3}):
        with pytest.raises(DatasetError, match="product_id"):
            Product.from_row(bad)
    with pytest.raises(DatasetError, match="'a'"):
        Product.from_row({"product_id": "a", "price": "cheap"})


def test_article_index_of_a_foreign_catalog(tmp_path: Path) -> None:
    path = write(tmp_path / "c.parquet", {"product_id": ["a", "b", "c"], "article": [123456, None, 654321]})
    assert article_index(path) == {"123456": "a", "654321": "c"}
    dup = write(tmp_path / "d.parquet", {"product_id": ["a", "b"], "article": ["123456", "123456"]})
    with pytest.raises(DatasetError, match="article 123456 names two products"):
        article_index(dup)
    with pytest.raises(DatasetError, match="needs an article column"):
        article_index(write(tmp_path / "e.parquet", {"product_id": ["a"]}))


# ---------------------------------------------------------------- errors
def test_missing_catalog_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"visearch synth --out") as e:
        read_catalog(tmp_path)  # a folder without products.parquet
    assert str(tmp_path / PRODUCTS_FILE) in str(e.value)
    with pytest.raises(DatasetError, match=r"does not exist.*visearch synth --out"):
        read_catalog(tmp_path / "absent")
    with pytest.raises(DatasetError, match="does not exist"):
        read_catalog(tmp_path / "absent.parquet")
    with pytest.raises(NotFoundError, match="does not exist"):  # the index keeps its own not-found error
        Catalog(tmp_path / "absent.parquet")


def test_unreadable_catalogs(tmp_path: Path, tiny_synth: Path) -> None:
    (tmp_path / "text.parquet").write_text("product_id,title\np1,x\n")
    whole = (tiny_synth / PRODUCTS_FILE).read_bytes()
    (tmp_path / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "empty.parquet").write_bytes(b"")
    for name in ("text.parquet", "cut.parquet", "empty.parquet"):
        with pytest.raises(DatasetError, match="not a readable Parquet file"):
            read_catalog(tmp_path / name)


def test_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "c.parquet", {"id": ["a"], "title": ["t"]})
    with pytest.raises(DatasetError, match=r"needs a product_id column; it has \['id', 'title'\]"):
        read_catalog(path)
    path = write(tmp_path / "c.parquet", {"product_id": ["a"], "title": ["t"]})
    with pytest.raises(DatasetError, match="needs columns split, image_uris"):
        read_catalog(path, required=("split", "title", "image_uris"))
    with pytest.raises(DatasetError, match="needs a price column"):
        read_catalog(path, columns=["title", "price"])
    assert read_catalog(path, columns=["title"]).column_names == ["title"]


# ---------------------------------------------------------------- image paths
def test_image_path_stays_in_the_data_set(tmp_path: Path) -> None:
    root = tmp_path / "wb"
    (root / "gallery").mkdir(parents=True)
    (root / "gallery" / "p1_0.jpg").write_bytes(b"jpeg")
    (tmp_path / "secret.txt").write_text("x")
    assert image_path(root, "gallery/p1_0.jpg") == (root / "gallery" / "p1_0.jpg").resolve()
    assert image_path(str(root), "./gallery/p1_0.jpg") == (root / "gallery" / "p1_0.jpg").resolve()
    for uri in ("../secret.txt", "gallery/../../secret.txt", "..", "/etc/passwd", str(tmp_path / "secret.txt"),
                "", " ", ".", "gallery\\..\\..\\secret.txt", "C:\\secret.txt", "C:secret.txt", "a\x00b"):
        with pytest.raises(InvalidArgumentError):
            image_path(root, uri)
    (root / "gallery" / "link.jpg").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(InvalidArgumentError, match="outside"):
        image_path(root, "gallery/link.jpg")
