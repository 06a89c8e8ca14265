"""Validate a WB-Synth data set against its manifest and schema.

Returns one line per problem, each naming the file and what is wrong, so a person (or
CI) can read the whole damage at once instead of stopping at the first error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from visearch.catalog import PRODUCT_SCHEMA, PRODUCTS_FILE
from visearch.synth.catalog import SPLITS
from visearch.synth.dataset import (
    EVENT_SCHEMA,
    HELD_OUT,
    SCENE_KINDS,
    SCENE_OPTIONAL,
    SCENE_SCHEMA,
    SCHEMA_VERSION,
    TRIPLET_SCHEMA,
    scene_kinds,
)
from visearch.synth.vocab import CATEGORIES

__all__ = ["check_dataset"]

_ARTICLE = re.compile(r"[1-9]\d{5,9}")
_TABLES = {
    PRODUCTS_FILE: PRODUCT_SCHEMA,
    "scenes.parquet": SCENE_SCHEMA,
    "triplets.parquet": TRIPLET_SCHEMA,
    "events.parquet": EVENT_SCHEMA,
}
# columns sets made before them lack, and the value they then mean
_OPTIONAL = {"scenes.parquet": SCENE_OPTIONAL}


def _read(root: Path, name: str, schema: pa.Schema, problems: list[str]) -> dict[str, list] | None:
    try:
        table = pq.read_table(root / name)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a finding, not a crash
        problems.append(f"{name}: unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
        return None
    optional = _OPTIONAL.get(name, {})
    missing = [f.name for f in schema if f.name not in table.schema.names and f.name not in optional]
    wrong = [f"{f.name} is {table.schema.field(f.name).type}, expected {f.type}"
             for f in schema if f.name in table.schema.names and table.schema.field(f.name).type != f.type]
    if missing:
        problems.append(f"{name}: missing columns {', '.join(missing)}")
    problems.extend(f"{name}: column {w}" for w in wrong)
    if missing or wrong:
        return None
    columns = table.to_pydict()
    for column, default in optional.items():
        columns.setdefault(column, [default] * table.num_rows)
    return columns


def _derived(rel: str) -> bool:
    """Files tools write beside a data set, not part of what synth made: the catalog's tags
    (``visearch tags generate``) and ultralytics' label caches (training and ``eval detector``)."""
    from visearch.tags.catalog import TAGS_FILE

    stem = Path(TAGS_FILE).stem
    return rel in (TAGS_FILE, f"{stem}-vocabulary.json", f"{stem}-cleaning.json") or (
        rel.startswith("scenes/labels/") and rel.endswith(".cache"))


def _check_files(root: Path, manifest: dict, problems: list[str]) -> None:
    listed = manifest.get("files", {})
    for rel, digest in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing (listed in manifest)")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{rel}: sha256 differs from manifest (file changed or corrupt)")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != "manifest.json" and rel not in listed and not _derived(rel):
            problems.append(f"{rel}: not in manifest (stray file)")


