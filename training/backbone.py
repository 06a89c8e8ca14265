"""Train the offline default backbone on WB-Synth and register it as ``visearch-backbone``.

No machine here can download SigLIP 2, so the project trains a small model of the same
family the way SigLIP is trained: an open_clip model whose image tower is a timm ViT
with MAP pooling and whose text tower reads the card, trained from scratch with
open_clip's sigmoid loss (``SigLipLoss``) on (product photo, card text) pairs. Photos
are the seller gallery photos only, as SigLIP 2 never sees our shoppers' photos: adapting
to shopper crops is the head's job, and baseline (a) then measures what a general
catalog-trained backbone gives (docs/embedding.md). Each photo is seen through a random
resized crop, the usual contrastive augmentation, so many epochs over a few thousand photos
do not memorise them. Texts are title + description (Russian, English or both) through
open_clip's byte-level BPE tokenizer, which reads Cyrillic offline. Every batch holds distinct
products, so no photo meets its own card as a negative. The loss sees batch-centred vectors:
from scratch the towers' outputs share a large common part, and the plain loss collapses every
photo and every text onto one vector within a few steps (docs/embedding.md).

Its card says what it is: trained on synthetic data, NOT pretrained SigLIP 2. It is
then frozen exactly as production freezes SigLIP 2 (:func:`visearch.embedding.freeze`).
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
from visearch.embedding.archs import DEFAULT_ARCH, TEST_ARCH, model_config, register_timm_models
from visearch.embedding.backbone import pick_device, save_backbone_folder
from visearch.embedding.data import Dataset, ImageItem, card_text, open_dataset
from visearch.embedding.evaluate import product_vectors, retrieval_metrics
from visearch.embedding.head import centred
from visearch.embedding.schedule import Schedule
from visearch.errors import DatasetError, InvalidArgumentError
from visearch.progress import track
from visearch.registry import ModelStore
from visearch.registry.card import TRAINED_ON, ModelCard, data_provenance, train_command
from visearch.registry.recorder import ModelRecorder
from visearch.vision.images import load_image

__all__ = ["BackboneRecipe", "RECIPES", "MODEL_NAME", "train_backbone", "build_model", "forget_unread_tokens", "random_resized_crop"]

MODEL_NAME = "visearch-backbone"
_PROBE_STEPS = 5  # steps timed before the schedule is fitted to the budget


@dataclass(frozen=True)
class BackboneRecipe:
    """How the default backbone is trained; ``budget_s`` caps the training loop (see Schedule.fit)."""

    name: str
    arch: str
    epochs: int  # one epoch shows as many photos as the train split has
    batch_size: int  # distinct products per batch
    lr: float
    weight_decay: float = 0.1
    warmup_steps: int = 40
    crops_per_object: int = 0  # jittered shopper crops per photographed object besides the gallery photos (0: catalog only)
    crop_scale: tuple[float, float] = (0.5, 1.0)  # random resized crop: share of the photo's area kept
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # random resized crop: aspect ratios
    min_steps: int = 0  # small data sets still get this many steps (the budget still caps them)
    budget_s: float | None = None
    # Sigmoid loss on batch-centred vectors. From scratch, the towers' pooled vectors share a large common part
    # (pairwise cosine ~0.66 at init); the plain loss aligns those parts within 20 steps and every photo and text
    # collapses to one vector. Centring keeps the loss on what differs (docs/embedding.md).
    center: bool = True
    note: str = ""


# Sizing (2,000 products, 2 free cores): a step of 64 photos + texts costs 1.8 s of one core (measured), ~1.1 s on
# two; the train split has ~4,200 gallery photos, so an epoch is 66 steps of 64 or 33 of 128; loading them and the val photos took 13 s (measured).
RECIPES: dict[str, BackboneRecipe] = {
    "quick": BackboneRecipe("quick", DEFAULT_ARCH, epochs=8, min_steps=300, batch_size=64, lr=5e-4, budget_s=10 * 60,
                            note="9 minutes for 2,000 products on 2 cores (measured: 552 s, 528 steps); with the quick head 14.4 min"),
    # no budget: the default bundle's recipe trains exactly its planned steps, so `make models` reproduces the shipped
    # backbone on any machine (a budget fitted on a busy machine once cut a reproduction to 1,683 of 1,980 steps)
    "full": BackboneRecipe("full", DEFAULT_ARCH, epochs=60, min_steps=1500, batch_size=128, lr=5e-4, warmup_steps=150,
                           note="63 minutes for 2,000 products on 2 cores (measured: 3,791 s, 1,980 steps); with the full head 111 min"),
    "tiny": BackboneRecipe("tiny", TEST_ARCH, epochs=2, batch_size=16, lr=2e-3, warmup_steps=2,
                           note="smoke test only: a 64-px two-block ViT"),
}


def build_model(arch: str, seed: int = 0) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A freshly initialised open_clip model of ``arch`` (SigLIP's initial logit scale and bias)."""
    register_timm_models()
    import open_clip

    config = model_config(arch)
    cfg = {k: v for k, v in config["model_cfg"].items() if k != "custom_text"}
    torch.manual_seed(seed)
    model = open_clip.CustomTextCLIP(**cfg, init_logit_scale=math.log(10))
    return model, config


