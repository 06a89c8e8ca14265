"""The validator finds what is wrong, one line per problem."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from visearch.synth import check_dataset


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_detects_changed_missing_and_stray_files(tiny_synth, tmp_path):
    root = _copy(tiny_synth, tmp_path)
    photo = next((root / "scenes" / "images" / "train").glob("*.jpg"))
    photo.write_bytes(photo.read_bytes()[:-10])
    label = next((root / "scenes" / "labels" / "train").glob("*.txt"))
    label.unlink()
    (root / "gallery" / "stray.jpg").write_bytes(b"x")
    problems = check_dataset(root)
    text = "\n".join(problems)
    assert f"{photo.relative_to(root).as_posix()}: sha256 differs" in text
    assert f"{label.relative_to(root).as_posix()}: missing" in text
    assert "gallery/stray.jpg: not in manifest" in text
    assert all("\n" not in p for p in problems)


def test_files_tools_write_beside_a_set_are_not_stray(tiny_synth, tmp_path):
    root = _copy(tiny_synth, tmp_path)
    for name in ("tags.parquet", "tags-vocabulary.json", "tags-cleaning.json", "scenes/labels/train.cache"):
        (root / name).write_bytes(b"derived")
    (root / "tags-notes.json").write_bytes(b"x")
    assert check_dataset(root) == ["tags-notes.json: not in manifest (stray file)"]


def test_detects_broken_ground_truth(tiny_synth, tmp_path):
    root = _copy(tiny_synth, tmp_path)
    t = pq.read_table(root / "scenes.parquet").to_pydict()
    t["x2"][0] = t["width"][0] + 50
    i = t["article_visible"].index(True)
    t["article"][i] = "1234567"
    pq.write_table(pa.table(t, schema=pq.read_schema(root / "scenes.parquet")), root / "scenes.parquet")
    products = pq.read_table(root / "products.parquet").to_pydict()
    products["split"][0] = "holdout"
    pq.write_table(pa.table(products, schema=pq.read_schema(root / "products.parquet")), root / "products.parquet")
    text = "\n".join(check_dataset(root))
    assert "is not inside" in text
    assert "does not belong to this product" in text
    assert "unknown split 'holdout'" in text


def test_bad_manifest(tiny_synth, tmp_path):
    root = _copy(tiny_synth, tmp_path)
    (root / "manifest.json").write_text("{nope")
    assert "not valid JSON" in check_dataset(root)[0]
    m = json.loads((tiny_synth / "manifest.json").read_text())
    m["schema_version"] = 99
    (root / "manifest.json").write_text(json.dumps(m))
    assert "schema_version 99" in check_dataset(root)[0]
    (root / "manifest.json").unlink()
    assert "missing" in check_dataset(root)[0]