def _check_products(products: dict[str, list], manifest: dict, root: Path, problems: list[str]) -> dict[str, int]:
    index = {pid: i for i, pid in enumerate(products["product_id"])}
    for pid, n in Counter(products["product_id"]).items():
        if n > 1:
            problems.append(f"products.parquet: product_id {pid} appears {n} times")
    for article, n in Counter(products["article"]).items():
        if n > 1:
            problems.append(f"products.parquet: article {article} is shared by {n} products")
    for i, pid in enumerate(products["product_id"]):
        if not _ARTICLE.fullmatch(products["article"][i] or ""):
            problems.append(f"products.parquet: {pid} article {products['article'][i]!r} is not 6-10 digits")
        if products["split"][i] not in SPLITS:
            problems.append(f"products.parquet: {pid} has unknown split {products['split'][i]!r}")
        if not 0 <= products["category_id"][i] < len(CATEGORIES) or CATEGORIES[products["category_id"][i]].name != products["category"][i]:
            problems.append(f"products.parquet: {pid} category {products['category'][i]!r}/{products['category_id'][i]} is inconsistent")
        if not products["price"][i] > 0 or not 1 <= products["rating"][i] <= 5 or products["reviews_count"][i] < 0:
            problems.append(f"products.parquet: {pid} has price/rating/reviews out of range")
        for uri in products["image_uris"][i]:
            if not (root / uri).is_file():
                problems.append(f"products.parquet: {pid} gallery photo {uri} is missing")
    counts = manifest.get("counts", {})
    if counts.get("products") != len(index):
        problems.append(f"products.parquet: {len(index)} products, manifest says {counts.get('products')}")
    for split in SPLITS:
        n = sum(s == split for s in products["split"])
        want = manifest.get("splits", {}).get(split, {}).get("products")
        if want != n:
            problems.append(f"products.parquet: {n} {split} products, manifest says {want}")
    return index


def _check_scenes(scenes: dict[str, list], products: dict[str, list], index: dict[str, int], root: Path, problems: list[str],
                  screenshot_splits: tuple[str, ...] = HELD_OUT) -> None:
    by_scene: dict[str, list[int]] = {}
    for i, sid in enumerate(scenes["scene_id"]):
        by_scene.setdefault(sid, []).append(i)
        pid = scenes["product_id"][i]
        where = f"scenes.parquet: {sid}/{pid}"
        if pid not in index:
            problems.append(f"{where}: unknown product")
            continue
        p = index[pid]
        x1, y1, x2, y2 = (scenes[k][i] for k in ("x1", "y1", "x2", "y2"))
        if not (0 <= x1 < x2 <= scenes["width"][i] and 0 <= y1 < y2 <= scenes["height"][i]):
            problems.append(f"{where}: box {(x1, y1, x2, y2)} is not inside the {scenes['width'][i]}x{scenes['height'][i]} image")
        if products["split"][p] != scenes["split"][i]:
            problems.append(f"{where}: product of split {products['split'][p]} in a {scenes['split'][i]} photo")
        if scenes["category_id"][i] != products["category_id"][p]:
            problems.append(f"{where}: category {scenes['category_id'][i]} differs from the product's")
        if scenes["article_visible"][i] and (not products["has_label"][p] or scenes["article"][i] != products["article"][p]):
            problems.append(f"{where}: printed article {scenes['article'][i]} does not belong to this product")
    kinds = scene_kinds(scenes)
    for sid, rows in by_scene.items():
        split = scenes["split"][rows[0]]
        _check_photo(scenes, kinds, sid, rows, root, problems, screenshot_splits)
        label = root / "scenes" / "labels" / split / f"{sid}.txt"
        if not label.is_file():
            problems.append(f"{label.relative_to(root).as_posix()}: missing YOLO label")
            continue
        lines = [ln.split() for ln in label.read_text().splitlines() if ln.strip()]
        if len(lines) != len(rows) or any(len(ln) != 5 for ln in lines):
            problems.append(f"{label.relative_to(root).as_posix()}: {len(lines)} label lines for {len(rows)} objects")
            continue
        for ln, i in zip(lines, rows, strict=True):
            cx, cy, w, h = map(float, ln[1:])
            eps = 1e-5  # labels are written with 6 decimals
            if int(ln[0]) != scenes["category_id"][i] or not (-eps <= cx - w / 2 and cx + w / 2 <= 1 + eps and -eps <= cy - h / 2 and cy + h / 2 <= 1 + eps):
                problems.append(f"{label.relative_to(root).as_posix()}: line {ln} disagrees with scenes.parquet or leaves the image")


