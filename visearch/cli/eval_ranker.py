"""``visearch eval ranker``: a ranker version against similarity order on held-out sessions."""

from __future__ import annotations

from typing import Annotated

import typer

from visearch.cli._output import print_result, stdout_to_stderr
from visearch.cli.eval import eval_app
from visearch.cli.eval_vision import Data, Split
from visearch.config import get_settings


@eval_app.command("ranker")
def eval_ranker_cmd(
    data: Data,
    model: Annotated[str, typer.Option("--model", help="ranker reference")] = "models:/visearch-ranker@champion",
    split: Split = "test",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """NDCG@10 and MRR of the ranker's order and of similarity order on the same sessions, in one run."""
    from training.ranker import eval_ranker

    with stdout_to_stderr(as_json):
        result = eval_ranker(data, get_settings(), model, split, progress=not (quiet or as_json))
    print_result(result, as_json)
