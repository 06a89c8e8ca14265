"""Train the attention head on a frozen backbone and register it as ``visearch-embedder``.

Pairs are (a seller gallery photo, a shopper crop) of the same product; the crop is cut
at the ground-truth box with the detector-like jitter, several crops per object, so the
head learns from the crops search will see. The backbone's tokens for every photo are
computed once and cached on disk (:class:`~visearch.embedding.TokenCache`); cleaning then
drops near-duplicate pairs and outliers judged by the backbone's pooled embeddings.

Two heads train side by side on the very same batches from the same initial weights:
the MRL head (InfoNCE on 512/256/128/64, averaged) and baseline (b), the same head with a
single 512 loss, which evaluation truncates. Both are registered; the MRL head's card
names the baseline, its backbone (a pinned reference) and its output sizes.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.recipes import pick_recipe
from visearch.config import Settings
from visearch.embedding.backbone import Backbone
from visearch.embedding.data import clean_pairs, group_by, open_dataset
from visearch.embedding.evaluate import EvalSet, eval_set, product_vectors, score_frozen, score_head
from visearch.embedding.head import AttentionHead
from visearch.embedding.mrl import MatryoshkaInfoNCE
from visearch.embedding.schedule import Schedule
from visearch.embedding.tokens import TokenCache
from visearch.errors import DatasetError
from visearch.progress import track
from visearch.registry import ModelStore, parse_ref
from visearch.registry.card import ModelCard, data_provenance, train_command
from visearch.registry.recorder import ModelRecorder

__all__ = ["HeadRecipe", "RECIPES", "MODEL_NAME", "BASELINE_NAME", "train_head", "pin_reference"]

MODEL_NAME = "visearch-embedder"
BASELINE_NAME = "visearch-embedder-baseline"
_PROBE_STEPS = 5
_IN_MEMORY_BYTES = 3 * 2**30  # cached tokens up to this size are read into memory for speed


@dataclass(frozen=True)
class HeadRecipe:
    """How the head is trained; ``budget_s`` caps the two heads' training loop (see Schedule.fit)."""

    name: str
    epochs: int  # one epoch visits every kept (gallery, shopper object) pair once
    batch_size: int
    lr: float
    weight_decay: float = 0.05
    warmup_steps: int = 30
    crops_per_object: int = 2  # jittered crops cached per shopper object; one is drawn per visit
    min_steps: int = 0  # small data sets still get this many steps (the budget still caps them)
    temperature: float = 0.07  # initial; learned per prefix
    dup_threshold: float = 0.98
    outlier_z: float = 3.5
    eval_every: int = 5  # epochs between validation points on the curves
    # hard negatives: this share of every batch comes from a few categories only, so the loss learns what tells
    # apart products of one category (and colour variants of one model), which is all search has to do once it
    # searches within the detected category; the rest stays random, for searches across categories
    hard_share: float = 0.0
    hard_categories: int = 4
    budget_s: float | None = None
    note: str = ""


# Sizing (2,000 products, 2 free cores): backbone tokens ~4.5 ms of one core per crop with decoding (measured),
# ~23,000 crops for quick (2 per object), ~39,000 for full (4); one step of both heads on 256 pairs costs
# 2.0 s of one core (measured), ~1.2 s on two; ~8,000 train objects make 31 steps per epoch.
RECIPES: dict[str, HeadRecipe] = {
    "quick": HeadRecipe("quick", epochs=6, min_steps=120, batch_size=256, lr=1e-3, crops_per_object=2, eval_every=2, budget_s=4 * 60,
                        note="5 minutes for 2,000 products on 2 cores (measured: 309 s, 162 steps); with the quick backbone 14.4 min"),
    # no budget, like the full backbone: `make models` trains the shipped head's steps whatever the machine's load
    "full": HeadRecipe("full", epochs=80, min_steps=600, batch_size=256, lr=8e-4, warmup_steps=100, crops_per_object=4, eval_every=5,
                       hard_share=0.5,
                       note="38 minutes for 2,000 products on 2 cores (the default bundle's: 2,306 s, 2,400 steps); with the full backbone 107 min"),
    "tiny": HeadRecipe("tiny", epochs=3, batch_size=16, lr=1e-3, warmup_steps=2, crops_per_object=2, eval_every=1, hard_share=0.5,
                       hard_categories=2,
                       note="smoke test only"),
}


