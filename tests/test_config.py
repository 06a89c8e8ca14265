from pathlib import Path

import pytest

from visearch.config import Settings, SynthSettings, get_settings
from visearch.errors import InvalidArgumentError


def test_env_prefix_and_nesting(monkeypatch):
    monkeypatch.setenv("VISEARCH_DATA_DIR", "/srv/vs")
    monkeypatch.setenv("VISEARCH_INDEX__EF", "200")
    monkeypatch.setenv("VISEARCH_SYNTH__SCENE_SIZE", "512")
    s = get_settings()
    assert s.data_dir == Path("/srv/vs")
    assert s.index.ef == 200
    assert s.synth.scene_size == 512
    assert s.index.path == Path("/srv/vs/index")
    assert s.models.mlflow_tracking_uri == "sqlite:////srv/vs/mlflow.db"


def test_overrides_win_over_env(monkeypatch):
    monkeypatch.setenv("VISEARCH_DATA_DIR", "/srv/vs")
    assert get_settings(data_dir="/other").data_dir == Path("/other")


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("VISEARCH_INDEX__EF", "many", "VISEARCH_INDEX__EF"),
        ("VISEARCH_SERVING__PORT", "70000", "VISEARCH_SERVING__PORT"),
        ("VISEARCH_INDEX__BACKEND", "cluster", "VISEARCH_INDEX__URL"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(InvalidArgumentError, match=needle):
        get_settings()


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="split_fractions"):
        SynthSettings(split_fractions=(0.5, 0.2, 0.2))


def test_defaults_are_sane():
    s = Settings()
    assert s.index.backend == "edge" and s.index.online_dim in (128, 256)
    assert s.models.detector.startswith("models:/")


def test_online_dim_from_the_environment(monkeypatch):
    """The documented way to build the 256-d index: an environment variable, hence a string."""
    monkeypatch.setenv("VISEARCH_INDEX__ONLINE_DIM", "256")
    assert get_settings().index.online_dim == 256
    monkeypatch.setenv("VISEARCH_INDEX__ONLINE_DIM", "100")
    with pytest.raises(InvalidArgumentError, match="ONLINE_DIM"):
        get_settings()
