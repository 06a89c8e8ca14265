"""The frozen backbone: an open_clip SigLIP-family model loaded from any model reference.

A backbone is a folder laid out as an open_clip hub repository: ``open_clip_config.json``
(``model_cfg`` + ``preprocess_cfg``) and the weights (``open_clip_model.safetensors``),
plus ``card.json`` when visearch trained it. Every kind of reference ends as such a folder:

==============================  =============================================================
``hf-hub:timm/ViT-B-16-SigLIP2-256``  open_clip's hub files (config + weights only), from the
                                local hub cache when the hub is offline
a folder, ``local-dir:``        as is; a single checkpoint file needs ``open_clip_config.json``
                                beside it
``models:/visearch-backbone@…``  the MLflow registry (:func:`visearch.registry.resolve_model`)
``s3://bucket/prefix``          fetched into the models cache
==============================  =============================================================

The model is frozen the same way whatever it is (SigLIP 2 in production, the project's
own small model offline): eval mode, no gradients, fp16 (bf16 where the GPU has it) on
CUDA and fp32 on CPU. The head reads the patch tokens; the pooled output is the
"frozen backbone" baseline; the text tower encodes card texts.

>>> bb = Backbone.from_ref("models:/visearch-backbone@champion", settings)  # doctest: +SKIP
>>> tokens, pooled = bb.encode(bb.pixels([photo]))                           # doctest: +SKIP
>>> tokens.shape, pooled.shape                                               # doctest: +SKIP
(torch.Size([1, 64, 192]), torch.Size([1, 192]))
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from visearch.config import EmbeddingSettings, Settings
from visearch.embedding.archs import register_timm_models
from visearch.errors import InvalidArgumentError, NotFoundError, VisearchError
from visearch.registry import CARD_FILE, parse_ref, resolve_model

__all__ = ["Backbone", "CONFIG_FILE", "WEIGHTS_FILE", "freeze", "pick_device", "pick_precision", "save_backbone_folder"]

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
_CHECKPOINT_ORDER = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
                     "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin")
_CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_INTERPOLATION = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def pick_device(name: str) -> torch.device:
    """``name`` as a torch device, refusing CUDA where there is none."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidArgumentError(f"VISEARCH_EMBEDDING__DEVICE: {name!r} is not a torch device (cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"VISEARCH_EMBEDDING__DEVICE is {name!r} but this machine has no CUDA device; use cpu")
    return device


def pick_precision(precision: str, device: torch.device) -> str:
    """open_clip precision for ``device``: half precision on GPU, fp32 on CPU unless asked."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Eval mode and no gradients: the one way every backbone is frozen."""
    model.eval()
    model.requires_grad_(False)
    return model


def _checkpoint_in(folder: Path) -> Path:
    for name in _CHECKPOINT_ORDER:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.suffix in _CHECKPOINT_SUFFIXES)
    if not found:
        raise NotFoundError(f"{folder}: no weights ({', '.join(_CHECKPOINT_ORDER[:3])}, ...) next to {CONFIG_FILE}")
    return found[0]


def _from_hub(hub_id: str, revision: str | None) -> Path:
    """The hub's config and weights files only (not the whole repository), offline from the cache."""
    from open_clip.pretrained import download_pretrained_from_hf

    cache = os.environ.get("HF_HUB_CACHE")
    try:
        config = download_pretrained_from_hf(hub_id, filename=CONFIG_FILE, revision=revision, cache_dir=cache)
        download_pretrained_from_hf(hub_id, revision=revision, cache_dir=cache)
    except Exception:  # noqa: BLE001 - hub errors are many; missing offline is the common one
        raise NotFoundError(f"hf-hub:{hub_id}: {CONFIG_FILE} or its weights are not in the local hub cache and the hub "
                            "is unreachable; download it once where the hub is reachable, or give a local path") from None
    return Path(config).parent


def _folder_and_checkpoint(ref: str, settings: Settings) -> tuple[Path, Path]:
    parsed = parse_ref(ref)
    path = _from_hub(parsed.name, parsed.version) if parsed.scheme == "hf-hub" else resolve_model(parsed, settings)
    if path.is_file():
        folder, checkpoint = path.parent, path
    else:
        folder = path
        checkpoint = _checkpoint_in(folder) if (folder / CONFIG_FILE).is_file() else Path()
    if not (folder / CONFIG_FILE).is_file():
        raise NotFoundError(f"{ref}: no {CONFIG_FILE} in {folder}; a backbone is an open_clip model folder "
                            f"({CONFIG_FILE} + weights), as on the hub")
    return folder, checkpoint


