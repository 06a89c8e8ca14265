"""Train the tag projection and register it as ``visearch-tagger``; evaluate any version.

The catalog's tags come from the configured generator (the offline extractor by default) and
cleaning; each tag is embedded by MiniLM and projected into the serving embedder's space by a
:class:`~visearch.tags.projection.TagProjector` trained on (product photo, tag) pairs: the
train split's seller photos and jittered shopper crops, each labelled with its product's tags,
under a multi-label sigmoid loss. One run trains four arms on the same data, to measure the two
tricks against the plain way: closed-form first layer or SGD, orthogonal or default initialisation
of the MLP. The arm with both tricks is the one registered; the comparison is in its card and in
``tricks.json`` / ``tricks.png`` beside the weights.

Figures are measured on held-out crops (one per photographed object, the embedder evaluation's
crops): precision@5 of the crop's top tags against its product's ground-truth attributes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.recipes import pick_recipe
from training.vectorize import catalog_matrix
from visearch.config import Settings
from visearch.embedding.data import Dataset, open_dataset
from visearch.embedding.embedder import Embedder
from visearch.embedding.photo_vectors import PhotoVectors, crop_vectors, gallery_vectors
from visearch.errors import DatasetError
from visearch.progress import track
from visearch.registry import ModelStore, pin_model, resolve_model
from visearch.registry.card import ModelCard, data_provenance, train_command
from visearch.registry.recorder import ModelRecorder
from visearch.tags.catalog import tag_catalog
from visearch.tags.crop_tags import Fusion, Neighbour, fused_scores, neighbour_votes
from visearch.tags.projection import RidgeAccumulator, TagModel, TagProjector
from visearch.tags.text_encoder import TextEncoder
from visearch.tags.vocabulary import ATTRIBUTE_FACETS, attribute_tags

__all__ = ["TagRecipe", "RECIPES", "MODEL_NAME", "train_tags", "eval_tags", "precision_at"]

MODEL_NAME = "visearch-tagger"
ARMS = {  # name: (closed-form first layer, MLP initialisation)
    "closed_form-orthogonal": (True, "orthogonal"),
    "sgd-orthogonal": (False, "orthogonal"),
    "closed_form-default": (True, "default"),
    "sgd-default": (False, "default"),
}
SHIPPED_ARM = "closed_form-orthogonal"


@dataclass(frozen=True)
class TagRecipe:
    name: str
    steps: int
    batch_size: int = 512
    lr: float = 2e-3
    hidden: int = 512
    ridge: float = 1.0
    eval_every: int = 10
    note: str = ""


RECIPES: dict[str, TagRecipe] = {
    "quick": TagRecipe("quick", steps=400, note="about a minute on 2 cores once crops are embedded"),
    "full": TagRecipe("full", steps=1500, note="for the default bundle"),
    "tiny": TagRecipe("tiny", steps=12, batch_size=64, eval_every=4, note="smoke test only"),
}


def precision_at(scores: np.ndarray, truth: np.ndarray, k: int = 5) -> float:
    """Mean share of each row's ``k`` best-scored columns that ``truth`` (0/1, same shape) marks."""
    if not len(scores):
        return 0.0
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.take_along_axis(truth, top, 1).sum(1).mean() / k)


def _label_matrix(products: list[str], tags_of: dict[str, list[int]], n_tags: int) -> np.ndarray:
    m = np.zeros((len(products), n_tags), np.float32)
    for row, pid in enumerate(products):
        m[row, tags_of.get(pid, [])] = 1.0
    return m


@dataclass
class _Split:
    vectors: torch.Tensor
    labels: torch.Tensor  # the product's cleaned tags (what the loss learns)
    truth: np.ndarray  # the product's ground-truth attributes (what precision is measured against)


