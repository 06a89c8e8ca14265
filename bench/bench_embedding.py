"""Embedder throughput: backbone + attention head, images/s, on the CPU or a GPU.

Figure: PIL crops in, 512-d MRL vectors out through :class:`visearch.embedding.Embedder`
(resize, backbone tokens, head), at batch 1 and batch 32. Baseline in the same run: the
frozen backbone alone (its pooled output, the "frozen" evaluation baseline), on the same
crops; the ratio is what the head costs. ``--device cuda --precision fp16`` measures a GPU
as production runs it (backbone in fp16, head in fp32).
Throughput does not depend on the weights, so randomly initialised models of the
default architecture stand in (``--arch ViT-B-16-SigLIP2-256`` measures the SigLIP 2
architecture, built offline from open_clip's config without weights).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from visearch.config import EmbeddingSettings
from visearch.embedding.archs import ARCHS, DEFAULT_ARCH, register_timm_models
from visearch.embedding.backbone import Backbone, freeze, pick_device, pick_precision
from visearch.embedding.embedder import Embedder
from visearch.embedding.head import AttentionHead
from visearch.errors import VisearchError


def build(arch: str, device: torch.device, precision: str) -> Backbone:
    register_timm_models()
    import open_clip
    from open_clip.model import get_cast_dtype

    if arch in ARCHS:
        cfg = ARCHS[arch]
        model_cfg, pre = cfg["model_cfg"], cfg["preprocess_cfg"]
        model = open_clip.CustomTextCLIP(**{k: v for k, v in model_cfg.items() if k != "custom_text"})
    else:  # an open_clip built-in such as ViT-B-16-SigLIP2-256: architecture only, no download
        model = open_clip.create_model(arch, pretrained=None)
        model_cfg, pre = open_clip.get_model_config(arch), dict(model.visual.preprocess_cfg)
    model = freeze(model.to(device, get_cast_dtype(precision) or torch.float32))
    return Backbone(model, model_cfg, pre, ref=f"random:{arch}", folder=Path("."), card={}, fingerprint="bench",
                    device=device, precision=precision, batch_size=32)


def images_per_s(fn: Callable[[list[Image.Image]], object], crops: list[Image.Image], batch: int, repeat: int) -> float:
    fn(crops[:batch])  # warm-up
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(0, len(crops), batch):
            fn(crops[i : i + batch])
        rates.append(len(crops) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=DEFAULT_ARCH, help=f"backbone architecture (default {DEFAULT_ARCH})")
    ap.add_argument("--images", type=int, default=64, help="crops per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--precision", default="auto", help="fp32, fp16, bf16 or auto (bf16 on a GPU that has it, else fp16; fp32 on CPU)")
    ap.add_argument("--out", type=Path, default=None, help="JSON result (default bench/results/embedding[-DEVICE].json)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    emb = EmbeddingSettings()
    device = pick_device(args.device)
    precision = pick_precision(args.precision, device)
    bb = build(args.arch, device, precision)
    head = AttentionHead(bb.width, bb.grid, out_dim=emb.dims[0], dims=emb.dims, width=emb.head_width, heads=emb.head_heads,
                         queries=emb.head_queries, layers=emb.head_layers, max_tokens=emb.head_max_tokens).to(device).eval()
    embedder = Embedder(bb, head, {}, "bench")
    rng = np.random.default_rng(0)
    crops = [Image.fromarray(rng.integers(0, 255, (int(rng.integers(60, 200)), int(rng.integers(60, 200)), 3), np.uint8))
             for _ in range(args.images)]

    @torch.inference_mode()
    def frozen(imgs: list[Image.Image]) -> torch.Tensor:
        return bb.model.encode_image(bb.pixels(imgs), normalize=True).float().cpu()  # .cpu() waits for the GPU

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    result: dict[str, object] = {"arch": args.arch, "image_size": bb.image_size, "tokens": bb.n_tokens, "threads": torch.get_num_threads(),
                                 "device": where, "precision": precision, "torch": torch.__version__,
                                 "head": {"width": emb.head_width, "heads": emb.head_heads, "queries": emb.head_queries,
                                          "layers": emb.head_layers}}
    for batch in (1, 32):
        ours = images_per_s(embedder.embed, crops[: max(8, args.images // 4)] if batch == 1 else crops, batch, args.repeat)
        base = images_per_s(frozen, crops[: max(8, args.images // 4)] if batch == 1 else crops, batch, args.repeat)
        result[f"batch{batch}"] = {"embedder_images_per_s": round(ours, 1), "frozen_backbone_images_per_s": round(base, 1),
                                   "ratio": round(ours / base, 3)}
        print(f"{args.arch} @ {bb.image_size}px {precision} on {where} + head, batch {batch}: {ours:.1f} images/s; "
              f"baseline frozen backbone alone: {base:.1f} images/s; ratio {ours / base:.2f}")
        assert ours > 0 and base > 0
    out = args.out or Path(__file__).parent / "results" / ("embedding.json" if device.type == "cpu" else f"embedding-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    try:
        main()
    except VisearchError as e:  # bad --device / --precision / --arch: one line, not a traceback
        raise SystemExit(f"bench_embedding: {e}") from None
