"""Architectures of the offline default backbones, as data.

SigLIP 2 in open_clip is a timm ViT with MAP (multi-head attention) pooling and no
projection (``timm_model_name`` + ``timm_pool: map`` + ``timm_proj: none``) next to a
text transformer. The project's own backbones are the same family, only small enough
to train on two CPU cores: their image towers are timm ViTs registered here under
``visearch_*`` names, and their open_clip configs are below. A trained model folder
carries its config in ``open_clip_config.json`` as a hub repository does, so loading
needs only this module imported (the timm names must be registered).

Text: open_clip's byte-level BPE ``SimpleTokenizer`` (no ``hf_tokenizer_name``), which
encodes Cyrillic as UTF-8 bytes and merges, offline. SigLIP 2's Gemma tokenizer would
need a download.

>>> sorted(ARCHS)
['ViT-Pico-16-SigLIP-WBSynth-64', 'ViT-Ti-16-SigLIP-WBSynth-128', 'ViT-Ti-C16-SigLIP-WBSynth-128']
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["ARCHS", "DEFAULT_ARCH", "TEST_ARCH", "model_config", "register_timm_models"]


def conv_stem_embed(**kwargs: Any) -> Any:
    """A ViT patch embedding whose 16x16 patchify is a stack of stride-2 3x3 convolutions.

    Xiao et al., "Early Convolutions Help Transformers See Better" (2021): same tokens,
    same grid, but the ViT trains several times faster from scratch and far less
    sensitive to its learning rate, which is what two CPU cores and a 10-minute budget
    need. Built on timm's ``PatchEmbed`` so the grid, flattening and norm stay timm's.
    """
    import math

    from timm.layers import PatchEmbed
    from torch import nn

    embed = PatchEmbed(**kwargs)
    patch = embed.patch_size[0]
    steps = int(math.log2(patch))
    if 2**steps != patch or embed.patch_size[0] != embed.patch_size[1]:
        raise ValueError(f"a conv stem needs a square power-of-two patch, got {embed.patch_size}")
    dim = kwargs["embed_dim"]
    layers: list[nn.Module] = []
    c_in = kwargs.get("in_chans", 3)
    for i in range(steps):
        c_out = max(8, dim >> (steps - 1 - i))
        layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        c_in = c_out
    layers.append(nn.Conv2d(c_in, dim, 1, bias=kwargs.get("bias", True)))
    embed.proj = nn.Sequential(*layers)
    return embed


# timm image towers: SigLIP's ViT recipe (no class token, MAP pooling), tiny widths
_TIMM: dict[str, dict[str, Any]] = {
    # the offline default: a conv stem in place of the patchify (see conv_stem_embed)
    "visearch_vit_tiny_convstem16_siglip_128": dict(img_size=128, patch_size=16, embed_dim=192, depth=6, num_heads=3,
                                                   embed_layer=conv_stem_embed),
    "visearch_vit_tiny_patch16_siglip_128": dict(img_size=128, patch_size=16, embed_dim=192, depth=6, num_heads=3),
    "visearch_vit_pico_patch16_siglip_64": dict(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2),
}
_SIGLIP_VIT = dict(class_token=False, global_pool="map")

# timm reads pretrained configs from the entrypoint module's ``default_cfgs``
default_cfgs: dict[str, dict[str, Any]] = {
    name: dict(url="", num_classes=0, input_size=(3, a["img_size"], a["img_size"]), mean=(0.5, 0.5, 0.5),
               std=(0.5, 0.5, 0.5), interpolation="bicubic", crop_pct=1.0, license="apache-2.0")
    for name, a in _TIMM.items()
}

_PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic", "resize_mode": "squash"}


def _text(width: int, heads: int, layers: int, context: int = 64) -> dict[str, Any]:
    # CLIP-style text tower (causal mask, end-of-text pooling) that suits SimpleTokenizer
    return {"context_length": context, "vocab_size": 49408, "width": width, "heads": heads, "layers": layers,
            "proj_bias": True, "pool_type": "argmax", "norm_kwargs": {"eps": 1e-6}, "act_kwargs": {"approximate": "tanh"}}


def _arch(timm_name: str, text: dict[str, Any]) -> dict[str, Any]:
    a = _TIMM[timm_name]
    return {
        "model_cfg": {
            "embed_dim": a["embed_dim"],  # timm_proj none: the pooled trunk output is the embedding
            "init_logit_bias": -10,
            "custom_text": True,
            "vision_cfg": {"image_size": a["img_size"], "timm_model_name": timm_name, "timm_model_pretrained": False,
                           "timm_pool": "map", "timm_proj": "none"},
            "text_cfg": text,
        },
        "preprocess_cfg": {**_PREPROCESS, "size": a["img_size"]},
    }


ARCHS: dict[str, dict[str, Any]] = {
    # the offline default: ~3.2 M image parameters, 8x8 patch tokens of width 192, conv stem
    "ViT-Ti-C16-SigLIP-WBSynth-128": _arch("visearch_vit_tiny_convstem16_siglip_128", _text(192, 3, 4)),
    # the same with the plain 16x16 patchify (the first default; it learns too slowly from scratch on a CPU)
    "ViT-Ti-16-SigLIP-WBSynth-128": _arch("visearch_vit_tiny_patch16_siglip_128", _text(192, 3, 4)),
    # for tests and smoke runs only
    "ViT-Pico-16-SigLIP-WBSynth-64": _arch("visearch_vit_pico_patch16_siglip_64", _text(64, 2, 1, context=32)),
}
DEFAULT_ARCH = "ViT-Ti-C16-SigLIP-WBSynth-128"
TEST_ARCH = "ViT-Pico-16-SigLIP-WBSynth-64"


def model_config(arch: str) -> dict[str, Any]:
    """A copy of ``arch``'s ``open_clip_config.json`` content (``model_cfg`` + ``preprocess_cfg``).

    Raises:
        InvalidArgumentError: an unknown architecture name.
    """
    from visearch.errors import InvalidArgumentError

    if arch not in ARCHS:
        raise InvalidArgumentError(f"unknown backbone architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return copy.deepcopy(ARCHS[arch])


def _entrypoint(name: str) -> Callable[..., Any]:
    def build(pretrained: bool = False, **kwargs: Any) -> Any:
        from timm.models.vision_transformer import _create_vision_transformer

        return _create_vision_transformer(name, pretrained=pretrained, **{**_SIGLIP_VIT, **_TIMM[name], **kwargs})

    build.__name__ = name
    build.__qualname__ = name
    build.__module__ = __name__
    return build


def register_timm_models() -> None:
    """Make the ``visearch_*`` image towers known to timm (idempotent)."""
    import timm
    from timm.models import register_model

    known = set(timm.list_models("visearch_*"))
    for name in _TIMM:
        if name not in known:
            fn = _entrypoint(name)
            setattr(sys.modules[__name__], name, fn)
            register_model(fn)
