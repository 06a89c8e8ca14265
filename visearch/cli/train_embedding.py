"""``visearch train backbone|head``: the embedder's two training jobs, logged to MLflow and registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from visearch.cli.train import train_app
from visearch.config import Settings, get_settings
from visearch.errors import InvalidArgumentError, NotFoundError
from visearch.registry import ModelStore, parse_ref

Data = Annotated[Path, typer.Option("--data", help="WB-Synth data set folder")]
Alias = Annotated[str | None, typer.Option("--alias", help="registry alias to point at the new version, e.g. champion")]
IfMissing = Annotated[bool, typer.Option("--if-missing", help="do nothing when --alias already names a version")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


def _check_recipe(recipe: str, known: dict) -> None:
    # before any heavy import, so a typo fails at once
    if recipe not in known:
        raise InvalidArgumentError(f"unknown recipe {recipe!r}; choose one of {', '.join(known)}")


def _existing(settings: Settings, name: str, alias: str | None, if_missing: bool, console: Console) -> bool:
    if not (if_missing and alias):
        return False
    try:
        version = ModelStore(settings).version_of(parse_ref(f"models:/{name}@{alias}"))
    except NotFoundError:
        return False
    console.print(f"models:/{name}@{alias} is version {version}: reusing it")
    return True


@train_app.command("backbone")
def backbone(
    data: Data,
    recipe: Annotated[str, typer.Option("--recipe", help="quick (minutes), full (hours), tiny (smoke test)")] = "quick",
    alias: Alias = None,
    if_missing: IfMissing = False,
    quiet: Quiet = False,
) -> None:
    """Train the offline default backbone (small SigLIP-style open_clip model, sigmoid loss) and register visearch-backbone."""
    from training.backbone import MODEL_NAME, RECIPES, train_backbone

    _check_recipe(recipe, RECIPES)
    settings = get_settings()
    console = Console()
    if _existing(settings, MODEL_NAME, alias, if_missing, console):
        return
    card = train_backbone(data, settings, recipe=recipe, alias=alias, progress=not quiet)
    console.print(f"registered {MODEL_NAME} version {card['version']}" + (f" as @{alias}" if alias else "")
                  + f" in {card['train_seconds']:.0f} s ({card['steps']} steps); trained on synthetic data, not pretrained SigLIP 2")
    console.print_json(json.dumps(card["val_metrics"]))


@train_app.command("head")
def head(
    data: Data,
    recipe: Annotated[str, typer.Option("--recipe", help="quick (minutes), full (hours), tiny (smoke test)")] = "quick",
    backbone: Annotated[str | None, typer.Option("--backbone", help="backbone reference \\[default: VISEARCH_MODELS__BACKBONE]")] = None,
    alias: Alias = None,
    if_missing: IfMissing = False,
    quiet: Quiet = False,
) -> None:
    """Train the attention head (MRL 512/256/128/64) and its single-512 baseline; register visearch-embedder."""
    from training.head import MODEL_NAME, RECIPES, train_head

    _check_recipe(recipe, RECIPES)
    settings = get_settings()
    console = Console()
    if _existing(settings, MODEL_NAME, alias, if_missing, console):
        return
    card = train_head(data, settings, recipe=recipe, backbone=backbone, alias=alias, progress=not quiet)
    console.print(f"registered {MODEL_NAME} version {card['version']}" + (f" as @{alias}" if alias else "")
                  + f" in {card['train_seconds']:.0f} s over {card['backbone']}; baseline {card['baseline']}")
    clean = card["clean"]
    console.print(f"cleaning: {clean['pairs']} pairs, {clean['near_duplicates']} near-duplicates and {clean['outliers']} "
                  f"outliers removed, {clean['kept']} kept" + (" (capped)" if clean.get("capped") else ""))
    console.print_json(json.dumps({d: m["recall@10"] for d, m in card["val_metrics"]["head"].items()}))
