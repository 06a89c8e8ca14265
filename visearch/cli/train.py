"""``visearch train ...``: offline training jobs, each logged to MLflow and registered.

This module holds the ``train`` group, the options every job shares and the
``--if-missing`` rule; each job module registers its command on :data:`train_app`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from visearch.cli import app
from visearch.config import Settings, get_settings
from visearch.errors import NotFoundError
from visearch.registry import ModelStore, parse_ref

train_app = typer.Typer(help="Train a model on WB-Synth, log it to MLflow and register a version.", no_args_is_help=True)
app.add_typer(train_app, name="train")

Data = Annotated[Path, typer.Option("--data", help="WB-Synth data set folder")]
Alias = Annotated[str | None, typer.Option("--alias", help="registry alias to point at the new version, e.g. champion")]
IfMissing = Annotated[bool, typer.Option("--if-missing", help="do nothing when --alias already names a version")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


def check_recipe(recipe: str, known: dict) -> None:
    """Refuse an unknown recipe before any heavy import, so a typo fails at once."""
    from training.recipes import pick_recipe

    pick_recipe(recipe, known)


def already_registered(settings: Settings, name: str, alias: str | None, if_missing: bool, console: Console) -> bool:
    """With ``--if-missing``, whether ``models:/name@alias`` exists (and is reused)."""
    if not (if_missing and alias):
        return False
    try:
        version = ModelStore(settings).version_of(parse_ref(f"models:/{name}@{alias}"))
    except NotFoundError:
        return False
    console.print(f"models:/{name}@{alias} is version {version}: reusing it")
    return True


@train_app.command("detector")
def detector(
    data: Data,
    recipe: Annotated[str, typer.Option("--recipe", help="quick (class-agnostic, minutes), full (categories, hours), tiny (smoke test)")] = "quick",
    alias: Alias = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="override the last stage's epochs")] = None,
    if_missing: IfMissing = False,
) -> None:
    """Train YOLO (from yolo11n.yaml, no download) and register a version of visearch-detector."""
    from training.detector import MODEL_NAME, RECIPES, train_detector

    check_recipe(recipe, RECIPES)
    settings = get_settings()
    console = Console()
    if already_registered(settings, MODEL_NAME, alias, if_missing, console):
        return
    card = train_detector(data, settings, recipe=recipe, alias=alias, epochs=epochs)
    console.print(f"registered {MODEL_NAME} version {card.version}" + (f" as @{alias}" if alias else "")
                  + f" in {card.train_seconds:.0f} s")
    console.print_json(json.dumps(card.val_metrics))


@train_app.command("classifier")
def classifier(
    data: Data,
    recipe: Annotated[str, typer.Option("--recipe", help="quick (minutes), full (the default bundle's), tiny (smoke test)")] = "quick",
    alias: Alias = None,
    if_missing: IfMissing = False,
    quiet: Quiet = False,
) -> None:
    """Train the object-crop category classifier (YOLO11n-cls from scratch) and register visearch-classifier."""
    from training.classifier import MODEL_NAME, RECIPES, train_classifier

    check_recipe(recipe, RECIPES)
    settings = get_settings()
    console = Console()
    if already_registered(settings, MODEL_NAME, alias, if_missing, console):
        return
    card = train_classifier(data, settings, recipe=recipe, alias=alias, progress=not quiet)
    console.print(f"registered {MODEL_NAME} version {card.version}" + (f" as @{alias}" if alias else "")
                  + f" in {card.train_seconds:.0f} s")
    console.print_json(json.dumps(card.val_metrics))
