"""The refiner head and the checks on a refinement text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visearch.embedding.refiner import RefinerHead, check_refinement_text
from visearch.errors import InvalidArgumentError


@pytest.mark.parametrize("text", ["same but red", "  такой же, но в полоску  ", "без капюшона", "red 2", "ЧЁРНЫЙ!"])
def test_texts_in_russian_or_english_pass_trimmed(text: str) -> None:
    assert check_refinement_text(text, 200) == text.strip()


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"), ("   \n", "empty"), ("x" * 201, "201 characters"), ("红色的", "no Russian or English"),
    ("12345 !!", "no Russian or English"), ("🔴🔴", "no Russian or English"), ("red\x00", "control"),
    (42, "must be a string"), (None, "must be a string"),
])
def test_bad_texts_are_refused_with_a_reason(text: object, why: str) -> None:
    with pytest.raises(InvalidArgumentError, match=why):
        check_refinement_text(text, 200)


def test_head_starts_close_to_the_crop_and_outputs_unit_vectors() -> None:
    torch.manual_seed(0)
    head = RefinerHead(32, 16, 64).eval()
    image = torch.nn.functional.normalize(torch.randn(8, 32), dim=1)
    out = head(image, torch.randn(8, 16))
    np.testing.assert_allclose(out.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)
    assert float((out * image).sum(1).min()) > 0.8  # keeps the crop until trained to change it
