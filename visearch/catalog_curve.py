"""Top-10 against catalog size: the same held-out photos searched among catalogs that grow.

A shopper searches the whole catalog, and every product added is one more that can push
the right one out of the top 10. This measures how much: the held-out photos of a data
set go through the whole query (in process, as ``visearch eval pipeline``) against
catalogs of growing size. A catalog of ``N`` products holds every product the photos ask
for, then products drawn (seeded) from the data set's other products, then from a
distractor set (another WB-Synth seed, vectorised by the same embedder; its ids prefixed
with :data:`DISTRACTOR_PREFIX` so they cannot collide). The catalogs are nested, so a
step in the curve is what the added products did.

Each size gets its own temporary embedded index under the output folder, removed after;
the index the settings serve from is never opened. Product vectors are computed once per
data set and embedder version and cached in ``<out>/vectors``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from visearch.catalog import PRODUCTS_FILE, read_catalog
from visearch.config import Settings
from visearch.errors import DatasetError, InvalidArgumentError
from visearch.pipeline_eval import ASKING

__all__ = ["DEFAULT_SIZES", "DISTRACTOR_PREFIX", "catalog_curve", "parse_sizes", "figures", "queried_products",
           "plot_curve", "top10_leaves"]

DEFAULT_SIZES = (1000, 2000, 5000, 20000)
DISTRACTOR_PREFIX = "dx-"  # distractor product ids (and model ids) get this, WB-Synth ids repeat across seeds
DISTRACTOR_DIR = "_distractors"  # where the distractor set appears inside the merged catalog folder
SAMPLE_SEED = 20_011  # the draw of filler products, apart from every other stream
FIGURES = ("n", "top1", "top10", "category_share@10")  # what the curve keeps of a pipeline summary

Say = Callable[[str], None]


@dataclass(frozen=True)
class _Vectors:
    """Every product vector of a data set, under the ids the merged catalog gives them."""

    ids: list[str]
    matrix: np.ndarray
    path: Path


# ------------------------------------------------------------------ inputs
def parse_sizes(text: str) -> list[int]:
    """``"1000,2000"`` → ``[1000, 2000]``: distinct positive catalog sizes, ascending."""
    try:
        sizes = sorted({int(s) for s in text.replace(" ", "").split(",") if s})
    except ValueError:
        raise InvalidArgumentError(f"--sizes must be comma-separated whole numbers, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise InvalidArgumentError(f"--sizes must be positive product counts, got {text!r}")
    return sizes


def _check_folder(path: Path, what: str, files: Iterable[str]) -> None:
    if not path.is_dir():
        raise DatasetError(f"{path}: no such data set folder ({what}); make one with visearch synth --out {path}")
    for name in files:
        if not (path / name).is_file():
            raise DatasetError(f"{path}: no {name}; is it a WB-Synth data set? (visearch synth --out {path})")


def queried_products(data: Path, split: str) -> list[str]:
    """Every product the held-out photos of ``split`` ask for.

    All photos' products, also when ``--limit`` searches fewer: which photos a limit picks is the
    pipeline evaluation's choice (it balances photo kinds), and a superset keeps each one's product in.
    """
    scenes = pq.read_table(data / "scenes.parquet", columns=["split", "product_id"]).to_pydict()
    found = {pid for s, pid in zip(scenes["split"], scenes["product_id"], strict=True) if s == split}
    if not found:
        raise DatasetError(f"{data}: no held-out photos in split {split!r}")
    return sorted(found)


# ------------------------------------------------------------------ vectors, once per data set
def _fingerprint(data: Path) -> str:
    """What a data set is: its manifest (a seed and counts name a WB-Synth set), else its catalog bytes."""
    manifest = data / "manifest.json"
    source = manifest if manifest.is_file() else data / PRODUCTS_FILE
    return hashlib.sha256(source.read_bytes()).hexdigest()


def _vectors(data: Path, settings: Settings, embedder: str, cache: Path, prefix: str, progress: bool,
             say: Say) -> _Vectors:
    """The data set's product vectors by ``embedder`` (a pinned reference), from the cache or computed now."""
    from training.vectorize import vectorize_catalog

    key = hashlib.sha256(f"{_fingerprint(data)}\n{embedder}".encode()).hexdigest()[:16]
    path = cache / f"{data.resolve().name}-{key}.parquet"
    if path.is_file():
        say(f"vectors of {data}: reusing {path}")
    else:
        say(f"vectors of {data}: embedding its catalog with {embedder}")
        partial = path.with_name(f".{path.name}.partial")
        vectorize_catalog(data, settings, partial, ref=embedder, progress=progress)
        partial.replace(path)
    table = pq.read_table(path)
    ids = [prefix + p for p in table.column("product_id").to_pylist()]
    flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return _Vectors(ids, np.asarray(flat, dtype=np.float32).reshape(len(ids), -1), path)


