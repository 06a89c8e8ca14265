import pytest

from visearch.errors import InvalidArgumentError
from visearch.registry import ModelRef, parse_ref


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("models:/visearch-detector@champion", ModelRef("models", "visearch-detector", alias="champion")),
        ("models:/visearch-embedder/3", ModelRef("models", "visearch-embedder", version="3")),
        ("hf-hub:timm/ViT-B-16-SigLIP2-256", ModelRef("hf-hub", "timm/ViT-B-16-SigLIP2-256")),
        ("hf-hub:org/name@v1.0", ModelRef("hf-hub", "org/name", version="v1.0")),
        ("s3://bucket/models/det.pt", ModelRef("s3", "s3://bucket/models/det.pt")),
        ("local-dir:/opt/models/det", ModelRef("local", "/opt/models/det")),
    ],
)
def test_parse(ref, expected):
    assert parse_ref(ref) == expected
    assert str(parse_ref(ref)) == ref


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("models:/", "models:/name@alias"),
        ("models:/name@", "models:/name@alias"),
        ("models:/name/latest", "models:/name@alias"),
        ("hf-hub:noslash", "hf-hub:org/name"),
        ("hf-hub:", "hf-hub:org/name"),
        ("s3://bucket", "s3://bucket/key"),
        ("gs://bucket/x", "unknown model reference scheme"),
        ("no/such/path.pt", "neither an existing path"),
    ],
)
def test_bad_refs_name_the_right_form(ref, needle):
    with pytest.raises(InvalidArgumentError, match=needle):
        parse_ref(ref)


def test_existing_bare_path_is_local(tmp_path):
    f = tmp_path / "модель.pt"
    f.write_bytes(b"x")
    assert parse_ref(str(f)) == ModelRef("local", str(f))