def _split(photos: PhotoVectors, tags_of: dict[str, list[int]], truth_of: dict[str, list[int]], n_tags: int) -> _Split:
    return _Split(torch.from_numpy(np.ascontiguousarray(photos.vectors)),
                  torch.from_numpy(_label_matrix(photos.products, tags_of, n_tags)),
                  _label_matrix(photos.products, truth_of, n_tags))


def _val_loss(model: TagProjector, text: torch.Tensor, val: _Split) -> float:
    with torch.no_grad():
        return float(F.binary_cross_entropy_with_logits(model.logits(val.vectors, model(text)), val.labels))


def _fit(closed_form: bool, init: str, text: torch.Tensor, train: _Split, val: _Split, rec: TagRecipe, seed: int,
         progress: bool, label: str) -> tuple[TagProjector, list[tuple[int, float, float]], float]:
    """One arm: returns the projector, its (step, seconds, val loss) curve and the closed-form solve time."""
    torch.manual_seed(seed)
    model = TagProjector(text.shape[1], train.vectors.shape[1], rec.hidden, init=init)  # type: ignore[arg-type]
    started = time.perf_counter()
    solve_s = 0.0
    if closed_form:
        acc = RidgeAccumulator(text.numpy(), train.vectors.shape[1])
        for s in range(0, len(train.vectors), 4096):
            acc.add(train.vectors[s : s + 4096], train.labels[s : s + 4096])
        w, b = acc.solve(rec.ridge)
        with torch.no_grad():
            model.inp.weight.copy_(w)
            model.inp.bias.copy_(b)
        model.inp.requires_grad_(False)
        solve_s = time.perf_counter() - started
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=rec.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    curve = [(0, time.perf_counter() - started, _val_loss(model, text, val))]
    n = len(train.vectors)
    for step in track(range(1, rec.steps + 1), rec.steps, f"tag projection: {label}", progress):
        rows = torch.randint(0, n, (min(rec.batch_size, n),), generator=gen)
        loss = F.binary_cross_entropy_with_logits(model.logits(train.vectors[rows], model(text)), train.labels[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % rec.eval_every == 0 or step == rec.steps:
            curve.append((step, time.perf_counter() - started, _val_loss(model, text, val)))
    return model.eval(), curve, solve_s


def _first_at(curve: list[tuple[int, float, float]], target: float) -> dict[str, float | None]:
    for step, seconds, loss in curve:
        if loss <= target:
            return {"steps": step, "seconds": round(seconds, 3)}
    return {"steps": None, "seconds": None}


def compare_arms(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each trick against the plain way: steps and seconds until the validation loss first reaches the level where
    the plain way has made 90% of its whole descent (both arms end near one floor, so a final-loss target would
    say nothing), with both arms' final loss and precision@5."""
    pairs = {
        "closed_form_vs_sgd": ("closed_form-orthogonal", "sgd-orthogonal"),
        "orthogonal_vs_default": ("closed_form-orthogonal", "closed_form-default"),
        "closed_form_vs_sgd (default init)": ("closed_form-default", "sgd-default"),
        "orthogonal_vs_default (sgd)": ("sgd-orthogonal", "sgd-default"),
    }
    out = {}
    for name, (trick, plain) in pairs.items():
        curve = results[plain]["curve"]
        start, end = curve[0][2], min(loss for _, _, loss in curve)
        target = end + 0.1 * (start - end)

        out[name] = {"target_val_loss": round(target, 5),
                     **{side: {"arm": a, **_first_at(results[a]["curve"], target),
                               "final_val_loss": results[a]["final_val_loss"],
                               "val_precision@5": results[a]["val_precision@5"]}
                        for side, a in (("trick", trick), ("plain", plain))}}
    return out


def _plot(results: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for arm, r in results.items():
        steps, secs, loss = zip(*r["curve"], strict=True)
        style = "-" if arm.startswith("closed") else "--"
        axes[0].plot(steps, loss, style, label=f"{arm} (p@5 {r['val_precision@5']:.3f})")
        axes[1].plot(secs, loss, style, label=arm)
    for ax, xl in zip(axes, ("step", "seconds (closed-form solve included)"), strict=True):
        ax.set_xlabel(xl)
        ax.set_ylabel("validation loss (multi-label sigmoid)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _photos(dataset: Dataset, split: str, embedder: Embedder, settings: Settings, held_out: bool,
            progress: bool) -> PhotoVectors:
    crops = crop_vectors(dataset, split, embedder, settings, held_out=held_out, progress=progress)
    if held_out:
        return crops
    gallery = gallery_vectors(dataset, split, embedder, settings, progress)
    return PhotoVectors(np.concatenate([gallery.vectors, crops.vectors]), gallery.items + crops.items)


def train_tags(data: Path, settings: Settings, recipe: str = "quick", alias: str | None = None,
               progress: bool = True) -> ModelCard:
    """Tag the catalog of ``data``, train the four arms, register the closed-form + orthogonal one."""
    rec = pick_recipe(recipe, RECIPES)
    started = time.time()
    dataset = open_dataset(data)
    catalog = tag_catalog(data, settings, progress=progress)
    vocab = catalog.kept()
    if not vocab:
        raise DatasetError(f"{data}: cleaning left no tags to learn")
    index = {(t.text, t.facet): i for i, t in enumerate(vocab)}
    tags_of = {pid: [index[(t.text, t.facet)] for t in tags if (t.text, t.facet) in index]
               for pid, tags in catalog.by_product.items()}
    truth_of = _truth(dataset, index)

    pinned = pin_model(settings.models.embedder, settings)
    embedder = Embedder.from_ref(pinned.ref, settings)
    encoder = TextEncoder(settings.tags.text_encoder, settings)
    text = torch.from_numpy(encoder.encode([t.text for t in vocab]))
    val_split = "val" if dataset.scene_objects("val") else "test"
    train = _split(_photos(dataset, "train", embedder, settings, False, progress), tags_of, truth_of, len(vocab))
    val = _split(_photos(dataset, val_split, embedder, settings, True, progress), tags_of, truth_of, len(vocab))
    if not len(train.vectors) or not len(val.vectors):
        raise DatasetError(f"{data}: needs photos in the train and {val_split} splits to learn tags from")

    store = ModelStore(settings)
    params = {"recipe": rec.name, **{k: v for k, v in asdict(rec).items() if k != "name"}, "data": str(Path(data).resolve()),
              "embedder": pinned.label, "text_encoder": settings.tags.text_encoder, "tags": len(vocab),
              "train_photos": len(train.vectors), "val_photos": len(val.vectors), "generator": catalog.generator.name}
    with ModelRecorder(store, "tagger", f"tagger-{rec.name}", params, tags={"recipe": rec.name}) as recorder:
        results: dict[str, dict[str, Any]] = {}
        models: dict[str, TagProjector] = {}
        for arm, (closed, init) in ARMS.items():
            model, curve, solve_s = _fit(closed, init, text, train, val, rec, settings.seed, progress, arm)
            with torch.no_grad():
                scores = model.logits(val.vectors, model(text)).numpy()
            results[arm] = {"curve": [(s, round(t, 3), round(v, 5)) for s, t, v in curve], "final_val_loss": round(curve[-1][2], 5),
                            "val_precision@5": round(precision_at(scores, val.truth, 5), 4),
                            "seconds": round(curve[-1][1], 2), "closed_form_seconds": round(solve_s, 3)}
            for step, _, loss in curve:
                recorder.curve({f"{arm}/val_loss": loss}, step)
            models[arm] = model
        tricks = compare_arms(results)
        best = models[SHIPPED_ARM]
        with torch.no_grad():
            vectors = best(text).numpy()
        meta = {"logit_scale": float(best.logit_scale.detach().exp()), "logit_bias": float(best.logit_bias.detach()),
                "embedder": pinned.ref, "text_encoder": settings.tags.text_encoder, "projector": best.config,
                "generator": catalog.generator.name}
        model = TagModel([{"text": t.text, "facet": t.facet} for t in vocab], vectors, meta)
        neighbours = _neighbours(data, settings, pinned.ref, val.vectors.numpy(), catalog.by_product, progress)
        fusion, fusion_grid = calibrate_fusion(model, val.vectors.numpy(), neighbours, val.truth)
        model.meta["fusion"] = asdict(fusion)
        folder = settings.data_dir / "runs" / "tagger" / f"{recorder.run_id}-{rec.name}"
        model.save(folder, best)
        (folder / "tricks.json").write_text(json.dumps({"arms": results, "comparisons": tricks}, indent=1), encoding="utf-8")
        _plot(results, folder / "tricks.png", f"tag projection on {Path(data).name}: {len(vocab)} tags, "
              f"{len(train.vectors)} training photos (validation: {val_split} crops)")
        (folder / "cleaning.json").write_text(json.dumps(catalog.report.to_dict(), ensure_ascii=False, indent=1),
                                              encoding="utf-8")
        figures = {"precision@5": fusion_grid["fused"], "projection_precision@5": results[SHIPPED_ARM]["val_precision@5"],
                   "neighbours_precision@5": fusion_grid["neighbours"], "fusion": asdict(fusion), "tags": len(vocab),
                   "tricks": {k: {"target_val_loss": v["target_val_loss"],
                                  "trick_steps": v["trick"]["steps"], "plain_steps": v["plain"]["steps"],
                                  "trick_seconds": v["trick"]["seconds"], "plain_seconds": v["plain"]["seconds"],
                                  "trick_precision@5": v["trick"]["val_precision@5"],
                                  "plain_precision@5": v["plain"]["val_precision@5"]} for k, v in tricks.items()}}
        card = ModelCard(
            name=MODEL_NAME, task="tagger", recipe=rec.name, arch=f"MiniLM tag vector → linear (closed form) → residual "
            f"MLP {best.config['image_dim']}-{best.config['hidden']}-{best.config['image_dim']} (orthogonal init)",
            summary=(f"tags of a crop from its embedder vector: {len(vocab)} catalog tags projected into the space of "
                     f"{pinned.label}, fused with the tags of the products search finds; trained on WB-Synth photos "
                     f"(synthetic data); recipe '{rec.name}'"),
            data=data_provenance(data), command=train_command("tags", data, rec.name),
            val_split=val_split, val_metrics=figures, train_seconds=round(time.time() - started, 1), note=rec.note,
            embedder=pinned.ref,
        )
        return recorder.register(folder, card, alias=alias)


def eval_tags(data: Path, settings: Settings, ref: str, split: str = "test", k: int = 5,
              progress: bool = True) -> dict[str, Any]:
    """Precision@k of a crop's tags against its product's attributes on ``split``'s held-out crops of ``data``:
    the projection alone, the nearest products' votes alone (the whole catalog searched), and both fused as served."""
    pinned = pin_model(ref, settings)
    model = TagModel.load(resolve_model(pinned.ref, settings))
    fusion = Fusion.from_meta(model.meta)
    dataset = open_dataset(data)
    embedder = Embedder.from_ref(model.meta["embedder"], settings)
    index = {(t["text"], t["facet"]): i for i, t in enumerate(model.tags)}
    crops = crop_vectors(dataset, split, embedder, settings, held_out=True, progress=progress)
    if not len(crops):
        raise DatasetError(f"{data}: no shopper-photo objects in the {split} split to evaluate tags on")
    tagged = tag_catalog(data, settings)
    truth = _label_matrix(crops.products, _truth(dataset, index), len(model.tags))
    sim = crops.vectors @ model.vectors.T
    neighbours = _neighbours(data, settings, model.meta["embedder"], crops.vectors, tagged.by_product, progress)
    votes = neighbour_votes(neighbours, model.columns, len(model.tags), fusion)
    scores = {"projection": model.probabilities(sim), "neighbours": votes, "fused": fused_scores(model, sim, votes, fusion)}
    facets = np.array([t["facet"] for t in model.tags])
    out: dict[str, Any] = {f"precision@{k}": round(precision_at(scores["fused"], truth, k), 4), "model": pinned.label,
                           "embedder": model.meta["embedder"], "data": str(data), "split": split, "tags": len(model.tags),
                           "photos": len(crops), "products": len(set(crops.products)), "fusion": asdict(fusion)}
    for name, sc in scores.items():
        per_facet = {}
        for facet in ATTRIBUTE_FACETS:
            cols = np.flatnonzero(facets == facet)
            if len(cols):
                best = cols[np.argmax(sc[:, cols], axis=1)]
                per_facet[facet] = round(float(truth[np.arange(len(truth)), best].mean()), 4)
        out[name] = {f"precision@{k}": round(precision_at(sc, truth, k), 4), "precision@1": round(precision_at(sc, truth, 1), 4),
                     "top1_per_facet": per_facet}
    out["generated"] = _generated_figures(data, settings, tagged)
    return out


def _truth(dataset: Dataset, index: dict[tuple[str, str], int]) -> dict[str, list[int]]:
    """Each product's ground-truth attribute tags as columns of the tag vocabulary (keyed by text and facet)."""
    return {pid: [index[(t.text, t.facet)] for t in attribute_tags(dataset.product(pid)) if (t.text, t.facet) in index]
            for pid in dataset.products["product_id"]}


def _neighbours(data: Path, settings: Settings, embedder_ref: str, queries: np.ndarray, tags: dict[str, list[Any]],
                progress: bool, n: int = 20) -> list[list[Neighbour]]:
    """Each query's ``n`` nearest catalog products (exact, full vectors: what search's rescoring ranks by) and their tags."""
    pids, matrix = catalog_matrix(data, settings, embedder_ref, progress)
    out = []
    for start in range(0, len(queries), 1024):
        sim = queries[start : start + 1024] @ matrix.T
        top = np.argsort(-sim, axis=1)[:, :n]
        for row, cols in zip(sim, top, strict=True):
            out.append([(float(row[c]), [t.text for t in tags.get(pids[c], [])]) for c in cols])
    return out


def calibrate_fusion(model: TagModel, vectors: np.ndarray, neighbours: list[list[Neighbour]],
                     truth: np.ndarray) -> tuple[Fusion, dict[str, Any]]:
    """The projection's share and the vote temperature that give the best precision@5 on held-out crops."""
    sim = vectors @ model.vectors.T
    best: tuple[float, Fusion] | None = None
    grid = []
    for temperature in (0.01, 0.03, 0.1):
        votes = neighbour_votes(neighbours, model.columns, len(model.tags), Fusion(temperature=temperature))
        for weight in np.linspace(0.0, 1.0, 11):
            f = Fusion(weight=round(float(weight), 2), temperature=temperature)
            p = precision_at(fused_scores(model, sim, votes, f), truth, 5)
            grid.append((f.weight, temperature, round(p, 4)))
            if best is None or p > best[0] + 1e-9:
                best = (p, f)
    assert best is not None
    by = {(w, t): p for w, t, p in grid}
    return best[1], {"fused": round(best[0], 4), "neighbours": max(by[(0.0, t)] for t in (0.01, 0.03, 0.1)),
                     "projection": by[(1.0, 0.01)], "grid": grid}


def _generated_figures(data: Path, settings: Settings, with_attributes: Any) -> dict[str, Any]:
    """How well the generator recovers attributes from titles and descriptions alone (the attribute columns hidden)."""
    from visearch.tags.clean import attribute_recovery

    text_only = tag_catalog(data, settings, vocabulary=None, attributes=False)
    return {"generator": text_only.generator.name, "text_only_recovery": attribute_recovery(text_only.rows, text_only.tags),
            "tags_per_product": round(float(np.mean([len(t) for t in with_attributes.tags])), 2)}