def _check_photo(scenes: dict[str, list], kinds: list[str], sid: str, rows: list[int], root: Path, problems: list[str],
                 screenshot_splits: tuple[str, ...] = HELD_OUT) -> None:
    """One photo: its kind (screenshots only where the manifest asked for them), its file and that file's size."""
    rel, split, kind = scenes["image"][rows[0]], scenes["split"][rows[0]], kinds[rows[0]]
    where = f"scenes.parquet: {sid}"
    if any(kinds[i] != kind or scenes["split"][i] != split or scenes["image"][i] != rel for i in rows):
        problems.append(f"{where}: its rows disagree on kind, split or image")
    if kind not in SCENE_KINDS:
        problems.append(f"{where}: unknown kind {kind!r} (expected one of {', '.join(SCENE_KINDS)})")
    elif kind == "screenshot" and split not in screenshot_splits:
        problems.append(f"{where}: a screenshot in the {split} split (the set was made without train screenshots)")
    if not (root / rel).is_file():
        problems.append(f"{where} photo {rel} is missing")
        return
    try:
        with Image.open(root / rel) as img:  # reads the header only
            size = img.size
    except Exception as e:  # noqa: BLE001 - any unreadable photo is a finding, not a crash
        problems.append(f"{where} photo {rel} is unreadable ({type(e).__name__})")
        return
    if size != (scenes["width"][rows[0]], scenes["height"][rows[0]]):
        problems.append(f"{where} photo {rel} is {size[0]}x{size[1]}, the table says {scenes['width'][rows[0]]}x{scenes['height'][rows[0]]}")


def _check_counts(scenes: dict[str, list], manifest: dict, problems: list[str]) -> None:
    """Shopper photos and screenshots against the manifest (a set made before screenshots counts none)."""
    photos: dict[str, str] = {}
    for sid, kind in zip(scenes["scene_id"], scene_kinds(scenes), strict=True):
        photos.setdefault(sid, kind)  # a photo is of the kind of its first row
    counts = manifest.get("counts", {})
    for key, kind, what in (("scenes", "shopper", "shopper photos"), ("screenshots", "screenshot", "screenshots")):
        n = sum(k == kind for k in photos.values())
        if counts.get(key, 0 if kind == "screenshot" else None) != n:
            problems.append(f"scenes.parquet: {n} {what}, manifest says {counts.get(key)}")


def check_dataset(root: Path | str) -> list[str]:
    """Every problem found in the data set at ``root``; an empty list means it is sound."""
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: not a directory"]
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{root / 'manifest.json'}: missing; is {root} a WB-Synth data set?"]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return [f"{root / 'manifest.json'}: not valid JSON ({e})"]
    if manifest.get("schema_version") != SCHEMA_VERSION:
        return [f"manifest.json: schema_version {manifest.get('schema_version')!r}, this visearch reads {SCHEMA_VERSION}"]
    problems: list[str] = []
    _check_files(root, manifest, problems)
    tables = {name: _read(root, name, schema, problems) if (root / name).is_file() else None for name, schema in _TABLES.items()}
    products, scenes = tables[PRODUCTS_FILE], tables["scenes.parquet"]
    if products is None:
        return problems
    index = _check_products(products, manifest, root, problems)
    if scenes is not None:
        train_shots = bool(manifest.get("params", {}).get("train_screenshots"))
        _check_scenes(scenes, products, index, root, problems, (*HELD_OUT, "train") if train_shots else HELD_OUT)
        _check_counts(scenes, manifest, problems)
    if (t := tables["triplets.parquet"]) is not None:
        for a, b in zip(t["anchor_product_id"], t["target_product_id"], strict=True):
            if a not in index or b not in index or products["split"][index[a]] != products["split"][index[b]]:
                problems.append(f"triplets.parquet: ({a}, {b}) names an unknown product or crosses splits")
    if (e := tables["events.parquet"]) is not None:
        unknown = {pid for pid in e["product_id"] + e["query_product_id"] if pid not in index}
        problems.extend(f"events.parquet: unknown product {pid}" for pid in sorted(unknown))
    return problems
