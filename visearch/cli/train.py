"""``visearch train ...``: offline training jobs, each logged to MLflow and registered.

This module holds the ``train`` group, the options every job shares and the
``--if-missing`` rule; each job module registers its command on :data:`train_app`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from visearch.cli import app
from visearch.config import Settings, get_settings
from visearch.errors import NotFoundError
from visearch.registry import ModelStore, parse_ref
from visearch.registry.card import ModelCard

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


def run_training(name: str, recipes: dict, recipe: str, alias: str | None, if_missing: bool,
                 job: Callable[[Settings], ModelCard], detail: Callable[[ModelCard], str] = lambda card: "",
                 figures: Callable[[ModelCard], Any] = lambda card: card.val_metrics) -> None:
    """What every training command does: check the recipe, honour ``--if-missing``, train, say what was registered."""
    check_recipe(recipe, recipes)
    settings = get_settings()
    console = Console()
    if already_registered(settings, name, alias, if_missing, console):
        return
    card = job(settings)
    console.print(f"registered {name} version {card.version}" + (f" as @{alias}" if alias else "")
                  + f" in {card.train_seconds:.0f} s" + detail(card))
    console.print_json(json.dumps(figures(card)))


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

    run_training(MODEL_NAME, RECIPES, recipe, alias, if_missing,
                 lambda settings: train_detector(data, settings, recipe=recipe, alias=alias, epochs=epochs))


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

    run_training(MODEL_NAME, RECIPES, recipe, alias, if_missing,
                 lambda settings: train_classifier(data, settings, recipe=recipe, alias=alias, progress=not quiet))


@train_app.command("ranker")
def ranker(
    data: Annotated[Path | None, typer.Option("--data", help="WB-Synth data set folder (its simulated sessions)")] = None,
    events: Annotated[Path | None, typer.Option("--events", help=(
        "the service's own event log instead (<data_dir>/events.db): ranked requests, their impressions, clicks, "
        "carts and orders; oldest 70% train, newest 15% judge"))] = None,
    also: Annotated[list[Path] | None, typer.Option("--also", help=(
        "more WB-Synth sets whose train-split sessions to learn from too, each against its own catalog "
        "(figures stay on --data); catalogs the embedder never saw teach it best"))] = None,
    recipe: Annotated[str, typer.Option("--recipe", help="quick (seconds), full (the default bundle's), tiny (smoke test)")] = "quick",
    alias: Alias = None,
    if_missing: IfMissing = False,
    quiet: Quiet = False,
) -> None:
    """Train the XGBoost ranker on a data set's logged sessions or on the service's own event log and register
    visearch-ranker (figures: held-out sessions or the newest traffic, against similarity order)."""
    from training.ranker import MODEL_NAME, RECIPES, train_ranker

    run_training(MODEL_NAME, RECIPES, recipe, alias, if_missing,
                 lambda settings: train_ranker(data, settings, recipe=recipe, alias=alias, progress=not quiet,
                                               events=events, more=also or ()))


@train_app.command("tags")
def tags(
    data: Data,
    recipe: Annotated[str, typer.Option("--recipe", help="quick (a minute), full (the default bundle's), tiny (smoke test)")] = "quick",
    alias: Alias = None,
    if_missing: IfMissing = False,
    quiet: Quiet = False,
) -> None:
    """Tag the catalog (VISEARCH_TAGS__GENERATOR), project the tags into the embedder's space and register
    visearch-tagger (figures: precision@5 on held-out crops; closed form vs SGD, orthogonal vs default init)."""
    from training.tags import MODEL_NAME, RECIPES, train_tags

    run_training(MODEL_NAME, RECIPES, recipe, alias, if_missing,
                 lambda settings: train_tags(data, settings, recipe=recipe, alias=alias, progress=not quiet))


@train_app.command("refiner")
def refiner(
    data: Data,
    also: Annotated[list[Path] | None, typer.Option("--also", help=(
        "more WB-Synth sets whose train-split triplets to learn from too (figures stay on --data)"))] = None,
    recipe: Annotated[str, typer.Option("--recipe", help="quick (a minute), full (the default bundle's), tiny (smoke test)")] = "quick",
    alias: Alias = None,
    if_missing: IfMissing = False,
    quiet: Quiet = False,
) -> None:
    """Train the text refiner on a data set's (anchor, text, target) triplets and register visearch-refiner
    (figures: held-out triplets, target in the top 10 of the whole catalog, against image-only and text-only)."""
    from training.refiner import MODEL_NAME, RECIPES, train_refiner

    run_training(MODEL_NAME, RECIPES, recipe, alias, if_missing,
                 lambda settings: train_refiner(data, settings, recipe=recipe, alias=alias, progress=not quiet,
                                                more=also or ()))