# ------------------------------------------------------------------ the merged catalog
def _distractor_table(own: pa.Table, other: pa.Table) -> tuple[pa.Table, int]:
    """The distractor catalog renamed into the merged one; articles the data set uses are dropped
    (an article read off a photo must name one product). Returns it and how many were dropped."""
    def prefixed(name: str, text: str) -> pa.Array:
        return pc.binary_join_element_wise(pa.scalar(text), other.column(name), "")

    out = other.set_column(other.schema.get_field_index("product_id"), "product_id", prefixed("product_id", DISTRACTOR_PREFIX))
    if "model_id" in out.column_names:
        out = out.set_column(out.schema.get_field_index("model_id"), "model_id", prefixed("model_id", DISTRACTOR_PREFIX))
    if "image_uris" in out.column_names:
        uris = [[f"{DISTRACTOR_DIR}/{u}" for u in us] if us is not None else None
                for us in out.column("image_uris").to_pylist()]
        out = out.set_column(out.schema.get_field_index("image_uris"), "image_uris",
                             pa.array(uris, out.schema.field("image_uris").type))
    dropped = 0
    if "article" in out.column_names and "article" in own.column_names:
        taken = {str(a) for a in own.column("article").to_pylist() if a is not None}
        articles = out.column("article").to_pylist()
        kept = [None if a is not None and str(a) in taken else a for a in articles]
        dropped = sum(a is not None for a in articles) - sum(a is not None for a in kept)
        out = out.set_column(out.schema.get_field_index("article"), "article",
                             pa.array(kept, out.schema.field("article").type))
    return out, dropped


def _merged_catalog(data: Path, distractors: Path, folder: Path) -> tuple[Path, int]:
    """A data set folder holding both catalogs: ``data``'s files linked, one ``products.parquet`` of both.

    The held-out photos are read through it, so every result (a distractor too) has its category.
    """
    if (data / DISTRACTOR_DIR).exists():
        raise DatasetError(f"{data}: holds {DISTRACTOR_DIR!r}, the name the distractor set takes in the merged catalog")
    folder.mkdir(parents=True)
    for entry in data.iterdir():
        if entry.name != PRODUCTS_FILE:
            (folder / entry.name).symlink_to(entry.resolve())
    (folder / DISTRACTOR_DIR).symlink_to(distractors.resolve())
    own = read_catalog(data)
    other, dropped = _distractor_table(own, read_catalog(distractors))
    try:
        merged = pa.concat_tables([own, other.select(own.column_names)], promote_options="permissive")
    except (pa.ArrowException, KeyError) as e:
        raise DatasetError(f"{distractors}: its catalog does not match {data}'s columns ({e})") from None
    pq.write_table(merged, folder / PRODUCTS_FILE)
    return folder, dropped


# ------------------------------------------------------------------ sizes
def _plan(sizes: list[int], n_queried: int, n_available: int) -> tuple[list[int], list[dict[str, Any]]]:
    """Sizes that can be built, and the skipped ones with why."""
    keep, skipped = [], []
    for n in sizes:
        if n < n_queried:
            skipped.append({"size": n, "reason": f"smaller than the {n_queried} products the held-out photos ask for"})
        elif n > n_available:
            skipped.append({"size": n, "reason": f"larger than the {n_available} products the data set and the "
                                                 "distractor set hold together"})
        else:
            keep.append(n)
    return keep, skipped


