"""Model references and the MLflow registry: where every model comes from."""

from visearch.registry.refs import ModelRef, parse_ref
from visearch.registry.store import CARD_FILE, ModelStore, resolve_model

__all__ = ["ModelRef", "parse_ref", "ModelStore", "resolve_model", "CARD_FILE"]
