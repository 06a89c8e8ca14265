"""``visearch eval tags`` and ``visearch eval refiner``: the text models on held-out WB-Synth products."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from visearch.cli._output import print_result, stdout_to_stderr
from visearch.cli.eval import eval_app
from visearch.cli.eval_vision import Data, Split
from visearch.config import Settings, get_settings

Json = Annotated[bool, typer.Option("--json", help="print one JSON object")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
Url = Annotated[str | None, typer.Option("--url", help="with --through-search: the running service at this URL")]


def _evaluate(offline: Callable[..., dict[str, Any]], through: Callable[..., dict[str, Any]], settings: Settings,
              data: Path, model: str, split: str, *, through_search: bool, url: str | None, limit: int | None,
              as_json: bool, quiet: bool) -> None:
    """The offline figures, and with --through-search (or --url) the same through the whole query: the running
    service at ``url``, or the same flow in process; printed as JSON or pretty."""
    from visearch.pipeline_eval import HttpClient, LocalClient

    progress = not (quiet or as_json)
    with stdout_to_stderr(as_json):
        result = offline(data, settings, model, split, progress=progress)
        if through_search or url:
            client, source = (HttpClient(url), url) if url else (LocalClient(settings), "in process")
            result["through_search"] = {**through(client, data, split=split, limit=limit, progress=progress),
                                        "source": source}
    print_result(result, as_json)


@eval_app.command("tags")
def eval_tags_cmd(
    data: Data,
    model: Annotated[str, typer.Option("--model", help="tag model reference")] = "models:/visearch-tagger@champion",
    split: Split = "test",
    through_search: Annotated[bool, typer.Option("--through-search", help=(
        "also the tags search answers with: each held-out photo uploaded and every object tapped (in process, or "
        "the running service with --url), searched within the detected category"))] = False,
    url: Url = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="with --through-search: at most this many photos")] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Precision@5 of held-out crops' tags against their products' attributes: projection, nearest products'
    votes, and both fused, on true boxes and the whole catalog; with --through-search, as search answers them."""
    from training.tags import eval_tags
    from visearch.pipeline_eval import tags_through_search

    _evaluate(eval_tags, tags_through_search, get_settings(models={"tagger": model}), data, model, split,
              through_search=through_search, url=url, limit=limit, as_json=as_json, quiet=quiet)


@eval_app.command("refiner")
def eval_refiner_cmd(
    data: Data,
    model: Annotated[str, typer.Option("--model", help="refiner reference")] = "models:/visearch-refiner@champion",
    split: Split = "test",
    through_search: Annotated[bool, typer.Option("--through-search", help=(
        "also refine the way a shopper does: upload a photo of the anchor, tap it, type the text (in process, or "
        "the running service with --url); the served refiner, within the detected category"))] = False,
    url: Url = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="with --through-search: at most this many triplets")] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Held-out triplets: the target's rank in the whole catalog after refinement, against the crop alone and
    the text alone, on the same queries; with --through-search, the same through the whole query."""
    from training.refiner import eval_refiner
    from visearch.pipeline_eval import refine_through_search

    _evaluate(eval_refiner, refine_through_search, get_settings(models={"refiner": model}), data, model, split,
              through_search=through_search, url=url, limit=limit, as_json=as_json, quiet=quiet)
