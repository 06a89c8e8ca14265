"""The default backbone's random resized crop: one affine resample per batch, each image its own box."""

from __future__ import annotations

import numpy as np
import torch

from training.backbone import random_resized_crop


def _ramp(n: int = 4, size: int = 32) -> torch.Tensor:
    """Images whose pixel value is its column, so a crop shows which columns it kept."""
    cols = torch.arange(size, dtype=torch.float32).view(1, 1, 1, size)
    return cols.expand(n, 3, size, size).clone()


def test_full_box_is_the_identity():
    x = torch.rand(3, 3, 16, 16)
    out = random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), np.random.default_rng(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_each_image_gets_its_own_box_inside_the_image():
    x = _ramp()
    out = random_resized_crop(x, (0.25, 0.25), (1.0, 1.0), np.random.default_rng(1))
    assert out.shape == x.shape
    spans = out[:, 0, 0, -1] - out[:, 0, 0, 0]
    assert torch.allclose(spans, torch.full_like(spans, 15.5), atol=0.6)  # half the width, stretched to the full width
    assert out.min() >= 0 and out.max() <= 31  # never outside the photo
    assert len({round(float(v), 3) for v in out[:, 0, 0, 0]}) == 4  # four different boxes


def test_same_generator_state_gives_the_same_crops():
    x = torch.rand(5, 3, 16, 16)
    a = random_resized_crop(x, (0.5, 1.0), (0.75, 1.33), np.random.default_rng(7))
    b = random_resized_crop(x, (0.5, 1.0), (0.75, 1.33), np.random.default_rng(7))
    assert torch.equal(a, b) and not torch.allclose(a, x)
