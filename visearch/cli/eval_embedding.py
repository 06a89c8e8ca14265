"""``visearch eval embeddings``: retrieval quality per MRL size, with both baselines, on a held-out split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from visearch.cli._output import stdout_to_stderr
from visearch.cli.eval import eval_app
from visearch.config import get_settings

_COLUMNS = ("recall@1", "recall@5", "recall@10", "map@10", "precision", "f1")


def _table(report: dict[str, Any]) -> Table:
    gallery = report.get("gallery", "split")
    among = "held-out products" if gallery == "split" else "products of every split"
    table = Table(title=f"embeddings on WB-Synth {report['split']}: {report['n_queries']} shopper crops "
                        f"against gallery {gallery} ({report['n_products']} {among})")
    table.add_column("model")
    table.add_column("size", justify="right")
    for col in _COLUMNS:
        table.add_column(col, justify="right")
    rows = [("MRL head", report["head"]), ("single-512, truncated", report["baselines"].get("truncated") or {}),
            ("frozen backbone", report["baselines"]["frozen"])]
    for name, block in rows:
        for size, m in block.items():
            table.add_row(name, str(m.get("dim", size)), *(f"{m[c]:.3f}" for c in _COLUMNS))
    return table


@eval_app.command("embeddings")
def eval_embeddings_cmd(
    data: Annotated[Path, typer.Option("--data", help="WB-Synth data set folder (any seed, not only the trained one)")],
    model: Annotated[str | None, typer.Option("--model", help="embedder reference \\[default: VISEARCH_MODELS__EMBEDDER]")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="single-512 head \\[default: the one the embedder's card names]")] = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test (held-out products)")] = "test",
    gallery: Annotated[str, typer.Option("--gallery", help="split: search among the split's products; all: among every "
                                         "product of every split, as a shopper searches the catalog")] = "split",
    report: Annotated[Path | None, typer.Option("--report", help="JSON report path; the PNG plot goes beside it")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Shopper crops against every held-out product (or the whole catalog): Recall@1/5/10, mAP@10, precision/F1 per size;
    frozen and truncated baselines."""
    from visearch.embedding.evaluate import eval_embeddings
    from visearch.vision.evaluate import write_report

    settings = get_settings()
    with stdout_to_stderr(as_json):
        result, plot = eval_embeddings(data, settings, ref=model, split=split, baseline=baseline, progress=not quiet,
                                       gallery=gallery)
    default = "eval-embeddings.json" if gallery == "split" else f"eval-embeddings-gallery-{gallery}.json"
    path = report or settings.data_dir / "reports" / default
    write_report(result, path, plot)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    console = Console()
    console.print(_table(result))
    console.print(f"model: {result['model']} — {result['model_card']}")
    console.print(f"backbone: {result['backbone']} — {result['backbone_card']}")
    console.print(f"report: {path} and {path.with_suffix('.png')}")
