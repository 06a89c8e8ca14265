"""``visearch train ...``: offline training jobs, each logged to MLflow and registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from visearch.cli import app
from visearch.config import get_settings
from visearch.errors import NotFoundError
from visearch.registry import ModelStore, parse_ref

train_app = typer.Typer(help="Train a model on WB-Synth, log it to MLflow and register a version.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("detector")
def detector(
    data: Annotated[Path, typer.Option("--data", help="WB-Synth data set folder")],
    recipe: Annotated[str, typer.Option("--recipe", help="quick (class-agnostic, minutes), full (categories, hours), tiny (smoke test)")] = "quick",
    alias: Annotated[str | None, typer.Option("--alias", help="registry alias to point at the new version, e.g. champion")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="override the last stage's epochs")] = None,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="do nothing when --alias already names a version")] = False,
) -> None:
    """Train YOLO (from yolo11n.yaml, no download) and register a version of visearch-detector."""
    from training.detector import MODEL_NAME, train_detector

    settings = get_settings()
    console = Console()
    if if_missing and alias:
        try:
            version = ModelStore(settings).version_of(parse_ref(f"models:/{MODEL_NAME}@{alias}"))
            console.print(f"models:/{MODEL_NAME}@{alias} is version {version}: reusing it")
            return
        except NotFoundError:
            pass
    card = train_detector(data, settings, recipe=recipe, alias=alias, epochs=epochs)
    console.print(f"registered {MODEL_NAME} version {card['version']}" + (f" as @{alias}" if alias else "")
                  + f" in {card['train_seconds']:.0f} s")
    console.print_json(json.dumps(card["val_metrics"]))
