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
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Precision@5 of held-out crops' tags against their products' attributes: projection, nearest products'
    votes, and both fused as search serves them; plus how much of the attributes the generator reads off text."""
    from training.tags import eval_tags

    with stdout_to_stderr(as_json):
        result = eval_tags(data, get_settings(), model, split, progress=not (quiet or as_json))
    _print(result, as_json)


@eval_app.command("refiner")
def eval_refiner_cmd(
    data: Data,
    model: Annotated[str, typer.Option("--model", help="refiner reference")] = "models:/visearch-refiner@champion",
    split: Split = "test",
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Held-out triplets: the target's rank in the whole catalog after refinement, against the crop alone and
    the text alone, on the same queries."""
    from training.refiner import eval_refiner

    with stdout_to_stderr(as_json):
        result = eval_refiner(data, get_settings(), model, split, progress=not (quiet or as_json))
    _print(result, as_json)
