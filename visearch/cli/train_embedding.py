"""``visearch train backbone|head``: the embedder's two training jobs, logged to MLflow and registered."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from visearch.cli.train import Alias, Data, IfMissing, Quiet, already_registered, check_recipe, train_app
from visearch.config import get_settings


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

    check_recipe(recipe, RECIPES)
    settings = get_settings()
    console = Console()
    if already_registered(settings, MODEL_NAME, alias, if_missing, console):
        return
    card = train_backbone(data, settings, recipe=recipe, alias=alias, progress=not quiet)
    console.print(f"registered {MODEL_NAME} version {card.version}" + (f" as @{alias}" if alias else "")
                  + f" in {card.train_seconds:.0f} s ({card.steps} steps); trained on synthetic data, not pretrained SigLIP 2")
    console.print_json(json.dumps(card.val_metrics))


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

    check_recipe(recipe, RECIPES)
    settings = get_settings()
    console = Console()
    if already_registered(settings, MODEL_NAME, alias, if_missing, console):
        return
    card = train_head(data, settings, recipe=recipe, backbone=backbone, alias=alias, progress=not quiet)
    console.print(f"registered {MODEL_NAME} version {card.version}" + (f" as @{alias}" if alias else "")
                  + f" in {card.train_seconds:.0f} s over {card.backbone}; baseline {card.baseline}")
    clean = card.clean
    console.print(f"cleaning: {clean['pairs']} pairs, {clean['near_duplicates']} near-duplicates and {clean['outliers']} "
                  f"outliers removed, {clean['kept']} kept" + (" (capped)" if clean.get("capped") else ""))
    console.print_json(json.dumps({d: m["recall@10"] for d, m in card.val_metrics["head"].items()}))
