"""The backbone loader, for real, from every kind of reference: a local folder or file,
``local-dir:``, the MLflow registry, S3 (moto) and the hub, offline, from a cache laid out
as the hub lays it out. Each checkpoint is one the test saved itself."""

from __future__ import annotations

import importlib
import shutil
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from PIL import Image

from visearch.config import Settings
from visearch.embedding.backbone import CONFIG_FILE, WEIGHTS_FILE, Backbone, pick_precision
from visearch.errors import InvalidArgumentError, NotFoundError
from visearch.registry import ModelStore


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


def _photos(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


def _outputs(bb: Backbone) -> tuple[torch.Tensor, torch.Tensor]:
    return bb.encode_images(_photos())


def test_local_folder_is_frozen_and_gives_patch_tokens(pico_folder, settings):
    bb = Backbone.from_ref(str(pico_folder), settings)
    tokens, pooled = _outputs(bb)
    assert tokens.shape == (3, bb.n_tokens, bb.width) == (3, 16, 64)
    assert pooled.shape == (3, bb.dim)
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(3), atol=1e-5)
    # frozen as production freezes SigLIP 2: eval mode, no gradients, fp32 on CPU
    assert not bb.model.training and not any(m.training for m in bb.model.modules())
    assert not any(p.requires_grad for p in bb.model.parameters())
    assert bb.dtype == torch.float32 and bb.precision == "fp32"
    # the pooled output is the model's own image embedding, and pooling cached tokens gives it back
    with torch.inference_mode():
        own = bb.model.encode_image(bb.pixels(_photos()), normalize=True)
    assert torch.allclose(pooled, own, atol=1e-5)
    assert torch.allclose(bb.pool(tokens), pooled, atol=1e-5)
    # same weights from local-dir: and from the checkpoint file itself
    for ref in (f"local-dir:{pico_folder}", str(pico_folder / WEIGHTS_FILE)):
        other = Backbone.from_ref(ref, settings)
        assert torch.allclose(_outputs(other)[0], tokens) and other.fingerprint == bb.fingerprint


@pytest.mark.parametrize("arch", ["ViT-Ti-C16-SigLIP-WBSynth-128", "ViT-Ti-16-SigLIP-WBSynth-128"])
def test_default_architectures_round_trip_through_a_folder(arch, settings, tmp_path):
    # the conv stem (BatchNorm statistics included) and the plain patchify both load back exactly
    from training.backbone import build_model
    from visearch.embedding.backbone import save_backbone_folder

    model, config = build_model(arch, seed=1)
    model.train()
    with torch.no_grad():  # move the BatchNorm running statistics away from their initial values
        model.encode_image(torch.randn(8, 3, 128, 128) * 2 + 1)
    model.eval()
    bb = Backbone.from_ref(str(save_backbone_folder(model, config, tmp_path / arch)), settings)
    tokens, pooled = _outputs(bb)
    assert bb.grid == (8, 8) and tokens.shape == (3, 64, 192)
    with torch.inference_mode():
        own = model.encode_image(bb.pixels(_photos()), normalize=True)
    assert torch.allclose(pooled, own, atol=1e-5)


def test_registry_reference(pico_folder, settings, tmp_path):
    store = ModelStore(settings)
    folder = tmp_path / "to-register"
    shutil.copytree(pico_folder, folder)
    with store.run("backbone", "test", {"arch": "pico"}) as run:
        store.register(run.info.run_id, folder, "visearch-backbone", {"summary": "test-made", "pretrained_siglip2": False}, alias="champion")
    bb = Backbone.from_ref("models:/visearch-backbone@champion", settings)
    assert bb.card["summary"] == "test-made" and bb.describe()["pretrained_siglip2"] is False
    assert torch.allclose(_outputs(bb)[0], _outputs(Backbone.from_ref(str(pico_folder), settings))[0])


def test_hub_reference_offline_from_the_local_cache(pico_folder, settings, tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = cache / "models--visearch-test--pico-siglip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copy2(pico_folder / name, snap / name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    importlib.reload(huggingface_hub.constants)
    try:
        bb = Backbone.from_ref("hf-hub:visearch-test/pico-siglip", settings)
        assert bb.folder == snap and bb.card == {}
        assert torch.allclose(_outputs(bb)[0], _outputs(Backbone.from_ref(str(pico_folder), settings))[0])
        with pytest.raises(NotFoundError, match="local hub cache"):
            Backbone.from_ref("hf-hub:visearch-test/absent", settings)
    finally:
        monkeypatch.undo()
        importlib.reload(huggingface_hub.constants)


def test_s3_reference(pico_folder, settings, monkeypatch):
    moto = pytest.importorskip("moto")
    import boto3

    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            s3.upload_file(str(pico_folder / name), "models", f"backbones/pico/{name}")
        bb = Backbone.from_ref("s3://models/backbones/pico", settings)
        assert bb.n_tokens == 16


def test_text_tower_reads_cyrillic(pico_folder, settings):
    bb = Backbone.from_ref(str(pico_folder), settings)
    ids = bb.tokenizer(["платье красное", "платье синее"])
    assert ids.shape[1] == 32 and not torch.equal(ids[0], ids[1])  # byte-level BPE: no unknown tokens
    vecs = bb.encode_text(["Платье женское красное", "red dress", "ФУТБОЛКА BELKA"])
    assert vecs.shape == (3, bb.dim) and torch.allclose(vecs.norm(dim=-1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize(
    ("make", "error", "needle"),
    [
        (lambda d: str(d / "nowhere"), InvalidArgumentError, "neither an existing path"),
        (lambda d: "ftp://models/x", InvalidArgumentError, "unknown model reference scheme"),
        (lambda d: str(d), NotFoundError, CONFIG_FILE),  # a folder with no open_clip config
        (lambda d: "hf-hub:no-slash", InvalidArgumentError, "hf-hub:org/name"),
    ],
)
def test_bad_references(make, error, needle, settings, tmp_path):
    with pytest.raises(error, match=needle):
        Backbone.from_ref(make(tmp_path), settings)


def test_half_precision_on_gpu_and_fp32_on_cpu():
    cpu = torch.device("cpu")
    assert pick_precision("auto", cpu) == "fp32"
    assert pick_precision("bf16", cpu) == "bf16"
    from visearch.embedding.backbone import pick_device

    with nullcontext() if torch.cuda.is_available() else pytest.raises(InvalidArgumentError, match="no CUDA device"):
        pick_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_backbone_runs_in_half_precision(pico_folder, tmp_path):
    settings = Settings(data_dir=tmp_path, embedding={"device": "cuda"})
    bb = Backbone.from_ref(str(pico_folder), settings)
    assert bb.dtype in (torch.float16, torch.bfloat16)
    tokens, pooled = _outputs(bb)
    assert tokens.dtype == torch.float32 and torch.isfinite(pooled).all()

