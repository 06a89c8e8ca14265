"""Model references and the MLflow registry: where every model comes from."""

from visearch.registry.refs import ModelRef, parse_ref
from visearch.registry.store import CARD_FILE, ModelStore, PinnedModel, optional_ref, pin_model, resolve_model

__all__ = ["ModelRef", "parse_ref", "ModelStore", "resolve_model", "pin_model", "optional_ref", "PinnedModel", "CARD_FILE"]