def pin_reference(ref: str, settings: Settings) -> str:
    """A reference that keeps naming the same model: registry aliases become versions, paths absolute."""
    parsed = parse_ref(ref)
    if parsed.scheme == "models" and parsed.alias:
        return f"models:/{parsed.name}/{ModelStore(settings).version_of(parsed)}"
    if parsed.scheme == "local":
        return str(Path(parsed.name).resolve())
    return ref


def _in_memory(tokens: np.ndarray) -> np.ndarray:
    """Cached tokens read into memory when they fit, else left memory-mapped."""
    return np.array(tokens) if tokens.nbytes <= _IN_MEMORY_BYTES else tokens


def _param_groups(head: AttentionHead, loss: MatryoshkaInfoNCE, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on the weight matrices only: not on norms, biases, queries or the temperatures."""
    decay = [p for n, p in head.named_parameters() if p.ndim >= 2 and n != "queries"]
    rest = [p for n, p in head.named_parameters() if not (p.ndim >= 2 and n != "queries")] + list(loss.parameters())
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _hard_pairs(by_category: list[np.ndarray], n: int, categories: int, rng: np.random.Generator) -> list[int]:
    """``n`` pairs drawn from ``categories`` random categories (as evenly as they allow)."""
    if n <= 0:
        return []
    picked = rng.choice(len(by_category), categories, replace=False)
    pool = np.concatenate([by_category[c] for c in picked])
    return rng.choice(pool, min(n, len(pool)), replace=False).tolist()


def _curves(mrl: AttentionHead, single: AttentionHead, val: EvalSet) -> dict[str, float]:
    m, s = score_head(mrl, val), score_head(single, val, mrl.dims)
    out = {f"head/{d}/recall_at_10": m[str(d)]["recall@10"] for d in mrl.dims}
    out.update({f"truncated/{d}/recall_at_10": s[str(d)]["recall@10"] for d in mrl.dims})
    return out


def train_head(data: Path, settings: Settings, recipe: str = "quick", backbone: str | None = None,
               alias: str | None = None, progress: bool = True) -> ModelCard:
    """Train ``recipe`` on the WB-Synth set at ``data`` over a frozen backbone; returns the registered card.

    Raises:
        InvalidArgumentError: an unknown recipe or a bad backbone reference.
        DatasetError: not a WB-Synth set, or no shopper photos to learn from.
        NotFoundError: the backbone reference names nothing.
    """
    rec = pick_recipe(recipe, RECIPES)
    started = time.time()
    dataset = open_dataset(data)
    if not dataset.scene_objects("train"):
        raise DatasetError(f"{data}: the train split has no shopper photos to pair with gallery photos")
    if settings.embedding.threads:
        torch.set_num_threads(settings.embedding.threads)
    emb = settings.embedding
    bb_ref = pin_reference(backbone or settings.models.backbone, settings)
    bb = Backbone.from_ref(bb_ref, settings)

    # tokens, once
    cache = TokenCache(emb.token_cache or settings.data_dir / "token-cache")
    gallery_items = dataset.gallery_items("train")
    shop_items = dataset.shopper_items("train", rec.crops_per_object, emb.jitter, settings.seed)
    g = cache.get(bb, dataset, "train-gallery", gallery_items, progress)
    s = cache.get(bb, dataset, "train-shopper", shop_items, progress)
    val_split = "val" if dataset.scene_objects("val") else "test"
    val = eval_set(dataset, val_split, bb, settings, progress)

    # pairs: one per photographed object, against its product's gallery photos
    k = rec.crops_per_object
    objects = shop_items[::k]
    gallery_rows = group_by([i.product for i in gallery_items])
    objects = [o for o in objects if o.product in gallery_rows]
    obj_index = [n for n, o in enumerate(shop_items[::k]) if o.product in gallery_rows]
    products = sorted(gallery_rows)
    label_of = {p: n for n, p in enumerate(products)}
    prod_vec = product_vectors(torch.from_numpy(g.pooled), [i.product for i in gallery_items], products)
    gal_side = prod_vec[[label_of[o.product] for o in objects]]
    shop_side = torch.from_numpy(s.pooled[[n * k for n in obj_index]])
    clean = clean_pairs(gal_side, shop_side, rec.dup_threshold, rec.outlier_z)
    kept = np.flatnonzero(clean.keep)
    if len(kept) < 2:
        raise DatasetError(f"{data}: only {len(kept)} training pairs left after cleaning ({clean.counts()}); need at least 2")
    pair_obj = np.array(obj_index)[kept]
    pair_label = np.array([label_of[objects[n].product] for n in kept])
    gal_of = [np.array(gallery_rows[p]) for p in products]
    category_of = np.array([dataset.product(p).get("category_id", -1) for p in products])[pair_label]  # one lookup per product
    by_category = [np.flatnonzero(category_of == c) for c in np.unique(category_of)]
    g_tok, s_tok = _in_memory(g.tokens), _in_memory(s.tokens)

    # two heads, same initial weights, same batches
    arch = dict(out_dim=emb.dims[0], width=emb.head_width, heads=emb.head_heads, queries=emb.head_queries,
                layers=emb.head_layers, max_tokens=emb.head_max_tokens, dropout=emb.head_dropout)
    torch.manual_seed(settings.seed)
    mrl = AttentionHead(bb.width, bb.grid, dims=emb.dims, **arch)
    pick = np.random.default_rng(settings.seed)  # input statistics from both sides: gallery photos and shopper crops
    sample = [t[np.sort(pick.choice(len(t), min(len(t), 2048), replace=False))].astype(np.float32) for t in (g_tok, s_tok)]
    mrl.fit_input(torch.from_numpy(np.concatenate(sample)))
    single = AttentionHead(bb.width, bb.grid, dims=(emb.dims[0],), **arch)
    single.load_state_dict(mrl.state_dict())
    mrl_loss, single_loss = MatryoshkaInfoNCE(emb.dims, rec.temperature), MatryoshkaInfoNCE((emb.dims[0],), rec.temperature)
    batch = min(rec.batch_size, len(kept))
    per_epoch = max(1, len(kept) // batch)
    total = max(rec.epochs * per_epoch, rec.min_steps)
    opts = [torch.optim.AdamW(_param_groups(h, fn, rec.weight_decay), lr=rec.lr) for h, fn in ((mrl, mrl_loss), (single, single_loss))]
    scheds = [Schedule(o, rec.lr, total, min(rec.warmup_steps, total // 4)) for o in opts]
    rng = np.random.default_rng(settings.seed)
    store = ModelStore(settings)
    params = {"recipe": rec.name, **{k_: v for k_, v in asdict(rec).items() if k_ != "name"}, "backbone": bb_ref,
              "data": str(Path(data).resolve()), "dims": list(emb.dims), "head": arch, "pairs": clean.pairs,
              "pairs_kept": len(kept), "jitter": emb.jitter}
    with ModelRecorder(store, "embedder", f"head-{rec.name}", params, tags={"recipe": rec.name, "backbone": bb_ref}) as recorder:
        recorder.figures(clean.counts(), "clean")
        order: list[int] = []
        sums: dict[str, list[float]] = {}

        def step() -> None:
            n_hard = int(batch * rec.hard_share) if len(by_category) > rec.hard_categories else 0
            if len(order) < batch - n_hard:
                order.extend(rng.permutation(len(kept)).tolist())
            chosen = np.array([order.pop() for _ in range(batch - n_hard)] + _hard_pairs(by_category, n_hard, rec.hard_categories, rng),
                              dtype=np.int64)
            labels = torch.from_numpy(pair_label[chosen])
            grow = np.array([rng.choice(gal_of[lab]) for lab in pair_label[chosen]])
            srow = pair_obj[chosen] * k + rng.integers(0, k, len(chosen))
            gt = torch.from_numpy(g_tok[grow].astype(np.float32))
            st = torch.from_numpy(s_tok[srow].astype(np.float32))
            for name, head, loss_fn, opt, sched in (("mrl", mrl, mrl_loss, opts[0], scheds[0]),
                                                    ("single", single, single_loss, opts[1], scheds[1])):
                loss, parts = loss_fn(head.full(gt), head.full(st), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
                opt.step()
                sched.step()
                sums.setdefault(f"loss_{name}", []).append(float(loss.detach()))
                if name == "mrl":
                    for d, v in parts.items():
                        sums.setdefault(f"loss_mrl_{d}", []).append(v)
            done = scheds[0].done
            if done % per_epoch == 0 or done == scheds[0].total:
                epoch = math.ceil(done / per_epoch)
                metrics = {key: float(np.mean(v)) for key, v in sums.items()}
                metrics.update({f"temperature_{d}": t for d, t in mrl_loss.temperatures().items()})
                metrics["lr"] = opts[0].param_groups[0]["lr"]
                recorder.curve(metrics, epoch)
                if epoch % rec.eval_every == 0 or done == scheds[0].total:
                    mrl.eval(), single.eval()
                    recorder.curve(_curves(mrl, single, val), epoch, prefix="val")
                    mrl.train(), single.train()
                sums.clear()

        mrl.train(), single.train()
        for _ in range(min(_PROBE_STEPS, total)):
            step()
        scheds[1].total = scheds[0].fit(rec.budget_s)
        scheds[1].warmup = scheds[0].warmup
        remaining = scheds[0].total - scheds[0].done
        for _ in track(range(remaining), remaining, f"head {rec.name}: {scheds[0].total} steps (MRL + single-512)", enabled=progress):
            step()
        mrl.eval(), single.eval()
        val_metrics = {"head": score_head(mrl, val), "truncated": score_head(single, val, emb.dims),
                       "frozen": score_frozen(val, emb.dims[0])}
        summary = scheds[0].summary()
        runs = (settings.data_dir / "runs" / "head").resolve()
        common = _card_common(rec, bb, bb_ref, data, summary, started, clean.counts(), val_split, g.reused and s.reused)
        base_card = ModelCard(
            **common, name=BASELINE_NAME,
            summary=(f"Baseline (b): the attention head trained with a single {emb.dims[0]}-d InfoNCE "
                     f"loss (evaluated truncated) over {_backbone_phrase(bb)}; recipe '{rec.name}'"),
            dims=str(emb.dims[0]), output_dim=emb.dims[0], loss=f"InfoNCE on {emb.dims[0]} only",
            val_metrics=val_metrics["truncated"])
        with recorder.child(f"head-{rec.name}-baseline", {"recipe": rec.name, "backbone": bb_ref},
                            tags={"recipe": rec.name, "baseline": "single-512"}) as child:
            single.save(runs / f"{recorder.run_id}-{rec.name}-baseline")
            base = child.register(runs / f"{recorder.run_id}-{rec.name}-baseline", base_card, alias=alias)
        card = ModelCard(
            **common, name=MODEL_NAME,
            summary=(f"visearch attention head (token reducer + multi-head attention pooling with a fixed anchor, "
                     f"MRL {'/'.join(map(str, emb.dims))}) trained on WB-Synth (synthetic data) over "
                     f"{_backbone_phrase(bb)}; recipe '{rec.name}'"),
            dims=",".join(map(str, emb.dims)), output_dim=emb.dims[0],
            loss="Matryoshka InfoNCE: in-batch, learnable temperature per prefix, averaged",
            temperatures=mrl_loss.temperatures(), val_metrics=val_metrics,
            baseline=f"models:/{BASELINE_NAME}/{base.version}")
        mrl.save(runs / f"{recorder.run_id}-{rec.name}")
        card = recorder.register(runs / f"{recorder.run_id}-{rec.name}", card, alias=alias)
    return card.model_copy(update={"ref": f"models:/{MODEL_NAME}/{card.version}"})


def _backbone_phrase(bb: Backbone) -> str:
    if bb.card.get("pretrained_siglip2") is False:
        return f"the project's own small SigLIP-style backbone {bb.ref} (trained on synthetic data, NOT pretrained SigLIP 2)"
    return f"the frozen backbone {bb.ref}"


def _card_common(rec: HeadRecipe, bb: Backbone, bb_ref: str, data: Path, summary: dict[str, Any], started: float,
                 clean: dict[str, Any], val_split: str, tokens_reused: bool) -> dict[str, Any]:
    return {
        "task": "embedder",
        "recipe": rec.name,
        "arch": "visearch attention head",
        "data": data_provenance(data),
        "command": train_command("head", data, rec.name, backbone=bb_ref),
        "val_split": val_split,
        "train_seconds": round(time.time() - started, 1),
        "backbone": bb_ref,
        "backbone_fingerprint": bb.fingerprint,
        "backbone_summary": bb.card.get("summary", "see the backbone's hub card"),
        "pretrained_siglip2": bb.card.get("pretrained_siglip2"),  # None: a hub model, see its own card
        "image_size": bb.image_size,
        "tokens": bb.n_tokens,
        "token_width": bb.width,
        "loop_seconds": summary["seconds"],
        "steps": summary["steps"],
        "planned_steps": summary["planned_steps"],
        "cut_by_budget": summary["cut_by_budget"],
        "tokens_reused": tokens_reused,
        "clean": clean,
        "note": rec.note,
    }
