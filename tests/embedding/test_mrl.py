"""The Matryoshka InfoNCE loss on a toy problem, and its parts."""

from __future__ import annotations

import pytest
import torch

from visearch.embedding.mrl import MatryoshkaInfoNCE
from visearch.errors import InvalidArgumentError


def test_loss_decreases_and_short_prefixes_learn_to_match():
    """Two noisy views of 64 points; a shared linear map must pair them at every prefix."""
    torch.manual_seed(0)
    x = torch.randn(64, 24)
    a_in, b_in = x + 0.3 * torch.randn_like(x), x + 0.3 * torch.randn_like(x)
    net = torch.nn.Linear(24, 128)
    loss_fn = MatryoshkaInfoNCE((128, 64, 32, 8))
    opt = torch.optim.Adam([*net.parameters(), *loss_fn.parameters()], lr=1e-2)
    first = None
    for _ in range(150):
        loss, parts = loss_fn(net(a_in), net(b_in))
        first = first if first is not None else (float(loss.detach()), parts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last, last_parts = loss_fn(net(a_in), net(b_in))
    assert float(last) < 0.35 * first[0]
    assert all(last_parts[d] < first[1][d] for d in (128, 64, 32, 8))
    with torch.no_grad():  # even the 8-d prefix now finds most partners
        a8 = torch.nn.functional.normalize(net(a_in)[:, :8], dim=-1)
        b8 = torch.nn.functional.normalize(net(b_in)[:, :8], dim=-1)
        assert (a8 @ b8.T).argmax(1).eq(torch.arange(64)).float().mean() > 0.6
    temps = loss_fn.temperatures()
    assert len(set(round(t, 6) for t in temps.values())) > 1  # one learnable temperature per prefix


def test_loss_is_the_mean_of_the_prefix_losses():
    torch.manual_seed(1)
    a, b = torch.randn(6, 64), torch.randn(6, 64)
    loss, parts = MatryoshkaInfoNCE((64, 16))(a, b)
    assert float(loss.detach()) == pytest.approx((parts[64] + parts[16]) / 2, rel=1e-5)
    single, only = MatryoshkaInfoNCE((64,))(a, b)
    assert only[64] == pytest.approx(parts[64], rel=1e-5)


def test_same_product_pairs_are_not_negatives():
    torch.manual_seed(2)
    a = torch.randn(4, 32)
    a[1] = a[0]  # two pairs of the same product in one batch
    loss_fn = MatryoshkaInfoNCE((32,))
    unmasked, _ = loss_fn(a, a.clone())
    masked, _ = loss_fn(a, a.clone(), labels=torch.tensor([7, 7, 8, 9]))
    assert float(masked.detach()) < float(unmasked.detach())


def test_bad_inputs():
    with pytest.raises(InvalidArgumentError):
        MatryoshkaInfoNCE((), 0.07)
    with pytest.raises(InvalidArgumentError, match="equal shape"):
        MatryoshkaInfoNCE((64,))(torch.randn(3, 32), torch.randn(3, 32))
