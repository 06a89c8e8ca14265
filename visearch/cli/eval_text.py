"""``visearch eval tags`` and ``visearch eval refiner``: the text models on held-out WB-Synth products."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from visearch.cli._output import stdout_to_stderr
from visearch.cli.eval import eval_app
from visearch.cli.eval_vision import Data, Split
from visearch.config import get_settings

Json = Annotated[bool, typer.Option("--json", help="print one JSON object")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        Console().print_json(json.dumps(result, ensure_ascii=False))


@eval_app.command("tags")
def eval_tags_cmd(
    data: Data,
    model: Annotated[str, typer.Option("--model", help="tag model reference")] = "models:/visearch-tagger@champion",
    split: Split = "test",
    through_search: Annotated[bool, typer.Option("--through-search", help=(
        "also the tags search answers with: each held-out photo uploaded and every object tapped (in process, or "
        "the running service with --url), searched within the detected category"))] = False,
    url: Annotated[str | None, typer.Option("--url", help="with --through-search: the running service at this URL")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="with --through-search: at most this many photos")] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Precision@5 of held-out crops' tags against their products' attributes: projection, nearest products'
    votes, and both fused, on true boxes and the whole catalog; with --through-search, as search answers them."""
    from training.tags import eval_tags

    settings = get_settings(models={"tagger": model}) if through_search else get_settings()
    with stdout_to_stderr(as_json):
        result = eval_tags(data, settings, model, split, progress=not (quiet or as_json))
        if through_search or url:
            from visearch.pipeline_eval import HttpClient, LocalClient, tags_through_search

            client = HttpClient(url) if url else LocalClient(settings)
            result["through_search"] = {**tags_through_search(client, data, split=split, limit=limit,
                                                               progress=not (quiet or as_json)),
                                        "source": url or "in process"}
    _print(result, as_json)


@eval_app.command("refiner")
def eval_refiner_cmd(
    data: Data,
    model: Annotated[str, typer.Option("--model", help="refiner reference")] = "models:/visearch-refiner@champion",
    split: Split = "test",
    through_search: Annotated[bool, typer.Option("--through-search", help=(
        "also refine the way a shopper does: upload a photo of the anchor, tap it, type the text (in process, or "
        "the running service with --url); the served refiner, within the detected category"))] = False,
    url: Annotated[str | None, typer.Option("--url", help="with --through-search: the running service at this URL")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="with --through-search: at most this many triplets")] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Held-out triplets: the target's rank in the whole catalog after refinement, against the crop alone and
    the text alone, on the same queries; with --through-search, the same through the whole query."""
    from training.refiner import eval_refiner

    settings = get_settings() if not through_search else get_settings(models={"refiner": model})
    with stdout_to_stderr(as_json):
        result = eval_refiner(data, settings, model, split, progress=not (quiet or as_json))
        if through_search or url:
            from visearch.pipeline_eval import HttpClient, LocalClient, refine_through_search

            client = HttpClient(url) if url else LocalClient(settings)
            result["through_search"] = {**refine_through_search(client, data, split=split, limit=limit,
                                                                 progress=not (quiet or as_json)),
                                        "source": url or "in process"}
    _print(result, as_json)