def _fingerprint(config: Path, checkpoint: Path) -> str:
    """Content hash of config + weights: the key of cached tokens (big files: size + sampled bytes)."""
    h = hashlib.sha256(config.read_bytes())
    size = checkpoint.stat().st_size
    h.update(str(size).encode())
    with checkpoint.open("rb") as f:
        if size <= 256 * 2**20:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:
            for offset in np.linspace(0, size - 2**20, 64).astype(int):
                f.seek(int(offset))
                h.update(f.read(2**20))
    return h.hexdigest()[:16]


class Backbone:
    """A frozen open_clip model whose image tower is a timm ViT (the SigLIP / SigLIP 2 family).

    Attributes:
        ref: the reference it was loaded from.
        card: ``card.json`` of the folder (empty for hub models).
        fingerprint: content hash of its config and weights.
        image_size: input side, px.
        width: width of a patch token.
        grid: patch grid (rows, cols); ``n_tokens`` = rows x cols.
        dim: size of the pooled output.
    """

    def __init__(self, model: Any, model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any], *, ref: str, folder: Path,
                 card: dict[str, Any], fingerprint: str, device: torch.device, precision: str, batch_size: int = 32) -> None:
        trunk = getattr(model.visual, "trunk", None)
        if trunk is None or not hasattr(trunk, "forward_features") or not hasattr(trunk, "patch_embed"):
            raise InvalidArgumentError(f"{ref}: the image tower is not a timm ViT; visearch reads patch tokens from the "
                                       "SigLIP / SigLIP 2 family (timm_model_name in open_clip_config.json)")
        self.model = freeze(model)
        self.trunk = trunk
        self.model_cfg = model_cfg
        self.preprocess_cfg = preprocess_cfg
        self.ref, self.folder, self.card, self.fingerprint = ref, folder, card, fingerprint
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.dtype = next(model.parameters()).dtype
        size = preprocess_cfg.get("size") or model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (list, tuple)) else size)
        self.width = int(trunk.num_features)
        self.grid = tuple(int(g) for g in trunk.patch_embed.grid_size)
        self.n_tokens = self.grid[0] * self.grid[1]
        self.dim = int(model_cfg["embed_dim"])
        self.prefix_tokens = int(getattr(trunk, "num_prefix_tokens", 0))
        mode = preprocess_cfg.get("resize_mode", "squash")
        if mode not in ("squash", "shortest"):
            raise InvalidArgumentError(f"{ref}: resize_mode {mode!r} is not supported (squash or shortest)")
        self._mean = torch.tensor(preprocess_cfg.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess_cfg.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32).view(1, 3, 1, 1)
        self._tokenizer: Any = None

    # --- loading ---------------------------------------------------------------------

    @classmethod
    def from_ref(cls, ref: str, settings: Settings) -> Backbone:
        """Load, freeze and place a backbone; see the module docstring for the references.

        Raises:
            InvalidArgumentError: a malformed reference or an image tower that is not a timm ViT.
            NotFoundError: nothing at the reference, or no config / weights there.
        """
        register_timm_models()
        import open_clip

        emb: EmbeddingSettings = settings.embedding
        if emb.threads:
            torch.set_num_threads(emb.threads)
        device = pick_device(emb.device)
        precision = pick_precision(emb.precision, device)
        folder, checkpoint = _folder_and_checkpoint(ref, settings)
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        model_cfg = config.get("model_cfg", config)
        if "vision_cfg" not in model_cfg:
            raise NotFoundError(f"{folder / CONFIG_FILE}: no model_cfg.vision_cfg; not an open_clip model config")
        level = logging.getLogger().level
        # open_clip logs every step, and warns "initialized randomly" before the weights are loaded below
        logging.getLogger().setLevel(max(level, logging.ERROR))
        try:
            model = open_clip.create_model(f"local-dir:{folder}", load_weights=False, precision=precision, device=device)
            open_clip.load_checkpoint(model, str(checkpoint), strict=True)
        except VisearchError:
            raise
        except Exception as e:  # noqa: BLE001 - a config/weights mismatch surfaces as many exception types
            raise InvalidArgumentError(f"{ref}: cannot build the model from {folder} ({type(e).__name__}: {e})") from None
        finally:
            logging.getLogger().setLevel(level)
        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8")) if (folder / CARD_FILE).is_file() else {}
        preprocess = dict(getattr(model.visual, "preprocess_cfg", None) or config.get("preprocess_cfg", {}))
        return cls(model, model_cfg, preprocess, ref=ref, folder=folder, card=card, device=device, precision=precision,
                   fingerprint=_fingerprint(folder / CONFIG_FILE, checkpoint), batch_size=emb.batch_size)

    def describe(self) -> dict[str, Any]:
        """What a report or a model card says about this backbone."""
        return {"ref": self.ref, "summary": self.card.get("summary", "open_clip model (see its hub card)"),
                "pretrained_siglip2": self.card.get("pretrained_siglip2"), "trained_on": self.card.get("trained_on"),
                "arch": self.card.get("arch", self.model_cfg.get("vision_cfg", {}).get("timm_model_name")),
                "image_size": self.image_size, "tokens": self.n_tokens, "width": self.width, "dim": self.dim,
                "fingerprint": self.fingerprint, "precision": self.precision, "device": str(self.device)}

    # --- images ----------------------------------------------------------------------

    def to_pixels(self, img: Image.Image) -> np.ndarray:
        """``img`` resized as the model expects: (size, size, 3) uint8."""
        s = self.image_size
        resample = _INTERPOLATION.get(self.preprocess_cfg.get("interpolation", "bicubic"), Image.Resampling.BICUBIC)
        img = img.convert("RGB")
        if self.preprocess_cfg.get("resize_mode", "squash") == "shortest":
            scale = s / min(img.size)
            img = img.resize((max(s, round(img.width * scale)), max(s, round(img.height * scale))), resample)
            left, top = (img.width - s) // 2, (img.height - s) // 2
            img = img.crop((left, top, left + s, top + s))
        else:
            img = img.resize((s, s), resample)
        return np.asarray(img, dtype=np.uint8)

    def normalize(self, pixels: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (n, size, size, 3) pixels to the model's normalised float input on its device."""
        x = torch.as_tensor(np.asarray(pixels)).permute(0, 3, 1, 2).float().div_(255)
        x = (x - self._mean) / self._std
        return x.to(self.device, self.dtype)

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Model input for a list of PIL images."""
        return self.normalize(np.stack([self.to_pixels(i) for i in images]))

    # --- forward ---------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens (n, n_tokens, width) and the L2-normalised pooled output (n, dim), float32 on CPU."""
        feats = self.trunk.forward_features(x.to(self.device, self.dtype))
        pooled = self.model.visual.head(self.trunk.forward_head(feats))
        tokens = feats[:, self.prefix_tokens :]
        return tokens.float().cpu(), torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()

    @torch.inference_mode()
    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The backbone's own pooled output (MAP) from patch tokens it produced; L2-normalised."""
        if self.prefix_tokens:
            raise InvalidArgumentError(f"{self.ref}: pooling cached tokens needs a trunk without prefix tokens")
        out = []
        for start in range(0, len(tokens), 256):
            t = tokens[start : start + 256].to(self.device, self.dtype)
            out.append(self.model.visual.head(self.trunk.forward_head(t)).float().cpu())
        return torch.nn.functional.normalize(torch.cat(out), dim=-1) if out else torch.zeros(0, self.dim)

    def encode_images(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode` for PIL images, in batches of ``batch_size``."""
        toks, pooled = [], []
        for start in range(0, len(images), self.batch_size):
            t, p = self.encode(self.pixels(images[start : start + self.batch_size]))
            toks.append(t)
            pooled.append(p)
        if not toks:
            return torch.zeros(0, self.n_tokens, self.width), torch.zeros(0, self.dim)
        return torch.cat(toks), torch.cat(pooled)

    # --- text ------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        """open_clip's tokenizer for this model (SimpleTokenizer for visearch's own backbones)."""
        if self._tokenizer is None:
            import open_clip

            try:
                self._tokenizer = open_clip.get_tokenizer(f"local-dir:{self.folder}")
            except Exception as e:  # noqa: BLE001 - hub tokenizers need transformers and a download
                raise VisearchError(f"{self.ref}: cannot load its tokenizer ({type(e).__name__}: {e}); SigLIP 2's "
                                    "Gemma tokenizer needs the transformers package and one download") from None
        return self._tokenizer

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text-tower vectors (n, dim), float32 on CPU: card texts, refinement texts."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            ids = self.tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
            out.append(self.model.encode_text(ids, normalize=True).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def save_backbone_folder(model: torch.nn.Module, config: dict[str, Any], folder: Path) -> Path:
    """Write ``model`` as an open_clip hub-style folder (config + safetensors weights)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    return folder
