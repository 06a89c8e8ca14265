"""The attention head: Matryoshka outputs, the fixed anchor token, files, and bad inputs."""

from __future__ import annotations

import pytest
import torch

from visearch.embedding.head import AttentionHead, slice_normalize
from visearch.embedding.mrl import MatryoshkaInfoNCE
from visearch.errors import InvalidArgumentError


def _head(**kw) -> AttentionHead:
    torch.manual_seed(0)
    return AttentionHead(in_width=48, grid=(4, 4), width=32, heads=4, **kw)


def test_every_prefix_has_its_shape_and_unit_norm():
    head = _head()
    out = head(torch.randn(5, 16, 48))
    assert sorted(out, reverse=True) == [512, 256, 128, 64]
    for d, v in out.items():
        assert v.shape == (5, d)
        assert torch.allclose(v.norm(dim=-1), torch.ones(5), atol=1e-5)
    full = head.full(torch.randn(5, 16, 48))
    assert full.shape == (5, 512)
    # a prefix is the full vector cut and renormalised, not a separate output
    x = torch.randn(3, 16, 48)
    assert torch.allclose(head(x)[128], slice_normalize(head.full(x), 128), atol=1e-6)


def test_anchor_is_fixed_and_starts_at_the_mean_of_the_pooling_queries():
    head = _head(queries=6)
    assert torch.allclose(head.anchor, head.queries.detach().mean(0, keepdim=True))
    names = {n for n, _ in head.named_parameters()}
    assert "anchor" not in names and "queries" in names
    assert not head.anchor.requires_grad and "anchor" in head.state_dict()  # saved, never trained
    before_anchor, before_queries = head.anchor.clone(), head.queries.detach().clone()
    loss_fn = MatryoshkaInfoNCE(head.dims)
    opt = torch.optim.AdamW([*head.parameters(), *loss_fn.parameters()], lr=1e-2)
    a, b = torch.randn(8, 16, 48), torch.randn(8, 16, 48)
    for _ in range(3):
        loss, _ = loss_fn(head.full(a), head.full(b))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(head.anchor, before_anchor)
    assert not torch.allclose(head.queries.detach(), before_queries)


def test_the_anchor_takes_part_in_pooling():
    head = _head().eval()
    x = torch.randn(2, 16, 48)
    before = head.full(x)
    head.anchor.add_(5.0)
    assert not torch.allclose(head.full(x), before)


def test_reducer_pools_a_large_grid():
    head = AttentionHead(in_width=32, grid=(16, 16), width=32, heads=4, max_tokens=64)
    assert head.reduce == 2
    assert head(torch.randn(2, 256, 32))[64].shape == (2, 64)
    assert AttentionHead(in_width=32, grid=(8, 8), width=32, heads=4, max_tokens=64).reduce == 1


def test_save_and_load_give_the_same_vectors(tmp_path):
    head = _head(dims=(256, 32), out_dim=256).eval()
    head.save(tmp_path / "h")
    again = AttentionHead.load(tmp_path / "h")
    x = torch.randn(4, 16, 48)
    assert again.dims == (256, 32) and torch.allclose(again.full(x), head.full(x), atol=1e-6)
    assert torch.equal(again.anchor, head.anchor)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"dims": (64, 512)}, "largest first"),
        ({"dims": (256, 64)}, "starting at out_dim"),
        ({"width": 30, "heads": 4}, "multiple"),
    ],
)
def test_bad_head_settings(kw, needle):
    with pytest.raises(InvalidArgumentError, match=needle):
        AttentionHead(in_width=48, grid=(4, 4), **{"width": 32, "heads": 4, **kw})


def test_tokens_of_another_backbone_are_refused():
    with pytest.raises(InvalidArgumentError, match="another backbone"):
        _head().full(torch.randn(2, 64, 48))