class _Photos:
    """Every photo of some products at the model's input size, in memory, with its product."""

    def __init__(self, dataset: Dataset, split: str, size: int, crops: int, seed: int, jitter: float, progress: bool) -> None:
        from visearch.embedding.data import SPLITS

        if split not in SPLITS:
            raise InvalidArgumentError(f"unknown split {split!r}")
        self.products = dataset.split_products(split)
        items: list[ImageItem] = dataset.gallery_items(split)
        self.n_gallery = len(items)
        if crops:
            items += dataset.shopper_items(split, crops, jitter, seed)
        self.items = items
        self.pixels = np.zeros((len(items), size, size, 3), np.uint8)
        last: tuple[str, Any] | None = None
        from PIL import Image

        for i, item in track(list(enumerate(items)), len(items), f"{split} photos", enabled=progress):
            if last is None or last[0] != item.path:
                last = (item.path, load_image(dataset.root / item.path))
            img = last[1].crop(item.box) if item.box else last[1]
            self.pixels[i] = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
        col = {p: j for j, p in enumerate(self.products)}
        self.owner = np.array([col[i.product] for i in items])
        self.by_product = [np.flatnonzero(self.owner == j) for j in range(len(self.products))]


def _tensor(pixels: np.ndarray, mean: torch.Tensor, std: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)
    return ((x - mean) / std).to(device)


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float],
                        rng: np.random.Generator) -> torch.Tensor:
    """Each image of the batch ``x`` (N, C, H, W) cut to a random box and resized back, in one affine resample.

    The box keeps a share of the area drawn from ``scale`` with an aspect ratio log-uniform in ``ratio``,
    anywhere inside the image; ``scale=(1, 1), ratio=(1, 1)`` returns ``x`` unchanged.
    """
    n = x.shape[0]
    area = rng.uniform(scale[0], scale[1], n)
    aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), n))
    w = np.minimum(np.sqrt(area * aspect), 1.0)  # width and height as shares of the image's
    h = np.minimum(np.sqrt(area / aspect), 1.0)
    cx = rng.uniform(-1.0, 1.0, n) * (1.0 - w)  # box centre in grid coordinates [-1, 1]
    cy = rng.uniform(-1.0, 1.0, n) * (1.0 - h)
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = torch.nn.functional.affine_grid(torch.from_numpy(theta).to(x.device), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "logit_" in name or "token_embedding" in name or "positional_embedding" in name or "pos_embed" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.inference_mode()
def _validate(model: Any, photos: _Photos, texts: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
              device: torch.device, batch: int = 128, center: bool = False) -> dict[str, float]:
    """Photo -> card text retrieval, and crop -> product retrieval with the pooled vector."""
    model.eval()
    img = torch.cat([model.encode_image(_tensor(photos.pixels[s : s + batch], mean, std, device), normalize=True).float().cpu()
                     for s in range(0, len(photos.pixels), batch)])
    txt = torch.cat([model.encode_text(texts[s : s + batch].to(device), normalize=True).float().cpu()
                     for s in range(0, len(texts), batch)])
    if center:
        img, txt = centred(img), centred(txt)
    model.train()
    i2t = retrieval_metrics((img @ txt.T).numpy(), photos.owner)
    out = {"image_to_text_recall@1": i2t["recall@1"], "image_to_text_recall@5": i2t["recall@5"]}
    g = photos.n_gallery
    if len(photos.items) > g:
        pids = [str(o) for o in photos.owner[:g]]
        prods = product_vectors(img[:g], pids, [str(j) for j in range(len(photos.products))])
        crop = retrieval_metrics((img[g:] @ prods.T).numpy(), photos.owner[g:])
        out.update({f"crop_to_product_{k}": v for k, v in crop.items() if k in ("recall@1", "recall@10")})
    return out


def forget_unread_tokens(model: torch.nn.Module, texts: torch.Tensor) -> int:
    """Zero the token embeddings of every token no training text holds; returns how many.

    Trained from scratch, those rows are still their random initialisation: they carry nothing
    learned, only noise into any text that holds them, and all-zero rows cost nothing in a
    model bundle (most of the 49,408-token vocabulary is never read on WB-Synth).
    """
    table = model.text.token_embedding.weight if hasattr(model, "text") else model.token_embedding.weight
    unread = torch.ones(table.shape[0], dtype=torch.bool)
    unread[torch.unique(texts).to(torch.long)] = False
    with torch.no_grad():
        table[unread.to(table.device)] = 0.0
    return int(unread.sum())


def _texts(dataset: Dataset, products: list[str], tokenizer: Any) -> torch.Tensor:
    return tokenizer([card_text(dataset.product(p)) for p in products])


def train_backbone(data: Path, settings: Settings, recipe: str = "quick", alias: str | None = None,
                   progress: bool = True) -> ModelCard:
    """Train ``recipe`` on the WB-Synth set at ``data`` and register it; returns the version's card.

    Raises:
        InvalidArgumentError: an unknown recipe.
        DatasetError: not a WB-Synth set, or no training products.
    """
    rec = pick_recipe(recipe, RECIPES)
    started = time.time()
    dataset = open_dataset(data)
    if not dataset.split_products("train"):
        raise DatasetError(f"{data}: the train split has no products")
    if settings.embedding.threads:
        torch.set_num_threads(settings.embedding.threads)
    from open_clip.loss import SigLipLoss
    from open_clip.tokenizer import SimpleTokenizer

    device = pick_device(settings.embedding.device)
    model, config = build_model(rec.arch, settings.seed)
    model.to(device).train()
    pre = config["preprocess_cfg"]
    size = int(pre["size"])
    mean = torch.tensor(pre["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(pre["std"]).view(1, 3, 1, 1)
    tokenizer = SimpleTokenizer(context_length=config["model_cfg"]["text_cfg"]["context_length"])
    jitter = settings.embedding.jitter
    train = _Photos(dataset, "train", size, rec.crops_per_object, settings.seed, jitter, progress)
    val_split = "val" if dataset.split_products("val") else "test"
    val = _Photos(dataset, val_split, size, 1, settings.seed + 1, jitter, progress)
    train_txt, val_txt = _texts(dataset, train.products, tokenizer), _texts(dataset, val.products, tokenizer)

    batch = min(rec.batch_size, len(train.products))
    per_epoch = max(1, math.ceil(len(train.items) / batch))
    opt = torch.optim.AdamW(_param_groups(model, rec.weight_decay), lr=rec.lr, betas=(0.9, 0.95), eps=1e-6)
    planned = max(rec.epochs * per_epoch, rec.min_steps)
    sched = Schedule(opt, rec.lr, planned, min(rec.warmup_steps, planned // 4))
    loss_fn = SigLipLoss()
    rng = np.random.default_rng(settings.seed)
    store = ModelStore(settings)
    params = {"recipe": rec.name, **{k: v for k, v in asdict(rec).items() if k != "name"}, "data": str(Path(data).resolve()),
              "train_products": len(train.products), "train_photos": len(train.items), "image_size": size,
              "tokenizer": "open_clip SimpleTokenizer (byte-level BPE)", "device": str(device)}
    with ModelRecorder(store, "backbone", f"backbone-{rec.name}", params, tags={"recipe": rec.name, "trained_on": "WB-Synth"}) as recorder:
        epoch_loss: list[float] = []

        def step() -> None:
            chosen = rng.choice(len(train.products), batch, replace=False)
            photos = np.array([rng.choice(train.by_product[p]) for p in chosen])
            x = random_resized_crop(_tensor(train.pixels[photos], mean, std, device), rec.crop_scale, rec.crop_ratio, rng)
            img = model.encode_image(x, normalize=not rec.center)
            txt = model.encode_text(train_txt[chosen].to(device), normalize=not rec.center)
            if rec.center:
                img, txt = centred(img), centred(txt)
            loss = loss_fn(img, txt, model.logit_scale.exp(), model.logit_bias)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            epoch_loss.append(float(loss.detach()))
            if sched.done % per_epoch == 0 or sched.finished:
                recorder.curve({"loss": float(np.mean(epoch_loss)), "logit_scale": float(model.logit_scale.detach().exp()),
                                "logit_bias": float(model.logit_bias.detach()), "lr": opt.param_groups[0]["lr"]},
                               math.ceil(sched.done / per_epoch))
                epoch_loss.clear()

        for _ in range(min(_PROBE_STEPS, sched.total)):
            step()
        total = sched.fit(rec.budget_s)
        for _ in track(range(sched.done, total), total - sched.done, f"backbone {rec.name}: {total} steps", enabled=progress):
            step()
        model.eval()
        unread = forget_unread_tokens(model, train_txt)
        metrics = _validate(model, val, val_txt, mean, std, device, center=rec.center)
        summary = sched.summary()
        card = _card(rec, config, metrics, summary, data, started, val_split, len(train.items), unread)
        folder = save_backbone_folder(model, config, (settings.data_dir / "runs" / "backbone" / f"{recorder.run_id}-{rec.name}").resolve())
        card = recorder.register(folder, card, alias=alias)
    return card.model_copy(update={"ref": f"models:/{MODEL_NAME}/{card.version}"})


def _card(rec: BackboneRecipe, config: dict[str, Any], metrics: dict[str, float], summary: dict[str, Any], data: Path,
          started: float, val_split: str, photos: int, unread: int) -> ModelCard:
    vis = config["model_cfg"]["vision_cfg"]
    return ModelCard(
        name=MODEL_NAME,
        task="backbone",
        summary=(f"Small SigLIP-style backbone trained by visearch from scratch on {TRAINED_ON}, recipe '{rec.name}' "
                 f"(open_clip {rec.arch}: timm ViT with MAP pooling + text tower, sigmoid loss on product photo / "
                 "card text pairs" + (", on batch-centred vectors" if rec.center else "") + "). NOT pretrained SigLIP 2."),
        recipe=rec.name,
        arch=rec.arch,
        data=data_provenance(data),
        command=train_command("backbone", data, rec.name),
        val_split=val_split,
        val_metrics=metrics,
        train_seconds=round(time.time() - started, 1),
        timm_model=vis["timm_model_name"],
        family="SigLIP (open_clip timm ViT, MAP pooling, sigmoid loss)",
        loss="open_clip SigLipLoss on batch-centred vectors" if rec.center else "open_clip SigLipLoss",
        pretrained_siglip2=False,
        tokenizer="open_clip SimpleTokenizer: byte-level BPE, Cyrillic read as UTF-8 bytes (no download)",
        unread_tokens_zeroed=unread,
        image_size=vis["image_size"],
        embed_dim=config["model_cfg"]["embed_dim"],
        loop_seconds=summary["seconds"],
        steps=summary["steps"],
        planned_steps=summary["planned_steps"],
        cut_by_budget=summary["cut_by_budget"],
        train_photos=photos,
        note=rec.note,
    )
