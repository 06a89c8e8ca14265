"""Model bundles for real: the tiny models the session trains are exported from one MLflow
store and imported into another; tampered archives are refused and leave the registry as it was."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visearch.bundles import BundleError, export_bundle, import_bundle
from visearch.config import Settings
from visearch.errors import InvalidArgumentError
from visearch.registry import ModelStore, parse_ref

REFS = ["models:/visearch-embedder@champion", "models:/visearch-detector@champion"]


@pytest.fixture(scope="module")
def bundle(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "tiny.tar.gz"
    report = export_bundle(REFS, out, Settings(data_dir=tiny_models / "data"), label="tiny-test")
    # the embedder's card names its backbone and baseline: they come along
    assert {m["name"] for m in report["models"]} == {"visearch-embedder", "visearch-embedder-baseline", "visearch-backbone",
                                                     "visearch-detector"}
    return out


def _registry(settings: Settings) -> list[dict]:
    return ModelStore(settings).models()


def _rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a bundle member by member through ``change(info, data) -> list of (info, data)``."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for info in tin.getmembers():
            data = tin.extractfile(info).read() if info.isfile() else b""
            for new_info, new_data in change(info, data):
                new_info.size = len(new_data) if new_info.isfile() else new_info.size
                tout.addfile(new_info, io.BytesIO(new_data) if new_info.isfile() else None)
    return dst


def test_round_trip_registers_the_same_models_elsewhere(bundle, tiny_models, tiny_synth, tmp_path):
    from visearch.embedding.embedder import Embedder
    from visearch.vision.detector import Detector

    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert not any(n.endswith((".pt", ".pth", ".bin", ".pkl")) for n in names)  # no pickle travels
    assert any(n.endswith("visearch-detector/weights.safetensors") for n in names)

    target = Settings(data_dir=tmp_path / "data")
    report = import_bundle(bundle, target)
    assert set(report.registered) == {"visearch-embedder", "visearch-embedder-baseline", "visearch-backbone", "visearch-detector"}
    assert "visearch-embedder@champion" in report.aliases_set
    store = ModelStore(target)
    card = json.loads((store.download(parse_ref("models:/visearch-embedder@champion")) / "card.json").read_text())
    # references between the models point at this registry's versions
    assert card["backbone"] == f"models:/visearch-backbone/{report.registered['visearch-backbone']}"
    assert card["baseline"] == f"models:/visearch-embedder-baseline/{report.registered['visearch-embedder-baseline']}"

    source = Settings(data_dir=tiny_models / "data")
    photos = [Image.open(p).convert("RGB") for p in sorted((tiny_synth / "scenes" / "images" / "test").glob("*.jpg"))[:3]]
    a = Embedder.from_ref("models:/visearch-embedder@champion", source).embed(photos)
    b = Embedder.from_ref("models:/visearch-embedder@champion", target).embed(photos)
    assert np.min(np.sum(a * b, axis=1)) > 0.999  # fp16 weights, same vectors
    da = Detector.from_ref("models:/visearch-detector@champion", source)
    db = Detector.from_ref("models:/visearch-detector@champion", target)
    assert db.names == da.names and db.imgsz == da.imgsz
    for x, y in zip(da.detect(photos), db.detect(photos), strict=True):
        assert len(x) == len(y) and all(np.allclose(p.box, q.box, atol=2.0) for p, q in zip(x, y, strict=True))

    again = import_bundle(bundle, target)  # the same files again: nothing new
    assert not again.registered and set(again.reused) == set(report.registered)
    assert [m["versions"] for m in _registry(target)] == [[1]] * 4


def test_existing_aliases_stay_unless_asked(bundle, tiny_models, tmp_path):
    target = Settings(data_dir=tmp_path / "data")
    store = ModelStore(target)
    own = ModelStore(Settings(data_dir=tiny_models / "data")).download(parse_ref("models:/visearch-detector@champion"))
    with store.run("detector", "own", {}) as run:  # this registry already has its own champion detector
        store.register(run.info.run_id, own, "visearch-detector", {"summary": "ours"}, alias="champion")
    report = import_bundle(bundle, target)
    assert report.registered["visearch-detector"] == "2" and report.aliases_kept == ["visearch-detector@champion"]
    assert store.version_of(parse_ref("models:/visearch-detector@champion")) == "1"
    report = import_bundle(bundle, target, move_aliases=True)
    assert report.reused["visearch-detector"] == "2" and "visearch-detector@champion" in report.aliases_set
    assert store.version_of(parse_ref("models:/visearch-detector@champion")) == "2"


@pytest.mark.parametrize("attack", ["byte", "missing", "checksum", "outside", "link", "truncated", "unlisted", "not-a-bundle"])
def test_tampered_bundles_are_refused_and_the_registry_is_unchanged(attack, bundle, tiny_models, tmp_path):
    target = Settings(data_dir=tmp_path / "data")
    store = ModelStore(target)
    store.models()  # an empty registry exists
    bad = tmp_path / f"{attack}.tar.gz"
    weights = "models/visearch-backbone/open_clip_model.safetensors"

    def flip(info, data):
        if info.name == weights:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x01
            data = bytes(data)
        return [(info, data)]

    def drop(info, data):
        return [] if info.name == weights else [(info, data)]

    def wrong_sum(info, data):
        if info.name == "bundle.json":
            manifest = json.loads(data)
            manifest["models"][0]["files"][0]["sha256"] = "0" * 64
            data = json.dumps(manifest).encode()
        return [(info, data)]

    def outside(info, data):
        if info.name == "bundle.json":
            evil = tarfile.TarInfo("../evil.txt")
            return [(info, data), (evil, b"pwned")]
        return [(info, data)]

    def link(info, data):
        if info.name == weights:
            sym = tarfile.TarInfo(weights)
            sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
            return [(sym, b"")]
        return [(info, data)]

    def unlisted(info, data):
        if info.name == "bundle.json":
            return [(info, data), (tarfile.TarInfo("models/visearch-detector/extra.pt"), b"\x80\x04pickle")]
        return [(info, data)]

    if attack == "truncated":
        raw = bundle.read_bytes()
        bad.write_bytes(raw[: len(raw) * 2 // 3])
    elif attack == "not-a-bundle":
        bad.write_bytes(b"just some bytes, not an archive")
    else:
        _rewrite(bundle, bad, {"byte": flip, "missing": drop, "checksum": wrong_sum, "outside": outside, "link": link,
                               "unlisted": unlisted}[attack])
    with pytest.raises(BundleError) as err:
        import_bundle(bad, target)
    assert "\n" not in str(err.value)
    assert _registry(target) == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_a_failure_half_way_undoes_the_import(bundle, tmp_path, monkeypatch):
    from visearch.registry.recorder import ModelRecorder

    target = Settings(data_dir=tmp_path / "data")
    calls = {"n": 0}
    register = ModelRecorder.register

    def fail_on_third(self, folder, card, alias=None):  # an injected failure: the disk filling up half-way
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("no space left on device")
        return register(self, folder, card, alias)

    monkeypatch.setattr(ModelRecorder, "register", fail_on_third)
    with pytest.raises(OSError):
        import_bundle(bundle, target)
    assert _registry(target) == []


def test_expected_checksum_and_unsafe_files(bundle, tiny_models, tmp_path):
    with pytest.raises(BundleError, match="SHA-256"):
        import_bundle(bundle, Settings(data_dir=tmp_path / "data"), expect_sha256="ab" * 32)
    # a registered version holding a pickle cannot be bundled
    source = Settings(data_dir=tmp_path / "src")
    store = ModelStore(source)
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"\x80\x04.")
    with store.run("misc", "pickled", {}) as run:
        store.register(run.info.run_id, folder, "pickled-model", {"summary": "test-made"}, alias="champion")
    with pytest.raises(InvalidArgumentError, match="pickled code"):
        export_bundle(["models:/pickled-model@champion"], tmp_path / "p.tar.gz", source)
    assert not (tmp_path / "p.tar.gz").exists()


def test_cli_list_show_promote_export_import(bundle, tiny_models, cli, tmp_path):
    root = tmp_path
    r = cli(root, "models", "import", str(bundle), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["registered"]
    r = cli(root, "models", "list", "--json")
    assert {m["name"] for m in json.loads(r.stdout)} >= {"visearch-detector", "visearch-embedder"}
    r = cli(root, "models", "show", "models:/visearch-embedder@champion", "--json")
    shown = json.loads(r.stdout)
    assert shown["card"]["task"] == "embedder" and "champion" in shown["aliases"]
    r = cli(root, "models", "promote", "visearch-embedder", "1", "--alias", "candidate", "--reason", "офлайн-метрики лучше",
            "--by", "анна")
    assert r.returncode == 0, r.stderr
    tags = json.loads(cli(root, "models", "show", "models:/visearch-embedder@candidate", "--json").stdout)["tags"]
    assert tags["promoted.candidate.by"] == "анна" and tags["promoted.candidate.reason"] == "офлайн-метрики лучше"
    r = cli(root, "models", "promote", "visearch-embedder", "9", "--alias", "champion")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no such registered model version" in r.stderr
    r = cli(root, "models", "export", "models:/visearch-detector@champion", "--out", str(root / "det.tar.gz"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["models"][0]["name"] == "visearch-detector" and (root / "det.md").is_file()
    (root / "bad.tar.gz").write_bytes(bundle.read_bytes()[:1000])
    r = cli(root, "models", "import", str(root / "bad.tar.gz"))
    assert r.returncode == 1 and r.stderr.startswith("visearch: error:") and r.stderr.count("\n") == 1


def test_default_bundle_is_imported_only_when_a_champion_is_missing(bundle, tmp_path):
    from visearch.bundles import ensure_default_models

    settings = Settings(data_dir=tmp_path / "data", models={"default_bundle": str(bundle)})
    report = ensure_default_models(settings)
    assert report is not None and "visearch-embedder@champion" in report.aliases_set
    assert ensure_default_models(settings) is None  # champions exist now: nothing to do
    assert ensure_default_models(Settings(data_dir=tmp_path / "other", models={"default_bundle": str(tmp_path / "none.tar.gz")})) is None


def test_mostly_zero_matrices_travel_as_their_rows(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from visearch.bundles import _pack_tensors, _unpack_tensors

    table = torch.zeros(1000, 8)
    table[[3, 17, 999]] = torch.randn(3, 8)  # a token table of which a text tower read three rows
    dense = torch.randn(4, 8)
    save_file({"text.token_embedding.weight": table, "proj": dense, "steps": torch.tensor([7])}, str(tmp_path / "a.safetensors"))
    _pack_tensors(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    with safe_open(str(tmp_path / "b.safetensors"), "pt") as f:
        assert set(f.keys()) == {"text.token_embedding.weight::rows", "text.token_embedding.weight::values", "proj", "steps"}
        assert f.get_tensor("proj").dtype == torch.float16 and f.get_tensor("steps").dtype == torch.int64
    assert (tmp_path / "b.safetensors").stat().st_size < (tmp_path / "a.safetensors").stat().st_size / 10
    _unpack_tensors(tmp_path / "b.safetensors", tmp_path / "c.safetensors")
    back = load_file(str(tmp_path / "c.safetensors"))
    assert torch.allclose(back["text.token_embedding.weight"].float(), table, atol=1e-2)
    assert torch.allclose(back["proj"].float(), dense, atol=1e-2) and back["steps"].item() == 7


def test_unread_tokens_are_zeroed_after_backbone_training():
    import torch

    from training.backbone import build_model, forget_unread_tokens
    from visearch.embedding.archs import TEST_ARCH

    model, _ = build_model(TEST_ARCH)
    texts = torch.tensor([[49406, 320, 1929, 49407, 0, 0]])
    assert forget_unread_tokens(model, texts) == model.text.token_embedding.weight.shape[0] - 5
    rows = model.text.token_embedding.weight.abs().sum(dim=1) > 0
    assert set(torch.nonzero(rows).flatten().tolist()) == {0, 320, 1929, 49406, 49407}