@dataclass(frozen=True)
class _Pool:
    """Every product a catalog can hold, in the order catalogs take them: a size is a prefix, so the
    catalogs are nested. Queried products first, then the data set's others, then the distractors,
    each drawn in a seeded order."""

    order: list[str]
    rows: dict[str, int]
    matrix: np.ndarray

    @classmethod
    def of(cls, queried: list[str], own: _Vectors, extra: _Vectors, seed: int) -> _Pool:
        rng = np.random.default_rng(np.random.SeedSequence([SAMPLE_SEED, seed]))
        ask = set(queried)
        others = [p for p in own.ids if p not in ask]
        order = ([p for p in own.ids if p in ask] + [others[i] for i in rng.permutation(len(others))]
                 + [extra.ids[i] for i in rng.permutation(len(extra.ids))])
        rows = {p: i for i, p in enumerate(own.ids + extra.ids)}
        return cls(order, rows, np.concatenate([own.matrix, extra.matrix]))

    def write(self, n: int, path: Path) -> Path:
        """The vectors file of the first ``n`` products, as ``visearch index build`` reads it."""
        ids = self.order[:n]
        sub = self.matrix[[self.rows[p] for p in ids]]
        pq.write_table(pa.table({"product_id": pa.array(ids, pa.string()), "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(sub.reshape(-1)), sub.shape[1])}), path)
        return path


@dataclass(frozen=True)
class _Run:
    """What every size is searched with: the settings, the merged catalog, where temporary indexes go."""

    settings: Settings
    catalog: Path
    work: Path
    split: str
    limit: int | None
    progress: bool


def _size_settings(settings: Settings, index_path: Path) -> Settings:
    """The settings with an embedded index at ``index_path`` in place of the serving one."""
    index = settings.index.model_copy(update={"backend": "edge", "path": index_path, "url": None, "api_key": None})
    return settings.model_copy(update={"index": index})


def _close(client: Any) -> None:
    """Let go of the size's index before its folder is removed."""
    searcher = getattr(getattr(getattr(client, "pipeline", None), "stages", None), "searcher", None)
    if searcher is not None:
        searcher.close()


def figures(block: Any) -> Any:
    """Top-1 / top-10 / category share of a pipeline summary and of every summary nested in it (per
    photo or query kind), read generically: the summary may grow blocks this does not know."""
    if not isinstance(block, dict):
        return None
    nested = {k: f for k, v in block.items() if isinstance(v, dict) and (f := figures(v))}
    if "top10" not in block:
        return nested or None
    return {**{k: block[k] for k in FIGURES if k in block}, **nested}


def _one_size(n: int, pool: _Pool, run: _Run) -> dict[str, Any]:
    """Build the index of the first ``n`` products, search every held-out photo in it, keep the figures."""
    from visearch.index import build_index
    from visearch.pipeline_eval import LocalClient, evaluate_pipeline

    start = time.perf_counter()
    index_path = run.work / f"index-{n}"
    sized = _size_settings(run.settings, index_path)
    build_index(sized, pool.write(n, run.work / f"vectors-{n}.parquet"), run.catalog / PRODUCTS_FILE)
    client = LocalClient(sized)
    try:
        result = evaluate_pipeline(client, run.catalog, split=run.split, limit=run.limit, progress=run.progress,
                                   source=f"in process, {n} products")
    finally:
        _close(client)
        shutil.rmtree(index_path, ignore_errors=True)
    entry: dict[str, Any] = {"size": n, "n_products": n,
                             "from_distractors": sum(p.startswith(DISTRACTOR_PREFIX) for p in pool.order[:n]),
                             "photos": result.get("photos")}
    entry.update({kind: figures(result.get(kind)) for kind in ASKING if kind in result})
    if "by_kind" in result:
        entry["by_kind"] = figures(result["by_kind"])
    entry["photo_latency_ms"] = result.get("photo_latency_ms")
    entry["seconds"] = round(time.perf_counter() - start, 1)
    return entry


def _check_inputs(data: Path, distractors: Path) -> None:
    _check_folder(data, "--data", (PRODUCTS_FILE, "scenes.parquet"))
    _check_folder(distractors, "--distractors", (PRODUCTS_FILE,))
    if data.resolve() == distractors.resolve():
        raise InvalidArgumentError("--distractors must be another data set than --data (another synth seed)")


def catalog_curve(data: Path, distractors: Path, settings: Settings, *, sizes: list[int] | None = None,
                  split: str = "test", limit: int | None = None, out: Path | None = None, seed: int = 0,
                  progress: bool = True, say: Say | None = None) -> dict[str, Any]:
    """Top-1 / top-10 of ``data``'s held-out photos per catalog size; writes ``curve.json`` and ``curve.png`` in ``out``.

    Args:
        data: the WB-Synth set whose held-out photos are searched.
        distractors: another WB-Synth set (another seed) whose products fill the larger catalogs.
        sizes: catalog sizes; those below what the photos ask for or above what both sets hold are skipped.
        limit: at most this many photos (chosen by the pipeline evaluation).
        out: report folder (also the vector cache and the temporary indexes); default ``<data_dir>/reports/curve``.
        seed: the draw of filler products.
        say: where notes and warnings go (a line each).
    """
    from visearch.registry import pin_model

    say = say or (lambda _msg: None)
    data, distractors = Path(data), Path(distractors)
    _check_inputs(data, distractors)
    out = Path(out) if out is not None else settings.data_dir / "reports" / "curve"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    queried = queried_products(data, split)
    embedder = pin_model(settings.models.embedder, settings)
    own = _vectors(data, settings, embedder.ref, out / "vectors", "", progress, say)
    extra = _vectors(distractors, settings, embedder.ref, out / "vectors", DISTRACTOR_PREFIX, progress, say)
    missing = sorted(set(queried) - set(own.ids))
    if missing:
        say(f"warning: {len(missing)} queried products have no gallery photo, so no vector: {', '.join(missing[:5])}")
    pool = _Pool.of(queried, own, extra, seed)
    keep, skipped = _plan(sizes or list(DEFAULT_SIZES), len(queried) - len(missing), len(pool.order))
    for s in skipped:
        say(f"warning: size {s['size']} skipped: {s['reason']}")
    report: dict[str, Any] = {
        "data": str(data.resolve()), "distractors": str(distractors.resolve()), "split": split, "limit": limit,
        "embedder": embedder.label, "seed": seed, "queried_products": len(queried),
        "available": {"data": len(own.ids), "distractors": len(extra.ids)}, "sizes": [], "skipped": skipped,
    }
    work = Path(tempfile.mkdtemp(prefix=".curve-", dir=out))
    try:
        catalog, report["distractor_articles_dropped"] = _merged_catalog(data, distractors, work / "catalog")
        run = _Run(settings, catalog, work, split, limit, progress)
        for n in keep:
            say(f"catalog of {n:,} products: building its index and searching")
            report["sizes"].append(_one_size(n, pool, run))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    _write(report, out)
    return report


# ------------------------------------------------------------------ report
def _write(report: dict[str, Any], out: Path) -> None:
    report["json"] = str(out / "curve.json")
    report["png"] = str(out / "curve.png")
    (out / "curve.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    plot_curve(report, out / "curve.png")


def top10_leaves(tree: Any, label: str = "") -> Iterable[tuple[str, float]]:
    """(label, top10) of every summary nested under ``tree``, the label its path (``"screenshot tapped"``)."""
    if not isinstance(tree, dict):
        return
    if "top10" in tree and label:
        yield label, tree["top10"]
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from top10_leaves(v, f"{label} {k}".strip())


def plot_curve(report: dict[str, Any], path: Path) -> Path:
    """Top-1 and top-10 (auto-picked, tapped, and per kind when measured) against catalog size, log scale."""
    os.environ.setdefault("MPLCONFIGDIR", str(path.parent / ".matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = report["sizes"]
    xs = [e["n_products"] for e in entries]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for kind, colour in zip(ASKING, ("tab:blue", "tab:orange", "tab:grey"), strict=True):
        for metric, style in (("top10", "-o"), ("top1", "--o")):
            ys = [(e.get(kind) or {}).get(metric) for e in entries]
            if xs and all(y is not None for y in ys):
                ax.plot(xs, ys, style, color=colour, alpha=1.0 if metric == "top10" else 0.5, label=f"{kind} {metric}")
    per_kind: dict[str, list[float | None]] = {}
    for i, e in enumerate(entries):
        for label, y in top10_leaves(e.get("by_kind")):
            per_kind.setdefault(label, [None] * len(entries))[i] = y
    for label, ys in per_kind.items():
        if all(y is not None for y in ys):
            ax.plot(xs, ys, ":", alpha=0.7, label=f"{label} top10")
    if xs:
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:,}" for x in xs])
        ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("products in the catalog (log scale)")
    ax.set_ylabel("share of held-out queries")
    ax.set_title(f"top-k against catalog size: {Path(report['data']).name} {report['split']} photos, "
                 f"{Path(report['distractors']).name} as distractors\n{report['embedder']}", fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
