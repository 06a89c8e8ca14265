"""Write a whole WB-Synth data set to disk.

Every product, photo and session draws from its own random stream, derived from the
seed and its index, so the output is byte-identical for a seed whatever the number of
worker processes. The set is written into a temporary sibling folder and moved into
place at the end, so a crash never leaves a half-written data set under ``out``.

Layout::

    manifest.json          seed, params, counts, splits, schema version, sha256 of every file
    products.parquet       one product card per row (ground-truth attributes, split, gallery paths)
    gallery/               seller photos, <product_id>_<view>.jpg
    scenes/images/<split>/ shopper photos (sc<n>.jpg) and, in val/test, screenshot-style queries (scr<n>.jpg)
    scenes/labels/<split>/ YOLO labels: class cx cy w h, normalised
    scenes.parquet         one object per row: scene, product, box, article visibility, kind (shopper | screenshot)
    triplets.parquet       (anchor, modification text, target) from product variants
    events.parquet         simulated sessions: impressions, clicks, add-to-cart, orders
    data.yaml              the YOLO data set description
    preview.png            contact sheet (with --preview)
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import numbers
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from visearch.catalog import PRODUCT_SCHEMA, PRODUCTS_FILE
from visearch.config import SynthSettings
from visearch.errors import InvalidArgumentError
from visearch.progress import track
from visearch.synth.catalog import SPLITS, Product, sample_products
from visearch.synth.render import Sprite, render_product
from visearch.synth.scenes import SceneObject, encode_jpeg, gallery_photo, shopper_photo
from visearch.synth.screenshots import Listing, screenshot
from visearch.synth.sessions import simulate_sessions
from visearch.synth.text import modification_text
from visearch.synth.vocab import CATEGORIES

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["generate", "SCHEMA_VERSION", "SPRITE_SIZE", "file_hashes", "SCENE_KINDS", "DEFAULT_KIND", "HELD_OUT",
           "SCREENSHOTS_PER_PRODUCT", "scene_kinds"]

SCHEMA_VERSION = 1  # screenshots only add rows and an optional column: sets made before them still read
SPRITE_SIZE = 256
# stream ids: one independent random stream per kind of thing and per index
_CATALOG, _GALLERY, _SCENE, _SESSIONS, _TRIPLETS, _SCREENSHOT = range(6)
SCENE_KINDS = ("shopper", "screenshot")
DEFAULT_KIND = "shopper"  # the kind of a scenes.parquet row without one (a set made before screenshots)
HELD_OUT = ("val", "test")  # screenshot queries show products no model trains on (train screenshots are opt-in)
SCREENSHOTS_PER_PRODUCT = 1.0
# share of shopper photos with 1, 2, 3, 4 ... products
_OBJECTS_P = (0.45, 0.3, 0.15, 0.1, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class _Job:
    out: str
    seed: int
    settings: SynthSettings


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index]))


# --- workers (module level so a process pool can run them) -------------------------

_SPRITES: list[Sprite] = []
_PRODUCTS: list[Product] = []


def _render_one(args: tuple[_Job, int, Product]) -> Sprite:
    job, i, product = args
    sprite = render_product(product.look, SPRITE_SIZE)
    rng = _rng(job.seed, _GALLERY, i)
    for view, rel in enumerate(product.gallery):
        img = gallery_photo(sprite, view, job.settings.gallery_size, rng)
        Path(job.out, rel).write_bytes(encode_jpeg(img, job.settings.jpeg_quality))
    return sprite


def _scene_id(j: int) -> str:
    return f"sc{j:07d}"


def _screenshot_id(j: int) -> str:
    """``scr`` + number: still a scene id (``sc...``), and sorted after every shopper photo."""
    return f"scr{j:07d}"


def _write_photo(job: _Job, split: str, sid: str, img: Image.Image, quality: int, objects: list[SceneObject]) -> None:
    """The JPEG and its YOLO label file (boxes normalised by the image's own width and height)."""
    width, height = img.size
    Path(job.out, "scenes", "images", split, f"{sid}.jpg").write_bytes(encode_jpeg(img, quality))
    lines = [
        f"{o.category} {(o.box[0] + o.box[2]) / 2 / width:.6f} {(o.box[1] + o.box[3]) / 2 / height:.6f} "
        f"{(o.box[2] - o.box[0]) / width:.6f} {(o.box[3] - o.box[1]) / height:.6f}"
        for o in objects
    ]
    Path(job.out, "scenes", "labels", split, f"{sid}.txt").write_text("".join(line + "\n" for line in lines))


def _scene_one(args: tuple[_Job, int, str, list[int]]) -> tuple[int, str, list[SceneObject]]:
    job, j, split, members = args
    rng = _rng(job.seed, _SCENE, j)
    items = [(_PRODUCTS[m].product_id, _PRODUCTS[m].look.category, _SPRITES[m], _PRODUCTS[m].article) for m in members]
    img, objects, quality = shopper_photo(items, job.settings.scene_size, rng)
    _write_photo(job, split, _scene_id(j), img, quality, objects)
    return j, split, objects


def _listing(m: int) -> Listing:
    p = _PRODUCTS[m]
    return Listing(p.product_id, p.look.category, _SPRITES[m], p.article, p.title, p.price, p.rating, p.reviews_count,
                   p.description)


def _screenshot_one(args: tuple[_Job, int, str, int, int | None]) -> tuple[int, str, tuple[int, int], list[SceneObject]]:
    job, j, split, main, peek = args
    rng = _rng(job.seed, _SCREENSHOT, j)
    img, objects, quality, _ = screenshot(_listing(main), None if peek is None else _listing(peek), job.settings.scene_size, rng)
    _write_photo(job, split, _screenshot_id(j), img, quality, objects)
    return j, split, img.size, objects


def _run(fn: Callable[[Any], Any], tasks: list, workers: int, description: str, progress: bool) -> Iterator[Any]:
    """Map ``fn`` over ``tasks`` in order, in a fork pool when there is more than one worker."""
    if workers <= 1 or len(tasks) < 8:
        yield from track(map(fn, tasks), len(tasks), description, progress)
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        chunk = max(1, len(tasks) // (workers * 16))
        yield from track(pool.imap(fn, tasks, chunksize=chunk), len(tasks), description, progress)


# --- the job ------------------------------------------------------------------------


def _check_args(out: Path, n_products: int, n_scenes: int, seed: int, screenshots_per_product: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    rate = screenshots_per_product
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < math.inf:  # refuses NaN too
        raise InvalidArgumentError(f"screenshots per held-out product must be 0 or more, got {screenshots_per_product}")
    if n_products < 1:
        raise InvalidArgumentError(f"--products must be at least 1, got {n_products}")
    if n_scenes < 0:
        raise InvalidArgumentError(f"--scenes must be 0 or more, got {n_scenes}")
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise InvalidArgumentError(f"output {out} is not empty and holds no WB-Synth data set; pick an empty or new folder")


def _scene_plan(products: list[Product], n_scenes: int, settings: SynthSettings, seed: int) -> list[tuple[int, str, list[int]]]:
    """Which products each shopper photo shows; a photo never mixes splits."""
    by_split: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(products):
        by_split[p.split].append(i)
    present = [s for s in SPLITS if by_split[s]]
    shares = np.array([len(by_split[s]) for s in present], float)
    quotas = np.floor(shares / shares.sum() * n_scenes).astype(int)
    for r in np.argsort(-(shares / shares.sum() * n_scenes - quotas), kind="stable")[: n_scenes - quotas.sum()]:
        quotas[r] += 1
    p = np.array(_OBJECTS_P[: settings.max_objects])
    p /= p.sum()
    plan: list[tuple[int, str, list[int]]] = []
    j = 0
    for split, quota in zip(present, quotas, strict=True):
        pool = by_split[split]
        order = _rng(seed, _SCENE, 10**9 + SPLITS.index(split)).permutation(pool)
        cursor = 0
        for _ in range(quota):
            rng = _rng(seed, _SCENE, 2 * 10**9 + j)
            k = min(int(rng.choice(len(p), p=p)) + 1, len(pool))
            members = []
            while len(members) < k:  # cycle through the split so every product gets photographed
                m = int(order[cursor % len(pool)])
                cursor += 1
                if m not in members:
                    members.append(m)
            plan.append((j, split, members))
            j += 1
    return plan


def _screenshot_plan(products: list[Product], per_product: float, seed: int,
                     train_per_product: float = 0.0) -> list[tuple[int, str, int, int | None]]:
    """(index, split, product shown, product that may peek in) per screenshot: held-out splits, then (when
    asked) train, every product in turn, the peeking one another product of the same split. Train
    screenshots come last, so asking for them leaves every held-out one as it was."""
    plan: list[tuple[int, str, int, int | None]] = []
    rates = [(s, per_product) for s in HELD_OUT] + ([("train", train_per_product)] if train_per_product else [])
    for split, rate in rates:
        pool = [i for i, p in enumerate(products) if p.split == split]
        order = _rng(seed, _SCREENSHOT, 10**9 + SPLITS.index(split)).permutation(pool)
        for k in range(round(rate * len(pool))):
            main = int(order[k % len(pool)])
            peek = None
            if len(pool) > 1:
                r = int(_rng(seed, _SCREENSHOT, 2 * 10**9 + len(plan)).integers(len(pool) - 1))
                peek = int(order[(k + 1 + r) % len(pool)])  # any product but the one shown
            plan.append((len(plan), split, main, peek))
    return plan


def _add_rows(rows: dict[str, list], sid: str, split: str, size: tuple[int, int], objects: list[SceneObject], kind: str) -> None:
    for o in objects:
        row = (sid, split, f"scenes/images/{split}/{sid}.jpg", *size, o.product_id, o.category,
               *o.box, o.visible, o.article_visible, o.article, kind)
        for name, v in zip(SCENE_SCHEMA.names, row, strict=True):
            rows[name].append(v)


def scene_kinds(scenes: dict[str, list]) -> list[str]:
    """The kind of every row of a scenes table (as columns); a set made before screenshots has only shopper photos."""
    kinds = scenes.get("kind")
    if kinds is None:
        return [DEFAULT_KIND] * len(scenes.get("scene_id", ()))
    return [k or DEFAULT_KIND for k in kinds]


def _triplets(products: list[Product], seed: int) -> dict[str, list]:
    rng = _rng(seed, _TRIPLETS)
    groups: dict[str, list[Product]] = defaultdict(list)
    for p in products:
        groups[p.model_id].append(p)
    cols: dict[str, list] = {k: [] for k in ("anchor_product_id", "text", "lang", "target_product_id", "change", "split")}
    for members in groups.values():
        for a in members:
            for b in members:
                same_colour, same_pattern = a.look.colour == b.look.colour, a.look.pattern == b.look.pattern
                if a is b or same_colour == same_pattern:  # one text names one change
                    continue
                if not same_colour:
                    change, value = "colour", b.look.colour
                else:
                    change, value = "pattern", b.look.pattern
                text, lang = modification_text(change, value, rng)
                for k, v in zip(cols, (a.product_id, text, lang, b.product_id, change, a.split), strict=True):
                    cols[k].append(v)
    return cols


def _write_parquet(path: Path, columns: dict[str, Iterable], schema: pa.Schema) -> None:
    table = pa.table({name: pa.array(list(columns[name]), type=schema.field(name).type) for name in schema.names}, schema=schema)
    pq.write_table(table, path, compression="zstd")


SCENE_SCHEMA = pa.schema([
    ("scene_id", pa.string()), ("split", pa.string()), ("image", pa.string()), ("width", pa.int32()),
    ("height", pa.int32()), ("product_id", pa.string()), ("category_id", pa.int32()), ("x1", pa.int32()),
    ("y1", pa.int32()), ("x2", pa.int32()), ("y2", pa.int32()), ("visible", pa.float32()),
    ("article_visible", pa.bool_()), ("article", pa.string()), ("kind", pa.string()),
])
# columns a reader must not require: sets written before them lack them (value to assume)
SCENE_OPTIONAL = {"kind": DEFAULT_KIND}
TRIPLET_SCHEMA = pa.schema([
    ("anchor_product_id", pa.string()), ("text", pa.string()), ("lang", pa.string()),
    ("target_product_id", pa.string()), ("change", pa.string()), ("split", pa.string()),
])
EVENT_SCHEMA = pa.schema([
    ("session_id", pa.string()), ("user_id", pa.string()), ("split", pa.string()), ("query_product_id", pa.string()),
    ("position", pa.int32()), ("product_id", pa.string()), ("relevance", pa.int8()), ("clicked", pa.bool_()),
    ("added_to_cart", pa.bool_()), ("ordered", pa.bool_()), ("ts", pa.int64()),
])


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but the manifest, by POSIX relative path."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != "manifest.json":
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _products_table(products: list[Product]) -> dict[str, list]:
    rows = [
        {
            "product_id": p.product_id, "model_id": p.model_id, "article": p.article, "split": p.split,
            "title": p.title, "description": p.description, "lang": p.lang, "brand": p.brand,
            "category": p.category, "category_id": p.look.category, "colour": p.colour, "pattern": p.pattern,
            "material": p.material, "has_label": p.has_label, "price": p.price, "rating": p.rating,
            "reviews_count": p.reviews_count, "image_uris": p.gallery,
            "look": json.dumps(asdict(p.look), ensure_ascii=False, sort_keys=True),
        }
        for p in products
    ]
    return {name: [r[name] for r in rows] for name in PRODUCT_SCHEMA.names}


def generate(
    out: Path | str,
    n_products: int,
    seed: int = 0,
    n_scenes: int | None = None,
    settings: SynthSettings | None = None,
    preview: bool = False,
    progress: bool = False,
    screenshots_per_product: float = SCREENSHOTS_PER_PRODUCT,
    train_screenshots: float = 0.0,
) -> dict[str, Any]:
    """Generate WB-Synth into ``out`` and return its manifest.

    Args:
        out: target folder; must be new, empty, or an earlier WB-Synth set (replaced whole).
        n_products: products in the catalog.
        seed: the same seed gives byte-identical files.
        n_scenes: shopper photos; defaults to three per product.
        settings: render knobs (sizes, shares); defaults to :class:`SynthSettings`.
        preview: also write ``preview.png``, a contact sheet of products and photos.
        progress: show progress bars.
        screenshots_per_product: screenshot-style queries (shop pages, stories, photos of a screen) per
            val/test product, rounded per split; 0 for none.
        train_screenshots: screenshots per train product, for models that should learn what screenshots
            look like (detector, crop classifier); 0 (the default) for none. Held-out screenshots are the
            same either way.

    Raises:
        InvalidArgumentError: a bad count, seed or output folder.
    """
    settings = settings or SynthSettings()
    out = Path(out)
    n_scenes = 3 * n_products if n_scenes is None else n_scenes
    _check_args(out, n_products, n_scenes, seed, screenshots_per_product)
    _check_args(out, n_products, n_scenes, seed, train_screenshots)
    screenshots_per_product = float(screenshots_per_product)  # 1 and 1.0 write the same manifest
    train_screenshots = float(train_screenshots)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise InvalidArgumentError(f"cannot write to {out}: {e.strerror or e}") from None
    try:
        manifest = _generate_into(work, n_products, seed, n_scenes, settings, preview, progress, screenshots_per_product,
                                  train_screenshots)
        _swap_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _swap_into_place(work: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    work.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _generate_into(
    work: Path, n_products: int, seed: int, n_scenes: int, settings: SynthSettings, preview: bool, progress: bool,
    screenshots_per_product: float,
    train_screenshots: float = 0.0,
) -> dict[str, Any]:
    global _SPRITES, _PRODUCTS
    workers = settings.workers or os.cpu_count() or 1
    job = _Job(str(work), seed, settings)
    products = sample_products(
        n_products,
        _rng(seed, _CATALOG),
        label_fraction=settings.label_fraction,
        variant_fraction=settings.variant_fraction,
        split_fractions=settings.split_fractions,
        gallery_per_product=settings.gallery_per_product,
    )
    (work / "gallery").mkdir()
    for split in SPLITS:
        (work / "scenes" / "images" / split).mkdir(parents=True)
        (work / "scenes" / "labels" / split).mkdir(parents=True)

    tasks = [(job, i, p) for i, p in enumerate(products)]
    sprites = list(_run(_render_one, tasks, workers, "products + gallery", progress))

    _SPRITES, _PRODUCTS = sprites, products  # read by the forked scene workers
    try:
        plan = _scene_plan(products, n_scenes, settings, seed)
        scene_rows: dict[str, list] = {name: [] for name in SCENE_SCHEMA.names}
        size = settings.scene_size
        for j, split, objects in _run(_scene_one, [(job, *t) for t in plan], workers, "shopper photos", progress):
            _add_rows(scene_rows, _scene_id(j), split, (size, size), objects, "shopper")
        shots = _screenshot_plan(products, screenshots_per_product, seed, train_screenshots)
        for j, split, dims, objects in _run(_screenshot_one, [(job, *t) for t in shots], workers, "screenshots", progress):
            _add_rows(scene_rows, _screenshot_id(j), split, dims, objects, "screenshot")
    finally:
        _SPRITES, _PRODUCTS = [], []

    n_sessions = round(settings.sessions_per_product * n_products)
    events = simulate_sessions(products, n_sessions, settings.impressions_per_session, _rng(seed, _SESSIONS))
    triplets = _triplets(products, seed)

    _write_parquet(work / PRODUCTS_FILE, _products_table(products), PRODUCT_SCHEMA)
    _write_parquet(work / "scenes.parquet", scene_rows, SCENE_SCHEMA)
    _write_parquet(work / "triplets.parquet", triplets, TRIPLET_SCHEMA)
    _write_parquet(work / "events.parquet", events, EVENT_SCHEMA)
    names = "\n".join(f"  {i}: {c.name}" for i, c in enumerate(CATEGORIES))
    (work / "data.yaml").write_text(
        "# WB-Synth shopper photos for YOLO; paths are relative to this file's folder\n"
        f"train: scenes/images/train\nval: scenes/images/val\ntest: scenes/images/test\nnc: {len(CATEGORIES)}\nnames:\n{names}\n"
    )
    if preview:
        from visearch.synth.preview import write_preview

        write_preview(work, products, scene_rows)

    photos = {(sid, sp, kind) for sid, sp, kind in zip(scene_rows["scene_id"], scene_rows["split"], scene_rows["kind"], strict=True)}
    split_counts = {
        s: {
            "products": sum(p.split == s for p in products),
            "scenes": sum(sp == s and kind == "shopper" for _, sp, kind in photos),
            "screenshots": sum(sp == s and kind == "screenshot" for _, sp, kind in photos),
        }
        for s in SPLITS
    }
    manifest = {
        "dataset": "WB-Synth",
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "params": {
            "products": n_products, "scenes": n_scenes, "screenshots_per_product": screenshots_per_product, "preview": preview,
            **({"train_screenshots": train_screenshots} if train_screenshots else {}),  # sets made without keep their hash
            **settings.model_dump(mode="json", exclude={"workers"}),
        },
        "counts": {
            "products": len(products),
            "models": len({p.model_id for p in products}),
            "categories": len({p.look.category for p in products}),
            "gallery_photos": sum(len(p.gallery) for p in products),
            "scenes": len(plan),
            "screenshots": len(shots),
            "objects": len(scene_rows["scene_id"]),
            "screenshot_objects": sum(kind == "screenshot" for kind in scene_rows["kind"]),
            "readable_articles": int(sum(scene_rows["article_visible"])),
            "labelled_products": sum(p.has_label for p in products),
            "triplets": len(triplets["text"]),
            "sessions": n_sessions,
            "events": len(events["session_id"]),
        },
        "splits": split_counts,
        "categories": [c.name for c in CATEGORIES],
        "files": file_hashes(work),
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest
