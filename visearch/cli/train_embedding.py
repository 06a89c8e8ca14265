"""``visearch train backbone|head``: the embedder's two training jobs, logged to MLflow and registered."""

from __future__ import annotations

from typing import Annotated

import typer

from visearch.cli.train import Alias, Data, IfMissing, Quiet, run_training, train_app
from visearch.registry.card import ModelCard


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

    run_training(MODEL_NAME, RECIPES, recipe, alias, if_missing,
                 lambda settings: train_backbone(data, settings, recipe=recipe, alias=alias, progress=not quiet),
                 detail=lambda card: f" ({card.steps} steps); trained on synthetic data, not pretrained SigLIP 2")


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

    def detail(card: ModelCard) -> str:
        clean = card.clean
        return (f" over {card.backbone}; baseline {card.baseline}\ncleaning: {clean['pairs']} pairs, {clean['near_duplicates']} "
                f"near-duplicates and {clean['outliers']} outliers removed, {clean['kept']} kept"
                + (" (capped)" if clean.get("capped") else ""))

    run_training(MODEL_NAME, RECIPES, recipe, alias, if_missing,
                 lambda settings: train_head(data, settings, recipe=recipe, backbone=backbone, alias=alias, progress=not quiet),
                 detail=detail, figures=lambda card: {d: m["recall@10"] for d, m in card.val_metrics["head"].items()})
